package activities

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

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
// finished changes nothing and records nothing.
func (a *Activities) CompensateReplica(ctx context.Context, in CompensateInput) error {
	r, ok, err := a.resource(ctx, in.ResourceID)
	if !ok || err != nil {
		return err
	}
	snap, err := a.Store.Committed(ctx, r.ID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	rep, err := a.Store.GetReplica(ctx, r.ID, in.Site)
	if errors.Is(err, store.ErrNotFound) {
		return nil // never created, or already removed by an earlier run
	}
	if err != nil {
		return err
	}
	message := fmt.Sprintf("rollback of generation %d", in.Generation)
	if snap.Generation > 0 && slices.Contains(snap.Sites, in.Site) {
		message = fmt.Sprintf("rollback of generation %d to generation %d", in.Generation, snap.Generation)
		if !in.Touched && rep.ObservedGeneration == snap.Generation && rep.Object != nil {
			// The site kept the snapshot's generation: put the record back as it was.
			_, err := a.Store.UpdateReplica(ctx, r.ID, in.Site, func(rep *cheops.Replica) (*cheops.Event, error) {
				if rep.State == cheops.ReplicaReady && rep.Message == message {
					return nil, store.ErrSkip
				}
				rep.State, rep.Message = cheops.ReplicaReady, message
				return &cheops.Event{Type: cheops.EventRolledBack, Site: in.Site, Generation: snap.Generation, Message: message + "; the site had not changed"}, nil
			})
			return err
		}
		old := r
		old.Generation, old.Manifest, old.Overrides = snap.Generation, snap.Manifest, snap.Overrides
		_, err := a.applyAndRecord(ctx, old, in.Site, cheops.EventRolledBack, message, false)
		return err
	}
	// The snapshot had no replica here: nothing of this generation may remain on the site, not even
	// an object whose creation was never recorded.
	return asTemporalRemoval(a.removeReplica(ctx, r, in.Site, removal{message: message, event: cheops.Event{Type: cheops.EventRolledBack,
		Site: in.Site, Generation: in.Generation, Message: message + "; removed, since the site had no earlier generation"}}))
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
}

// SetPaused records that an operator paused or resumed a resource, so the API shows it and the
// workflow finds it again after Continue-As-New or a restart.
func (a *Activities) SetPaused(ctx context.Context, in PauseInput) error {
	_, err := a.Store.UpdateResource(ctx, in.ResourceID, func(r *cheops.Resource) (*cheops.Event, error) {
		if r.Paused == in.Paused {
			return nil, store.ErrSkip
		}
		r.Paused = in.Paused
		if in.Paused {
			return &cheops.Event{Type: cheops.EventPaused, Message: "paused by an operator: nothing is applied until resumed"}, nil
		}
		return &cheops.Event{Type: cheops.EventResumed, Message: "resumed by an operator"}, nil
	})
	return ignoreNotFound(err)
}
