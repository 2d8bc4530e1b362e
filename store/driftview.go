package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cheops-io/cheops"
)

// DriftView is what the drift monitor needs of the store, kept in memory and current: every
// resource's generation, driver and deletion, every replica's state and object, every site and its
// sealed credentials. It is read from etcd once, then followed by watches, so that a change of a
// replica costs the decoding of that replica rather than a read of them all. See FollowForDrift.
type DriftView struct {
	s       *Store
	changed chan struct{}

	mu        sync.Mutex
	resources map[string]cheops.Resource
	replicas  map[string]map[string]cheops.Replica
	sites     map[string]cheops.Site
	creds     map[string][]byte
}

// driftViewRetry is how long FollowForDrift waits before reading the store again after it could
// not read or follow it.
const driftViewRetry = time.Second

// FollowForDrift reads the view, then keeps it current until ctx ends: when a watch ends (etcd
// compacted past it, or was unreachable), the view is read again in full. It returns once the
// first read succeeded, or with its error.
func (s *Store) FollowForDrift(ctx context.Context) (*DriftView, error) {
	v := &DriftView{s: s, changed: make(chan struct{}, 1)}
	rev, err := v.load(ctx)
	if err != nil {
		return nil, err
	}
	go func() {
		for ctx.Err() == nil {
			v.follow(ctx, rev)
			for ctx.Err() == nil {
				select {
				case <-ctx.Done():
				case <-time.After(driftViewRetry):
				}
				if r, err := v.load(ctx); err == nil {
					rev = r
					v.signal()
					break
				}
			}
		}
	}()
	return v, nil
}

// Changed receives when the view changed in a way that may change what is watched: a replica,
// a resource, a site's health or settings, or credentials. A burst of changes is one message.
func (v *DriftView) Changed() <-chan struct{} { return v.changed }

func (v *DriftView) signal() {
	select {
	case v.changed <- struct{}{}:
	default:
	}
}

// Read calls fn with the view as it stands; fn must not keep or change the maps.
func (v *DriftView) Read(fn func(resources map[string]cheops.Resource, replicas map[string]map[string]cheops.Replica, sites map[string]cheops.Site)) {
	v.mu.Lock()
	defer v.mu.Unlock()
	fn(v.resources, v.replicas, v.sites)
}

// Target is what a driver needs to reach a site, from the view: no read of etcd, and credentials
// unsealed only when they changed.
func (v *DriftView) Target(name string) (cheops.Target, error) {
	v.mu.Lock()
	site, ok := v.sites[name]
	raw := v.creds[name]
	v.mu.Unlock()
	if !ok {
		return cheops.Target{}, fmt.Errorf("site %s: %w", name, ErrNotFound)
	}
	t := cheops.Target{Site: site}
	if raw != nil {
		var err error
		if t.Credentials, err = v.s.decodeCred(name, raw); err != nil {
			return t, err
		}
	}
	return t, nil
}

// The prefixes the view follows.
func (v *DriftView) prefixes() (resources, replicas, sites, creds string) {
	p := v.s.prefix
	return p + "/resources/", p + "/replicas/", p + "/sites/", p + "/credentials/"
}

// load reads the whole view at one revision, and returns that revision.
func (v *DriftView) load(ctx context.Context) (int64, error) {
	resP, repP, siteP, credP := v.prefixes()
	resp, err := v.s.c.Get(ctx, resP, clientv3.WithPrefix())
	if err != nil {
		return 0, fmt.Errorf("etcd list %s: %w", resP, err)
	}
	rev := resp.Header.Revision
	resources := map[string]cheops.Resource{}
	replicas := map[string]map[string]cheops.Replica{}
	sites := map[string]cheops.Site{}
	creds := map[string][]byte{}
	for _, kv := range resp.Kvs {
		if r, ok := decodeViewResource(kv.Value); ok {
			resources[r.ID] = r
		}
	}
	for _, p := range []string{repP, siteP, credP} {
		resp, err := v.s.c.Get(ctx, p, clientv3.WithPrefix(), clientv3.WithRev(rev))
		if err != nil {
			return 0, fmt.Errorf("etcd list %s: %w", p, err)
		}
		for _, kv := range resp.Kvs {
			key := string(kv.Key)
			switch p {
			case repP:
				if rep, ok := decodeViewReplica(strings.TrimPrefix(key, repP), kv.Value); ok {
					if replicas[rep.ResourceID] == nil {
						replicas[rep.ResourceID] = map[string]cheops.Replica{}
					}
					replicas[rep.ResourceID][rep.Site] = rep
				}
			case siteP:
				var site cheops.Site
				if json.Unmarshal(kv.Value, &site) == nil {
					sites[site.Name] = site
				}
			case credP:
				creds[strings.TrimPrefix(key, credP)] = kv.Value
			}
		}
	}
	v.mu.Lock()
	v.resources, v.replicas, v.sites, v.creds = resources, replicas, sites, creds
	v.mu.Unlock()
	return rev, nil
}

