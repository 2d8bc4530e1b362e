// Package store keeps cheops' state in etcd: sites and their credentials, resources, replicas and
// each resource's event log. Every read-modify-write is a transaction that compares the revision it
// read, and a lost race is retried from a fresh read. It knows nothing of HTTP, Temporal or drivers.
//
// Key layout (under a prefix, "/cheops" by default), so `etcdctl get --prefix /cheops` is a debugging tool:
//
//	/sites/<name>                   Site (no secret)
//	/credentials/<name>             Credentials of a site
//	/resources/<id>                 Resource
//	/names/<name>                   resource ID, so names stay unique
//	/idempotency/<key>              resource ID created by a POST with that Idempotency-Key
//	/replicas/<id>/<site>           Replica
//	/site-replicas/<site>/<id>      empty; which resources have a replica on a site
//	/events/<id>/<time>-<seq>       Event, append-only
//	/specs/<id>/<generation>        Snapshot of each generation not yet committed (manifest, overrides)
//	/committed/<id>                 Snapshot of the last generation applied everywhere (transactional)
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cheops-io/cheops"
)

// Errors the store returns; callers test them with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	// ErrConflict means a precondition of the caller did not hold (a generation mismatch, a site still in use).
	ErrConflict = errors.New("conflict")
)

// maxCASRetries bounds how often a read-modify-write is retried after losing a race.
const maxCASRetries = 50

// Store is the etcd-backed store.
type Store struct {
	c      *clientv3.Client
	prefix string
	now    func() time.Time
}

// New returns a store over an etcd client; prefix defaults to "/cheops".
func New(c *clientv3.Client, prefix string) *Store {
	if prefix == "" {
		prefix = "/cheops"
	}
	return &Store{c: c, prefix: strings.TrimSuffix(prefix, "/"), now: func() time.Time { return time.Now().UTC() }}
}

// Ping checks that etcd answers.
func (s *Store) Ping(ctx context.Context) error {
	_, err := s.c.Get(ctx, s.prefix+"/ping", clientv3.WithCountOnly())
	return err
}

func (s *Store) siteKey(name string) string        { return s.prefix + "/sites/" + name }
func (s *Store) credKey(name string) string        { return s.prefix + "/credentials/" + name }
func (s *Store) resourceKey(id string) string      { return s.prefix + "/resources/" + id }
func (s *Store) nameKey(name string) string        { return s.prefix + "/names/" + name }
func (s *Store) idemKey(key string) string         { return s.prefix + "/idempotency/" + key }
func (s *Store) replicaPrefix(id string) string    { return s.prefix + "/replicas/" + id + "/" }
func (s *Store) replicaKey(id, site string) string { return s.replicaPrefix(id) + site }
func (s *Store) siteReplicaKey(site, id string) string {
	return s.prefix + "/site-replicas/" + site + "/" + id
}
func (s *Store) eventPrefix(id string) string  { return s.prefix + "/events/" + id + "/" }
func (s *Store) committedKey(id string) string { return s.prefix + "/committed/" + id }
func (s *Store) specPrefix(id string) string   { return s.prefix + "/specs/" + id + "/" }
func (s *Store) specKey(id string, gen int64) string {
	return fmt.Sprintf("%s%020d", s.specPrefix(id), gen)
}

// specOp records what a generation declares, so it can be committed after a newer one was declared.
func (s *Store) specOp(r cheops.Resource) clientv3.Op {
	return clientv3.OpPut(s.specKey(r.ID, r.Generation), mustJSON(cheops.Snapshot{Generation: r.Generation, Manifest: r.Manifest, Overrides: r.Overrides}))
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("store: marshal %T: %v", v, err)) // only our own plain structs are marshalled
	}
	return string(b)
}

// get reads one key into v and returns its mod revision (0 when absent).
func (s *Store) get(ctx context.Context, key string, v any) (int64, error) {
	resp, err := s.c.Get(ctx, key)
	if err != nil {
		return 0, fmt.Errorf("etcd get %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return 0, ErrNotFound
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, v); err != nil {
		return 0, fmt.Errorf("decode %s: %w", key, err)
	}
	return resp.Kvs[0].ModRevision, nil
}

func (s *Store) txn(ctx context.Context, cmps []clientv3.Cmp, ops ...clientv3.Op) (bool, error) {
	resp, err := s.c.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return false, fmt.Errorf("etcd txn: %w", err)
	}
	return resp.Succeeded, nil
}

