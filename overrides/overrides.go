// Package overrides adapts a resource's manifest to one site with the resource's per-site overrides
// (JSON merge patches, RFC 7386). It is pure: no I/O.
package overrides

import (
	"fmt"

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
