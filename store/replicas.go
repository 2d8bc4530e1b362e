package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cheops-io/cheops"
)

// ListReplicas returns a resource's replicas, sorted by site.
func (s *Store) ListReplicas(ctx context.Context, id string) ([]cheops.Replica, error) {
	reps, err := list[cheops.Replica](ctx, s, s.replicaPrefix(id))
	for i := range reps {
		reps[i].ResourceID = id
	}
	return reps, err
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

// CountReplicas counts every resource's replicas by site and state, in one read of etcd; it is
// what the metrics report at scrape time.
func (s *Store) CountReplicas(ctx context.Context) (map[string]map[cheops.ReplicaState]int, error) {
	prefix := s.prefix + "/replicas/"
	resp, err := s.c.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("etcd list %s: %w", prefix, err)
	}
	out := map[string]map[cheops.ReplicaState]int{}
	for _, kv := range resp.Kvs {
		var rep struct {
			Site  string              `json:"site"`
			State cheops.ReplicaState `json:"state"`
		}
		if err := json.Unmarshal(kv.Value, &rep); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		if out[rep.Site] == nil {
			out[rep.Site] = map[cheops.ReplicaState]int{}
		}
		out[rep.Site][rep.State]++
	}
	return out, nil
}

// AllReplicas returns every resource's replicas, in one read of etcd, each with its resource's ID:
// what the status page's matrix shows.
func (s *Store) AllReplicas(ctx context.Context) ([]cheops.Replica, error) {
	prefix := s.prefix + "/replicas/"
	resp, err := s.c.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("etcd list %s: %w", prefix, err)
	}
	out := make([]cheops.Replica, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var rep cheops.Replica
		if err := json.Unmarshal(kv.Value, &rep); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		// The key is <prefix>/replicas/<resource ID>/<site>.
		rep.ResourceID, _, _ = strings.Cut(strings.TrimPrefix(string(kv.Key), prefix), "/")
		out = append(out, rep)
	}
	return out, nil
}
