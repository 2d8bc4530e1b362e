// Package activities holds the durable steps of a replication. Each is idempotent and thin: it
// resolves a site's target from the store, calls the driver, and records the outcome in the store.
// Credentials are read here, inside the activity, so they never enter a workflow's input or history.
package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/activity"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/store"
)

// Activities carries the clients every activity needs, injected once at worker start.
type Activities struct {
	Store   *store.Store
	Drivers map[cheops.DriverName]cheops.Driver
}

// PlanInput asks what a resource's workflow should do next.
type PlanInput struct {
	ResourceID string
	// Resync re-applies every replica in scope, converged or not.
	Resync bool
}

// Plan is the level-triggered comparison of what is declared with what is recorded.
type Plan struct {
	// Exists is false once the resource is forgotten.
	Exists      bool
	Name        string
	Generation  int64
	Deleting    bool
	Orphan      bool
	MaxParallel int
	// Sites are the sites in scope, sorted.
	Sites []string
	// Apply are the sites in scope whose replica is not Ready at Generation.
	Apply []string
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
	p := Plan{Exists: true, Name: r.Name, Generation: r.Generation, MaxParallel: r.Policy.MaxParallel}
	if p.MaxParallel <= 0 {
		p.MaxParallel = cheops.DefaultMaxParallel
	}
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
	p.Sites, p.Missing, err = ResolveScope(r.Scope, sites)
	if err != nil {
		return Plan{}, asTemporalError(cheops.Classify(cheops.Permanent, err))
	}
	byName := map[string]cheops.Replica{}
	for _, rep := range reps {
		byName[rep.Site] = rep
		if !slices.Contains(p.Sites, rep.Site) {
			p.Remove = append(p.Remove, rep.Site)
		}
	}
	var owed []string
	for _, site := range p.Sites {
		rep, ok := byName[site]
		if !in.Resync && ok && rep.State == cheops.ReplicaReady && rep.ObservedGeneration == r.Generation {
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
	return p, nil
}

// ResolveScope returns the names of the sites a scope selects, sorted, and the names it lists that
// do not exist.
func ResolveScope(scope cheops.Scope, sites []cheops.Site) (selected, missing []string, err error) {
	known := map[string]bool{}
	for _, s := range sites {
		known[s.Name] = true
	}
	for _, name := range scope.Sites {
		if known[name] {
			selected = append(selected, name)
		} else {
			missing = append(missing, name)
		}
	}
	if scope.Selector != "" {
		sel, err := labels.Parse(scope.Selector)
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

// ApplyInput names one replica to converge.
type ApplyInput struct {
	ResourceID string
	Site       string
	Generation int64
}

// ApplyOutput reports the converged replica.
type ApplyOutput struct {
	LocalID    string
	Generation int64
	// Skipped is set when the resource is gone or being deleted.
	Skipped bool
}

// ApplyReplica makes the resource's current generation true on one site and records the outcome.
// It applies what the store holds now, which is at least in.Generation: converging to the newest
// declaration is always right, and an older generation is never re-applied over a newer one.
func (a *Activities) ApplyReplica(ctx context.Context, in ApplyInput) (ApplyOutput, error) {
	r, err := a.Store.GetResource(ctx, in.ResourceID)
	if errors.Is(err, store.ErrNotFound) {
		return ApplyOutput{Skipped: true}, nil
	}
	if err != nil {
		return ApplyOutput{}, err
	}
	if r.Deletion != nil {
		return ApplyOutput{Skipped: true}, nil
	}
	hash := manifestHash(r)
	attempt := int(activity.GetInfo(ctx).Attempt)
	rep, err := a.Store.UpdateReplica(ctx, r.ID, in.Site, func(rep *cheops.Replica) (*cheops.Event, error) {
		if rep.State == cheops.ReplicaReady && rep.ObservedGeneration == r.Generation && rep.AppliedHash == hash {
			return nil, store.ErrSkip
		}
		rep.State = cheops.ReplicaApplying
		rep.Attempts = attempt
		return nil, nil
	})
	if err != nil {
		return ApplyOutput{}, err
	}
	if rep.State == cheops.ReplicaReady && rep.ObservedGeneration == r.Generation && rep.AppliedHash == hash {
		return ApplyOutput{LocalID: rep.LocalID, Generation: r.Generation}, nil
	}
	res, err := a.applyOnSite(ctx, r, in.Site, rep.Object)
	if err != nil {
		class := cheops.ClassOf(err)
		state := cheops.ReplicaApplying
		switch class {
		case cheops.Permanent:
			state = cheops.ReplicaFailed
		case cheops.Unreachable:
			state = cheops.ReplicaUnreachable
		}
		if _, rerr := a.Store.UpdateReplica(ctx, r.ID, in.Site, func(rep *cheops.Replica) (*cheops.Event, error) {
			// The same failure again is counted in Attempts, not logged again: a site down for a
			// day must not grow the event log by thousands of identical lines. (Each attempt marks
			// the replica Applying first, so the last failure is known by its message.)
			repeated := rep.Message == err.Error()
			rep.State, rep.Message = state, err.Error()
			if repeated {
				return nil, nil
			}
			return &cheops.Event{Type: "ApplyFailed", Site: in.Site, Generation: r.Generation,
				Message: fmt.Sprintf("attempt %d: %v", attempt, err)}, nil
		}); rerr != nil {
			return ApplyOutput{}, errors.Join(err, rerr)
		}
		return ApplyOutput{}, asTemporalError(err)
	}
	_, err = a.Store.UpdateReplica(ctx, r.ID, in.Site, func(rep *cheops.Replica) (*cheops.Event, error) {
		rep.State = cheops.ReplicaReady
		rep.LocalID, rep.Object = res.LocalID, &res.Object
		rep.ObservedGeneration, rep.AppliedHash, rep.Message = r.Generation, hash, ""
		return &cheops.Event{Type: "Applied", Site: in.Site, Generation: r.Generation,
			Message: "local ID " + res.LocalID}, nil
	})
	if errors.Is(err, store.ErrNotFound) {
		// The resource was forgotten while we applied: the object we just made must not outlive it.
		return ApplyOutput{Skipped: true}, a.deleteOnSite(ctx, r.Driver, in.Site, res.Object)
	}
	if err != nil {
		return ApplyOutput{}, err
	}
	return ApplyOutput{LocalID: res.LocalID, Generation: r.Generation}, nil
}

func (a *Activities) applyOnSite(ctx context.Context, r cheops.Resource, siteName string, previous *cheops.ObjectRef) (cheops.ApplyResult, error) {
	t, d, err := a.target(ctx, r.Driver, siteName)
	if err != nil {
		return cheops.ApplyResult{}, err
	}
	var res cheops.ApplyResult
	err = heartbeating(ctx, func(ctx context.Context) error {
		var err error
		res, err = d.Apply(ctx, t, cheops.ApplyRequest{ResourceID: r.ID, ResourceName: r.Name, Generation: r.Generation, Manifest: r.Manifest})
		return err
	})
	if err != nil {
		return res, err
	}
	if previous != nil && *previous != res.Object {
		// The manifest now names another object: the one applied before is no longer ours to keep.
		if err := heartbeating(ctx, func(ctx context.Context) error { return d.Delete(ctx, t, *previous) }); err != nil {
			return res, err
		}
	}
	return res, nil
}

func (a *Activities) target(ctx context.Context, driver cheops.DriverName, siteName string) (cheops.Target, cheops.Driver, error) {
	t, err := a.Store.Target(ctx, siteName)
	if errors.Is(err, store.ErrNotFound) {
		return t, nil, cheops.Classify(cheops.Permanent, fmt.Errorf("site %s does not exist", siteName))
	}
	if err != nil {
		return t, nil, err
	}
	if t.Site.Driver != driver {
		return t, nil, cheops.Classify(cheops.Permanent, fmt.Errorf("site %s is a %s site; the resource needs %s", siteName, t.Site.Driver, driver))
	}
	d, ok := a.Drivers[driver]
	if !ok {
		return t, nil, cheops.Classify(cheops.Permanent, fmt.Errorf("no %s driver in this worker", driver))
	}
	return t, d, nil
}

// heartbeating runs fn while heartbeating, so a worker that dies mid-call is noticed within the
// heartbeat timeout rather than the whole start-to-close timeout.
func heartbeating(ctx context.Context, fn func(context.Context) error) error {
	done := make(chan struct{})
	defer close(done)
	if activity.IsActivity(ctx) {
		go func() {
			t := time.NewTicker(2 * time.Second)
			defer t.Stop()
			for {
				select {
				case <-done:
					return
				case <-t.C:
					activity.RecordHeartbeat(ctx)
				}
			}
		}()
	}
	return fn(ctx)
}

func manifestHash(r cheops.Resource) string {
	h := sha256.Sum256(r.Manifest)
	return hex.EncodeToString(h[:])
}

// MarkInput records that a replica gave up after its retries.
type MarkInput struct {
	ResourceID string
	Site       string
	Message    string
}

// MarkReplicaFailed records a replica whose apply gave up as Failed, unless it is already
// classified as Failed or Unreachable.
func (a *Activities) MarkReplicaFailed(ctx context.Context, in MarkInput) error {
	_, err := a.Store.UpdateReplica(ctx, in.ResourceID, in.Site, func(rep *cheops.Replica) (*cheops.Event, error) {
		if rep.State == cheops.ReplicaFailed || rep.State == cheops.ReplicaUnreachable {
			return nil, store.ErrSkip
		}
		rep.State, rep.Message = cheops.ReplicaFailed, in.Message
		return nil, nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// DeleteInput names one replica to remove.
type DeleteInput struct {
	ResourceID string
	Site       string
	// Orphan forgets the replica and leaves its object on the site.
	Orphan bool
}

// DeleteReplica removes a replica's object from its site (unless orphaned) and forgets the replica.
// A replica or object already gone is success.
func (a *Activities) DeleteReplica(ctx context.Context, in DeleteInput) error {
	rep, err := a.Store.GetReplica(ctx, in.ResourceID, in.Site)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	r, err := a.Store.GetResource(ctx, in.ResourceID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	evType := "Orphaned"
	if !in.Orphan && rep.Object != nil {
		evType = "Deleted"
		if _, err := a.Store.UpdateReplica(ctx, in.ResourceID, in.Site, func(rep *cheops.Replica) (*cheops.Event, error) {
			rep.State = cheops.ReplicaDeleting
			return nil, nil
		}); err != nil {
			return err
		}
		if err := a.deleteOnSite(ctx, r.Driver, in.Site, *rep.Object); err != nil {
			return asTemporalError(err)
		}
	}
	return a.Store.DeleteReplica(ctx, in.ResourceID, in.Site, &cheops.Event{Type: evType, Site: in.Site, Message: rep.LocalID})
}

func (a *Activities) deleteOnSite(ctx context.Context, driver cheops.DriverName, siteName string, ref cheops.ObjectRef) error {
	t, d, err := a.target(ctx, driver, siteName)
	if err != nil {
		if _, serr := a.Store.GetSite(ctx, siteName); errors.Is(serr, store.ErrNotFound) {
			// The site was force-removed: there is nothing left to reach; forget the replica.
			return nil
		}
		return err
	}
	return heartbeating(ctx, func(ctx context.Context) error { return d.Delete(ctx, t, ref) })
}

// ForgetResource removes a resource whose replicas are all gone from the store.
func (a *Activities) ForgetResource(ctx context.Context, resourceID string) error {
	return a.Store.DeleteResource(ctx, resourceID)
}