// ---- sites ----

// CreateSite stores a new site and its credentials.
func (s *Store) CreateSite(ctx context.Context, site cheops.Site, cred cheops.Credentials) (cheops.Site, error) {
	now := s.now()
	site.CreatedAt, site.UpdatedAt = now, now
	site.HasCredentials = !cred.Empty()
	if site.Health == "" {
		site.Health = cheops.SiteUnknown
	}
	ops := []clientv3.Op{clientv3.OpPut(s.siteKey(site.Name), mustJSON(site))}
	if !cred.Empty() {
		ops = append(ops, clientv3.OpPut(s.credKey(site.Name), mustJSON(cred)))
	}
	ok, err := s.txn(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(s.siteKey(site.Name)), "=", 0)}, ops...)
	if err != nil {
		return cheops.Site{}, err
	}
	if !ok {
		return cheops.Site{}, fmt.Errorf("site %s: %w", site.Name, ErrExists)
	}
	return site, nil
}

// GetSite returns one site.
func (s *Store) GetSite(ctx context.Context, name string) (cheops.Site, error) {
	var site cheops.Site
	if _, err := s.get(ctx, s.siteKey(name), &site); err != nil {
		return site, fmt.Errorf("site %s: %w", name, err)
	}
	return site, nil
}

// ListSites returns every site, sorted by name.
func (s *Store) ListSites(ctx context.Context) ([]cheops.Site, error) {
	resp, err := s.c.Get(ctx, s.prefix+"/sites/", clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("etcd list sites: %w", err)
	}
	sites := make([]cheops.Site, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var site cheops.Site
		if err := json.Unmarshal(kv.Value, &site); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		sites = append(sites, site)
	}
	return sites, nil
}

// UpdateSite changes a site through fn; cred, when not nil, replaces the credentials. When fn returns
// ErrSkip nothing is written.
func (s *Store) UpdateSite(ctx context.Context, name string, cred *cheops.Credentials, fn func(*cheops.Site) error) (cheops.Site, error) {
	for range maxCASRetries {
		var site cheops.Site
		rev, err := s.get(ctx, s.siteKey(name), &site)
		if err != nil {
			return site, fmt.Errorf("site %s: %w", name, err)
		}
		if err := fn(&site); errors.Is(err, ErrSkip) {
			return site, nil
		} else if err != nil {
			return site, err
		}
		site.Name = name
		site.UpdatedAt = s.now()
		var ops []clientv3.Op
		if cred != nil {
			site.HasCredentials = !cred.Empty()
			if cred.Empty() {
				ops = append(ops, clientv3.OpDelete(s.credKey(name)))
			} else {
				ops = append(ops, clientv3.OpPut(s.credKey(name), mustJSON(*cred)))
			}
		}
		ops = append(ops, clientv3.OpPut(s.siteKey(name), mustJSON(site)))
		ok, err := s.txn(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(s.siteKey(name)), "=", rev)}, ops...)
		if err != nil {
			return site, err
		}
		if ok {
			return site, nil
		}
	}
	return cheops.Site{}, fmt.Errorf("site %s: too much contention", name)
}

// SiteCredentials returns the secret part of a site (empty when none is stored).
func (s *Store) SiteCredentials(ctx context.Context, name string) (cheops.Credentials, error) {
	var cred cheops.Credentials
	if _, err := s.get(ctx, s.credKey(name), &cred); err != nil && !errors.Is(err, ErrNotFound) {
		return cred, err
	}
	return cred, nil
}

// Target returns a site with its credentials, for a driver, read in one round trip.
func (s *Store) Target(ctx context.Context, name string) (cheops.Target, error) {
	var t cheops.Target
	resp, err := s.c.Txn(ctx).Then(clientv3.OpGet(s.siteKey(name)), clientv3.OpGet(s.credKey(name))).Commit()
	if err != nil {
		return t, fmt.Errorf("etcd get site %s: %w", name, err)
	}
	site, cred := resp.Responses[0].GetResponseRange().Kvs, resp.Responses[1].GetResponseRange().Kvs
	if len(site) == 0 {
		return t, fmt.Errorf("site %s: %w", name, ErrNotFound)
	}
	if err := json.Unmarshal(site[0].Value, &t.Site); err != nil {
		return t, fmt.Errorf("decode site %s: %w", name, err)
	}
	if len(cred) > 0 {
		if err := json.Unmarshal(cred[0].Value, &t.Credentials); err != nil {
			return t, fmt.Errorf("decode credentials of site %s: %w", name, err)
		}
	}
	return t, nil
}

