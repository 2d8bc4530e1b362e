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
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	out := make(chan struct{}, 1)
	watches := []clientv3.WatchChan{
		s.c.Watch(ctx, s.resourceKey(id)),
		s.c.Watch(ctx, s.replicaPrefix(id), clientv3.WithPrefix()),
		s.c.Watch(ctx, s.prefix+"/sites/", clientv3.WithPrefix()),
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
