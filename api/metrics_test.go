package api_test

import (
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// scrape reads /metrics as a viewer and parses it.
func scrape(t *testing.T, h http.Handler) map[string]*dto.MetricFamily {
	t.Helper()
	rec := do(t, h, http.MethodGet, "/metrics", nil, "Authorization", "Bearer viewer-token")
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics as viewer: %d %s %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	var p expfmt.TextParser
	mfs, err := p.TextToMetricFamilies(rec.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return mfs
}

// sample returns the metric of family name whose labels are exactly want, or nil.
func sample(mfs map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	for _, m := range mfs[name].GetMetric() {
		got := map[string]string{}
		for _, l := range m.GetLabel() {
			got[l.GetName()] = l.GetValue()
		}
		if len(got) != len(want) {
			continue
		}
		match := true
		for k, v := range want {
			match = match && got[k] == v
		}
		if match {
			return m
		}
	}
	return nil
}

// Requests are counted by route template and status code, never by raw path, and /metrics itself
// needs a token.
func TestMetricsCountRequestsByRoute(t *testing.T) {
	h := newAPI(t)
	if rec := do(t, h, http.MethodGet, "/metrics", nil, "Authorization", ""); rec.Code != http.StatusUnauthorized {
		t.Fatalf("GET /metrics without a token: %d %s; want 401", rec.Code, rec.Body)
	}
	addSite(t, h, "metrics-lyon")
	for range 3 {
		if rec := do(t, h, http.MethodGet, "/v1/sites/metrics-lyon", nil, "Authorization", "Bearer viewer-token"); rec.Code != http.StatusOK {
			t.Fatalf("get site: %d %s", rec.Code, rec.Body)
		}
	}
	if rec := do(t, h, http.MethodGet, "/v1/sites/no-such-site", nil, "Authorization", "Bearer viewer-token"); rec.Code != http.StatusNotFound {
		t.Fatalf("get a missing site: %d %s", rec.Code, rec.Body)
	}

	mfs := scrape(t, h)
	const name = "cheops_http_request_duration_seconds"
	if mfs[name].GetType() != dto.MetricType_HISTOGRAM {
		t.Fatalf("%s: type %v, want a histogram", name, mfs[name].GetType())
	}
	for _, c := range []struct {
		code string
		n    uint64
	}{{"200", 3}, {"404", 1}} {
		m := sample(mfs, name, map[string]string{"method": "GET", "route": "/v1/sites/:name", "code": c.code})
		if m == nil || m.GetHistogram().GetSampleCount() != c.n {
			t.Errorf("%s{GET /v1/sites/:name %s}: %v; want %d samples", name, c.code, m, c.n)
		}
	}
	if m := sample(mfs, name, map[string]string{"method": "GET", "route": "/metrics", "code": "401"}); m.GetHistogram().GetSampleCount() != 1 {
		t.Errorf("the refused scrape: %v; want 1 sample", m)
	}
	for _, m := range mfs[name].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "route" && (strings.Contains(l.GetValue(), "metrics-lyon") || strings.Contains(l.GetValue(), "no-such-site")) {
				t.Errorf("route label %q is a raw path", l.GetValue())
			}
		}
	}
	// A site no worker has probed yet is Unknown.
	for state, want := range map[string]float64{"Unknown": 1, "Ready": 0, "Unreachable": 0} {
		m := sample(mfs, "cheops_site_health", map[string]string{"site": "metrics-lyon", "state": state})
		if m.GetGauge().GetValue() != want || m == nil {
			t.Errorf("cheops_site_health{metrics-lyon,%s}: %v; want %v", state, m, want)
		}
	}
}
