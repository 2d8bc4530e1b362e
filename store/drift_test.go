package store_test

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/cheops-io/cheops"
)

// The drift view holds every replica, with its resource and site, from one read; then follows the
// store: a replica written, a resource's new generation, a site's health, new credentials and a
// deleted resource are each seen, and told on Changed. A probe that only writes its time is not told.
func TestDriftViewFollowsTheStore(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := newStore(t)
	if _, err := s.CreateSite(ctx, cheops.Site{Name: "a", Driver: cheops.DriverKubernetes}, cheops.Credentials{Kubeconfig: "one"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"r1", "r2"} {
		if _, _, err := s.CreateResource(ctx, cheops.Resource{ID: id, Name: id, Driver: cheops.DriverKubernetes, Generation: 1, Manifest: json.RawMessage(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	setState := func(id, site string, st cheops.ReplicaState) {
		t.Helper()
		if _, err := s.UpdateReplica(ctx, id, site, func(rep *cheops.Replica) (*cheops.Event, error) {
			rep.State, rep.ObservedGeneration, rep.LocalID = st, 1, "uid-"+id
			return nil, nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	setState("r1", "a", cheops.ReplicaReady)
	setState("r1", "b", cheops.ReplicaReady)
	all, err := s.AllReplicas(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, rep := range all {
		listed = append(listed, rep.ResourceID+"/"+rep.Site)
	}
	if slices.Sort(listed); !slices.Equal(listed, []string{"r1/a", "r1/b"}) {
		t.Fatalf("AllReplicas: %v", listed)
	}
	view, err := s.FollowForDrift(ctx)
	if err != nil {
		t.Fatal(err)
	}
	type seen struct {
		replicas []string
		ids      []string
		health   cheops.SiteHealth
		gen      int64
	}
	read := func() seen {
		var out seen
		view.Read(func(resources map[string]cheops.Resource, replicas map[string]map[string]cheops.Replica, sites map[string]cheops.Site) {
			for id, reps := range replicas {
				for site, rep := range reps {
					out.replicas = append(out.replicas, id+"/"+site+"="+string(rep.State))
				}
			}
			out.health, out.gen = sites["a"].Health, resources["r1"].Generation
			out.ids = slices.Sorted(maps.Keys(resources))
		})
		slices.Sort(out.replicas)
		return out
	}
	if got := read(); !slices.Equal(got.replicas, []string{"r1/a=Ready", "r1/b=Ready"}) || got.gen != 1 {
		t.Fatalf("first read: %+v", got)
	}
	waitChanged := func(what string, cond func(seen) bool) {
		t.Helper()
		deadline := time.After(5 * time.Second)
		for !cond(read()) {
			select {
			case <-view.Changed():
			case <-deadline:
				t.Fatalf("%s: not seen, the view holds %+v", what, read())
			}
		}
	}
	drain := func() {
		for {
			select {
			case <-view.Changed():
			case <-time.After(300 * time.Millisecond):
				return
			}
		}
	}

	setState("r2", "a", cheops.ReplicaApplied)
	waitChanged("a replica written", func(s seen) bool { return slices.Contains(s.replicas, "r2/a=Applied") })
	if _, err := s.UpdateResource(ctx, "r1", func(r *cheops.Resource) (*cheops.Event, error) { r.Generation = 2; return nil, nil }); err != nil {
		t.Fatal(err)
	}
	waitChanged("a new generation", func(s seen) bool { return s.gen == 2 })
	if _, err := s.UpdateSite(ctx, "a", nil, func(site *cheops.Site) (*cheops.Event, error) { site.Health = cheops.SiteReady; return nil, nil }); err != nil {
		t.Fatal(err)
	}
	waitChanged("a site's health", func(s seen) bool { return s.health == cheops.SiteReady })

	drain()
	now := time.Now()
	if _, err := s.UpdateSite(ctx, "a", nil, func(site *cheops.Site) (*cheops.Event, error) { site.ProbedAt = &now; return nil, nil }); err != nil {
		t.Fatal(err)
	}
	select {
	case <-view.Changed():
		t.Fatal("a probe that only wrote its time was told as a change")
	case <-time.After(500 * time.Millisecond):
	}

	if _, err := s.UpdateSite(ctx, "a", &cheops.Credentials{Kubeconfig: "two"}, func(*cheops.Site) (*cheops.Event, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		tgt, err := view.Target("a")
		if err != nil {
			t.Fatal(err)
		}
		if tgt.Credentials.Kubeconfig == "two" && tgt.Site.ProbedAt != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("target of site a: credentials %q, probed at %v; want the new credentials", tgt.Credentials.Kubeconfig, tgt.Site.ProbedAt)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := view.Target("nowhere"); err == nil {
		t.Fatal("a target for a site that does not exist")
	}

	if err := s.DeleteResource(ctx, "r2"); err != nil {
		t.Fatal(err)
	}
	// Its replicas and its record come through two watches, in either order: wait for both.
	waitChanged("a resource deleted", func(s seen) bool {
		return slices.Equal(s.ids, []string{"r1"}) && !slices.ContainsFunc(s.replicas, func(r string) bool { return r[:2] == "r2" })
	})
}