// SiteResources lists the IDs of resources with a replica on the site.
func (s *Store) SiteResources(ctx context.Context, name string) ([]string, error) {
	p := s.prefix + "/site-replicas/" + name + "/"
	resp, err := s.c.Get(ctx, p, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("etcd list replicas of site %s: %w", name, err)
	}
	ids := make([]string, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		ids = append(ids, strings.TrimPrefix(string(kv.Key), p))
	}
	return ids, nil
}

// DeleteSite removes a site. Unless force is set, a site that still holds replicas is refused with
// ErrConflict; the check and the delete are one transaction, so a replica recorded concurrently is
// not missed.
func (s *Store) DeleteSite(ctx context.Context, name string, force bool) error {
	p := s.prefix + "/site-replicas/" + name + "/"
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(s.siteKey(name)), ">", 0)}
	if !force {
		// No key under the prefix: the newest create revision in the range is 0.
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(p), "=", 0).WithPrefix())
	}
	ok, err := s.txn(ctx, cmps, clientv3.OpDelete(s.siteKey(name)), clientv3.OpDelete(s.credKey(name)))
	if err != nil {
		return err
	}
	if ok {
		return nil
	}
	if _, err := s.GetSite(ctx, name); err != nil {
		return err
	}
	ids, err := s.SiteResources(ctx, name)
	if err != nil {
		return err
	}
	return fmt.Errorf("site %s still holds replicas of %d resource(s) (%s): %w", name, len(ids), strings.Join(ids, ", "), ErrConflict)
}

// ---- resources ----

// CreateResource stores a new resource and its Created event in one transaction. With an
// idempotency key already used, it returns the resource that key created and created=false.
func (s *Store) CreateResource(ctx context.Context, r cheops.Resource) (res cheops.Resource, created bool, err error) {
	now := s.now()
	r.CreatedAt, r.UpdatedAt = now, now
	if r.Generation == 0 {
		r.Generation = 1
	}
	cmps := []clientv3.Cmp{
		clientv3.Compare(clientv3.CreateRevision(s.resourceKey(r.ID)), "=", 0),
		clientv3.Compare(clientv3.CreateRevision(s.nameKey(r.Name)), "=", 0),
	}
	ops := []clientv3.Op{
		clientv3.OpPut(s.resourceKey(r.ID), mustJSON(storedResource{r, r.IdempotencyKey})),
		clientv3.OpPut(s.nameKey(r.Name), r.ID),
		s.specOp(r),
		s.eventOp(r.ID, cheops.Event{Type: cheops.EventCreated, Generation: r.Generation}),
	}
	if r.IdempotencyKey != "" {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(s.idemKey(r.IdempotencyKey)), "=", 0))
		ops = append(ops, clientv3.OpPut(s.idemKey(r.IdempotencyKey), r.ID))
	}
	ok, err := s.txn(ctx, cmps, ops...)
	if err != nil {
		return r, false, err
	}
	if ok {
		return r, true, nil
	}
	if r.IdempotencyKey != "" {
		resp, err := s.c.Get(ctx, s.idemKey(r.IdempotencyKey))
		if err != nil {
			return r, false, fmt.Errorf("etcd get idempotency key: %w", err)
		}
		if len(resp.Kvs) > 0 {
			prev, err := s.GetResource(ctx, string(resp.Kvs[0].Value))
			return prev, false, err
		}
	}
	return r, false, fmt.Errorf("resource name %s: %w", r.Name, ErrExists)
}

// storedResource is a resource as written to etcd: the API hides the idempotency key, the store keeps it.
type storedResource struct {
	cheops.Resource
	IdempotencyKey string `json:"idempotencyKey,omitempty"`
}

func (s *Store) getResource(ctx context.Context, id string) (cheops.Resource, int64, error) {
	var sr storedResource
	rev, err := s.get(ctx, s.resourceKey(id), &sr)
	if err != nil {
		return cheops.Resource{}, 0, fmt.Errorf("resource %s: %w", id, err)
	}
	sr.Resource.IdempotencyKey = sr.IdempotencyKey
	return sr.Resource, rev, nil
}

