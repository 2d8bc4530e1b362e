package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

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
