package scope

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/cheops-io/cheops"
)

// LabelSelector is a parsed label selector ("region=eu-west,tier!=lab"), the syntax of a scope's
// selector and of an override's.
type LabelSelector struct{ sel labels.Selector }

// ParseSelector parses a label selector.
func ParseSelector(text string) (LabelSelector, error) {
	sel, err := labels.Parse(text)
	if err != nil {
		return LabelSelector{}, err
	}
	return LabelSelector{sel}, nil
}

// Matches reports whether a site with these labels is selected.
func (s LabelSelector) Matches(siteLabels map[string]string) bool {
	return s.sel != nil && s.sel.Matches(labels.Set(siteLabels))
}

// Resolve returns where a scope places a resource of driver among the known sites: the selected
// sites, sorted, and the names the scope uses that do not exist. A scope only ever selects sites of
// the resource's driver (a selector or an expression leaves the others out; Check refuses them by
// name). held names the sites holding a replica now; it keeps a replica that failed over where it
// is. A scope that does not parse is a *cheops.FieldError naming its field.
func Resolve(sc cheops.Scope, sites []cheops.Site, driver cheops.DriverName, held map[string]bool) (Placement, error) {
	sites = ofDriver(sites, driver)
	if sc.Expression != "" {
		x, err := Parse(sc.Expression)
		if err != nil {
			return Placement{}, &cheops.FieldError{Field: "scope.expression", Message: err.Error()}
		}
		return Evaluate(x, sites, held), nil
	}
	var p Placement
	known := map[string]bool{}
	for _, s := range sites {
		known[s.Name] = true
	}
	for _, name := range sc.Sites {
		if known[name] {
			p.Sites = append(p.Sites, name)
		} else {
			p.Missing = append(p.Missing, name)
		}
	}
	if sc.Selector != "" {
		sel, err := ParseSelector(sc.Selector)
		if err != nil {
			return Placement{}, &cheops.FieldError{Field: "scope.selector", Message: err.Error()}
		}
		for _, s := range sites {
			if sel.Matches(s.Labels) {
				p.Sites = append(p.Sites, s.Name)
			}
		}
	}
	slices.Sort(p.Sites)
	p.Sites = slices.Compact(p.Sites)
	slices.Sort(p.Missing)
	return p, nil
}

// Check validates a scope before a resource is accepted: exactly one of its three forms, a selector
// or expression that parses, and names of existing sites of the resource's driver only. Failures
// are *cheops.FieldError naming the field ("scope.sites[2]", "scope.expression").
func Check(sc cheops.Scope, sites []cheops.Site, driver cheops.DriverName) error {
	forms := 0
	for _, set := range []bool{len(sc.Sites) > 0, sc.Selector != "", sc.Expression != ""} {
		if set {
			forms++
		}
	}
	if forms != 1 {
		return &cheops.FieldError{Field: "scope", Message: "give exactly one of sites, selector or expression"}
	}
	if sc.Selector != "" {
		if _, err := ParseSelector(sc.Selector); err != nil {
			return &cheops.FieldError{Field: "scope.selector", Message: err.Error()}
		}
		return nil
	}
	field := "scope.sites"
	names := sc.Sites
	if sc.Expression != "" {
		x, err := Parse(sc.Expression)
		if err != nil {
			return &cheops.FieldError{Field: "scope.expression", Message: err.Error()}
		}
		field, names = "scope.expression", Names(x)
	} else {
		for i, name := range sc.Sites {
			if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
				return &cheops.FieldError{Field: fmt.Sprintf("scope.sites[%d]", i), Message: errs[0]}
			}
		}
	}
	kind := map[string]cheops.DriverName{}
	for _, s := range sites {
		kind[s.Name] = s.Driver
	}
	var unknown []string
	for _, name := range names {
		d, ok := kind[name]
		switch {
		case ok && d != driver:
			return &cheops.FieldError{Field: field, Message: fmt.Sprintf("site %s is a %s site; this resource's driver is %s", name, d, driver)}
		case !ok && !slices.Contains(unknown, name):
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		return &cheops.FieldError{Field: field, Message: "unknown sites: " + strings.Join(unknown, ", ")}
	}
	return nil
}

// ofDriver returns the sites of one driver.
func ofDriver(sites []cheops.Site, driver cheops.DriverName) []cheops.Site {
	out := make([]cheops.Site, 0, len(sites))
	for _, s := range sites {
		if s.Driver == driver {
			out = append(out, s)
		}
	}
	return out
}

// Reach returns every site a scope may ever place a resource of driver on among the known sites,
// sorted: the sites it names and the sites its selectors match, whichever alternative of a "|" is
// chosen. Nothing is resolved: a scope that does not parse reaches nothing (Check reports it).
func Reach(sc cheops.Scope, sites []cheops.Site, driver cheops.DriverName) []string {
	sites = ofDriver(sites, driver)
	set := map[string]bool{}
	for _, name := range sc.Sites {
		set[name] = true
	}
	matchAll := func(match func(map[string]string) bool) {
		for _, s := range sites {
			if match(s.Labels) {
				set[s.Name] = true
			}
		}
	}
	if sc.Selector != "" {
		if sel, err := ParseSelector(sc.Selector); err == nil {
			matchAll(sel.Matches)
		}
	}
	if sc.Expression != "" {
		if x, err := Parse(sc.Expression); err == nil {
			leaves(x, func(leaf Expr) {
				switch leaf := leaf.(type) {
				case Site:
					set[leaf.Name] = true
				case Selector:
					matchAll(leaf.Matches)
				}
			})
		}
	}
	return slices.Sorted(maps.Keys(set))
}

// Within returns the sites a resource may be placed on: all of them, or when the resource is bound
// to a label selector (cheops.Resource.Within), those it matches.
func Within(r cheops.Resource, sites []cheops.Site) []cheops.Site {
	if r.Within == "" {
		return sites
	}
	sel, err := ParseSelector(r.Within)
	out := make([]cheops.Site, 0, len(sites))
	for _, s := range sites {
		if err == nil && sel.Matches(s.Labels) {
			out = append(out, s)
		}
	}
	return out
}
