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
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/devstack/etcdembed"
	"github.com/cheops-io/cheops/seal"
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
	s, _ := newStoreAndClient(t)
	return s
}

// newStoreAndClient is newStore, with the store's etcd client.
func newStoreAndClient(t *testing.T) (*store.Store, *clientv3.Client) {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return store.New(c, "/test/"+t.Name()), c
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
	if err := s.DeleteSite(ctx, "berlin", false, "test"); !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "1 resource(s) (cm)") {
		t.Fatalf("DeleteSite = %v, want ErrConflict naming cm", err)
	}
	// Many resources: the refusal counts them and names a few.
	var many []cheops.Resource
	for i := range 5 {
		many = append(many, mustCreateResource(t, s, fmt.Sprintf("many-%d", i), ""))
		if _, err := s.UpdateReplica(ctx, many[i].ID, "berlin", func(*cheops.Replica) (*cheops.Event, error) { return nil, nil }); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteSite(ctx, "berlin", false, "test"); err == nil || !strings.Contains(err.Error(), "6 resource(s)") || !strings.Contains(err.Error(), "and 3 more") {
		t.Fatalf("DeleteSite with 6 resources = %v; want them counted and 3 named", err)
	}
	for _, m := range many {
		if err := s.DeleteResource(ctx, m.ID); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteResource(ctx, r.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSite(ctx, "berlin", false, "test"); err != nil {
		t.Fatalf("DeleteSite after the resource is gone: %v", err)
	}
	if err := s.DeleteSite(ctx, "berlin", false, "test"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("DeleteSite of a missing site = %v, want ErrNotFound", err)
	}
	mustCreateSite(t, s, "rome")
	r2 := mustCreateResource(t, s, "cm2", "")
	if _, err := s.UpdateReplica(ctx, r2.ID, "rome", func(*cheops.Replica) (*cheops.Event, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSite(ctx, "rome", true, "test"); err != nil {
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

// Sealed credentials: etcd holds no plaintext secret, each site's credentials open only under its
// own name, and a rotation re-seals everything under the newest key while older keys still open.
func TestCredentialsAreSealedAtRest(t *testing.T) {
	ctx := context.Background()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	prefix := "/test/" + t.Name()
	s := store.New(c, prefix)
	// One site written before sealing was configured: plain JSON, as older versions wrote it.
	if _, err := s.CreateSite(ctx, cheops.Site{Name: "legacy"}, cheops.Credentials{Password: "legacy-pw-123"}); err != nil {
		t.Fatal(err)
	}
	key1, _ := seal.NewKeyLine(time.Unix(0, 0))
	k1, err := seal.ParseKeys([]byte(key1))
	if err != nil {
		t.Fatal(err)
	}
	s.SealWith(k1)
	secrets := []string{"kubeconfig-token-456", "os-password-789", "legacy-pw-123"}
	if _, err := s.CreateSite(ctx, cheops.Site{Name: "a"}, cheops.Credentials{Kubeconfig: "token: " + secrets[0]}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateSite(ctx, cheops.Site{Name: "b"}, cheops.Credentials{}); err != nil {
		t.Fatal(err)
	}
	pw := cheops.Credentials{Password: secrets[1]}
	if _, err := s.UpdateSite(ctx, "b", &pw, func(*cheops.Site) (*cheops.Event, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	raw := func() string {
		resp, err := c.Get(ctx, prefix, clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		var all strings.Builder
		for _, kv := range resp.Kvs {
			all.Write(kv.Value)
		}
		return all.String()
	}
	for _, secret := range secrets[:2] {
		if strings.Contains(raw(), secret) {
			t.Fatalf("etcd holds %s in plain text", secret)
		}
	}
	if tgt, err := s.Target(ctx, "a"); err != nil || tgt.Credentials.Kubeconfig != "token: "+secrets[0] {
		t.Fatalf("Target(a) = %+v, %v", tgt.Credentials, err)
	}
	if cred, err := s.SiteCredentials(ctx, "legacy"); err != nil || cred.Password != secrets[2] {
		t.Fatalf("a plain credential written before sealing no longer reads: %+v, %v", cred, err)
	}
	// A sealed value copied under another site's key does not open there.
	resp, err := c.Get(ctx, prefix+"/credentials/a")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatal(err)
	}
	if _, err := c.Put(ctx, prefix+"/credentials/b", string(resp.Kvs[0].Value)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SiteCredentials(ctx, "b"); err == nil || strings.Contains(err.Error(), secrets[0]) {
		t.Fatalf("a credential moved to another site: %v", err)
	}
	if _, err := s.UpdateSite(ctx, "b", &pw, func(*cheops.Site) (*cheops.Event, error) { return nil, nil }); err != nil {
		t.Fatal(err)
	}
	// Rotation: a new key seals; everything is re-sealed under it, the legacy plain value too.
	key2, _ := seal.NewKeyLine(time.Unix(60, 0))
	k2, err := seal.ParseKeys([]byte(key1 + key2))
	if err != nil {
		t.Fatal(err)
	}
	s.SealWith(k2)
	n, err := s.RotateCredentials(ctx)
	if err != nil || n != 3 {
		t.Fatalf("RotateCredentials = %d, %v; want 3", n, err)
	}
	if n, err := s.RotateCredentials(ctx); err != nil || n != 0 {
		t.Fatalf("a second rotation = %d, %v; want 0", n, err)
	}
	if strings.Contains(raw(), secrets[2]) || strings.Contains(raw(), "v1."+k1.Current()+".") {
		t.Fatal("after rotation etcd still holds a plain or old-key value")
	}
	k2only, err := seal.ParseKeys([]byte(key2))
	if err != nil {
		t.Fatal(err)
	}
	s.SealWith(k2only)
	for name, want := range map[string]string{"a": "token: " + secrets[0], "b": "", "legacy": ""} {
		cred, err := s.SiteCredentials(ctx, name)
		if err != nil || (want != "" && cred.Kubeconfig != want) {
			t.Fatalf("site %s after rotation: %+v, %v", name, cred, err)
		}
	}
	s.SealWith(nil)
	if _, err := s.SiteCredentials(ctx, "a"); err == nil {
		t.Fatal("sealed credentials read without a key")
	}
}

// A manifest of characters that JSON may escape is stored as it is, not six bytes for each: 130
// KiB of "<" once went over etcd's request limit, being stored escaped and twice in one write.
func TestManifestIsStoredUnescaped(t *testing.T) {
	ctx := context.Background()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	prefix := "/test/" + t.Name()
	s := store.New(c, prefix)
	data := strings.Repeat("<", 130<<10)
	manifest := json.RawMessage(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"lt"},"data":{"x":"` + data + `"}}`)
	r, _, err := s.CreateResource(ctx, cheops.Resource{ID: "lt", Name: "lt", Driver: cheops.DriverKubernetes, Manifest: manifest})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.GetResource(ctx, r.ID)
	if err != nil || !strings.Contains(string(got.Manifest), data) {
		t.Fatalf("read back: %v", err)
	}
	resp, err := c.Get(ctx, prefix+"/resources/lt")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatal(err)
	}
	if n := len(resp.Kvs[0].Value); n > len(data)+4096 {
		t.Fatalf("the resource takes %d bytes in etcd for a %d-byte value", n, len(data))
	}
}
