package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/store"
)

// Targets reads more sites than one etcd transaction may hold, and answers for each as Target does.
func TestTargetsReadManySitesAsTargetDoes(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	var names []string
	for i := range 120 {
		name := fmt.Sprintf("site-%03d", i)
		names = append(names, name)
		if _, err := s.CreateSite(ctx, cheops.Site{Name: name, Driver: cheops.DriverKubernetes},
			cheops.Credentials{Kubeconfig: "kubeconfig-" + name}); err != nil {
			t.Fatal(err)
		}
	}
	lookup, err := s.Targets(ctx, append(names, "ghost"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		got, err := lookup(name)
		want, werr := s.Target(ctx, name)
		if err != nil || werr != nil || got.Site.Name != want.Site.Name || got.Credentials != want.Credentials ||
			got.Credentials.Kubeconfig != "kubeconfig-"+name {
			t.Fatalf("%s: %+v, %v; Target says %+v, %v", name, got, err, want, werr)
		}
	}
	if _, err := lookup("ghost"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ghost: %v, want ErrNotFound", err)
	}
}

// revision is etcd's revision: every transaction that writes bumps it by one. The store tests share
// one etcd and run one at a time, so the difference over a call counts that call's transactions.
func revision(t *testing.T, c *clientv3.Client) int64 {
	t.Helper()
	resp, err := c.Get(context.Background(), "/revision")
	if err != nil {
		t.Fatal(err)
	}
	return resp.Header.Revision
}

func siteNames(n int) []string {
	var names []string
	for i := range n {
		names = append(names, fmt.Sprintf("site-%03d", i))
	}
	return names
}

// ready is what a wave records for a site it applied: the replica Ready, with an event.
func ready(site string, rep *cheops.Replica) (*cheops.Event, error) {
	rep.State, rep.ObservedGeneration = cheops.ReplicaReady, 1
	return &cheops.Event{Type: cheops.EventApplied, Site: site, Generation: 1}, nil
}

func countEvents(t *testing.T, s *store.Store, id string, typ cheops.EventType) int {
	t.Helper()
	evs, err := s.Events(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ev := range evs {
		if ev.Type == typ {
			n++
		}
	}
	return n
}

// 120 replicas, each with an event, are written in as few transactions as etcd's 128-operation
// limit allows (three operations each: 42, 42, 35); a replica fn skips is left alone, one that
// existed keeps what it held, and each new one is in its site's index, so its site cannot be removed.
func TestUpdateReplicasInFewTransactions(t *testing.T) {
	ctx := context.Background()
	s, c := newStoreAndClient(t)
	r := mustCreateResource(t, s, "wide", "")
	sites := siteNames(120)
	for _, site := range sites {
		mustCreateSite(t, s, site)
	}
	if _, err := s.UpdateReplica(ctx, r.ID, "site-000", func(rep *cheops.Replica) (*cheops.Event, error) {
		rep.State, rep.LocalID = cheops.ReplicaApplying, "uid-0"
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	before := revision(t, c)
	got, err := s.UpdateReplicas(ctx, r.ID, sites, func(site string, rep *cheops.Replica) (*cheops.Event, error) {
		if site == "site-001" {
			return nil, store.ErrSkip
		}
		return ready(site, rep)
	})
	if err != nil {
		t.Fatal(err)
	}
	if txns := revision(t, c) - before; txns != 3 {
		t.Errorf("%d transactions for 119 replicas with an event each, want 3", txns)
	}
	if len(got) != len(sites) || got["site-000"].LocalID != "uid-0" || got["site-119"].State != cheops.ReplicaReady {
		t.Errorf("%d replicas returned; site-000 %+v, site-119 %+v", len(got), got["site-000"], got["site-119"])
	}
	reps, err := s.ListReplicas(ctx, r.ID)
	if err != nil || len(reps) != 119 {
		t.Fatalf("%d replicas, %v; want 119 (site-001 skipped)", len(reps), err)
	}
	for _, rep := range reps {
		if rep.State != cheops.ReplicaReady || (rep.Site == "site-000" && rep.LocalID != "uid-0") {
			t.Errorf("%s: %+v", rep.Site, rep)
		}
	}
	if n := countEvents(t, s, r.ID, cheops.EventApplied); n != 119 {
		t.Errorf("%d Applied events, want 119", n)
	}
	for _, site := range []string{"site-000", "site-042", "site-119"} {
		if ids, err := s.SiteResources(ctx, site); err != nil || len(ids) != 1 || ids[0] != r.ID {
			t.Errorf("site index of %s = %v, %v", site, ids, err)
		}
	}
	if err := s.DeleteSite(ctx, "site-119", false, "test"); !errors.Is(err, store.ErrConflict) {
		t.Errorf("DeleteSite of a site holding a replica = %v, want ErrConflict", err)
	}
	if err := s.DeleteSite(ctx, "site-001", false, "test"); err != nil {
		t.Errorf("DeleteSite of the site fn skipped = %v", err)
	}
	// Nothing changed and no event: nothing is written.
	before = revision(t, c)
	if _, err := s.UpdateReplicas(ctx, r.ID, sites[2:], func(string, *cheops.Replica) (*cheops.Event, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if txns := revision(t, c) - before; txns != 0 {
		t.Errorf("%d transactions for no change, want 0", txns)
	}
	if _, err := s.UpdateReplicas(ctx, r.ID, []string{"site-002", "site-002"}, ready); err == nil {
		t.Error("a site named twice was accepted")
	}
}

// A replica another writer changes between the batch's read and its write fails its chunk's
// comparison; that chunk is written again site by site, keeping the other writer's change, and
// every event is written once.
func TestUpdateReplicasFallsBackWhenARaceIsLost(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	r := mustCreateResource(t, s, "raced", "")
	sites := siteNames(120)
	var mu sync.Mutex
	calls := map[string]int{}
	got, err := s.UpdateReplicas(ctx, r.ID, sites, func(site string, rep *cheops.Replica) (*cheops.Event, error) {
		mu.Lock()
		calls[site]++
		first := calls[site] == 1
		mu.Unlock()
		if site == "site-010" && first {
			// Another writer records site-020 (in the same chunk) after it was read.
			if _, err := s.UpdateReplica(ctx, r.ID, "site-020", func(rep *cheops.Replica) (*cheops.Event, error) {
				rep.LocalID = "uid-other"
				return &cheops.Event{Type: "Other", Site: "site-020"}, nil
			}); err != nil {
				return nil, err
			}
		}
		return ready(site, rep)
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep := got["site-020"]; rep.State != cheops.ReplicaReady || rep.LocalID != "uid-other" {
		t.Errorf("site-020 = %+v, want Ready with the other writer's local ID", rep)
	}
	if rep, err := s.GetReplica(ctx, r.ID, "site-020"); err != nil || rep.State != cheops.ReplicaReady || rep.LocalID != "uid-other" {
		t.Errorf("site-020 stored = %+v, %v", rep, err)
	}
	if calls["site-000"] != 2 || calls["site-041"] != 2 || calls["site-042"] != 1 {
		t.Errorf("fn called %d, %d, %d times for site-000, site-041, site-042; want the first chunk again, alone",
			calls["site-000"], calls["site-041"], calls["site-042"])
	}
	if n := countEvents(t, s, r.ID, cheops.EventApplied); n != 120 {
		t.Errorf("%d Applied events, want 120: one per site", n)
	}
	if n := countEvents(t, s, r.ID, "Other"); n != 1 {
		t.Errorf("%d events of the other writer, want 1", n)
	}
	if reps, err := s.ListReplicas(ctx, r.ID); err != nil || len(reps) != 120 {
		t.Fatalf("%d replicas, %v", len(reps), err)
	}
}

// No replica is written for a resource that is gone, even one forgotten between the batch's read
// and its write.
func TestUpdateReplicasRefusesAForgottenResource(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	r := mustCreateResource(t, s, "gone", "")
	sites := siteNames(60)
	var once sync.Once
	got, err := s.UpdateReplicas(ctx, r.ID, sites, func(site string, rep *cheops.Replica) (*cheops.Event, error) {
		var derr error
		once.Do(func() { derr = s.DeleteResource(ctx, r.ID) })
		if derr != nil {
			return nil, derr
		}
		return ready(site, rep)
	})
	if !errors.Is(err, store.ErrNotFound) || len(got) != 0 {
		t.Fatalf("UpdateReplicas on a resource forgotten meanwhile = %d recorded, %v; want none, ErrNotFound", len(got), err)
	}
	if _, err := s.UpdateReplicas(ctx, r.ID, sites, ready); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UpdateReplicas on a forgotten resource = %v, want ErrNotFound", err)
	}
	if reps, _ := s.ListReplicas(ctx, r.ID); len(reps) != 0 {
		t.Fatalf("replicas written for a forgotten resource: %+v", reps)
	}
	if ids, _ := s.SiteResources(ctx, "site-000"); len(ids) != 0 {
		t.Fatalf("site index written for a forgotten resource: %v", ids)
	}
}

// SitesNamed reads the sites asked for that exist, over as many transactions as the operation
// limit needs, and skips the names of sites that do not.
func TestSitesNamed(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	const n = 140 // more than one transaction's 128 operations
	var names []string
	for i := range n {
		name := fmt.Sprintf("site-%03d", i)
		names = append(names, name)
		if i%2 == 0 {
			if _, err := s.CreateSite(ctx, cheops.Site{Name: name, Driver: cheops.DriverKubernetes}, cheops.Credentials{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	sites, err := s.SitesNamed(ctx, names)
	if err != nil {
		t.Fatal(err)
	}
	if want := (n + 1) / 2; len(sites) != want {
		t.Fatalf("%d sites read, want the %d that exist", len(sites), want)
	}
	for _, site := range sites {
		var i int
		if _, err := fmt.Sscanf(site.Name, "site-%03d", &i); err != nil || i%2 != 0 || site.Driver != cheops.DriverKubernetes {
			t.Fatalf("read %+v, which was not created", site)
		}
	}
}
