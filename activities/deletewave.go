package activities

import (
	"context"
	"errors"

	"go.temporal.io/sdk/activity"

	"github.com/cheops-io/cheops"
)

// DeleteWaveInput names the sites of one deletion wave: one activity removes (or orphans) the
// resource's replicas on all of them.
type DeleteWaveInput struct {
	ResourceID string
	Sites      []string
	// Orphan forgets the replicas and leaves their objects on the sites.
	Orphan bool
	// MaxParallel is how many sites are removed at once (at least one).
	MaxParallel int
}

// DeleteWaveOutput reports each site's outcome, in the order of DeleteWaveInput.Sites.
type DeleteWaveOutput struct {
	Sites []DeleteOutcome
}

// DeleteOutcome is what became of one site of a deletion wave.
type DeleteOutcome struct {
	Site string
	// Class is "" when the replica is gone (removed now, or already), else the class of the
	// failure: Transient, Permanent or Unreachable. A failure of the store is Transient.
	Class cheops.ErrorClass
	// Message is the failure in the driver's (or the store's) own words.
	Message string
}

// DeleteWave removes the resource's replicas on a wave of sites, at most in.MaxParallel at once,
// each through removeReplica, the one way a replica leaves a site: find an unrecorded object, mark
// the replica Deleting, delete the object, forget the replica with its event. The records stay per
// site, in that order, so that a worker lost mid-wave never leaves an object on a site whose replica
// is forgotten; removeReplica is idempotent, so Temporal's retry of the wave removes again only what
// is left. One site's failure fails neither the others nor the activity: the activity fails only
// when it cannot read the resource or its context ends. A resource already forgotten has no replica
// left: every site succeeds.
func (a *Activities) DeleteWave(ctx context.Context, in DeleteWaveInput) (DeleteWaveOutput, error) {
	out := DeleteWaveOutput{Sites: make([]DeleteOutcome, len(in.Sites))}
	for i, site := range in.Sites {
		out.Sites[i].Site = site
	}
	r, ok, err := a.resource(ctx, in.ResourceID)
	if err != nil {
		return DeleteWaveOutput{}, err
	}
	if !ok {
		return out, nil
	}
	progress := &waveProgress{}
	waveCtx, stop := context.WithCancel(context.WithValue(ctx, waveKey{}, true))
	defer stop()
	if activity.IsActivity(ctx) {
		go progress.heartbeat(waveCtx)
	}
	bounded(ctx, indices(len(in.Sites)), in.MaxParallel, func(i int) {
		site := in.Sites[i]
		siteCtx, cancel := context.WithTimeout(waveCtx, SiteTimeout)
		defer cancel()
		if err := a.removeReplica(siteCtx, r, site, deletion(site, in.Orphan)); err != nil {
			out.Sites[i].Class, out.Sites[i].Message = cheops.Transient, err.Error()
			var sf *siteFailure
			if errors.As(err, &sf) {
				out.Sites[i].Class = cheops.ClassOf(sf.err)
			}
		}
		progress.add(site)
	})
	if err := ctx.Err(); err != nil {
		return DeleteWaveOutput{}, err
	}
	return out, nil
}

// indices returns 0, 1, …, n-1.
func indices(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}
