package e2e

import (
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/client"
)

// scraped is one scrape: a sample's value by family and labels.
type scraped map[string][]*dto.Metric

// scrapeMetrics reads url's /metrics, with the admin's token when token is set.
func scrapeMetrics(t *testing.T, url string, token bool) scraped {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url+"/metrics", nil)
	if token {
		req.Header.Set("Authorization", "Bearer "+env.cheops.Token)
	}
	// A worker just started (when this test runs first) may not listen yet.
	resp, err := http.DefaultClient.Do(req)
	for deadline := time.Now().Add(30 * time.Second); err != nil && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		resp, err = http.DefaultClient.Do(req)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s/metrics: %d", url, resp.StatusCode)
	}
	var p expfmt.TextParser
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse %s/metrics: %v", url, err)
	}
	out := scraped{}
	for name, mf := range mfs {
		out[name] = mf.GetMetric()
	}
	return out
}

// value is the gauge or counter value, or the histogram's sample count, of the sample of family
// name whose labels include want (0 when there is none).
func (s scraped) value(name string, want map[string]string) float64 {
	for _, m := range s[name] {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			match = match && labels[k] == v
		}
		if !match {
			continue
		}
		switch {
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		default:
			return m.GetGauge().GetValue()
		}
	}
	return 0
}

// The API's and the worker's metrics move with a replication: replicas by state, site health, the
// requests that made it, and a site's rejection counted by the worker under its error class.
func TestMetricsMoveWithAReplication(t *testing.T) {
	if code, _ := call(http.MethodGet, "/metrics", nil, map[string]string{"Authorization": ""}); code != http.StatusUnauthorized {
		t.Fatalf("GET /metrics without a token: %d, want 401", code)
	}
	ready := func(site string) map[string]string { return map[string]string{"site": site, "state": "Ready"} }
	before := scrapeMetrics(t, env.api, true)
	beforeWorker := scrapeMetrics(t, env.cheops.WorkerMetrics, false)

	r := create(t, "metrics-cm", configMap("metrics-cm", "v1"), "site-1", "site-2")
	waitReady(t, r.ID, 1)
	latency := map[string]string{"driver": "kubernetes"}
	if d := scrapeMetrics(t, env.cheops.WorkerMetrics, false).value("cheops_replication_seconds", latency) -
		beforeWorker.value("cheops_replication_seconds", latency); d != 2 {
		t.Errorf("cheops_replication_seconds{kubernetes} has %v more samples, want one per site (2)", d)
	}
	after := scrapeMetrics(t, env.api, true)
	// The Temporal SDK's own metrics: the API's client started the resource's workflow, the worker
	// ran an ApplyWave.
	signal := map[string]string{"operation": "StartWorkflowExecution", "workflow_type": "ResourceWorkflow"}
	if d := after.value("temporal_request", signal) - before.value("temporal_request", signal); d < 1 {
		t.Errorf("temporal_request{StartWorkflowExecution} on the API moved by %v, want at least 1", d)
	}
	wave := map[string]string{"activity_type": "ApplyWave"}
	if d := scrapeMetrics(t, env.cheops.WorkerMetrics, false).value("temporal_activity_execution_latency", wave) -
		beforeWorker.value("temporal_activity_execution_latency", wave); d < 1 {
		t.Errorf("temporal_activity_execution_latency{ApplyWave} on the worker has %v more samples, want at least 1", d)
	}
	for _, site := range []string{"site-1", "site-2"} {
		if d := after.value("cheops_replicas", ready(site)) - before.value("cheops_replicas", ready(site)); d != 1 {
			t.Errorf("cheops_replicas{%s,Ready} moved by %v, want 1", site, d)
		}
		// The worker probes every second: by the time a replica is Ready its site is.
		if v := after.value("cheops_site_health", ready(site)); v != 1 {
			t.Errorf("cheops_site_health{%s,Ready} = %v, want 1", site, v)
		}
	}
	for _, req := range []map[string]string{
		{"method": "POST", "route": "/v1/resources", "code": "201"},
		{"method": "GET", "route": "/v1/resources/:id", "code": "200"},
	} {
		if d := after.value("cheops_http_request_duration_seconds", req) - before.value("cheops_http_request_duration_seconds", req); d < 1 {
			t.Errorf("cheops_http_request_duration_seconds%v: %v more samples, want at least 1", req, d)
		}
	}

	// site-1 rejects a ConfigMap in a namespace it does not have: the wave succeeds, and the worker
	// counts the site's Permanent failure.
	permanent := map[string]string{"activity": "ApplyWave", "class": string(cheops.Permanent)}
	cm := configMap("metrics-rejected", "v1")
	cm["metadata"].(map[string]any)["namespace"] = "metrics-nowhere"
	rejected := post(t, client.ResourceRequest{Name: "metrics-rejected", Manifest: raw(cm),
		Scope: onSites("site-1"), Policy: &cheops.Policy{Consistency: cheops.Transactional}})
	waitFor(t, rejected.ID, 2*time.Minute, "RolledBack", func(r resource, _ int) bool { return r.State == "RolledBack" })
	afterWorker := scrapeMetrics(t, env.cheops.WorkerMetrics, false)
	if d := afterWorker.value("cheops_site_failures_total", permanent) - beforeWorker.value("cheops_site_failures_total", permanent); d < 1 {
		t.Errorf("cheops_site_failures_total{ApplyWave,Permanent} moved by %v, want at least 1", d)
	}

	remove(t, rejected.ID)
	remove(t, r.ID)
	gone := scrapeMetrics(t, env.api, true)
	for _, site := range []string{"site-1", "site-2"} {
		if g, b := gone.value("cheops_replicas", ready(site)), before.value("cheops_replicas", ready(site)); g != b {
			t.Errorf("cheops_replicas{%s,Ready} = %v after the delete, want %v as before", site, g, b)
		}
	}
}