// GetResource returns one resource.
func (s *Store) GetResource(ctx context.Context, id string) (cheops.Resource, error) {
	r, _, err := s.getResource(ctx, id)
	return r, err
}

// ResourceIDByName resolves a resource name.
func (s *Store) ResourceIDByName(ctx context.Context, name string) (string, error) {
	resp, err := s.c.Get(ctx, s.nameKey(name))
	if err != nil {
		return "", fmt.Errorf("etcd get name %s: %w", name, err)
	}
	if len(resp.Kvs) == 0 {
		return "", fmt.Errorf("resource named %s: %w", name, ErrNotFound)
	}
	return string(resp.Kvs[0].Value), nil
}

// ListResources returns every resource, sorted by name.
func (s *Store) ListResources(ctx context.Context) ([]cheops.Resource, error) {
	resp, err := s.c.Get(ctx, s.prefix+"/resources/", clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("etcd list resources: %w", err)
	}
	out := make([]cheops.Resource, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var sr storedResource
		if err := json.Unmarshal(kv.Value, &sr); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		sr.Resource.IdempotencyKey = sr.IdempotencyKey
		out = append(out, sr.Resource)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// UpdateResource changes a resource through fn, which sees the current value and may refuse with an
// error (returned as is) or leave it untouched with ErrSkip. The event fn returns, if any, is written
// in the same transaction as the change. The write compares the revision read.
func (s *Store) UpdateResource(ctx context.Context, id string, fn func(*cheops.Resource) (*cheops.Event, error)) (cheops.Resource, error) {
	for range maxCASRetries {
		r, rev, err := s.getResource(ctx, id)
		if err != nil {
			return r, err
		}
		before := r.Generation
		ev, err := fn(&r)
		if errors.Is(err, ErrSkip) {
			return r, nil
		} else if err != nil {
			return r, err
		}
		r.ID = id
		r.UpdatedAt = s.now()
		ops := []clientv3.Op{clientv3.OpPut(s.resourceKey(id), mustJSON(storedResource{r, r.IdempotencyKey}))}
		if r.Generation != before {
			ops = append(ops, s.specOp(r))
		}
		if ev != nil {
			ops = append(ops, s.eventOp(id, *ev))
		}
		ok, err := s.txn(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(s.resourceKey(id)), "=", rev)}, ops...)
		if err != nil {
			return r, err
		}
		if ok {
			return r, nil
		}
	}
	return cheops.Resource{}, fmt.Errorf("resource %s: too much contention", id)
}

