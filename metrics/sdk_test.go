package metrics_test

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cheops-io/cheops/metrics"
)

// The SDK's counters, gauges and timers come out as Prometheus counters, gauges and histograms;
// series of one name given different tags share the union of the label names, so the registry
// gathers them without error.
func TestSDKMetrics(t *testing.T) {
	sdk := metrics.NewSDK()
	reg := prometheus.NewRegistry()
	reg.MustRegister(sdk)
	h := sdk.Handler().WithTags(map[string]string{"namespace": "default"})
	h.WithTags(map[string]string{"operation": "SignalWithStartWorkflowExecution"}).Counter("temporal_request").Inc(2)
	h.WithTags(map[string]string{"operation": "SignalWithStartWorkflowExecution"}).Counter("temporal_request").Inc(1)
	h.Counter("temporal_request").Inc(5) // no operation tag
	h.WithTags(map[string]string{"task_queue": "cheops"}).Gauge("temporal_num_pollers").Update(3)
	timer := h.WithTags(map[string]string{"activity_type": "ApplyWave"}).Timer("temporal_activity_execution_latency")
	timer.Record(20 * time.Millisecond)
	timer.Record(2 * time.Second)

	if _, err := reg.Gather(); err != nil {
		t.Fatalf("gather: %v", err)
	}
	want := `
# HELP temporal_request Temporal SDK metric temporal_request (see Temporal's SDK metrics reference).
# TYPE temporal_request counter
temporal_request{namespace="default",operation=""} 5
temporal_request{namespace="default",operation="SignalWithStartWorkflowExecution"} 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "temporal_request"); err != nil {
		t.Error(err)
	}
	if got := testutil.ToFloat64(gaugeOf(t, reg, "temporal_num_pollers")); got != 3 {
		t.Errorf("temporal_num_pollers = %v; want 3", got)
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "temporal_activity_execution_latency" {
			continue
		}
		hist := mf.GetMetric()[0].GetHistogram()
		if hist.GetSampleCount() != 2 || hist.GetSampleSum() < 2.0 || hist.GetSampleSum() > 2.1 {
			t.Errorf("histogram count %d, sum %v; want 2 samples summing to 2.02 s", hist.GetSampleCount(), hist.GetSampleSum())
		}
		for _, b := range hist.GetBucket() {
			if b.GetUpperBound() == 0.025 && b.GetCumulativeCount() != 1 {
				t.Errorf("bucket le=0.025 holds %d; want 1", b.GetCumulativeCount())
			}
		}
		return
	}
	t.Error("no temporal_activity_execution_latency histogram")
}

// gaugeOf returns a collector of the one gauge of that name, for testutil.ToFloat64.
func gaugeOf(t *testing.T, reg *prometheus.Registry, name string) prometheus.Gauge {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "copy"})
	for _, mf := range mfs {
		if mf.GetName() == name {
			g.Set(mf.GetMetric()[0].GetGauge().GetValue())
		}
	}
	return g
}
