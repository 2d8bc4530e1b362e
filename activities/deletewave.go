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
	out.Sites = eachSiteOfWave(ctx, in.Sites, in.MaxParallel, func(ctx context.Context, site string) error {
		return a.removeReplica(ctx, r, site, deletion(site, in.Orphan))
	})
	if err := ctx.Err(); err != nil {
		return DeleteWaveOutput{}, err
	}
	a.logWave(ctx, "delete", in.ResourceID, r.Generation, 0, removalLines(out.Sites))
	return out, nil
}

// removalLines are a removal or compensation wave's outcomes as logWave logs them.
func removalLines(outcomes []DeleteOutcome) []siteLine {
	lines := make([]siteLine, len(outcomes))
	for i, o := range outcomes {
		lines[i] = siteLine{o.Site, o.Class, o.Message}
	}
	return lines
}

// eachSiteOfWave runs fn for each site of a wave that removes or brings back replicas, at most
// maxParallel at once, each under SiteTimeout, heartbeating the sites done, and returns each site's
// outcome in the order of sites: a failure of the site itself (*siteFailure) or of its apply
// (*recordedFailure) by its class, any other (the store's) as Transient.
func eachSiteOfWave(ctx context.Context, sites []string, maxParallel int, fn func(ctx context.Context, site string) error) []DeleteOutcome {
	out := make([]DeleteOutcome, len(sites))
	for i, site := range sites {
		out[i].Site = site
	}
	progress := &waveProgress{}
	waveCtx, stop := context.WithCancel(context.WithValue(ctx, waveKey{}, true))
	defer stop()
	if activity.IsActivity(ctx) {
		go progress.heartbeat(waveCtx)
	}
	bounded(ctx, indices(len(sites)), maxParallel, func(i int) {
		site := sites[i]
		siteCtx, cancel := context.WithTimeout(waveCtx, SiteTimeout)
		defer cancel()
		if err := fn(siteCtx, site); err != nil {
			out[i].Class, out[i].Message = cheops.Transient, err.Error()
			var sf *siteFailure
			var rec *recordedFailure
			switch {
			case errors.As(err, &sf):
				out[i].Class = cheops.ClassOf(sf.err)
			case errors.As(err, &rec):
				out[i].Class = cheops.ClassOf(rec.err)
			}
		}
		progress.add(site)
	})
	return out
}

// indices returns 0, 1, …, n-1.
func indices(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}
