package activities

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/scope"
	"github.com/cheops-io/cheops/store"
)

// resolveReferences maps every cheops resource a manifest names to the local ID of
// its replica on site. A resource that does not exist yet, or whose replica there is not Ready, is
// waited for (a transient error, retried with the rest); one whose scope leaves out the site, or of
// another driver, can never be there (a permanent error).
func (a *Activities) resolveReferences(ctx context.Context, d cheops.Driver, r cheops.Resource, site string, manifest []byte) (map[string]string, error) {
	rf, ok := d.(cheops.Referrer)
	if !ok {
		return nil, nil
	}
	refs, err := rf.References(manifest)
	if err != nil {
		return nil, cheops.Classify(cheops.Permanent, err)
	}
	if len(refs) == 0 {
		return nil, nil
	}
	out := map[string]string{}
	var sites []cheops.Site
	for _, ref := range refs {
		if _, done := out[ref.Resource]; done {
			continue
		}
		if ref.Resource == r.Name {
			return nil, cheops.Classify(cheops.Permanent, fmt.Errorf("%s: a resource cannot refer to itself", ref.Field))
		}
		id, err := a.Store.ResourceIDByName(ctx, ref.Resource)
		if errors.Is(err, store.ErrNotFound) {
			return nil, cheops.Classify(cheops.Transient, fmt.Errorf("%s: waiting for resource %s, which does not exist", ref.Field, ref.Resource))
		}
		if err != nil {
			return nil, err
		}
		dep, err := a.Store.GetResource(ctx, id)
		if err != nil {
			return nil, err
		}
		if dep.Driver != r.Driver {
			return nil, cheops.Classify(cheops.Permanent, fmt.Errorf("%s: resource %s is a %s resource", ref.Field, ref.Resource, dep.Driver))
		}
		rep, err := a.Store.GetReplica(ctx, id, site)
		if errors.Is(err, store.ErrNotFound) {
			if sites == nil {
				if sites, err = a.Store.ListSites(ctx); err != nil {
					return nil, err
				}
			}
			if placed, serr := scope.Resolve(dep.Scope, scope.Within(dep, sites), dep.Driver, nil); serr == nil && !slices.Contains(placed.Sites, site) {
				return nil, cheops.Classify(cheops.Permanent, fmt.Errorf("%s: resource %s has no replica on site %s: the site is not in its scope", ref.Field, ref.Resource, site))
			}
			return nil, cheops.Classify(cheops.Transient, fmt.Errorf("%s: waiting for resource %s to have a replica on site %s", ref.Field, ref.Resource, site))
		}
		if err != nil {
			return nil, err
		}
		if rep.State != cheops.ReplicaReady || rep.LocalID == "" {
			return nil, cheops.Classify(cheops.Transient, fmt.Errorf("%s: waiting for resource %s to be Ready on site %s (it is %s)", ref.Field, ref.Resource, site, rep.State))
		}
		out[ref.Resource] = rep.LocalID
	}
	return out, nil
}
