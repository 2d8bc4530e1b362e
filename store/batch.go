package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cheops-io/cheops"
)

// Targets reads the named sites with their credentials, for a wave of applies, in one round trip
// per maxTxnSites sites instead of one per site. The function it returns answers for one of those
// sites as Target would (ErrNotFound for a site that does not exist), without reading etcd again.
func (s *Store) Targets(ctx context.Context, names []string) (func(name string) (cheops.Target, error), error) {
	sites, creds := map[string][]byte{}, map[string][]byte{}
	for chunk := range slices.Chunk(names, maxTxnSites) {
		var ops []clientv3.Op
		for _, name := range chunk {
			ops = append(ops, clientv3.OpGet(s.siteKey(name)), clientv3.OpGet(s.credKey(name)))
		}
		resp, err := s.c.Txn(ctx).Then(ops...).Commit()
		if err != nil {
			return nil, fmt.Errorf("etcd get %d sites: %w", len(chunk), err)
		}
		for i, name := range chunk {
			if kvs := resp.Responses[2*i].GetResponseRange().Kvs; len(kvs) > 0 {
				sites[name] = kvs[0].Value
			}
			if kvs := resp.Responses[2*i+1].GetResponseRange().Kvs; len(kvs) > 0 {
				creds[name] = kvs[0].Value
			}
		}
	}
	return func(name string) (cheops.Target, error) {
		var t cheops.Target
		site, ok := sites[name]
		if !ok {
			return t, fmt.Errorf("site %s: %w", name, ErrNotFound)
		}
		if err := json.Unmarshal(site, &t.Site); err != nil {
			return t, fmt.Errorf("decode site %s: %w", name, err)
		}
		if cred, ok := creds[name]; ok {
			var err error
			if t.Credentials, err = s.decodeCred(name, cred); err != nil {
				return t, err
			}
		}
		return t, nil
	}, nil
}

// SitesNamed returns the sites of names that exist, read in as few etcd transactions as the
// operation limit allows: what a declaration's scope and overrides name, without listing every site.
func (s *Store) SitesNamed(ctx context.Context, names []string) ([]cheops.Site, error) {
	var out []cheops.Site
	for chunk := range slices.Chunk(names, maxTxnOps) {
		ops := make([]clientv3.Op, len(chunk))
		for i, name := range chunk {
			ops[i] = clientv3.OpGet(s.siteKey(name))
		}
		// A read transaction is not retried by the etcd client as a range is: ride out a leader
		// change here, as the API did when it listed the sites.
		resp, err := s.c.Txn(ctx).Then(ops...).Commit()
		for n, start := 1, time.Now(); err != nil && Unavailable(err) && waitOut(ctx, start, n); n++ {
			resp, err = s.c.Txn(ctx).Then(ops...).Commit()
		}
		if err != nil {
			return nil, fmt.Errorf("etcd get %d sites: %w", len(chunk), err)
		}
		for i, name := range chunk {
			kvs := resp.Responses[i].GetResponseRange().Kvs
			if len(kvs) == 0 {
				continue
			}
			var site cheops.Site
			if err := json.Unmarshal(kvs[0].Value, &site); err != nil {
				return nil, fmt.Errorf("decode site %s: %w", name, err)
			}
			out = append(out, site)
		}
	}
	return out, nil
}

// maxTxnOps is etcd's default bound on the operations of one transaction (--max-txn-ops); it
// applies to the comparisons and to each branch alike.
const maxTxnOps = 128

// maxTxnBytes keeps a batched write well under etcd's default request limit (--max-request-bytes,
// 1.5 MiB), however long the messages its replicas and events carry.
const maxTxnBytes = 1 << 20

// ReplicasPerTxn is how many replica updates that each append an event fit in one transaction:
// each writes the replica, its site index entry and the event. A caller that batches such updates
// (a wave recording its outcomes) fills one transaction with this many.
const ReplicasPerTxn = maxTxnOps / 3

