package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/devstack/etcdembed"
	"github.com/cheops-io/cheops/store"
)

var endpoint string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "cheops-store-")
	if err != nil {
		panic(err)
	}
	e, err := etcdembed.Start(etcdembed.Options{Dir: dir, ClientAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:0"})
	if err != nil {
		panic(err)
	}
	endpoint = e.Endpoint
	code := m.Run()
	e.Close()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// newStore returns a store under a prefix of its own, so tests do not see each other's keys.
func newStore(t *testing.T) *store.Store {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return store.New(c, "/test/"+t.Name())
}

func TestSiteCredentialsAreKeptApart(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	site, err := s.CreateSite(ctx, cheops.Site{Name: "paris", Driver: cheops.DriverKubernetes}, cheops.Credentials{Kubeconfig: "secret-kubeconfig"})
	if err != nil {
		t.Fatal(err)
	}
	if !site.HasCredentials || site.Health != cheops.SiteUnknown {
		t.Fatalf("site = %+v", site)
	}
	if _, err := s.CreateSite(ctx, cheops.Site{Name: "paris"}, cheops.Credentials{}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
	sites, err := s.ListSites(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(sites)
	if len(sites) != 1 || strings.Contains(string(b), "secret-kubeconfig") {
		t.Fatalf("ListSites = %s", b)
	}
	tgt, err := s.Target(ctx, "paris")
	if err != nil || tgt.Credentials.Kubeconfig != "secret-kubeconfig" {
		t.Fatalf("Target = %+v, %v", tgt, err)
	}
}

func TestDeleteSiteRefusedWhileItHoldsReplicas(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	mustCreateSite(t, s, "berlin")
	r := mustCreateResource(t, s, "cm", "")
	if _, err := s.UpdateReplica(ctx, r.ID, "berlin", func(rep *cheops.Replica) (*cheops.Event, error) {
		rep.State = cheops.ReplicaReady
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSite(ctx, "berlin", false); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("DeleteSite = %v, want ErrConflict", err)
	}
	if err := s.DeleteResource(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSite(ctx, "berlin", false); err != nil {
		t.Fatalf("DeleteSite after the resource is gone: %v", err)
	}
	if err := s.DeleteSite(ctx, "berlin", false); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("DeleteSite of a missing site = %v, want ErrNotFound", err)
	}
	mustCreateSite(t, s, "rome")
	r2 := mustCreateResource(t, s, "cm2", "")
	if _, err := s.UpdateReplica(ctx, r2.ID, "rome", func(*cheops.Replica) (*cheops.Event, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSite(ctx, "rome", true); err != nil {
		t.Fatalf("forced DeleteSite = %v", err)
	}
}

func TestCreateResourceIsIdempotentAndNamesAreUnique(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	first := mustCreateResource(t, s, "web", "key-1")
	again, created, err := s.CreateResource(ctx, cheops.Resource{ID: "other-id", Name: "web", IdempotencyKey: "key-1"})
	if err != nil || created || again.ID != first.ID {
		t.Fatalf("retry with the same key = %+v, created=%v, %v; want the first resource", again, created, err)
	}
	if _, _, err := s.CreateResource(ctx, cheops.Resource{ID: "third-id", Name: "web"}); !errors.Is(err, store.ErrExists) {
		t.Fatalf("same name, no key = %v, want ErrExists", err)
	}
	id, err := s.ResourceIDByName(ctx, "web")
	if err != nil || id != first.ID {
		t.Fatalf("ResourceIDByName = %q, %v", id, err)
	}
	if err := s.DeleteResource(ctx, first.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ResourceIDByName(ctx, "web"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("name kept after delete: %v", err)
	}
	if err := s.DeleteResource(ctx, first.ID); err != nil {
		t.Fatalf("deleting twice: %v", err)
	}
}

// Concurrent writers must not lose an update: each increments a counter through UpdateResource.
// Each update's event is written with it, in one transaction: a write that lost its race and was
// retried records its event once, so there is exactly one event per generation.
func TestUpdateResourceLosesNoConcurrentUpdate(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	r := mustCreateResource(t, s, "counter", "")
	const writers, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if _, err := s.UpdateResource(ctx, r.ID, func(r *cheops.Resource) (*cheops.Event, error) {
					r.Generation++
					return &cheops.Event{Type: cheops.EventUpdated, Generation: r.Generation}, nil
				}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got, err := s.GetResource(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(1 + writers*each); got.Generation != want {
		t.Fatalf("generation = %d, want %d", got.Generation, want)
	}
	evs, err := s.Events(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int64]int{}
	for _, ev := range evs {
		seen[ev.Generation]++
	}
	if len(evs) != 1+writers*each || evs[0].Type != cheops.EventCreated || len(seen) != 1+writers*each {
		t.Fatalf("%d events over %d generations (first %q); want one per generation, %d, the first Created", len(evs), len(seen), evs[0].Type, 1+writers*each)
	}
}

func TestReplicaUpdatesAndEvents(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	r := mustCreateResource(t, s, "cm", "")
	for i := range 3 {
		_, err := s.UpdateReplica(ctx, r.ID, "site-a", func(rep *cheops.Replica) (*cheops.Event, error) {
			rep.Attempts++
			return &cheops.Event{Type: "Attempt", Site: "site-a", Message: fmt.Sprint(i)}, nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	rep, err := s.GetReplica(ctx, r.ID, "site-a")
	if err != nil || rep.Attempts != 3 {
		t.Fatalf("replica = %+v, %v", rep, err)
	}
	evs, err := s.Events(ctx, r.ID)
	if err != nil || len(evs) != 4 || evs[0].Type != cheops.EventCreated || evs[1].Message != "0" || evs[3].Message != "2" {
		t.Fatalf("events = %+v, %v", evs, err)
	}
	// No replica may be recorded for a resource that is gone.
	if err := s.DeleteResource(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateReplica(ctx, r.ID, "site-a", func(*cheops.Replica) (*cheops.Event, error) { return nil, nil }); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("UpdateReplica on a deleted resource = %v, want ErrNotFound", err)
	}
	if reps, _ := s.ListReplicas(ctx, r.ID); len(reps) != 0 {
		t.Fatalf("replicas left: %+v", reps)
	}
}

func mustCreateSite(t *testing.T, s *store.Store, name string) {
	t.Helper()
	if _, err := s.CreateSite(context.Background(), cheops.Site{Name: name, Driver: cheops.DriverKubernetes}, cheops.Credentials{}); err != nil {
		t.Fatal(err)
	}
}

func mustCreateResource(t *testing.T, s *store.Store, name, key string) cheops.Resource {
	t.Helper()
	r, created, err := s.CreateResource(context.Background(), cheops.Resource{ID: "id-" + name, Name: name, Driver: cheops.DriverKubernetes, IdempotencyKey: key})
	if err != nil || !created {
		t.Fatalf("create %s: created=%v, %v", name, created, err)
	}
	return r
}

func TestMarkPendingInOneTransaction(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	r := mustCreateResource(t, s, "cm", "")
	if _, err := s.UpdateReplica(ctx, r.ID, "b", func(rep *cheops.Replica) (*cheops.Event, error) {
		rep.State, rep.LocalID, rep.ObservedGeneration = cheops.ReplicaReady, "uid-b", 1
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkPending(ctx, r.ID, []string{"a", "b", "c"}); err != nil {
		t.Fatal(err)
	}
	reps, err := s.ListReplicas(ctx, r.ID)
	if err != nil || len(reps) != 3 {
		t.Fatalf("replicas = %+v, %v", reps, err)
	}
	for _, rep := range reps {
		if rep.State != cheops.ReplicaPending {
			t.Errorf("%s: state %s, want Pending", rep.Site, rep.State)
		}
		if rep.Site == "b" && (rep.LocalID != "uid-b" || rep.ObservedGeneration != 1) {
			t.Errorf("b lost what was recorded: %+v", rep)
		}
	}
	ids, err := s.SiteResources(ctx, "c")
	if err != nil || len(ids) != 1 || ids[0] != r.ID {
		t.Fatalf("site index of c = %v, %v", ids, err)
	}
	if err := s.DeleteResource(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkPending(ctx, r.ID, []string{"a"}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("MarkPending on a deleted resource = %v, want ErrNotFound", err)
	}
}

// etcd refuses transactions of more than 128 operations by default; a resource on 150 sites must
// still be planned and forgotten.
func TestManySitesFitInTransactions(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	r := mustCreateResource(t, s, "wide", "")
	var sites []string
	for i := range 150 {
		sites = append(sites, fmt.Sprintf("site-%03d", i))
	}
	if err := s.MarkPending(ctx, r.ID, sites); err != nil {
		t.Fatal(err)
	}
	if reps, err := s.ListReplicas(ctx, r.ID); err != nil || len(reps) != 150 {
		t.Fatalf("%d replicas, %v; want 150", len(reps), err)
	}
	if err := s.DeleteResource(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	if ids, err := s.SiteResources(ctx, "site-149"); err != nil || len(ids) != 0 {
		t.Fatalf("site index left after delete: %v, %v", ids, err)
	}
}

// Every generation's spec is kept until it is committed, so a generation can be committed after a
// newer one was declared; committing forgets it and the older ones.
func TestSpecsAreKeptUntilCommitted(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	r, _, err := s.CreateResource(ctx, cheops.Resource{ID: "spec-1", Name: "spec-1", Driver: cheops.DriverKubernetes, Manifest: json.RawMessage(`{"v":1}`), Generation: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateResource(ctx, r.ID, func(r *cheops.Resource) (*cheops.Event, error) {
		r.Manifest, r.Generation = json.RawMessage(`{"v":2}`), 2
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateResource(ctx, r.ID, func(r *cheops.Resource) (*cheops.Event, error) { r.Paused = true; return nil, nil }); err != nil {
		t.Fatal(err)
	}
	one, err := s.Spec(ctx, r.ID, 1)
	if err != nil || string(one.Manifest) != `{"v":1}` {
		t.Fatalf("spec 1 = %+v, %v", one, err)
	}
	one.Sites = []string{"a"}
	if err := s.Commit(ctx, r.ID, one); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Spec(ctx, r.ID, 1); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("spec 1 after its commit: %v, want not found", err)
	}
	if two, err := s.Spec(ctx, r.ID, 2); err != nil || string(two.Manifest) != `{"v":2}` {
		t.Fatalf("spec 2 = %+v, %v", two, err)
	}
	if c, err := s.Committed(ctx, r.ID); err != nil || c.Generation != 1 || len(c.Sites) != 1 {
		t.Fatalf("committed = %+v, %v", c, err)
	}
}