// DeleteResource forgets a resource with its name, idempotency key, replicas and events. Deleting a
// resource already gone is success.
func (s *Store) DeleteResource(ctx context.Context, id string) error {
	r, _, err := s.getResource(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	reps, err := s.ListReplicas(ctx, id)
	if err != nil {
		return err
	}
	// The site index first, in chunks that fit a transaction: an index entry without its replica is
	// harmless (the site is merely reported as in use), a replica without its entry is not.
	for chunk := range slices.Chunk(reps, 2*maxTxnSites) {
		ops := make([]clientv3.Op, 0, len(chunk))
		for _, rep := range chunk {
			ops = append(ops, clientv3.OpDelete(s.siteReplicaKey(rep.Site, id)))
		}
		if _, err := s.c.Txn(ctx).Then(ops...).Commit(); err != nil {
			return fmt.Errorf("etcd delete site index of %s: %w", id, err)
		}
	}
	ops := []clientv3.Op{
		clientv3.OpDelete(s.resourceKey(id)),
		clientv3.OpDelete(s.replicaPrefix(id), clientv3.WithPrefix()),
		clientv3.OpDelete(s.eventPrefix(id), clientv3.WithPrefix()),
		clientv3.OpDelete(s.committedKey(id)),
		clientv3.OpDelete(s.specPrefix(id), clientv3.WithPrefix()),
	}
	if r.IdempotencyKey != "" {
		ops = append(ops, clientv3.OpDelete(s.idemKey(r.IdempotencyKey)))
	}
	// The name may since have been taken by nobody else (names are unique), but compare anyway.
	_, err = s.c.Txn(ctx).If(clientv3.Compare(clientv3.Value(s.nameKey(r.Name)), "=", id)).
		Then(append(ops, clientv3.OpDelete(s.nameKey(r.Name)))...).Else(ops...).Commit()
	if err != nil {
		return fmt.Errorf("etcd delete resource %s: %w", id, err)
	}
	return nil
}

// Spec returns what a generation of a resource declared, while it is not yet committed.
func (s *Store) Spec(ctx context.Context, id string, gen int64) (cheops.Snapshot, error) {
	var snap cheops.Snapshot
	_, err := s.get(ctx, s.specKey(id, gen), &snap)
	return snap, err
}

// Commit records the snapshot of a generation applied on every site, the one a later transactional
// generation rolls back to, and forgets the specs of that generation and older ones.
func (s *Store) Commit(ctx context.Context, id string, snap cheops.Snapshot) error {
	_, err := s.c.Txn(ctx).Then(
		clientv3.OpPut(s.committedKey(id), mustJSON(snap)),
		clientv3.OpDelete(s.specPrefix(id), clientv3.WithRange(s.specKey(id, snap.Generation+1))),
	).Commit()
	if err != nil {
		return fmt.Errorf("etcd put snapshot of %s: %w", id, err)
	}
	return nil
}

// Committed returns the last committed snapshot of a resource, or ErrNotFound when none was.
func (s *Store) Committed(ctx context.Context, id string) (cheops.Snapshot, error) {
	var snap cheops.Snapshot
	_, err := s.get(ctx, s.committedKey(id), &snap)
	return snap, err
}

// ---- replicas ----

// ListReplicas returns a resource's replicas, sorted by site.
func (s *Store) ListReplicas(ctx context.Context, id string) ([]cheops.Replica, error) {
	resp, err := s.c.Get(ctx, s.replicaPrefix(id), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("etcd list replicas of %s: %w", id, err)
	}
	out := make([]cheops.Replica, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var rep cheops.Replica
		if err := json.Unmarshal(kv.Value, &rep); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		rep.ResourceID = id
		out = append(out, rep)
	}
	return out, nil
}

// GetReplica returns one replica.
func (s *Store) GetReplica(ctx context.Context, id, site string) (cheops.Replica, error) {
	var rep cheops.Replica
	if _, err := s.get(ctx, s.replicaKey(id, site), &rep); err != nil {
		return rep, fmt.Errorf("replica of %s on %s: %w", id, site, err)
	}
	rep.ResourceID = id
	return rep, nil
}

// UpdateReplica creates or changes a replica through fn (which sees a zero Replica with State
// Pending when none exists yet) and appends ev, when fn returns one, in the same transaction. fn
// returning (nil, errSkip) leaves everything as it is.
func (s *Store) UpdateReplica(ctx context.Context, id, site string, fn func(*cheops.Replica) (*cheops.Event, error)) (cheops.Replica, error) {
	for range maxCASRetries {
		var rep cheops.Replica
		rev, err := s.get(ctx, s.replicaKey(id, site), &rep)
		if errors.Is(err, ErrNotFound) {
			rep = cheops.Replica{Site: site, State: cheops.ReplicaPending, CreatedAt: s.now()}
			err = nil
		}
		if err != nil {
			return rep, err
		}
		rep.ResourceID, rep.Site = id, site
		before := mustJSON(rep)
		ev, err := fn(&rep)
		if errors.Is(err, ErrSkip) {
			return rep, nil
		}
		if err != nil {
			return rep, err
		}
		if mustJSON(rep) == before && ev == nil && rev != 0 {
			return rep, nil
		}
		rep.UpdatedAt = s.now()
		ops := []clientv3.Op{
			clientv3.OpPut(s.replicaKey(id, site), mustJSON(rep)),
			clientv3.OpPut(s.siteReplicaKey(site, id), ""),
		}
		if ev != nil {
			ops = append(ops, s.eventOp(id, *ev))
		}
		cmps := []clientv3.Cmp{
			clientv3.Compare(clientv3.ModRevision(s.replicaKey(id, site)), "=", rev),
			// A replica is only ever written for a resource that still exists.
			clientv3.Compare(clientv3.CreateRevision(s.resourceKey(id)), ">", 0),
		}
		ok, err := s.txn(ctx, cmps, ops...)
		if err != nil {
			return rep, err
		}
		if ok {
			return rep, nil
		}
		if _, _, err := s.getResource(ctx, id); err != nil {
			return rep, err
		}
	}
	return cheops.Replica{}, fmt.Errorf("replica of %s on %s: too much contention", id, site)
}

// maxTxnSites bounds how many replicas one transaction touches: etcd refuses transactions of more
// than 128 operations by default (--max-txn-ops), and each replica takes two.
const maxTxnSites = 50

// MarkPending records the replicas of a resource on sites as Pending (creating those that do not
// exist) in one transaction per 50 sites, so that planning N sites costs N/50 etcd writes rather
// than N. When a replica changed meanwhile, it falls back to one read-modify-write per site.
func (s *Store) MarkPending(ctx context.Context, id string, sites []string) error {
	if len(sites) == 0 {
		return nil
	}
	resp, err := s.c.Get(ctx, s.replicaPrefix(id), clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("etcd list replicas of %s: %w", id, err)
	}
	current := map[string]*mvccKV{}
	for _, kv := range resp.Kvs {
		current[string(kv.Key)] = &mvccKV{value: kv.Value, rev: kv.ModRevision}
	}
	for chunk := range slices.Chunk(sites, maxTxnSites) {
		if err := s.markPending(ctx, id, chunk, current); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) markPending(ctx context.Context, id string, sites []string, current map[string]*mvccKV) error {
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(s.resourceKey(id)), ">", 0)}
	var ops []clientv3.Op
	now := s.now()
	for _, site := range sites {
		key := s.replicaKey(id, site)
		rep := cheops.Replica{Site: site, CreatedAt: now}
		var rev int64
		if kv, ok := current[key]; ok {
			if err := json.Unmarshal(kv.value, &rep); err != nil {
				return fmt.Errorf("decode %s: %w", key, err)
			}
			rev = kv.rev
		}
		rep.State, rep.UpdatedAt = cheops.ReplicaPending, now
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(key), "=", rev))
		ops = append(ops, clientv3.OpPut(key, mustJSON(rep)), clientv3.OpPut(s.siteReplicaKey(site, id), ""))
	}
	ok, err := s.txn(ctx, cmps, ops...)
	if err != nil || ok {
		return err
	}
	for _, site := range sites {
		if _, err := s.UpdateReplica(ctx, id, site, func(rep *cheops.Replica) (*cheops.Event, error) {
			rep.State = cheops.ReplicaPending
			return nil, nil
		}); err != nil {
			return err
		}
	}
	return nil
}

