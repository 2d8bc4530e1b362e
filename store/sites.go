package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cheops-io/cheops"
)

// CreateSite stores a new site, its credentials and its SiteCreated event (by site.CreatedBy) in
// one transaction.
func (s *Store) CreateSite(ctx context.Context, site cheops.Site, cred cheops.Credentials) (cheops.Site, error) {
	now := s.now()
	site.CreatedAt, site.UpdatedAt = now, now
	site.HasCredentials = !cred.Empty()
	if site.Health == "" {
		site.Health = cheops.SiteUnknown
	}
	ops := []clientv3.Op{clientv3.OpPut(s.siteKey(site.Name), mustJSON(site)),
		s.siteEventOp(site.Name, cheops.Event{Type: cheops.EventSiteCreated, Actor: site.CreatedBy})}
	if !cred.Empty() {
		v, err := s.credValue(site.Name, cred)
		if err != nil {
			return cheops.Site{}, err
		}
		ops = append(ops, clientv3.OpPut(s.credKey(site.Name), v))
	}
	ok, err := s.txn(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(s.siteKey(site.Name)), "=", 0)}, ops...)
	if err != nil {
		return cheops.Site{}, err
	}
	if !ok {
		return cheops.Site{}, fmt.Errorf("site %s: %w", site.Name, ErrExists)
	}
	return site, nil
}

// GetSite returns one site.
func (s *Store) GetSite(ctx context.Context, name string) (cheops.Site, error) {
	var site cheops.Site
	if _, err := s.get(ctx, s.siteKey(name), &site); err != nil {
		return site, fmt.Errorf("site %s: %w", name, err)
	}
	return site, nil
}

// ListSites returns every site, sorted by name.
func (s *Store) ListSites(ctx context.Context) ([]cheops.Site, error) {
	return list[cheops.Site](ctx, s, s.prefix+"/sites/")
}

// UpdateSite changes a site through fn; cred, when not nil, replaces the credentials. The event fn
// returns, if any, goes to the site's log in the same transaction. When fn returns ErrSkip
// nothing is written.
func (s *Store) UpdateSite(ctx context.Context, name string, cred *cheops.Credentials, fn func(*cheops.Site) (*cheops.Event, error)) (cheops.Site, error) {
	for range maxCASRetries {
		var site cheops.Site
		rev, err := s.get(ctx, s.siteKey(name), &site)
		if err != nil {
			return site, fmt.Errorf("site %s: %w", name, err)
		}
		ev, err := fn(&site)
		if errors.Is(err, ErrSkip) {
			return site, nil
		} else if err != nil {
			return site, err
		}
		site.Name = name
		site.UpdatedAt = s.now()
		var ops []clientv3.Op
		if cred != nil {
			site.HasCredentials = !cred.Empty()
			if cred.Empty() {
				ops = append(ops, clientv3.OpDelete(s.credKey(name)))
			} else {
				v, err := s.credValue(name, *cred)
				if err != nil {
					return site, err
				}
				ops = append(ops, clientv3.OpPut(s.credKey(name), v))
			}
		}
		ops = append(ops, clientv3.OpPut(s.siteKey(name), mustJSON(site)))
		if ev != nil {
			ops = append(ops, s.siteEventOp(name, *ev))
		}
		ok, err := s.txn(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(s.siteKey(name)), "=", rev)}, ops...)
		if err != nil {
			return site, err
		}
		if ok {
			return site, nil
		}
	}
	return cheops.Site{}, fmt.Errorf("site %s: too much contention", name)
}

// SiteCredentials returns the secret part of a site (empty when none is stored).
func (s *Store) SiteCredentials(ctx context.Context, name string) (cheops.Credentials, error) {
	resp, err := s.c.Get(ctx, s.credKey(name))
	if err != nil {
		return cheops.Credentials{}, fmt.Errorf("etcd get credentials of site %s: %w", name, err)
	}
	if len(resp.Kvs) == 0 {
		return cheops.Credentials{}, nil
	}
	return s.decodeCred(name, resp.Kvs[0].Value)
}

// Target returns a site with its credentials, for a driver, read in one round trip.
func (s *Store) Target(ctx context.Context, name string) (cheops.Target, error) {
	var t cheops.Target
	resp, err := s.c.Txn(ctx).Then(clientv3.OpGet(s.siteKey(name)), clientv3.OpGet(s.credKey(name))).Commit()
	if err != nil {
		return t, fmt.Errorf("etcd get site %s: %w", name, err)
	}
	site, cred := resp.Responses[0].GetResponseRange().Kvs, resp.Responses[1].GetResponseRange().Kvs
	if len(site) == 0 {
		return t, fmt.Errorf("site %s: %w", name, ErrNotFound)
	}
	if err := json.Unmarshal(site[0].Value, &t.Site); err != nil {
		return t, fmt.Errorf("decode site %s: %w", name, err)
	}
	if len(cred) > 0 {
		if t.Credentials, err = s.decodeCred(name, cred[0].Value); err != nil {
			return t, err
		}
	}
	return t, nil
}

// SiteResources lists the IDs of resources with a replica on the site.
func (s *Store) SiteResources(ctx context.Context, name string) ([]string, error) {
	p := s.prefix + "/site-replicas/" + name + "/"
	resp, err := s.c.Get(ctx, p, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("etcd list replicas of site %s: %w", name, err)
	}
	ids := make([]string, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		ids = append(ids, strings.TrimPrefix(string(kv.Key), p))
	}
	return ids, nil
}

// DeleteSite removes a site. Unless force is set, a site that still holds replicas is refused with
// ErrConflict; the check and the delete are one transaction, so a replica recorded concurrently is
// not missed. The SiteDeleted event (by actor) is written with the delete.
func (s *Store) DeleteSite(ctx context.Context, name string, force bool, actor string) error {
	p := s.prefix + "/site-replicas/" + name + "/"
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(s.siteKey(name)), ">", 0)}
	if !force {
		// No key under the prefix: the newest create revision in the range is 0.
		cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(p), "=", 0).WithPrefix())
	}
	ev := cheops.Event{Type: cheops.EventSiteDeleted, Actor: actor, Message: fmt.Sprintf("force=%t", force)}
	ok, err := s.txn(ctx, cmps, clientv3.OpDelete(s.siteKey(name)), clientv3.OpDelete(s.credKey(name)), s.siteEventOp(name, ev))
	if err != nil {
		return err
	}
	if ok {
		return nil
	}
	if _, err := s.GetSite(ctx, name); err != nil {
		return err
	}
	ids, err := s.SiteResources(ctx, name)
	if err != nil {
		return err
	}
	// Name a few, not all: a site may hold thousands.
	const named = 3
	var names []string
	for _, id := range ids[:min(len(ids), named)] {
		if r, err := s.GetResource(ctx, id); err == nil {
			names = append(names, r.Name)
		} else {
			names = append(names, id)
		}
	}
	more := ""
	if len(ids) > named {
		more = fmt.Sprintf(" and %d more", len(ids)-named)
	}
	return fmt.Errorf("site %s still holds replicas of %d resource(s) (%s%s): %w", name, len(ids), strings.Join(names, ", "), more, ErrConflict)
}
