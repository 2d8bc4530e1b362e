package store

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cheops-io/cheops"
)

// eventOp appends an event to a resource's log, as part of a transaction.
func (s *Store) eventOp(id string, ev cheops.Event) clientv3.Op {
	return s.logOp(s.eventPrefix(id), ev)
}

// siteEventOp appends an event to a site's log, as part of a transaction. A site's log outlives
// the site: it says who removed it.
func (s *Store) siteEventOp(name string, ev cheops.Event) clientv3.Op {
	return s.logOp(s.siteEventPrefix(name), ev)
}

func (s *Store) logOp(prefix string, ev cheops.Event) clientv3.Op {
	if ev.Time.IsZero() {
		ev.Time = s.now()
	}
	// Nanosecond time plus a random suffix keeps keys ordered by time and unique across writers.
	key := fmt.Sprintf("%s%020d-%s", prefix, ev.Time.UnixNano(), randSuffix())
	return clientv3.OpPut(key, mustJSON(ev))
}

// SiteEvents returns a site's events, oldest first.
func (s *Store) SiteEvents(ctx context.Context, name string) ([]cheops.Event, error) {
	return list[cheops.Event](ctx, s, s.siteEventPrefix(name))
}

// AppendEvent records an event of a resource that is a change of its own (an operator's request),
// if the resource exists.
func (s *Store) AppendEvent(ctx context.Context, id string, ev cheops.Event) error {
	ok, err := s.txn(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(s.resourceKey(id)), ">", 0)}, s.eventOp(id, ev))
	if err == nil && !ok {
		err = fmt.Errorf("resource %s: %w", id, ErrNotFound)
	}
	return err
}

// Events returns a resource's events, oldest first (their keys sort by time).
func (s *Store) Events(ctx context.Context, id string) ([]cheops.Event, error) {
	return list[cheops.Event](ctx, s, s.eventPrefix(id))
}
