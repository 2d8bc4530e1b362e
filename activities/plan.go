package activities

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/cheops-io/cheops"
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

// Plan is the level-triggered comparison of what is declared with what is recorded.
type Plan struct {
	// Exists is false once the resource is forgotten.
	Exists       bool
	Name         string
	Generation   int64
	Consistency  cheops.Consistency
	Deleting     bool
	Orphan       bool
	Paused       bool
	MaxParallel  int
	Timeout      time.Duration
	RetryInitial time.Duration
	RetryMax     time.Duration
	// RolledBack is set when the current transactional generation was rolled back.
	RolledBack bool
	// Unfinished, with RolledBack, lists the sites of a rollback that was recorded as started but not
	// as done (its workflow was ended by hand midway), with the reasons recorded then.
	Unfinished      []string
	RollbackReasons map[string]string
	// Resync asks the apply to run even on replicas recorded as converged.
	Resync bool
	// Sites are the sites in scope, sorted.
	Sites []string
	// Apply are the sites in scope whose replica is not Ready at Generation.
	Apply []string
	// Parked are sites in scope the health probe finds unreachable; eventual mode waits for them to
	// come back instead of calling them.
	Parked []string
	// Rejected are sites that rejected this generation (a permanent failure); they are retried only
	// when asked, or on a new generation.
	Rejected []string
	// Remove are the sites holding a replica that must go (out of scope, or all of them when deleting).
	Remove []string
	// Missing are sites the scope names that do not exist.
	Missing []string
}

// PlanResource reads the resource, resolves its scope and compares it with the replicas, marking
// replicas that must be (re)applied as Pending.
func (a *Activities) PlanResource(ctx context.Context, in PlanInput) (Plan, error) {
	r, err := a.Store.GetResource(ctx, in.ResourceID)
	if errors.Is(err, store.ErrNotFound) {
		return Plan{}, nil
	}
	if err != nil {
		return Plan{}, err
	}
	reps, err := a.Store.ListReplicas(ctx, r.ID)
	if err != nil {
		return Plan{}, err
	}
	pol := r.Policy.WithDefaults()
	p := Plan{Exists: true, Name: r.Name, Generation: r.Generation, Consistency: pol.Consistency,
		Paused: r.Paused, MaxParallel: pol.MaxParallel, Timeout: time.Duration(pol.Timeout),
		RetryInitial: time.Duration(pol.RetryInitial), RetryMax: time.Duration(pol.RetryMax),
		RolledBack: r.RolledBack(), Resync: in.Resync}
	if r.Deletion != nil {
		p.Deleting, p.Orphan = true, r.Deletion.Orphan
		for _, rep := range reps {
			p.Remove = append(p.Remove, rep.Site)
		}
		return p, nil
	}
	sites, err := a.Store.ListSites(ctx)
	if err != nil {
		return Plan{}, err
	}
	byName := map[string]cheops.Replica{}
	held := map[string]bool{}
	for _, rep := range reps {
		byName[rep.Site] = rep
		held[rep.Site] = rep.Object != nil || rep.State == cheops.ReplicaReady
	}
	p.Sites, p.Missing, err = ResolveScope(r.Scope, SitesOf(sites, r.Driver), held)
	if err != nil {
		return Plan{}, asTemporalError(cheops.Classify(cheops.Permanent, err))
	}
	if p.RolledBack && !in.Retry {
		// A rolled-back generation stays rolled back until a new one is declared or a retry is asked.
		if !r.Rollback.Done {
			for _, rep := range reps {
				p.Unfinished = append(p.Unfinished, rep.Site)
			}
			p.RollbackReasons = r.Rollback.Reasons
		}
		return p, nil
	}
	for _, rep := range reps {
		if !slices.Contains(p.Sites, rep.Site) {
			p.Remove = append(p.Remove, rep.Site)
		}
	}
	health := map[string]cheops.SiteHealth{}
	for _, s := range sites {
		health[s.Name] = s.Health
	}
	var owed []string
	for _, site := range p.Sites {
		rep, ok := byName[site]
		converged := ok && rep.State == cheops.ReplicaReady && rep.ObservedGeneration == r.Generation
		switch {
		case converged && !in.Resync:
			continue
		case ok && rep.State == cheops.ReplicaFailed && rep.FailedGeneration == r.Generation && !in.Retry && !in.Resync:
			p.Rejected = append(p.Rejected, site)
			continue
		case p.Consistency == cheops.Eventual && health[site] == cheops.SiteUnreachable:
			p.Parked = append(p.Parked, site)
			continue
		}
		p.Apply = append(p.Apply, site)
		if !ok || rep.State == cheops.ReplicaReady {
			owed = append(owed, site)
		}
	}
	// Record the owed replicas as Pending, so the API shows every site in scope from the start.
	if err := a.Store.MarkPending(ctx, r.ID, owed); err != nil {
		return Plan{}, err
	}
	return p, a.park(ctx, r, p.Parked, byName)
}

// park records replicas on unreachable sites as Unreachable, once.
func (a *Activities) park(ctx context.Context, r cheops.Resource, sites []string, byName map[string]cheops.Replica) error {
	for _, site := range sites {
		if rep, ok := byName[site]; ok && rep.State == cheops.ReplicaUnreachable {
			continue
		}
		_, err := a.Store.UpdateReplica(ctx, r.ID, site, func(rep *cheops.Replica) (*cheops.Event, error) {
			rep.State, rep.Message = cheops.ReplicaUnreachable, "site "+site+" is unreachable; waiting for it to come back"
			return &cheops.Event{Type: cheops.EventParked, Site: site, Generation: r.Generation, Message: rep.Message}, nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// SitesOf returns the sites of one driver: a resource's scope only ever selects sites that can hold
// it (a selector or expression leaves the others out; the API refuses them by name).
func SitesOf(sites []cheops.Site, driver cheops.DriverName) []cheops.Site {
	out := make([]cheops.Site, 0, len(sites))
	for _, s := range sites {
		if s.Driver == driver {
			out = append(out, s)
		}
	}
	return out
}

// ResolveScope returns the names of the sites a scope selects, sorted, and the names it uses that do
// not exist. held names the sites holding a replica now; it keeps a replica that failed over where it is.
func ResolveScope(sc cheops.Scope, sites []cheops.Site, held map[string]bool) (selected, missing []string, err error) {
	if sc.Expression != "" {
		x, err := scope.Parse(sc.Expression)
		if err != nil {
			return nil, nil, fmt.Errorf("scope.expression: %w", err)
		}
		p := scope.Evaluate(x, sites, held)
		return p.Sites, p.Missing, nil
	}
	known := map[string]bool{}
	for _, s := range sites {
		known[s.Name] = true
	}
	for _, name := range sc.Sites {
		if known[name] {
			selected = append(selected, name)
		} else {
			missing = append(missing, name)
		}
	}
	if sc.Selector != "" {
		sel, err := labels.Parse(sc.Selector)
		if err != nil {
			return nil, nil, fmt.Errorf("scope.selector: %w", err)
		}
		for _, s := range sites {
			if sel.Matches(labels.Set(s.Labels)) {
				selected = append(selected, s.Name)
			}
		}
	}
	slices.Sort(selected)
	return slices.Compact(selected), missing, nil
}
