package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"go.temporal.io/sdk/temporal"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/internal/etcdtest"
	"github.com/cheops-io/cheops/metrics"
	"github.com/cheops-io/cheops/store"
)

// gauges gathers m and returns the value of every gauge of family name by its site and state.
func gauges(t *testing.T, m *metrics.Metrics, name string) map[string]float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, g := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range g.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			out[labels["site"]+"/"+labels["state"]] = g.GetGauge().GetValue()
		}
	}
	return out
}

func expect(t *testing.T, got map[string]float64, want map[string]float64) {
	t.Helper()
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
}

func setReplica(t *testing.T, s *store.Store, id, site string, state cheops.ReplicaState) {
	t.Helper()
	if _, err := s.UpdateReplica(context.Background(), id, site, func(r *cheops.Replica) (*cheops.Event, error) {
		r.State = state
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
}

// Replicas by site and state, and site health, are what the store holds at each scrape.
func TestStoreGauges(t *testing.T) {
	ctx := context.Background()
	s := etcdtest.Store(t)
	for _, name := range []string{"paris", "berlin"} {
		if _, err := s.CreateSite(ctx, cheops.Site{Name: name, Driver: cheops.DriverKubernetes}, cheops.Credentials{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range []string{"r1", "r2"} {
		if _, _, err := s.CreateResource(ctx, cheops.Resource{ID: id, Name: id, Driver: cheops.DriverKubernetes}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.MarkPending(ctx, "r1", []string{"paris", "berlin"}); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkPending(ctx, "r2", []string{"paris"}); err != nil {
		t.Fatal(err)
	}
	setReplica(t, s, "r1", "paris", cheops.ReplicaReady)
	if _, err := s.UpdateSite(ctx, "berlin", nil, func(site *cheops.Site) (*cheops.Event, error) {
		site.Health = cheops.SiteUnreachable
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}

	m := metrics.New(s)
	expect(t, gauges(t, m, metrics.Replicas), map[string]float64{
		"paris/Ready": 1, "paris/Pending": 1, "paris/Failed": 0,
		"berlin/Pending": 1, "berlin/Ready": 0, "berlin/Unreachable": 0,
	})
	expect(t, gauges(t, m, metrics.SiteHealth), map[string]float64{
		"paris/Unknown": 1, "paris/Ready": 0, "paris/Unreachable": 0,
		"berlin/Unknown": 0, "berlin/Ready": 0, "berlin/Unreachable": 1,
	})

	// The next scrape sees the store as it is then.
	setReplica(t, s, "r2", "paris", cheops.ReplicaFailed)
	setReplica(t, s, "r1", "berlin", cheops.ReplicaReady)
	expect(t, gauges(t, m, metrics.Replicas), map[string]float64{
		"paris/Ready": 1, "paris/Pending": 0, "paris/Failed": 1,
		"berlin/Pending": 0, "berlin/Ready": 1,
	})
	if n := len(gauges(t, m, metrics.Replicas)); n != 2*8 {
		t.Errorf("%d replica series, want 16 (2 sites × 8 states)", n)
	}
}

func TestErrorClass(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{temporal.NewApplicationError("x", string(cheops.Transient)), "Transient"},
		{temporal.NewNonRetryableApplicationError("x", string(cheops.Permanent), nil), "Permanent"},
		{fmt.Errorf("wrapped: %w", temporal.NewApplicationError("x", string(cheops.Unreachable))), "Unreachable"},
		{temporal.NewApplicationError("x", "SomethingElse"), "Other"},
		{cheops.Classify(cheops.Permanent, errors.New("rejected")), "Permanent"},
		{errors.New("plain"), "Transient"},
		{context.Canceled, "Canceled"},
	} {
		if got := metrics.ErrorClass(c.err); got != c.want {
			t.Errorf("ErrorClass(%v) = %s, want %s", c.err, got, c.want)
		}
	}
}
