package api

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/overrides"
	"github.com/cheops-io/cheops/store"
)

// maxDependencyReads bounds how many resources the search for a dependency cycle reads: a
// declaration whose dependencies reach more than that is refused rather than read at length.
const maxDependencyReads = 1000

// validateDependencies checks what r depends on by name, its dependsOn and the cheops resources
// its manifest refers to (see cheops.Referrer): each must exist, be another resource, and be of
// r's driver (a site has one driver, so a resource of another can never be on r's sites); and
// following them, and what they depend on in turn, must not lead back to r. It reads only the
// resources so reached. It also sets what r provides others on its sites (see
// cheops.Prerequisites), from its manifest and each override's.
func (s *server) validateDependencies(ctx context.Context, r *cheops.Resource, d cheops.Driver) error {
	direct, err := dependsOn(d, *r)
	if err != nil {
		return err
	}
	for i, name := range r.DependsOn {
		field := fmt.Sprintf("dependsOn[%d]", i)
		if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
			return invalid(field, errs[0])
		}
		if slices.Index(r.DependsOn, name) != i {
			return invalid(field, "names resource "+name+" twice")
		}
	}
	g := &dependencyGraph{s: s, seen: map[string][]cheops.Reference{}}
	for _, ref := range direct {
		if ref.Resource == r.Name {
			return invalid(ref.Field, "a resource cannot depend on itself")
		}
		dep, ok, err := g.resource(ctx, ref.Resource)
		if err != nil {
			return err
		}
		if !ok {
			return invalid(ref.Field, "resource "+ref.Resource+" does not exist")
		}
		if dep.Deletion != nil {
			return invalid(ref.Field, "resource "+ref.Resource+" is being deleted")
		}
		if dep.Driver != r.Driver {
			return invalid(ref.Field, fmt.Sprintf("resource %s is a %s resource; a %s resource can only depend on resources of its own driver", ref.Resource, dep.Driver, r.Driver))
		}
	}
	for _, ref := range direct {
		path, err := g.pathTo(ctx, ref.Resource, r.Name)
		if err != nil {
			return err
		}
		if path != nil {
			field := "dependsOn"
			if !strings.HasPrefix(ref.Field, "dependsOn") {
				field = ref.Field
			}
			return invalid(field, fmt.Sprintf("makes a dependency cycle: %s → %s", r.Name, strings.Join(path, " → ")))
		}
	}
	r.Provides = overrides.Provides(d, *r)
	return nil
}

// dependsOn lists what r depends on by name: its manifest's references, then its dependsOn.
func dependsOn(d cheops.Driver, r cheops.Resource) ([]cheops.Reference, error) {
	var refs []cheops.Reference
	if rf, ok := d.(cheops.Referrer); ok {
		var err error
		if refs, err = rf.References(r.Manifest); err != nil {
			return nil, fieldProblem(err, "")
		}
	}
	for i, name := range r.DependsOn {
		refs = append(refs, cheops.Reference{Field: fmt.Sprintf("dependsOn[%d]", i), Resource: name})
	}
	return refs, nil
}

// dependencyGraph reads the stored resources a declaration's dependencies reach, each once.
type dependencyGraph struct {
	s *server
	// seen holds, for each resource read, what it depends on by name (nil when it does not exist).
	seen      map[string][]cheops.Reference
	resources map[string]cheops.Resource
}

// resource reads a resource by name; ok is false when there is none.
func (g *dependencyGraph) resource(ctx context.Context, name string) (cheops.Resource, bool, error) {
	if r, ok := g.resources[name]; ok {
		return r, true, nil
	}
	if _, ok := g.seen[name]; ok {
		return cheops.Resource{}, false, nil
	}
	if len(g.seen) >= maxDependencyReads {
		return cheops.Resource{}, false, invalid("dependsOn", fmt.Sprintf("the dependencies reach more than %d resources", maxDependencyReads))
	}
	g.seen[name] = nil
	id, err := g.s.Store.ResourceIDByName(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return cheops.Resource{}, false, nil
	}
	if err != nil {
		return cheops.Resource{}, false, err
	}
	r, err := g.s.Store.GetResource(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return cheops.Resource{}, false, nil
	}
	if err != nil {
		return cheops.Resource{}, false, err
	}
	if g.resources == nil {
		g.resources = map[string]cheops.Resource{}
	}
	g.resources[name] = r
	// A stored resource's manifest was valid when stored; one a driver no longer reads has no
	// references to follow.
	if d, ok := g.s.Drivers[r.Driver]; ok {
		g.seen[name], _ = dependsOn(d, r)
	}
	return r, true, nil
}

// pathTo returns a path of names from from to to following what each resource depends on, or nil
// when there is none. Each resource is read at most once per graph.
func (g *dependencyGraph) pathTo(ctx context.Context, from, to string) ([]string, error) {
	visited := map[string]bool{}
	var walk func(name string) ([]string, error)
	walk = func(name string) ([]string, error) {
		if name == to {
			return []string{name}, nil
		}
		if visited[name] {
			return nil, nil
		}
		visited[name] = true
		if _, ok, err := g.resource(ctx, name); err != nil || !ok {
			return nil, err
		}
		for _, ref := range g.seen[name] {
			path, err := walk(ref.Resource)
			if err != nil || path != nil {
				if path != nil {
					path = append([]string{name}, path...)
				}
				return path, err
			}
		}
		return nil, nil
	}
	return walk(from)
}
