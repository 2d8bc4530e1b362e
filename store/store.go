// Package store keeps cheops' state in etcd: sites and their credentials, resources, replicas and
// each resource's event log. Every read-modify-write is a transaction that compares the revision it
// read, and a lost race is retried from a fresh read. It knows nothing of HTTP, Temporal or drivers.
//
// Key layout (under a prefix, "/cheops" by default), so `etcdctl get --prefix /cheops` is a debugging tool:
//
//	/sites/<name>                   Site (no secret)
//	/credentials/<name>             Credentials of a site, sealed with AES-256-GCM once a keyring is set (SealWith)
//	/resources/<id>                 Resource
//	/names/<name>                   resource ID, so names stay unique
//	/idempotency/<key>              resource ID created by a POST with that Idempotency-Key
//	/replicas/<id>/<site>           Replica
//	/site-replicas/<site>/<id>      empty; which resources have a replica on a site
//	/events/<id>/<time>-<seq>       Event, append-only
//	/site-events/<name>/<time>-<seq> Event of a site (who changed it, its health), append-only
//	/specs/<id>/<generation>        Snapshot of each generation not yet committed (manifest, overrides)
//	/provides/<kind>/<name>/<id>    empty; what a resource provides others on its sites ("namespace/team-a", "kind/example.com/Widget")
//	/committed/<id>                 Snapshot of the last generation applied everywhere (transactional)
//	/leaders/<task>/<lease>         the election of the worker that leads a task (prober, sweep)
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/seal"
)

// Errors the store returns; callers test them with errors.Is.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	// ErrConflict means a precondition of the caller did not hold (a generation mismatch, a site still in use).
	ErrConflict = errors.New("conflict")
	// ErrSkip, returned by an update's callback, leaves the record untouched.
	ErrSkip = errors.New("skip")
)

// maxCASRetries bounds how often a read-modify-write is retried after losing a race.
const maxCASRetries = 50

// Store is the etcd-backed store.
type Store struct {
	c      *clientv3.Client
	prefix string
	now    func() time.Time
	// keys seals credentials at rest (see SealWith).
	keys *seal.Keyring
	// opened keeps the credentials last opened of each site, by the exact value etcd held, so
	// that reading a site's target again (each wave, each drift resync) does not unseal and
	// decode it again.
	opened *openedCreds
}

// New returns a store over an etcd client; prefix defaults to "/cheops".
func New(c *clientv3.Client, prefix string) *Store {
	if prefix == "" {
		prefix = "/cheops"
	}
	return &Store{c: c, prefix: strings.TrimSuffix(prefix, "/"), now: func() time.Time { return time.Now().UTC() },
		opened: &openedCreds{bySite: map[string]openedCred{}}}
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
func (s *Store) eventPrefix(id string) string { return s.prefix + "/events/" + id + "/" }
func (s *Store) siteEventPrefix(name string) string {
	return s.prefix + "/site-events/" + name + "/"
}
func (s *Store) committedKey(id string) string { return s.prefix + "/committed/" + id }
func (s *Store) specPrefix(id string) string   { return s.prefix + "/specs/" + id + "/" }
func (s *Store) specKey(id string, gen int64) string {
	return fmt.Sprintf("%s%020d", s.specPrefix(id), gen)
}

// specOp records what a generation declares, so it can be committed after a newer one was declared.
func (s *Store) specOp(r cheops.Resource) clientv3.Op {
	return clientv3.OpPut(s.specKey(r.ID, r.Generation), mustJSON(cheops.Snapshot{Generation: r.Generation, Manifest: r.Manifest, Overrides: r.Overrides}))
}

// mustJSON encodes a value for etcd. HTML escaping is off: it would store each "<", ">" or "&"
// of a manifest as six bytes, and a manifest of them would outgrow etcd's request limit.
func mustJSON(v any) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(fmt.Sprintf("store: marshal %T: %v", v, err)) // only our own plain structs are marshalled
	}
	return strings.TrimSuffix(b.String(), "\n")
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

// list reads every value under a prefix, in key order, and decodes each into a T.
func list[T any](ctx context.Context, s *Store, prefix string) ([]T, error) {
	resp, err := s.c.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("etcd list %s: %w", prefix, err)
	}
	out := make([]T, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var v T
		if err := json.Unmarshal(kv.Value, &v); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		out = append(out, v)
	}
	return out, nil
}

// unavailableFor bounds how long a write waits out etcd being unavailable (a leader election, a
// member lost under the request) before its error is returned: an election takes a second or two.
const unavailableFor = 10 * time.Second

// Unavailable says whether err is etcd being unavailable for a moment: gRPC's Unavailable, as a
// status or as etcd's own error type. A write that failed so may or may not have been applied.
func Unavailable(err error) bool {
	var st interface{ GRPCStatus() *status.Status }
	if errors.As(err, &st) && st.GRPCStatus().Code() == codes.Unavailable {
		return true
	}
	var etcdErr rpctypes.EtcdError
	return errors.As(err, &etcdErr) && etcdErr.Code() == codes.Unavailable
}

// waitOut sleeps before try n (from 1) of a write etcd was unavailable for: 100 ms doubling to
// 1 s. It returns false once unavailableFor has passed since start, or ctx ended.
func waitOut(ctx context.Context, start time.Time, n int) bool {
	d := min(100*time.Millisecond<<min(n-1, 4), time.Second)
	if time.Since(start)+d > unavailableFor {
		return false
	}
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

func (s *Store) txn(ctx context.Context, cmps []clientv3.Cmp, ops ...clientv3.Op) (bool, error) {
	resp, err := s.c.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return false, fmt.Errorf("etcd txn: %w", err)
	}
	return resp.Succeeded, nil
}
