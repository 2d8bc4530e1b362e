package activities

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/store"
)

// CommitInput records a generation that is now applied on every site in scope.
type CommitInput struct {
	ResourceID string
	Generation int64
	Sites      []string
}

// CommitGeneration snapshots a generation as the one later transactional generations roll back to,
// once every site in in.Sites records it as Ready. A newer generation may have been declared since
// (the snapshot comes from that generation's recorded spec); a site that already took the newer one
// means the generation is not committed, and the next round commits the newer one.
func (a *Activities) CommitGeneration(ctx context.Context, in CommitInput) error {
	r, ok, err := a.resource(ctx, in.ResourceID)
	if !ok || err != nil {
		return err
	}
	reps, err := a.Store.ListReplicas(ctx, r.ID)
	if err != nil {
		return err
	}
	ready := 0
	for _, rep := range reps {
		if slices.Contains(in.Sites, rep.Site) && rep.State == cheops.ReplicaReady && rep.ObservedGeneration == in.Generation {
			ready++
		}
	}
	if ready != len(in.Sites) {
		return nil
	}
	snap, err := a.Store.Spec(ctx, r.ID, in.Generation)
	if errors.Is(err, store.ErrNotFound) && r.Generation == in.Generation {
		snap, err = cheops.Snapshot{Generation: r.Generation, Manifest: r.Manifest, Overrides: r.Overrides}, nil
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil // committed already, or recorded before specs were kept
	}
	if err != nil {
		return err
	}
	if cur, err := a.Store.Committed(ctx, r.ID); err == nil && cur.Generation >= snap.Generation {
		return nil
	}
	snap.Sites = in.Sites
	if err := a.Store.Commit(ctx, r.ID, snap); err != nil {
		return err
	}
	if !r.RolledBack() {
		return nil
	}
	// A retried generation that went through is no longer rolled back.
	_, err = a.Store.UpdateResource(ctx, r.ID, func(r *cheops.Resource) (*cheops.Event, error) {
		if !r.RolledBack() || r.Generation != in.Generation {
			return nil, store.ErrSkip
		}
		r.Rollback = nil
		return nil, nil
	})
	return ignoreNotFound(err)
}

// CompensateInput names one site of a transactional generation to bring back.
type CompensateInput struct {
	ResourceID string
	Site       string
	// Generation is the generation being rolled back.
	Generation int64
	// Touched is false when the site is known not to have changed: it rejected the generation or
	// could not be reached. Then only the record is put back.
	Touched bool
}

// CompensateReplica brings one site back to the last committed snapshot: a replica the snapshot
// had is restored to its manifest, one it did not have is deleted. Running it again after it
// finished changes nothing and records nothing. Runs that started before compensation waves call
// it, one activity per site.
func (a *Activities) CompensateReplica(ctx context.Context, in CompensateInput) error {
	r, ok, err := a.resource(ctx, in.ResourceID)
	if !ok || err != nil {
		return err
	}
	snap, err := a.committed(ctx, r.ID)
	if err != nil {
		return err
	}
	err = a.compensate(ctx, r, snap, in.Site, in.Generation, in.Touched, int(activity.GetInfo(ctx).Attempt))
	var rec *recordedFailure
	if errors.As(err, &rec) {
		return asTemporalError(rec.err)
	}
	return asTemporalRemoval(err)
}

// CompensateWaveInput names the sites of one compensation wave of a transactional generation.
type CompensateWaveInput struct {
	ResourceID string
	// Generation is the generation being rolled back.
	Generation int64
	Sites      []string
	// Untouched are the sites of Sites known not to have changed (they rejected the generation or
	// could not be reached): only their records go back.
	Untouched []string
	// MaxParallel is how many sites are brought back at once (at least one).
	MaxParallel int
	// Attempt is the workflow's attempt at these sites (from 1).
	Attempt int
}

// CompensateWaveOutput reports each site's outcome, in the order of CompensateWaveInput.Sites.
type CompensateWaveOutput struct {
	Sites []DeleteOutcome
}

// CompensateWave brings a wave of sites back to the last committed snapshot, at most
// in.MaxParallel at once, each as CompensateReplica brings one: it reads the resource and the
// snapshot once for the wave. One site's failure fails neither the others nor the activity, which
// fails only when it cannot read the resource or the snapshot, or its context ends; compensating a
// site again after it finished changes nothing, so Temporal's retry of the wave is safe.
func (a *Activities) CompensateWave(ctx context.Context, in CompensateWaveInput) (CompensateWaveOutput, error) {
	out := CompensateWaveOutput{Sites: make([]DeleteOutcome, len(in.Sites))}
	for i, site := range in.Sites {
		out.Sites[i].Site = site
	}
	r, ok, err := a.resource(ctx, in.ResourceID)
	if err != nil {
		return CompensateWaveOutput{}, err
	}
	if !ok {
		return out, nil // forgotten: nothing is left to bring back
	}
	snap, err := a.committed(ctx, r.ID)
	if err != nil {
		return CompensateWaveOutput{}, err
	}
	out.Sites = eachSiteOfWave(ctx, in.Sites, in.MaxParallel, func(ctx context.Context, site string) error {
		return a.compensate(ctx, r, snap, site, in.Generation, !slices.Contains(in.Untouched, site), in.Attempt)
	})
	if err := ctx.Err(); err != nil {
		return CompensateWaveOutput{}, err
	}
	a.logWave(ctx, "compensate", in.ResourceID, in.Generation, in.Attempt, removalLines(out.Sites))
	return out, nil
}

