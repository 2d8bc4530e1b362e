package activities

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/cheops-io/cheops"
)

// SiteTimeout bounds one site's apply inside a wave, as a start-to-close timeout bounds an activity
// that applies one site: a site that hangs fails alone, as a transient failure, and the wave goes on.
const SiteTimeout = 2 * time.Minute

// WaveInput names the sites of one wave: one activity applies a generation to all of them.
type WaveInput struct {
	ResourceID string
	Generation int64
	Sites      []string
	// MaxParallel is how many sites are applied at once (at least one).
	MaxParallel int
	// Force applies even when the record says a site already has this generation, to repair drift.
	Force bool
	// Attempt is the workflow's attempt at these sites (from 1), recorded as each replica's Attempts.
	Attempt int
}

// WaveOutput reports each site's outcome, in the order of WaveInput.Sites. It is the wave's result
// in the history, so an operator sees every site's outcome in the Web UI.
type WaveOutput struct {
	Sites []SiteOutcome
}

// SiteOutcome is what became of one site of a wave.
type SiteOutcome struct {
	Site       string
	LocalID    string
	Generation int64
	// Class is "" when the site converged, else the class of its failure: Transient (try again
	// soon), Permanent (the site rejected it) or Unreachable (wait for the site to come back).
	Class cheops.ErrorClass
	// Message is the failure in the driver's own words.
	Message string
	// Skipped is set when the resource is gone or being deleted: nothing was applied.
	Skipped bool
}

// WaveProgress is a wave's heartbeat detail: the sites it is done with, so far.
type WaveProgress struct {
	Done []string
}

// ApplyWave applies the resource's current generation to a wave of sites, at most in.MaxParallel at
// once, and reports each site's outcome. It reads the resource, and the targets of all its sites,
// once for the wave. One site's failure fails neither the others nor the activity: the activity
// fails only when it cannot read the resource or the sites, or its context ends (its worker is
// stopping, or it timed out); then Temporal retries it, and a retry does not force again the sites
// its heartbeats say were done.
func (a *Activities) ApplyWave(ctx context.Context, in WaveInput) (WaveOutput, error) {
	out := WaveOutput{Sites: make([]SiteOutcome, len(in.Sites))}
	r, ok, err := a.resource(ctx, in.ResourceID)
	if err != nil {
		return WaveOutput{}, err
	}
	if !ok || r.Deletion != nil {
		for i, site := range in.Sites {
			out.Sites[i] = SiteOutcome{Site: site, Skipped: true}
		}
		return out, nil
	}
	// One read of every site's target for the wave, rather than one per site.
	targets, err := a.Store.Targets(ctx, in.Sites)
	if err != nil {
		return WaveOutput{}, err
	}
	var before WaveProgress
	if activity.IsActivity(ctx) && activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &before)
	}
	progress := &waveProgress{done: slices.Clone(before.Done)}
	waveCtx, stop := context.WithCancel(context.WithValue(ctx, waveKey{}, true))
	defer stop()
	if activity.IsActivity(ctx) {
		go progress.heartbeat(waveCtx)
	}
	slots := make(chan struct{}, max(in.MaxParallel, 1))
	var wg sync.WaitGroup
	for i, site := range in.Sites {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		force := in.Force && !slices.Contains(before.Done, site)
		wg.Go(func() {
			defer func() { <-slots }()
			out.Sites[i] = a.applyInWave(waveCtx, r, site, siteApply{event: cheops.EventApplied, force: force, attempt: in.Attempt, targets: targets})
			progress.add(site)
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return WaveOutput{}, err
	}
	return out, nil
}

// applyInWave applies one site of a wave, within SiteTimeout, and says what became of it.
func (a *Activities) applyInWave(ctx context.Context, r cheops.Resource, site string, how siteApply) SiteOutcome {
	ctx, cancel := context.WithTimeout(ctx, SiteTimeout)
	defer cancel()
	res, err := a.applySite(ctx, r, site, how)
	o := SiteOutcome{Site: site, LocalID: res.LocalID, Generation: res.Generation, Skipped: res.Skipped}
	if err == nil {
		return o
	}
	// A failure the replica records has the driver's class; one that could not be recorded is
	// tried again, whatever its class, so that the record catches up.
	o.Class, o.Message = cheops.Transient, err.Error()
	var rec *recordedFailure
	if errors.As(err, &rec) {
		o.Class = cheops.ClassOf(rec.err)
	}
	return o
}

// waveKey marks a context as a wave's, whose heartbeats carry its progress.
type waveKey struct{}

func inWave(ctx context.Context) bool { return ctx.Value(waveKey{}) != nil }

// waveProgress collects the sites a wave is done with, for its heartbeats.
type waveProgress struct {
	mu   sync.Mutex
	done []string
}

func (p *waveProgress) add(site string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !slices.Contains(p.done, site) {
		p.done = append(p.done, site)
	}
}

// heartbeat records the wave's progress every two seconds until ctx ends, so a worker that dies
// mid-wave is noticed within the heartbeat timeout, and its retry knows what was done.
func (p *waveProgress) heartbeat(ctx context.Context) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for {
		p.mu.Lock()
		details := WaveProgress{Done: slices.Clone(p.done)}
		p.mu.Unlock()
		activity.RecordHeartbeat(ctx, details)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