type mvccKV struct {
	value []byte
	rev   int64
}

// ErrSkip, returned by an UpdateReplica or UpdateSite callback, leaves the record untouched.
var ErrSkip = errors.New("skip")

// DeleteReplica forgets a replica and appends ev, if not nil. Forgetting one already gone is success.
func (s *Store) DeleteReplica(ctx context.Context, id, site string, ev *cheops.Event) error {
	ops := []clientv3.Op{clientv3.OpDelete(s.replicaKey(id, site)), clientv3.OpDelete(s.siteReplicaKey(site, id))}
	cmp := clientv3.Compare(clientv3.CreateRevision(s.replicaKey(id, site)), ">", 0)
	then := ops
	if ev != nil {
		then = append(then, s.eventOp(id, *ev))
	}
	if _, err := s.c.Txn(ctx).If(cmp).Then(then...).Else(ops...).Commit(); err != nil {
		return fmt.Errorf("etcd delete replica of %s on %s: %w", id, site, err)
	}
	return nil
}

// ---- events ----

func (s *Store) eventOp(id string, ev cheops.Event) clientv3.Op {
	if ev.Time.IsZero() {
		ev.Time = s.now()
	}
	// Nanosecond time plus a random suffix keeps keys ordered by time and unique across writers.
	key := fmt.Sprintf("%s%020d-%s", s.eventPrefix(id), ev.Time.UnixNano(), randSuffix())
	return clientv3.OpPut(key, mustJSON(ev))
}

// Events returns a resource's events, oldest first.
func (s *Store) Events(ctx context.Context, id string) ([]cheops.Event, error) {
	resp, err := s.c.Get(ctx, s.eventPrefix(id), clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, fmt.Errorf("etcd list events of %s: %w", id, err)
	}
	out := make([]cheops.Event, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var ev cheops.Event
		if err := json.Unmarshal(kv.Value, &ev); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		out = append(out, ev)
	}
	return out, nil
}
