// Package overrides adapts a resource's manifest to one site with the resource's per-site overrides
// (JSON merge patches, RFC 7386). It is pure: no I/O.
package overrides

import (
	"fmt"
	"slices"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/scope"
)

// Apply returns the manifest to send to a site: the resource's manifest with every override
// that matches the site applied in order, and the names of those overrides ("overrides[0]", …).
func Apply(r cheops.Resource, site cheops.Site) ([]byte, []string, error) {
	manifest := []byte(r.Manifest)
	var applied []string
	for i, o := range r.Overrides {
		match := o.Site != "" && o.Site == site.Name
		if o.Selector != "" {
			sel, err := scope.ParseSelector(o.Selector)
			if err != nil {
				return nil, nil, cheops.Classify(cheops.Permanent, fmt.Errorf("overrides[%d].selector: %w", i, err))
			}
			match = sel.Matches(site.Labels)
		}
		if !match {
			continue
		}
		patched, err := jsonpatch.MergePatch(manifest, o.Patch)
		if err != nil {
			return nil, nil, cheops.Classify(cheops.Permanent, fmt.Errorf("overrides[%d].patch: %w", i, err))
		}
		manifest = patched
		applied = append(applied, fmt.Sprintf("overrides[%d]", i))
	}
	return manifest, applied, nil
}

// Provides is what r's objects provide others on their sites (see cheops.Prerequisites), as sorted
// keys: what its manifest provides, and what it provides as each override changes it. It is nil for
// a driver whose objects provide nothing.
func Provides(d cheops.Driver, r cheops.Resource) []string {
	pr, ok := d.(cheops.Prerequisites)
	if !ok {
		return nil
	}
	var keys []string
	add := func(manifest []byte) {
		for _, p := range pr.Provides(manifest) {
			keys = append(keys, p.Key())
		}
	}
	add(r.Manifest)
	// Each override as it would apply on a site it matches, whatever its selector.
	for _, o := range r.Overrides {
		one := []cheops.Override{{Site: "any", Patch: o.Patch}}
		if m, _, err := Apply(cheops.Resource{Manifest: r.Manifest, Overrides: one}, cheops.Site{Name: "any"}); err == nil {
			add(m)
		}
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}
