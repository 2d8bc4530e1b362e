package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cheops-io/cheops"
)

// AllReplicas returns every resource's replicas, in one read of etcd: what the drift monitor
// watches on the sites.
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

// WatchReplicas tells, on the channel it returns, that some replica changed; a burst of changes is
// one message. The channel is closed when ctx ends or etcd ends the watch.
func (s *Store) WatchReplicas(ctx context.Context) <-chan struct{} {
	out := make(chan struct{}, 1)
	w := s.c.Watch(clientv3.WithRequireLeader(ctx), s.prefix+"/replicas/", clientv3.WithPrefix())
	go func() {
		defer close(out)
		for resp := range w {
			if resp.Err() != nil || resp.Canceled {
				return
			}
			select {
			case out <- struct{}{}:
			default:
			}
		}
	}()
	return out
}
