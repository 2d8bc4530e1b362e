package store

import (
	"context"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// WatchResource tells, on the channel it returns, that something a view of the resource depends
// on changed: the resource, one of its replicas, or a site (whose health colours its replicas). A
// burst of changes is one message; the channel is closed when ctx ends or etcd ends the watch
// (its revision was compacted, the member lost), after which the caller reads again and watches
// anew. The watch starts at the current revision: read the resource after calling it, so that no
// change between the read and the watch is missed.
func (s *Store) WatchResource(ctx context.Context, id string) <-chan struct{} {
	return s.watch(ctx, s.resourceKey(id), s.replicaPrefix(id), s.prefix+"/sites/")
}

// WatchResourceHistory is WatchResource, and also tells of each event appended to the resource's
// log (an operator's action is recorded by an event alone).
func (s *Store) WatchResourceHistory(ctx context.Context, id string) <-chan struct{} {
	return s.watch(ctx, s.resourceKey(id), s.replicaPrefix(id), s.prefix+"/sites/", s.eventPrefix(id))
}

// WatchAll is WatchResource for every resource: it tells that a resource, a replica or a site
// changed.
func (s *Store) WatchAll(ctx context.Context) <-chan struct{} {
	return s.watch(ctx, s.prefix+"/resources/", s.prefix+"/replicas/", s.prefix+"/sites/")
}

// watch watches each key, or each prefix (a key ending in "/"), as WatchResource says.
func (s *Store) watch(ctx context.Context, keys ...string) <-chan struct{} {
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	out := make(chan struct{}, 1)
	watches := make([]clientv3.WatchChan, len(keys))
	for i, k := range keys {
		var opts []clientv3.OpOption
		if k[len(k)-1] == '/' {
			opts = append(opts, clientv3.WithPrefix())
		}
		watches[i] = s.c.Watch(ctx, k, opts...)
	}
	ended := make(chan struct{}, len(watches))
	for _, w := range watches {
		go func() {
			defer func() { ended <- struct{}{} }()
			for resp := range w {
				if resp.Err() != nil || resp.Canceled {
					return
				}
				select {
				case out <- struct{}{}:
				default: // one message says "read again"; more would say nothing new
				}
			}
		}()
	}
	go func() {
		<-ended // the first watch to end ends them all: a partial watch would miss changes
		cancel()
		for range len(watches) - 1 {
			<-ended
		}
		close(out)
	}()
	return out
}
