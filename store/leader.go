package store

import (
	"context"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Lead runs fn while this process leads task among all the processes that share this etcd (and
// prefix), until ctx ends: work that must happen once however many workers run, such as probing
// sites and sweeping resources. id names this process in the election. fn's context ends when the
// leadership is lost; Lead then campaigns again. A leader that dies without resigning holds its
// leadership until its session's lease expires, after ttl (whole seconds, at least one), so the
// work is handed over within about ttl.
func (s *Store) Lead(ctx context.Context, task, id string, ttl time.Duration, fn func(ctx context.Context)) {
	secs := max(int(ttl/time.Second), 1)
	for ctx.Err() == nil {
		if err := s.leadOnce(ctx, task, id, secs, fn); err != nil && ctx.Err() == nil {
			// etcd unreachable or the session lost: try again shortly.
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

func (s *Store) leadOnce(ctx context.Context, task, id string, ttl int, fn func(ctx context.Context)) error {
	// The session outlives ctx, so that its Close revokes the lease (at once handing over any
	// campaign still waiting) instead of failing on a canceled context; Close ends its keep-alive.
	sess, err := concurrency.NewSession(s.c, concurrency.WithTTL(ttl), concurrency.WithContext(context.WithoutCancel(ctx)))
	if err != nil {
		return fmt.Errorf("etcd session for %s: %w", task, err)
	}
	defer sess.Close()
	el := concurrency.NewElection(sess, s.prefix+"/leaders/"+task)
	if err := el.Campaign(ctx, id); err != nil {
		return fmt.Errorf("campaign for %s: %w", task, err)
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-sess.Done(): // the lease expired or was revoked: another process may lead now
			cancel()
		case <-lctx.Done():
		}
	}()
	fn(lctx)
	// Hand over at once rather than when the lease expires.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer rcancel()
	_ = el.Resign(rctx)
	return nil
}

// Leader returns the ID of the process leading task, or "" when none does.
func (s *Store) Leader(ctx context.Context, task string) (string, error) {
	resp, err := s.c.Get(ctx, s.prefix+"/leaders/"+task+"/", withFirstCreate()...)
	if err != nil {
		return "", fmt.Errorf("etcd get leader of %s: %w", task, err)
	}
	if len(resp.Kvs) == 0 {
		return "", nil
	}
	return string(resp.Kvs[0].Value), nil
}

// withFirstCreate reads the oldest key of a prefix: an election's leader.
func withFirstCreate() []clientv3.OpOption {
	return []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend), clientv3.WithLimit(1)}
}
