package worker

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/internal/etcdtest"
	"github.com/cheops-io/cheops/store"
)

// goneDriver is a driver without watches whose objects are all gone from their sites.
type goneDriver struct {
	flakyDriver
	observed int
}

func (d *goneDriver) Observe(context.Context, cheops.Target, cheops.ObjectRef) (cheops.Observation, error) {
	d.observed++
	return cheops.Observation{}, nil
}

// driftFixture is a store with one resource (policy.drift report, so that no workflow needs
// waking) Ready on site edge with object uid-1, and a monitor whose driver observes as d says.
func driftFixture(t *testing.T) (*store.Store, *goneDriver, *DriftMonitor) {
	t.Helper()
	ctx := context.Background()
	s := etcdtest.Store(t)
	if _, err := s.CreateSite(ctx, cheops.Site{Name: "edge", Driver: cheops.DriverOpenStack}, cheops.Credentials{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateSite(ctx, "edge", nil, func(site *cheops.Site) (*cheops.Event, error) {
		site.Health = cheops.SiteReady
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CreateResource(ctx, cheops.Resource{ID: "r1", Name: "kp", Driver: cheops.DriverOpenStack, Generation: 2,
		Manifest: json.RawMessage(`{}`), Policy: cheops.Policy{Drift: cheops.DriftReport}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateReplica(ctx, "r1", "edge", func(rep *cheops.Replica) (*cheops.Event, error) {
		rep.State, rep.ObservedGeneration, rep.LocalID = cheops.ReplicaReady, 2, "uid-1"
		rep.Object = &cheops.ObjectRef{APIVersion: "openstack", Kind: "compute.keypair", Name: "uid-1"}
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	d := &goneDriver{}
	m := &DriftMonitor{Store: s, Drivers: map[cheops.DriverName]cheops.Driver{cheops.DriverOpenStack: d}, Log: slog.Default()}
	return s, d, m
}

func driftEvents(t *testing.T, s *store.Store) []cheops.Event {
	t.Helper()
	evs, err := s.Events(context.Background(), "r1")
	if err != nil {
		t.Fatal(err)
	}
	var out []cheops.Event
	for _, e := range evs {
		if e.Type == cheops.EventDrift {
			out = append(out, e)
		}
	}
	return out
}

// A drift is recorded only on the replica it was seen on: Ready or Applied at the resource's
// generation, with the object that drifted, and not already drifted. Anything else (an apply
// that ran meanwhile made another object, or recorded another generation) is left alone.
func TestRecordDriftOnlyOnTheReplicaItWasSeenOn(t *testing.T) {
	ctx := context.Background()
	s, _, m := driftFixture(t)
	for _, d := range []cheops.Drift{
		{Site: "edge", ResourceID: "r1", LocalID: "uid-0", Deleted: true, Message: "deleted on the site"},
		{Site: "edge", ResourceID: "r1", LocalID: "uid-1", Generation: 1, Message: "data.x changed"},
		{Site: "other", ResourceID: "r1", LocalID: "uid-1", Deleted: true, Message: "deleted on the site"},
		{Site: "edge", ResourceID: "gone", LocalID: "uid-1", Deleted: true, Message: "deleted on the site"},
	} {
		if err := m.Record(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	if evs := driftEvents(t, s); len(evs) != 0 {
		t.Fatalf("drift recorded on a replica it was not seen on: %+v", evs)
	}
	if _, err := s.GetReplica(ctx, "r1", "other"); err == nil {
		t.Fatal("a drift made a replica of its own")
	}
	d := cheops.Drift{Site: "edge", ResourceID: "r1", LocalID: "uid-1", Generation: 2, Message: "data.x changed by field manager kubectl-edit (Update)"}
	for range 2 {
		if err := m.Record(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	evs := driftEvents(t, s)
	if len(evs) != 1 || evs[0].Message != d.Message+"; left as it is (policy.drift report)" || evs[0].Generation != 2 {
		t.Fatalf("Drift events: %+v; want one, saying what changed and that it is left", evs)
	}
	rep, err := s.GetReplica(ctx, "r1", "edge")
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Drifted || rep.DriftMessage != d.Message || rep.State != cheops.ReplicaReady {
		t.Fatalf("replica: %+v", rep)
	}
}

// Objects of a driver that cannot watch are observed at each interval: one gone is drifted.
func TestObservedObjectGoneIsDrifted(t *testing.T) {
	ctx := context.Background()
	s, d, m := driftFixture(t)
	view, err := s.FollowForDrift(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.sync(ctx, view, false, func(dr cheops.Drift) { _ = m.Record(ctx, dr) }); err != nil {
		t.Fatal(err)
	}
	if d.observed != 0 {
		t.Fatalf("observed %d objects on a sync that was not to observe", d.observed)
	}
	if err := m.sync(ctx, view, true, func(dr cheops.Drift) { _ = m.Record(ctx, dr) }); err != nil {
		t.Fatal(err)
	}
	evs := driftEvents(t, s)
	if d.observed != 1 || len(evs) != 1 || evs[0].Site != "edge" || evs[0].Message != "deleted on the site; left as it is (policy.drift report)" {
		t.Fatalf("observed %d, Drift events %+v", d.observed, evs)
	}
}
