package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cheops-io/cheops"
)

// CreateResource stores a new resource and its Created event in one transaction. With an
// idempotency key already used, it returns the resource that key created and created=false.
func (s *Store) CreateResource(ctx context.Context, r cheops.Resource) (res cheops.Resource, created bool, err error) {
	now := s.now()
	r.CreatedAt, r.UpdatedAt, r.GenerationAt = now, now, now
	if r.Generation == 0 {
		r.Generation = 1
	}
	cmps := []clientv3.Cmp{
		clientv3.Compare(clientv3.CreateRevision(s.resourceKey(r.ID)), "=", 0),
		clientv3.Compare(clientv3.CreateRevision(s.nameKey(r.Name)), "=", 0),
	}
	ops := []clientv3.Op{
		clientv3.OpPut(s.resourceKey(r.ID), mustJSON(stored(r))),
		clientv3.OpPut(s.nameKey(r.Name), r.ID),
		s.specOp(r),
		s.eventOp(r.ID, cheops.Event{Type: cheops.EventCreated, Generation: r.Generation, Actor: r.CreatedBy}),
	}
	ops = append(ops, s.providesOps(r.ID, nil, r.Provides)...)
	if r.IdempotencyKey != "" {
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(s.idemKey(r.IdempotencyKey)), "=", 0))
		ops = append(ops, clientv3.OpPut(s.idemKey(r.IdempotencyKey), r.ID))
	}
	ok, err := s.txn(ctx, cmps, ops...)
	// etcd unavailable under the write: it may have been applied. The ID is new to this call, so
	// the resource's key says whether it was; if not, the write is tried again.
	for n, start := 1, time.Now(); err != nil && Unavailable(err) && waitOut(ctx, start, n); n++ {
		var written storedResource
		if _, gerr := s.get(ctx, s.resourceKey(r.ID), &written); gerr == nil {
			return written.resource(), true, nil
		} else if !errors.Is(gerr, ErrNotFound) {
			continue // still unavailable
		}
		ok, err = s.txn(ctx, cmps, ops...)
	}
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

// storedResource is a resource as written to etcd: the API hides the idempotency key and what the
// resource provides, the store keeps them.
type storedResource struct {
	cheops.Resource
	IdempotencyKey string   `json:"idempotencyKey,omitempty"`
	Provides       []string `json:"provides,omitempty"`
}

func stored(r cheops.Resource) storedResource {
	return storedResource{r, r.IdempotencyKey, r.Provides}
}

func (sr storedResource) resource() cheops.Resource {
	r := sr.Resource
	r.IdempotencyKey, r.Provides = sr.IdempotencyKey, sr.Provides
	return r
}

// providesOps are the writes that make the index of what a resource provides go from was to is:
// /provides/<key>/<id>, so that a dependent finds who provides a prerequisite by one read (see
// Providers), and never by reading every resource.
func (s *Store) providesOps(id string, was, is []string) []clientv3.Op {
	var ops []clientv3.Op
	for _, k := range was {
		if !slices.Contains(is, k) {
			ops = append(ops, clientv3.OpDelete(s.providesKey(k, id)))
		}
	}
	for _, k := range is {
		if !slices.Contains(was, k) {
			ops = append(ops, clientv3.OpPut(s.providesKey(k, id), ""))
		}
	}
	return ops
}

func (s *Store) providesKey(key, id string) string { return s.prefix + "/provides/" + key + "/" + id }

// Providers returns the IDs of the resources that provide a prerequisite (its Key) on their sites.
func (s *Store) Providers(ctx context.Context, key string) ([]string, error) {
	prefix := s.prefix + "/provides/" + key + "/"
	resp, err := s.c.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("etcd get providers of %s: %w", key, err)
	}
	ids := make([]string, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		ids = append(ids, strings.TrimPrefix(string(kv.Key), prefix))
	}
	return ids, nil
}

func (s *Store) getResource(ctx context.Context, id string) (cheops.Resource, int64, error) {
	var sr storedResource
	rev, err := s.get(ctx, s.resourceKey(id), &sr)
	if err != nil {
		return cheops.Resource{}, 0, fmt.Errorf("resource %s: %w", id, err)
	}
	return sr.resource(), rev, nil
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
	stored, err := list[storedResource](ctx, s, s.prefix+"/resources/")
	if err != nil {
		return nil, err
	}
	out := make([]cheops.Resource, 0, len(stored))
	for _, sr := range stored {
		out = append(out, sr.resource())
	}
	slices.SortFunc(out, func(a, b cheops.Resource) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// UpdateResource changes a resource through fn, which sees the current value and may refuse with an
// error (returned as is) or leave it untouched with ErrSkip. The event fn returns, if any, is written
// in the same transaction as the change. The write compares the revision read.
func (s *Store) UpdateResource(ctx context.Context, id string, fn func(*cheops.Resource) (*cheops.Event, error)) (cheops.Resource, error) {
	start, waits := time.Now(), 0
	for range maxCASRetries {
		r, rev, err := s.getResource(ctx, id)
		if err != nil && Unavailable(err) {
			if waits++; waitOut(ctx, start, waits) {
				continue
			}
		}
		if err != nil {
			return r, err
		}
		before, provided := r.Generation, r.Provides
		ev, err := fn(&r)
		if errors.Is(err, ErrSkip) {
			return r, nil
		} else if err != nil {
			return r, err
		}
		r.ID = id
		r.UpdatedAt = s.now()
		if r.Generation != before {
			r.GenerationAt = r.UpdatedAt
		}
		ops := []clientv3.Op{clientv3.OpPut(s.resourceKey(id), mustJSON(stored(r)))}
		ops = append(ops, s.providesOps(id, provided, r.Provides)...)
		if r.Generation != before {
			ops = append(ops, s.specOp(r))
		}
		if ev != nil {
			ops = append(ops, s.eventOp(id, *ev))
		}
		ok, err := s.txn(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(s.resourceKey(id)), "=", rev)}, ops...)
		if err != nil && Unavailable(err) {
			// It may have been applied: read again and let fn decide on what is stored now (a
			// change already made is then one fn finds nothing to do for).
			if waits++; waitOut(ctx, start, waits) {
				continue
			}
		}
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
	ops = append(ops, s.providesOps(id, r.Provides, nil)...)
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
