package worker

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/interceptor"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/activities"
	"github.com/cheops-io/cheops/metrics"
)

// A failed attempt is counted under its activity and error class; a success is not counted.
func TestActivityFailuresAreCountedByClass(t *testing.T) {
	m := metrics.New(nil)
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	env.SetWorkerOptions(sdkworker.Options{Interceptors: []interceptor.WorkerInterceptor{&failureCounter{m: m}}})
	var fail error
	env.RegisterActivityWithOptions(func(context.Context) error { return fail }, activity.RegisterOptions{Name: "ApplySite"})

	for _, err := range []error{
		nil,
		temporal.NewNonRetryableApplicationError("rejected", string(cheops.Permanent), nil),
		temporal.NewApplicationError("refused", string(cheops.Unreachable)),
		errors.New("plain"),
	} {
		fail = err
		_, _ = env.ExecuteActivity("ApplySite")
	}
	for class, want := range map[string]float64{"Permanent": 1, "Unreachable": 1, "Transient": 1} {
		got := counterValue(t, m, "ApplySite", class)
		if got != want {
			t.Errorf("%s{ApplySite,%s} = %v, want %v", metrics.ActivityFailures, class, got, want)
		}
	}
	if got := counterValue(t, m, "", ""); got != 3 {
		t.Errorf("%v failures in all, want 3: a success was counted", got)
	}
}

// A wave that succeeds with failed sites counts each of them under the wave and its class, in
// cheops_site_failures_total; the activity itself did not fail.
func TestWaveSiteFailuresAreCountedByClass(t *testing.T) {
	m := metrics.New(nil)
	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestActivityEnvironment()
	env.SetWorkerOptions(sdkworker.Options{Interceptors: []interceptor.WorkerInterceptor{&failureCounter{m: m}}})
	env.RegisterActivityWithOptions(func(context.Context) (activities.WaveOutput, error) {
		return activities.WaveOutput{Driver: cheops.DriverKubernetes, Sites: []activities.SiteOutcome{{Site: "a", SinceDeclared: 300 * time.Millisecond},
			{Site: "b", Class: cheops.Permanent}, {Site: "c", Class: cheops.Unreachable}, {Site: "d", Class: cheops.Unreachable}}}, nil
	}, activity.RegisterOptions{Name: "ApplyWave"})
	env.RegisterActivityWithOptions(func(context.Context) (activities.CompensateWaveOutput, error) {
		return activities.CompensateWaveOutput{Sites: []activities.DeleteOutcome{{Site: "a", Class: cheops.Transient}}}, nil
	}, activity.RegisterOptions{Name: "CompensateWave"})
	for _, name := range []string{"ApplyWave", "CompensateWave"} {
		if _, err := env.ExecuteActivity(name); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		act, class string
		want       float64
	}{{"ApplyWave", "Permanent", 1}, {"ApplyWave", "Unreachable", 2}, {"CompensateWave", "Transient", 1}, {"", "", 4}} {
		if got := metricValue(t, m, metrics.SiteFailures, c.act, c.class); got != c.want {
			t.Errorf("%s{%s,%s} = %v, want %v", metrics.SiteFailures, c.act, c.class, got, c.want)
		}
	}
	if got := counterValue(t, m, "", ""); got != 0 {
		t.Errorf("%v activity failures, want 0: the waves succeeded", got)
	}
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	samples := uint64(0)
	for _, mf := range mfs {
		if mf.GetName() == metrics.ReplicationLatency {
			for _, h := range mf.GetMetric() {
				if h.GetLabel()[0].GetValue() == "kubernetes" {
					samples += h.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	if samples != 1 {
		t.Errorf("%s{kubernetes} has %d samples, want the one site the wave applied", metrics.ReplicationLatency, samples)
	}
}

func counterValue(t *testing.T, m *metrics.Metrics, act, class string) float64 {
	t.Helper()
	return metricValue(t, m, metrics.ActivityFailures, act, class)
}

func metricValue(t *testing.T, m *metrics.Metrics, name, act, class string) float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, c := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range c.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			// Empty act and class sum every series.
			if (act == "" || l["activity"] == act) && (class == "" || l["class"] == class) {
				sum += c.GetCounter().GetValue()
			}
		}
	}
	return sum
}
