package scope

import (
	"slices"

	"github.com/cheops-io/cheops"
)

// Placement is what an expression selects among the known sites.
type Placement struct {
	// Sites are the selected sites, sorted.
	Sites []string
	// Missing are site names the expression uses that do not exist, sorted.
	Missing []string
}

// Names returns every site name an expression mentions, in order of appearance.
func Names(x Expr) []string {
	var names []string
	leaves(x, func(leaf Expr) {
		if s, ok := leaf.(Site); ok {
			names = append(names, s.Name)
		}
	})
	return names
}

// leaves calls visit on every site and selector term of an expression, in order of appearance.
func leaves(x Expr, visit func(Expr)) {
	switch x := x.(type) {
	case Site, Selector:
		visit(x)
	case All:
		for _, t := range x.Terms {
			leaves(t, visit)
		}
	case Any:
		for _, t := range x.Alternatives {
			leaves(t, visit)
		}
	}
}

// Matches reports whether a site with these labels matches the selector term.
func (s Selector) Matches(labels map[string]string) bool {
	v, has := labels[s.Key]
	return (s.Op == "=" && has && v == s.Value) || (s.Op == "!=" && v != s.Value)
}

// Evaluate resolves an expression against the known sites. held names the sites that hold a replica
// now: among the alternatives of a "|", the last one that is held and healthy is kept, so a replica
// does not move back once it has failed over; otherwise the first healthy alternative is chosen, and when
// none is healthy, the first that names any site (its replicas then wait for their site).
func Evaluate(x Expr, sites []cheops.Site, held map[string]bool) Placement {
	e := evaluator{sites: map[string]cheops.Site{}, held: held}
	for _, s := range sites {
		e.sites[s.Name] = s
		e.order = append(e.order, s.Name)
	}
	selected := e.eval(x)
	var p Placement
	for name := range selected {
		p.Sites = append(p.Sites, name)
	}
	for name := range e.missing {
		p.Missing = append(p.Missing, name)
	}
	slices.Sort(p.Sites)
	slices.Sort(p.Missing)
	return p
}

type evaluator struct {
	sites   map[string]cheops.Site
	order   []string
	held    map[string]bool
	missing map[string]bool
}

func (e *evaluator) eval(x Expr) map[string]bool {
	out := map[string]bool{}
	switch x := x.(type) {
	case Site:
		if _, ok := e.sites[x.Name]; ok {
			out[x.Name] = true
		} else {
			if e.missing == nil {
				e.missing = map[string]bool{}
			}
			e.missing[x.Name] = true
		}
	case Selector:
		for _, name := range e.order {
			if x.Matches(e.sites[name].Labels) {
				out[name] = true
			}
		}
	case All:
		for _, t := range x.Terms {
			for name := range e.eval(t) {
				out[name] = true
			}
		}
	case Any:
		alts := make([]map[string]bool, len(x.Alternatives))
		for i, alt := range x.Alternatives {
			alts[i] = e.eval(alt)
		}
		return e.choose(alts)
	}
	return out
}

// choose picks one alternative of a "|".
func (e *evaluator) choose(alts []map[string]bool) map[string]bool {
	healthy := func(set map[string]bool) bool {
		if len(set) == 0 {
			return false
		}
		for name := range set {
			if e.sites[name].Health == cheops.SiteUnreachable {
				return false
			}
		}
		return true
	}
	held := func(set map[string]bool) bool {
		for name := range set {
			if !e.held[name] {
				return false
			}
		}
		return true
	}
	// The last held alternative is the one failed over to: an earlier one may still hold the
	// replica it abandoned, until that is deleted.
	for i := len(alts) - 1; i >= 0; i-- {
		if healthy(alts[i]) && held(alts[i]) {
			return alts[i]
		}
	}
	for _, set := range alts {
		if healthy(set) {
			return set
		}
	}
	for _, set := range alts {
		if len(set) > 0 {
			return set
		}
	}
	return map[string]bool{}
}
