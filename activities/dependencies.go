package activities

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/scope"
	"github.com/cheops-io/cheops/store"
)

// dependencies finds, for one site, what a replica depends on there and whether it is available
// (see cheops.Replica.Available): the resources of its dependsOn, those its manifest refers to
// (see cheops.Referrer), and those that provide what its object needs on the site (see
// cheops.Prerequisites). It reads only those resources and their replica on the site; the sites
// are listed only when a dependency has no replica on the site yet, to tell whether it ever will.
type dependencies struct {
	a    *Activities
	r    cheops.Resource
	site string
	// reads are the reads that do not depend on the site, shared by the sites of a wave.
	reads *sharedReads
}

// sharedReads are the reads of a resource's dependencies that are the same for every site of a
// wave (names, resources, providers, the sites), each made once for the wave: its sites then only
// read their dependencies' replicas on them.
type sharedReads struct {
	a     *Activities
	mu    sync.Mutex
	reads map[string]*sharedRead
}

// sharedRead is one read, made once.
type sharedRead struct {
	once sync.Once
	v    any
	err  error
}

func newSharedReads(a *Activities) *sharedReads {
	return &sharedReads{a: a, reads: map[string]*sharedRead{}}
}

// once returns what read returns, read once per key.
func (sr *sharedReads) once(key string, read func() (any, error)) (any, error) {
	sr.mu.Lock()
	r, ok := sr.reads[key]
	if !ok {
		r = &sharedRead{}
		sr.reads[key] = r
	}
	sr.mu.Unlock()
	r.once.Do(func() { r.v, r.err = read() })
	return r.v, r.err
}

func (sr *sharedReads) resourceIDByName(ctx context.Context, name string) (string, error) {
	v, err := sr.once("name/"+name, func() (any, error) { return sr.a.Store.ResourceIDByName(ctx, name) })
	id, _ := v.(string)
	return id, err
}

func (sr *sharedReads) resource(ctx context.Context, id string) (cheops.Resource, error) {
	v, err := sr.once("resource/"+id, func() (any, error) { return sr.a.Store.GetResource(ctx, id) })
	r, _ := v.(cheops.Resource)
	return r, err
}

func (sr *sharedReads) providers(ctx context.Context, key string) ([]string, error) {
	v, err := sr.once("provides/"+key, func() (any, error) { return sr.a.Store.Providers(ctx, key) })
	ids, _ := v.([]string)
	return ids, err
}

func (sr *sharedReads) sites(ctx context.Context) ([]cheops.Site, error) {
	v, err := sr.once("sites", func() (any, error) { return sr.a.Store.ListSites(ctx) })
	sites, _ := v.([]cheops.Site)
	return sites, err
}

// dependency is one resource a replica depends on, and its replica on the site.
type dependency struct {
	res cheops.Resource
	rep cheops.Replica
	// placed is false when the resource has no replica on the site and its scope leaves the site
	// out: it can never be there.
	placed bool
	// recorded is false when the resource has no replica on the site yet.
	recorded bool
}

// of reads the dependency named name ("" with id given) for the site. ok is false when no resource
// has that name.
func (ds *dependencies) of(ctx context.Context, name, id string) (dep dependency, ok bool, err error) {
	if id == "" {
		id, err = ds.reads.resourceIDByName(ctx, name)
		if errors.Is(err, store.ErrNotFound) {
			return dep, false, nil
		}
		if err != nil {
			return dep, false, err
		}
	}
	dep.res, err = ds.reads.resource(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return dep, false, nil
	}
	if err != nil {
		return dep, false, err
	}
	dep.placed = true
	dep.rep, err = ds.a.Store.GetReplica(ctx, id, ds.site)
	if err == nil {
		dep.recorded = true
		return dep, true, nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return dep, false, err
	}
	sites, err := ds.reads.sites(ctx)
	if err != nil {
		return dep, false, err
	}
	placed, serr := scope.Resolve(dep.res.Scope, scope.Within(dep.res, sites), dep.res.Driver, nil)
	dep.placed = serr != nil || slices.Contains(placed.Sites, ds.site)
	return dep, true, nil
}

// waiting is the wait for a dependency not available on the site, in words that say what for;
// cause, when set, is a refusal of the site the wait explains.
func (dep dependency) waiting(why, site string, cause error) error {
	state := cheops.ReplicaPending
	if dep.recorded {
		state = dep.rep.State
	}
	msg := fmt.Sprintf("%s: waiting for resource %s to be Ready on site %s (it is %s)", why, dep.res.Name, site, state)
	if cause != nil {
		msg += "; the site says: " + cause.Error()
	}
	return cheops.Classify(cheops.Waiting, errors.New(msg))
}