// follow applies every change after rev until a watch ends or ctx does.
func (v *DriftView) follow(ctx context.Context, rev int64) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	resP, repP, siteP, credP := v.prefixes()
	events := make(chan []*clientv3.Event)
	ended := make(chan error, 4)
	for _, p := range []string{resP, repP, siteP, credP} {
		w := v.s.c.Watch(wctx, p, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
		go func() {
			for resp := range w {
				if err := resp.Err(); err != nil || resp.Canceled {
					ended <- errors.Join(err, errors.New("watch canceled"))
					return
				}
				select {
				case events <- resp.Events:
				case <-wctx.Done():
					return
				}
			}
			ended <- errors.New("watch closed")
		}()
	}
	for {
		select {
		case <-wctx.Done():
			return
		case <-ended:
			return
		case evs := <-events:
			if v.apply(evs) {
				v.signal()
			}
		}
	}
}

// apply applies watch events to the view and says whether anything the monitor reads changed.
func (v *DriftView) apply(evs []*clientv3.Event) bool {
	resP, repP, siteP, credP := v.prefixes()
	v.mu.Lock()
	defer v.mu.Unlock()
	changed := false
	for _, ev := range evs {
		key, deleted := string(ev.Kv.Key), ev.Type == clientv3.EventTypeDelete
		switch {
		case strings.HasPrefix(key, resP):
			id := strings.TrimPrefix(key, resP)
			if deleted {
				delete(v.resources, id)
			} else if r, ok := decodeViewResource(ev.Kv.Value); ok {
				v.resources[r.ID] = r
			}
			changed = true
		case strings.HasPrefix(key, repP):
			rest := strings.TrimPrefix(key, repP)
			if deleted {
				id, site, _ := strings.Cut(rest, "/")
				delete(v.replicas[id], site)
				if len(v.replicas[id]) == 0 {
					delete(v.replicas, id)
				}
			} else if rep, ok := decodeViewReplica(rest, ev.Kv.Value); ok {
				if v.replicas[rep.ResourceID] == nil {
					v.replicas[rep.ResourceID] = map[string]cheops.Replica{}
				}
				v.replicas[rep.ResourceID][rep.Site] = rep
			}
			changed = true
		case strings.HasPrefix(key, siteP):
			name := strings.TrimPrefix(key, siteP)
			old, had := v.sites[name]
			if deleted {
				delete(v.sites, name)
				changed = changed || had
				continue
			}
			var site cheops.Site
			if json.Unmarshal(ev.Kv.Value, &site) != nil {
				continue
			}
			v.sites[name] = site
			// A probe writes its time at each round: only health and settings matter here.
			changed = changed || !had || old.Health != site.Health || old.Driver != site.Driver ||
				!reflect.DeepEqual(old.Kubernetes, site.Kubernetes) || !reflect.DeepEqual(old.OpenStack, site.OpenStack)
		case strings.HasPrefix(key, credP):
			name := strings.TrimPrefix(key, credP)
			if deleted {
				delete(v.creds, name)
			} else {
				v.creds[name] = ev.Kv.Value
			}
			changed = true
		}
	}
	return changed
}

// decodeViewResource keeps of a stored resource what the drift monitor reads.
func decodeViewResource(value []byte) (cheops.Resource, bool) {
	var sr storedResource
	if json.Unmarshal(value, &sr) != nil {
		return cheops.Resource{}, false
	}
	r := sr.resource()
	return cheops.Resource{ID: r.ID, Name: r.Name, Driver: r.Driver, Generation: r.Generation, Deletion: r.Deletion}, true
}

// decodeViewReplica keeps of a stored replica what the drift monitor reads; rest is its key after
// the replicas' prefix: <resource ID>/<site>.
func decodeViewReplica(rest string, value []byte) (cheops.Replica, bool) {
	var rep cheops.Replica
	if json.Unmarshal(value, &rep) != nil {
		return cheops.Replica{}, false
	}
	rep.ResourceID, rep.Site, _ = strings.Cut(rest, "/")
	return cheops.Replica{ResourceID: rep.ResourceID, Site: rep.Site, State: rep.State, ObservedGeneration: rep.ObservedGeneration,
		Object: rep.Object, LocalID: rep.LocalID, Drifted: rep.Drifted}, true
}
