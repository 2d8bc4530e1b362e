package activities

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/store"
)

// deletingDriver is a siteDriver whose deletes are recorded: "down" refuses connections while
// down is set, "rejects" forbids the delete, any other site deletes. It counts how many run at once.
type deletingDriver struct {
	*siteDriver
	dmu     sync.Mutex
	down    bool
	deleted map[string][]cheops.ObjectRef
	now     int
	peak    int
}

func (d *deletingDriver) Delete(_ context.Context, t cheops.Target, ref cheops.ObjectRef) error {
	d.dmu.Lock()
	d.now++
	d.peak = max(d.peak, d.now)
	down := d.down
	d.dmu.Unlock()
	time.Sleep(5 * time.Millisecond)
	d.dmu.Lock()
	defer d.dmu.Unlock()
	d.now--
	switch {
	case t.Site.Name == "down" && down:
		return cheops.Classify(cheops.Unreachable, errors.New("dial tcp 127.0.0.1:1: connection refused"))
	case t.Site.Name == "rejects":
		return cheops.Classify(cheops.Permanent, errors.New(`configmaps "cm" is forbidden`))
	}
	d.deleted[t.Site.Name] = append(d.deleted[t.Site.Name], ref)
	return nil
}

// deleteFixture applies r1 to every site (all take it), then swaps in a deletingDriver.
func deleteFixture(t *testing.T, sites ...string) (*store.Store, *deletingDriver, *Activities, *testsuite.TestActivityEnvironment) {
	t.Helper()
	s, sd, a, env := waveFixture(t, sites...)
	d := &deletingDriver{siteDriver: sd, down: true, deleted: map[string][]cheops.ObjectRef{}}
	a.Drivers[cheops.DriverKubernetes] = d
	out := runWave(t, env, a, WaveInput{ResourceID: "r1", Generation: 1, Sites: sites, MaxParallel: 10, Attempt: 1})
	for site, o := range out {
		if o.Class != "" {
			// The apply of "down" and "rejects" fails by the fixture's rule: record their
			// replicas as holding an object all the same, to delete.
			if _, err := s.UpdateReplica(context.Background(), "r1", site, func(rep *cheops.Replica) (*cheops.Event, error) {
				rep.State, rep.LocalID = cheops.ReplicaReady, "uid-"+site
				rep.Object = &cheops.ObjectRef{Kind: "ConfigMap", Name: "cm"}
				return nil, nil
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return s, d, a, env
}

func runDeleteWave(t *testing.T, env *testsuite.TestActivityEnvironment, a *Activities, in DeleteWaveInput) map[string]DeleteOutcome {
	t.Helper()
	v, err := env.ExecuteActivity(a.DeleteWave, in)
	if err != nil {
		t.Fatalf("DeleteWave failed: %v", err)
	}
	var out DeleteWaveOutput
	if err := v.Get(&out); err != nil {
		t.Fatal(err)
	}
	if len(out.Sites) != len(in.Sites) {
		t.Fatalf("%d outcomes for %d sites", len(out.Sites), len(in.Sites))
	}
	bySite := map[string]DeleteOutcome{}
	for i, o := range out.Sites {
		if o.Site != in.Sites[i] {
			t.Fatalf("outcome %d is for %s, want %s: outcomes follow the input's order", i, o.Site, in.Sites[i])
		}
		bySite[o.Site] = o
	}
	return bySite
}

// eventsOf returns the types of r1's events on a site.
func eventsOf(t *testing.T, s *store.Store, site string) []cheops.EventType {
	t.Helper()
	evs, err := s.Events(context.Background(), "r1")
	if err != nil {
		t.Fatal(err)
	}
	var types []cheops.EventType
	for _, ev := range evs {
		if ev.Site == site {
			types = append(types, ev.Type)
		}
	}
	return types
}

// A deletion wave removes each site's object and forgets its replica with a Deleted event, at most
// MaxParallel at once; a site that fails keeps its replica, marked Deleting, with its object, and
// reports its class; a site with no replica succeeds. Once the site is back, a second wave of the
// failed site finishes it. The resource itself is left for ForgetResource.
func TestDeleteWaveRemovesEachSite(t *testing.T) {
	ctx := context.Background()
	sites := []string{"a", "b", "c", "d", "down", "rejects"}
	s, d, a, env := deleteFixture(t, sites...)
	out := runDeleteWave(t, env, a, DeleteWaveInput{ResourceID: "r1", Sites: append(slices.Clone(sites), "never"), MaxParallel: 2})
	want := map[string]cheops.ErrorClass{"a": "", "b": "", "c": "", "d": "", "down": cheops.Unreachable, "rejects": cheops.Permanent, "never": ""}
	for site, class := range want {
		if o := out[site]; o.Class != class || (class != "") != (o.Message != "") {
			t.Errorf("%s: outcome %+v, want class %q", site, o, class)
		}
	}
	if d.peak > 2 {
		t.Errorf("%d deletes at once, want at most 2", d.peak)
	}
	for _, site := range []string{"a", "b", "c", "d"} {
		if len(d.deleted[site]) != 1 {
			t.Errorf("%s: deleted %v, want its object once", site, d.deleted[site])
		}
		if _, err := s.GetReplica(ctx, "r1", site); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: replica still recorded (%v)", site, err)
		}
		if evs := eventsOf(t, s, site); !slices.Contains(evs, cheops.EventDeleted) {
			t.Errorf("%s: events %v, want Deleted", site, evs)
		}
	}
	for _, site := range []string{"down", "rejects"} {
		rep, err := s.GetReplica(ctx, "r1", site)
		if err != nil || rep.State != cheops.ReplicaDeleting || rep.Object == nil {
			t.Errorf("%s: replica %+v, %v; want it Deleting, with its object", site, rep, err)
		}
	}
	if _, err := s.GetResource(ctx, "r1"); err != nil {
		t.Fatalf("the resource is gone: %v", err)
	}

	d.dmu.Lock()
	d.down = false
	d.dmu.Unlock()
	out = runDeleteWave(t, env, a, DeleteWaveInput{ResourceID: "r1", Sites: []string{"down", "a"}, MaxParallel: 2})
	if out["down"].Class != "" || out["a"].Class != "" {
		t.Fatalf("second wave: %+v, want both done", out)
	}
	if len(d.deleted["down"]) != 1 || len(d.deleted["a"]) != 1 {
		t.Fatalf("deleted %v: want down's object once, and a's not again", d.deleted)
	}
	if _, err := s.GetReplica(ctx, "r1", "down"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("down: replica still recorded (%v)", err)
	}
}

// An orphaning wave forgets every replica, with an Orphaned event, and deletes nothing.
func TestDeleteWaveOrphansLeaveObjects(t *testing.T) {
	ctx := context.Background()
	sites := []string{"a", "b", "down"}
	s, d, a, env := deleteFixture(t, sites...)
	out := runDeleteWave(t, env, a, DeleteWaveInput{ResourceID: "r1", Sites: sites, Orphan: true, MaxParallel: 3})
	for _, site := range sites {
		if out[site].Class != "" {
			t.Errorf("%s: %+v, want orphaned", site, out[site])
		}
		if _, err := s.GetReplica(ctx, "r1", site); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: replica still recorded (%v)", site, err)
		}
		if evs := eventsOf(t, s, site); !slices.Contains(evs, cheops.EventOrphaned) || slices.Contains(evs, cheops.EventDeleted) {
			t.Errorf("%s: events %v, want Orphaned", site, evs)
		}
	}
	if len(d.deleted) != 0 || d.peak != 0 {
		t.Fatalf("deleted %v, want nothing: orphans keep their objects", d.deleted)
	}
}

// A wave for a resource already forgotten has nothing left to remove: every site succeeds.
func TestDeleteWaveOfAForgottenResource(t *testing.T) {
	ctx := context.Background()
	s, d, a, env := deleteFixture(t, "a")
	if err := a.Store.DeleteReplica(ctx, "r1", "a", nil); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteResource(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	out := runDeleteWave(t, env, a, DeleteWaveInput{ResourceID: "r1", Sites: []string{"a", "b"}, MaxParallel: 1})
	if out["a"].Class != "" || out["b"].Class != "" || len(d.deleted) != 0 {
		t.Fatalf("outcomes %+v, deleted %v; want both done, nothing deleted", out, d.deleted)
	}
}

// stallDeleter holds an object on every site; a slow site's delete waits until its context ends.
type stallDeleter struct {
	*siteDriver
	dmu     sync.Mutex
	slow    map[string]bool
	objects map[string]bool
}

func (d *stallDeleter) Delete(ctx context.Context, t cheops.Target, _ cheops.ObjectRef) error {
	d.dmu.Lock()
	slow := d.slow[t.Site.Name]
	d.dmu.Unlock()
	if slow {
		<-ctx.Done()
		return ctx.Err()
	}
	d.dmu.Lock()
	defer d.dmu.Unlock()
	d.objects[t.Site.Name] = false
	return nil
}

// A deletion wave cut short (its worker stops) never leaves an object on a site whose replica is
// forgotten: the replicas of the sites it had not finished stay recorded, Deleting, and its retry
// removes them, with one Deleted event per site.
func TestDeleteWaveCutShortNeverForgetsAnObject(t *testing.T) {
	ctx := context.Background()
	var sites []string
	slow := map[string]bool{}
	for i := range 20 {
		sites = append(sites, fmt.Sprintf("site-%03d", i))
		slow[sites[i]] = i%4 == 0
	}
	s, sd, a, env := waveFixture(t, sites...)
	runWave(t, env, a, WaveInput{ResourceID: "r1", Generation: 1, Sites: sites, MaxParallel: 20, Attempt: 1})
	d := &stallDeleter{siteDriver: sd, slow: slow, objects: map[string]bool{}}
	for _, site := range sites {
		d.objects[site] = true
	}
	a.Drivers[cheops.DriverKubernetes] = d
	in := DeleteWaveInput{ResourceID: "r1", Sites: sites, MaxParallel: 20}
	cut, cancel := context.WithCancel(ctx)
	waveDone := make(chan error)
	go func() {
		_, err := a.DeleteWave(cut, in)
		waveDone <- err
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		reps, err := s.ListReplicas(ctx, "r1")
		if err != nil {
			t.Fatal(err)
		}
		if len(reps) == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d replicas left, want the 5 slow ones", len(reps))
		}
	}
	cancel()
	if err := <-waveDone; err == nil {
		t.Fatal("a wave cut short succeeded")
	}
	check := func(when string) {
		t.Helper()
		d.dmu.Lock()
		defer d.dmu.Unlock()
		for _, site := range sites {
			rep, err := s.GetReplica(ctx, "r1", site)
			forgotten := errors.Is(err, store.ErrNotFound)
			if forgotten && d.objects[site] {
				t.Errorf("%s %s: the replica is forgotten, its object is still on the site", when, site)
			}
			if !forgotten && (err != nil || rep.State != cheops.ReplicaDeleting) {
				t.Errorf("%s %s: replica %+v, %v; want Deleting", when, site, rep, err)
			}
		}
	}
	check("after the cut")

	d.dmu.Lock()
	d.slow = nil
	d.dmu.Unlock()
	out, err := a.DeleteWave(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range out.Sites {
		if o.Class != "" {
			t.Errorf("%s on retry: %+v, want removed", o.Site, o)
		}
	}
	check("after the retry")
	reps, err := s.ListReplicas(ctx, "r1")
	if err != nil || len(reps) != 0 {
		t.Fatalf("replicas left: %+v, %v", reps, err)
	}
	for _, site := range sites {
		if evs := eventsOf(t, s, site); slices.Index(evs, cheops.EventDeleted) != len(evs)-1 || countOf(evs, cheops.EventDeleted) != 1 {
			t.Errorf("%s: events %v, want one Deleted, last", site, evs)
		}
	}
}

func countOf(evs []cheops.EventType, typ cheops.EventType) int {
	n := 0
	for _, ev := range evs {
		if ev == typ {
			n++
		}
	}
	return n
}