// UpdateReplicas is UpdateReplica for many replicas of one resource, in as few transactions as
// etcd allows: it reads the replicas once, calls fn for each site, and writes what fn changed in
// chunks, each compared on the revisions it read and on the resource still existing, each replica
// with its site index entry and the event fn returned. A chunk that lost a race to another writer
// is written again one site at a time through UpdateReplica, from a fresh read, so nothing another
// writer recorded is overwritten and no event is written twice; fn may therefore be called more
// than once for a site, and must only change the replica it is given. fn returning ErrSkip leaves
// that replica as it is.
//
// It returns each site's replica as recorded (or as read, when left alone). A resource that is
// gone is ErrNotFound: no replica is ever written for it. On any error the map holds the sites
// whose replicas were recorded before it; the others were not written.
func (s *Store) UpdateReplicas(ctx context.Context, id string, sites []string, fn func(site string, rep *cheops.Replica) (*cheops.Event, error)) (map[string]cheops.Replica, error) {
	done := make(map[string]cheops.Replica, len(sites))
	current, err := s.readReplicas(ctx, id, sites)
	if err != nil {
		return done, err
	}
	var chunk []replicaWrite
	var ops, size int
	for _, site := range sites {
		rep := cheops.Replica{Site: site, State: cheops.ReplicaPending, CreatedAt: s.now()}
		kv, exists := current[site]
		if exists {
			if err := json.Unmarshal(kv.value, &rep); err != nil {
				return done, fmt.Errorf("decode replica of %s on %s: %w", id, site, err)
			}
		}
		rep.ResourceID, rep.Site = id, site
		before := mustJSON(rep)
		ev, err := fn(site, &rep)
		if errors.Is(err, ErrSkip) {
			done[site] = rep
			continue
		}
		if err != nil {
			return done, fmt.Errorf("replica of %s on %s: %w", id, site, err)
		}
		if mustJSON(rep) == before && ev == nil && exists {
			done[site] = rep
			continue
		}
		rep.UpdatedAt = s.now()
		w := replicaWrite{site: site, rev: kv.rev, rep: rep, ops: []clientv3.Op{
			clientv3.OpPut(s.replicaKey(id, site), mustJSON(rep)),
			clientv3.OpPut(s.siteReplicaKey(site, id), ""),
		}}
		if ev != nil {
			w.ops = append(w.ops, s.eventOp(id, *ev))
		}
		wsize := 0
		for _, op := range w.ops {
			wsize += len(op.KeyBytes()) + len(op.ValueBytes())
		}
		if len(chunk) > 0 && (ops+len(w.ops) > maxTxnOps || size+wsize > maxTxnBytes) {
			if err := s.writeReplicas(ctx, id, chunk, fn, done); err != nil {
				return done, err
			}
			chunk, ops, size = nil, 0, 0
		}
		chunk, ops, size = append(chunk, w), ops+len(w.ops), size+wsize
	}
	if len(chunk) > 0 {
		if err := s.writeReplicas(ctx, id, chunk, fn, done); err != nil {
			return done, err
		}
	}
	return done, nil
}

// replicaWrite is one replica's part of a batched write: what it becomes, compared on the mod
// revision read (0 for a replica that does not exist yet).
type replicaWrite struct {
	site string
	rev  int64
	rep  cheops.Replica
	ops  []clientv3.Op
}

// writeReplicas writes a chunk of replicas in one transaction, or, when one of them changed since
// it was read, one at a time through UpdateReplica.
func (s *Store) writeReplicas(ctx context.Context, id string, chunk []replicaWrite, fn func(string, *cheops.Replica) (*cheops.Event, error), done map[string]cheops.Replica) error {
	// A replica is only ever written for a resource that still exists.
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(s.resourceKey(id)), ">", 0)}
	var ops []clientv3.Op
	for _, w := range chunk {
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(s.replicaKey(id, w.site)), "=", w.rev))
		ops = append(ops, w.ops...)
	}
	ok, err := s.txn(ctx, cmps, ops...)
	if err != nil {
		return err
	}
	if ok {
		for _, w := range chunk {
			done[w.site] = w.rep
		}
		return nil
	}
	if _, _, err := s.getResource(ctx, id); err != nil {
		return err
	}
	for _, w := range chunk {
		rep, err := s.UpdateReplica(ctx, id, w.site, func(rep *cheops.Replica) (*cheops.Event, error) { return fn(w.site, rep) })
		if err != nil {
			return err
		}
		done[w.site] = rep
	}
	return nil
}

// readReplicas reads the replicas of a resource on sites, by site, in one round trip per
// maxTxnOps sites. A site without a replica is absent from the map.
func (s *Store) readReplicas(ctx context.Context, id string, sites []string) (map[string]mvccKV, error) {
	current := make(map[string]mvccKV, len(sites))
	seen := make(map[string]bool, len(sites))
	for chunk := range slices.Chunk(sites, maxTxnOps) {
		ops := make([]clientv3.Op, 0, len(chunk))
		for _, site := range chunk {
			if seen[site] {
				return nil, fmt.Errorf("replicas of %s: site %s named twice", id, site)
			}
			seen[site] = true
			ops = append(ops, clientv3.OpGet(s.replicaKey(id, site)))
		}
		resp, err := s.c.Txn(ctx).Then(ops...).Commit()
		if err != nil {
			return nil, fmt.Errorf("etcd get %d replicas of %s: %w", len(chunk), id, err)
		}
		for i, site := range chunk {
			if kvs := resp.Responses[i].GetResponseRange().Kvs; len(kvs) > 0 {
				current[site] = mvccKV{value: kvs[0].Value, rev: kvs[0].ModRevision}
			}
		}
	}
	return current, nil
}
