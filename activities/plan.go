package activities

import (
	"context"
	"slices"
	"time"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/overrides"
	"github.com/cheops-io/cheops/scope"
	"github.com/cheops-io/cheops/store"
)

// PlanInput asks what a resource's workflow should do next.
type PlanInput struct {
	ResourceID string
	// Retry includes replicas that failed permanently on the current generation, and a rolled-back
	// transactional generation.
	Retry bool
	// Resync re-applies every replica in scope, converged or not.
	Resync bool
}

// PlanResource loads the resource, its replicas and the sites, lets cheops.PlanReplicas decide, and
// records what the plan owes: replicas to (re)apply as Pending, replicas on unreachable sites as
// Unreachable. A forgotten resource plans nothing (Exists false).
func (a *Activities) PlanResource(ctx context.Context, in PlanInput) (cheops.Plan, error) {
	r, ok, err := a.resource(ctx, in.ResourceID)
	if !ok || err != nil {
		return cheops.Plan{}, err
	}
	if err := a.indexProvides(ctx, &r); err != nil {
		return cheops.Plan{}, err
	}
	reps, err := a.Store.ListReplicas(ctx, r.ID)
	if err != nil {
		return cheops.Plan{}, err
	}
	facts := cheops.PlanInput{Resource: r, Replicas: reps, Retry: in.Retry, Resync: in.Resync}
	var labels map[string]map[string]string
	if r.Deletion == nil {
		sites, err := a.sitesFor(ctx, r, reps)
		if err != nil {
			return cheops.Plan{}, err
		}
		placed, err := scope.Resolve(r.Scope, scope.Within(r, sites), r.Driver, cheops.Held(reps))
		if err != nil {
			return cheops.Plan{}, asTemporalError(cheops.Classify(cheops.Permanent, err))
		}
		facts.Sites, facts.Missing = placed.Sites, placed.Missing
		facts.Health = map[string]cheops.SiteHealth{}
		labels = map[string]map[string]string{}
		for _, s := range sites {
			facts.Health[s.Name] = s.Health
			labels[s.Name] = s.Labels
		}
	}
	p := cheops.PlanReplicas(facts)
	if ro := r.Policy.Rollout; ro != nil && r.Deletion == nil && len(p.Apply) > 0 {
		p.Waves, p.Soak, p.MaxFailures = rolloutWaves(*ro, p.Apply, len(p.Sites), labels), time.Duration(ro.Soak), ro.MaxFailures
	}
	if err := a.Store.MarkPending(ctx, r.ID, p.Owed); err != nil {
		return cheops.Plan{}, err
	}
	return p, a.park(ctx, r, p.NewlyParked)
}

// park records replicas on unreachable sites as Unreachable.
func (a *Activities) park(ctx context.Context, r cheops.Resource, sites []string) error {
	for _, site := range sites {
		_, err := a.Store.UpdateReplica(ctx, r.ID, site, func(rep *cheops.Replica) (*cheops.Event, error) {
			if rep.State == cheops.ReplicaUnreachable {
				return nil, store.ErrSkip
			}
			rep.State, rep.Message = cheops.ReplicaUnreachable, "site "+site+" is unreachable; waiting for it to come back"
			return &cheops.Event{Type: cheops.EventParked, Site: site, Generation: r.Generation, Message: rep.Message}, nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// sitesFor reads the sites a plan of r needs: for a list of sites (and no selector the resource is
// held within), only those and the sites holding its replicas, in one batched read; otherwise every
// site, which a selector or an expression may reach. At 1,000 sites, listing them all at each plan
// was a quarter of a worker's CPU.
func (a *Activities) sitesFor(ctx context.Context, r cheops.Resource, reps []cheops.Replica) ([]cheops.Site, error) {
	if len(r.Scope.Sites) == 0 || r.Scope.Selector != "" || r.Scope.Expression != "" || r.Within != "" {
		return a.Store.ListSites(ctx)
	}
	names := slices.Clone(r.Scope.Sites)
	for _, rep := range reps {
		names = append(names, rep.Site)
	}
	slices.Sort(names)
	return a.Store.SitesNamed(ctx, slices.Compact(names))
}

// rolloutWaves orders the sites to apply by the rollout's groups (the sites the first group's
// selector matches first, …, those no group matches last) and splits each group into waves of the
// rollout's wave size, computed on the inScope sites of the scope (a group is one wave when no size
// is set).
func rolloutWaves(ro cheops.Rollout, apply []string, inScope int, labels map[string]map[string]string) [][]string {
	sels := make([]scope.LabelSelector, len(ro.Groups))
	for i, g := range ro.Groups {
		sels[i], _ = scope.ParseSelector(g) // validated when declared; one that fails matches nothing
	}
	groups := make([][]string, len(ro.Groups)+1)
	for _, site := range apply {
		g := len(ro.Groups)
		for i, sel := range sels {
			if sel.Matches(labels[site]) {
				g = i
				break
			}
		}
		groups[g] = append(groups[g], site)
	}
	var waves [][]string
	for _, group := range groups {
		size := len(group)
		if !ro.MaxUnavailable.IsZero() {
			size = ro.MaxUnavailable.Of(inScope)
		}
		for wave := range slices.Chunk(group, max(size, 1)) {
			waves = append(waves, wave)
		}
	}
	return waves
}

// indexProvides records what a resource stored before the index of what resources provide existed
// provides (see store.Providers), so that its dependents find it without it being declared again.
// A resource that provides nothing is looked at each plan, which costs a decode of its manifest.
func (a *Activities) indexProvides(ctx context.Context, r *cheops.Resource) error {
	if r.Provides != nil || r.Deletion != nil {
		return nil
	}
	provides := overrides.Provides(a.Drivers[r.Driver], *r)
	if len(provides) == 0 {
		return nil
	}
	updated, err := a.Store.UpdateResource(ctx, r.ID, func(cur *cheops.Resource) (*cheops.Event, error) {
		if cur.Provides != nil || cur.Generation != r.Generation {
			return nil, store.ErrSkip // the API has indexed it meanwhile
		}
		cur.Provides = provides
		return nil, nil
	})
	if err == nil {
		*r = updated
	}
	return err
}