// resolve waits for every dependency of the replica on the site, and maps each resource the
// manifest refers to to the local ID of its replica there. A dependency that does not exist, or is
// not available on the site yet, is a wait (Waiting); one whose scope leaves out the site, or of
// another driver, can never be there (Permanent).
func (ds *dependencies) resolve(ctx context.Context, d cheops.Driver, t cheops.Target, manifest []byte) (map[string]string, error) {
	var refs []cheops.Reference
	if rf, ok := d.(cheops.Referrer); ok {
		var err error
		if refs, err = rf.References(manifest); err != nil {
			return nil, cheops.Classify(cheops.Permanent, err)
		}
	}
	var out map[string]string
	for _, ref := range refs {
		if _, done := out[ref.Resource]; done {
			continue
		}
		dep, err := ds.named(ctx, ref)
		if err != nil {
			return nil, err
		}
		if out == nil {
			out = map[string]string{}
		}
		out[ref.Resource] = dep.rep.LocalID
	}
	for i, name := range ds.r.DependsOn {
		if _, err := ds.named(ctx, cheops.Reference{Field: fmt.Sprintf("dependsOn[%d]", i), Resource: name}); err != nil {
			return nil, err
		}
	}
	if pr, ok := d.(cheops.Prerequisites); ok {
		for _, need := range pr.Needs(t, manifest) {
			if err := ds.provided(ctx, need, nil); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// named returns the dependency a reference (or an entry of dependsOn) names, once it is available
// on the site; until then, the wait.
func (ds *dependencies) named(ctx context.Context, ref cheops.Reference) (dependency, error) {
	r, site := ds.r, ds.site
	if ref.Resource == r.Name {
		return dependency{}, cheops.Classify(cheops.Permanent, fmt.Errorf("%s: a resource cannot depend on itself", ref.Field))
	}
	dep, ok, err := ds.of(ctx, ref.Resource, "")
	switch {
	case err != nil:
		return dep, err
	case !ok:
		return dep, cheops.Classify(cheops.Waiting, fmt.Errorf("%s: waiting for resource %s, which does not exist", ref.Field, ref.Resource))
	case dep.res.Driver != r.Driver:
		return dep, cheops.Classify(cheops.Permanent, fmt.Errorf("%s: resource %s is a %s resource", ref.Field, ref.Resource, dep.res.Driver))
	case !dep.placed:
		return dep, cheops.Classify(cheops.Permanent, fmt.Errorf("%s: resource %s has no replica on site %s: the site is not in its scope", ref.Field, ref.Resource, site))
	case !dep.rep.Available():
		return dep, dep.waiting(ref.Field, site, nil)
	}
	return dep, nil
}

// provided waits while a resource that provides need on the site is not available there (nil
// when none of them is placed on the site: the site has it of its own, or it never will). cause,
// when set, is the site's refusal for want of need, kept in the wait's message.
func (ds *dependencies) provided(ctx context.Context, need cheops.Prerequisite, cause error) error {
	ids, err := ds.reads.providers(ctx, need.Key())
	if err != nil {
		return err
	}
	var wait error
	for _, id := range ids {
		if id == ds.r.ID {
			continue
		}
		dep, ok, err := ds.of(ctx, "", id)
		if err != nil {
			return err
		}
		if !ok || !dep.placed || dep.res.Driver != ds.r.Driver || dep.res.Deletion != nil {
			continue
		}
		if dep.rep.Available() {
			return nil
		}
		if wait == nil {
			wait = dep.waiting(need.String(), ds.site, cause)
		}
	}
	return wait
}

// missingWait turns a site's refusal of an object for want of a prerequisite (a namespace, a
// kind) into a wait when a resource that provides it is not available on the site yet: declared
// together, the dependent may well be tried first.
func (a *Activities) missingWait(ctx context.Context, r cheops.Resource, site string, err error) error {
	var m *cheops.MissingError
	if err == nil || cheops.ClassOf(err) != cheops.Permanent || !errors.As(err, &m) {
		return err
	}
	ds := &dependencies{a: a, r: r, site: site, reads: newSharedReads(a)}
	if wait := ds.provided(ctx, m.Missing, err); wait != nil {
		return wait
	}
	return err
}