// committed returns the resource's last committed snapshot; a resource never committed has the
// zero snapshot.
func (a *Activities) committed(ctx context.Context, id string) (cheops.Snapshot, error) {
	snap, err := a.Store.Committed(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return cheops.Snapshot{}, nil
	}
	return snap, err
}

// compensate brings one site back to snap: a replica the snapshot had is restored to its manifest
// (only its record, when the site is untouched and still holds the snapshot's generation), one it
// did not have is removed. A failure to apply is a *recordedFailure, one to remove a *siteFailure,
// any other error the store's.
func (a *Activities) compensate(ctx context.Context, r cheops.Resource, snap cheops.Snapshot, site string, generation int64, touched bool, attempt int) error {
	rep, err := a.Store.GetReplica(ctx, r.ID, site)
	if errors.Is(err, store.ErrNotFound) {
		return nil // never created, or already removed by an earlier run
	}
	if err != nil {
		return err
	}
	message := fmt.Sprintf("rollback of generation %d", generation)
	if snap.Generation > 0 && slices.Contains(snap.Sites, site) {
		message = fmt.Sprintf("rollback of generation %d to generation %d", generation, snap.Generation)
		if !touched && rep.ObservedGeneration == snap.Generation && rep.Object != nil {
			// The site kept the snapshot's generation: put the record back as it was.
			_, err := a.Store.UpdateReplica(ctx, r.ID, site, func(rep *cheops.Replica) (*cheops.Event, error) {
				if rep.State == cheops.ReplicaReady && rep.Message == message {
					return nil, store.ErrSkip
				}
				rep.State, rep.Message = cheops.ReplicaReady, message
				return &cheops.Event{Type: cheops.EventRolledBack, Site: site, Generation: snap.Generation, Message: message + "; the site had not changed"}, nil
			})
			return err
		}
		old := r
		old.Generation, old.Manifest, old.Overrides = snap.Generation, snap.Manifest, snap.Overrides
		_, err := a.applySite(ctx, old, site, siteApply{event: cheops.EventRolledBack, message: message, attempt: attempt})
		return err
	}
	// The snapshot had no replica here: nothing of this generation may remain on the site, not even
	// an object whose creation was never recorded, unless the site is known to be untouched.
	return a.removeReplica(ctx, r, site, removal{message: message, untouched: !touched, event: cheops.Event{Type: cheops.EventRolledBack,
		Site: site, Generation: generation, Message: message + "; removed, since the site had no earlier generation"}})
}

// RollbackInput records the rollback of a transactional generation.
type RollbackInput struct {
	ResourceID string
	Generation int64
	// Reasons says, per site, why the generation could not be applied there.
	Reasons map[string]string
	// Done is set once every site is back.
	Done bool
}

// RecordRollback records on the resource that a generation is being, or was, rolled back.
func (a *Activities) RecordRollback(ctx context.Context, in RollbackInput) error {
	_, err := a.Store.UpdateResource(ctx, in.ResourceID, func(r *cheops.Resource) (*cheops.Event, error) {
		if r.Generation != in.Generation {
			return nil, store.ErrSkip // superseded: the new generation decides
		}
		if r.Rollback != nil && r.Rollback.Generation == in.Generation && r.Rollback.Done == in.Done && maps.Equal(r.Rollback.Reasons, in.Reasons) {
			return nil, store.ErrSkip
		}
		r.Rollback = &cheops.Rollback{Generation: in.Generation, Reasons: in.Reasons, Done: in.Done, At: time.Now().UTC()}
		ev := &cheops.Event{Type: cheops.EventRollbackStarted, Generation: in.Generation, Message: reasonsText(in.Reasons)}
		if in.Done {
			ev.Type, ev.Message = cheops.EventRolledBack, "every site is back; "+ev.Message
		}
		return ev, nil
	})
	return ignoreNotFound(err)
}

func reasonsText(reasons map[string]string) string {
	var s string
	for _, site := range slices.Sorted(maps.Keys(reasons)) {
		if s != "" {
			s += "; "
		}
		s += site + ": " + reasons[site]
	}
	return s
}

func ignoreNotFound(err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// PauseInput pauses or resumes a resource.
type PauseInput struct {
	ResourceID string
	Paused     bool
	// Reason, with Paused, says why a rollout stopped: the pause is cheops' own, not an operator's.
	Reason string `json:",omitempty"`
}

// SetPaused records that an operator paused or resumed a resource, so the API shows it and the
// workflow finds it again after Continue-As-New or a restart.
func (a *Activities) SetPaused(ctx context.Context, in PauseInput) error {
	_, err := a.Store.UpdateResource(ctx, in.ResourceID, func(r *cheops.Resource) (*cheops.Event, error) {
		if r.Paused == in.Paused {
			return nil, store.ErrSkip
		}
		r.Paused, r.PauseReason = in.Paused, in.Reason
		switch {
		case in.Paused && in.Reason != "":
			return &cheops.Event{Type: cheops.EventPaused, Generation: r.Generation, Message: in.Reason + "; resume or retry to go on"}, nil
		case in.Paused:
			return &cheops.Event{Type: cheops.EventPaused, Message: "paused by an operator: nothing is applied until resumed"}, nil
		}
		return &cheops.Event{Type: cheops.EventResumed, Message: "resumed by an operator"}, nil
	})
	return ignoreNotFound(err)
}
