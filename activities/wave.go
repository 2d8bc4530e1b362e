package activities

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/store"
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
	// SiteTimeout bounds each site's apply (0: the package's SiteTimeout); a transactional
	// generation gives what is left of its policy timeout.
	SiteTimeout time.Duration
}

func (in WaveInput) siteTimeout() time.Duration {
	if in.SiteTimeout > 0 {
		return in.SiteTimeout
	}
	return SiteTimeout
}

// WaveOutput reports each site's outcome, in the order of WaveInput.Sites. It is the wave's result
// in the history, so an operator sees every site's outcome in the Web UI.
type WaveOutput struct {
	// Driver is the resource's driver, for the replication-latency metric.
	Driver cheops.DriverName `json:",omitempty"`
	Sites  []SiteOutcome
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
	Skipped bool `json:",omitempty"`
	// Awaiting is set when the site took the generation and its status does not say Ready yet.
	Awaiting bool `json:",omitempty"`
	// SinceDeclared is how long after its generation was declared this wave recorded the site
	// Ready; zero when the wave did not apply it (it failed, or it was Ready already).
	SinceDeclared time.Duration `json:",omitempty"`
}

// WaveProgress is a wave's heartbeat detail: the sites it is done with, so far.
type WaveProgress struct {
	Done []string
}

// Records of a wave are written in batches, as its sites finish: the outcomes waiting are flushed
// once recordBatch of them wait (one etcd transaction's worth), once the oldest has waited
// recordDelay, and when the wave ends. The delay keeps the API showing progress while slow sites
// run; the cost is that a worker killed mid-wave loses the outcomes not yet flushed. Those sites'
// replicas still say Applying (marked so before they were applied), with the generation and hash
// recorded before; the hash check skips only a replica that is Ready at this generation with this
// hash, which such a replica is not, so Temporal's retry of the wave applies them again. That is
// safe because a driver's apply is idempotent (Kubernetes: server-side apply of the same named
// object; OpenStack: the object an earlier apply made is found by the resource's mark), so each
// site still ends with one object, and its one Applied event is written with the Ready record the
// retry makes. A site whose outcome was flushed is Ready with this hash, and the retry skips it:
// no second apply, no second event.
const (
	recordDelay = 50 * time.Millisecond
	recordBatch = store.ReplicasPerTxn
)

// ApplyWave applies the resource's current generation to a wave of sites, at most in.MaxParallel at
// once, and reports each site's outcome. It reads the resource, and the targets of all its sites,
// once for the wave; it records every site's attempt (Applying, or the failure to prepare it) in
// one batched write, and the outcomes in batches as they come (see recordDelay). One site's
// failure fails neither the others nor the activity: the activity fails only when it cannot read
// the resource or the sites, or record the attempts, or its context ends (its worker is stopping,
// or it timed out); then Temporal retries it, and a retry does not force again the sites its
// heartbeats say were done.
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
	out.Driver = r.Driver
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
	w := &wave{a: a, r: r, in: in, before: before.Done, out: out.Sites, progress: progress,
		preps: make([]prepared, len(in.Sites)), failed: make([]error, len(in.Sites))}

	// The reads of r's dependencies that are the same for every site are made once for the wave.
	reads := newSharedReads(a)
	w.eachSite(ctx, w.all(), func(i int) {
		ctx, cancel := context.WithTimeout(waveCtx, in.siteTimeout())
		defer cancel()
		w.preps[i], w.failed[i] = a.prepare(ctx, r, in.Sites[i], targets, reads)
	})
	if err := ctx.Err(); err != nil {
		return WaveOutput{}, err
	}
	todo, err := w.markApplying(waveCtx)
	if err != nil {
		return WaveOutput{}, err
	}

	results := make(chan siteResult, len(todo))
	recorded := make(chan struct{})
	go func() {
		defer close(recorded)
		w.record(waveCtx, results)
	}()
	w.eachSite(ctx, todo, func(i int) {
		ctx, cancel := context.WithTimeout(waveCtx, in.siteTimeout())
		defer cancel()
		res, err := a.apply(ctx, r, &w.preps[i], w.prev[i])
		results <- siteResult{i: i, res: res, err: err}
	})
	close(results)
	<-recorded
	if err := ctx.Err(); err != nil {
		return WaveOutput{}, err
	}
	lines := make([]siteLine, len(out.Sites))
	for i, o := range out.Sites {
		lines[i] = siteLine{o.Site, o.Class, o.Message}
	}
	a.logWave(ctx, "apply", in.ResourceID, r.Generation, in.Attempt, lines)
	return out, nil
}

// wave is one ApplyWave under way: what it prepared for each site (by index in in.Sites) and the
// outcomes it has so far.
type wave struct {
	a        *Activities
	r        cheops.Resource
	in       WaveInput
	before   []string // the sites an earlier run of this wave was done with
	out      []SiteOutcome
	progress *waveProgress
	preps    []prepared
	failed   []error             // the failure to prepare a site, if any
	prev     []*cheops.ObjectRef // the object each replica recorded before its attempt
}

// siteResult is what applying one site of a wave gave, waiting to be recorded.
type siteResult struct {
	i   int
	res cheops.ApplyResult
	err error
}

func (w *wave) all() []int {
	idx := make([]int, len(w.in.Sites))
	for i := range idx {
		idx[i] = i
	}
	return idx
}

// how says how the wave applies a site.
func (w *wave) how(site string) siteApply {
	force := w.in.Force && !slices.Contains(w.before, site)
	return siteApply{event: cheops.EventApplied, force: force, attempt: w.in.Attempt}
}

// eachSite runs fn for the sites at idx, at most MaxParallel at once, until ctx ends.
func (w *wave) eachSite(ctx context.Context, idx []int, fn func(i int)) {
	bounded(ctx, idx, w.in.MaxParallel, fn)
}

// bounded runs fn for each of idx, at most maxParallel (at least one) at once, and waits for them;
// once ctx ends it starts no more.
func bounded(ctx context.Context, idx []int, maxParallel int, fn func(i int)) {
	slots := make(chan struct{}, max(maxParallel, 1))
	var wg sync.WaitGroup
	for _, i := range idx {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-slots }()
			fn(i)
		})
	}
	wg.Wait()
}

// markApplying records, in one batched write, each site's attempt: the failure to prepare it, or
// Applying. It settles the outcome of the sites that failed and of those already done, and returns
// the rest, to apply. A resource forgotten meanwhile leaves nothing to apply.
func (w *wave) markApplying(ctx context.Context) ([]int, error) {
	index := make(map[string]int, len(w.in.Sites))
	for i, site := range w.in.Sites {
		index[site] = i
	}
	reps, err := w.a.Store.UpdateReplicas(ctx, w.r.ID, w.in.Sites, func(site string, rep *cheops.Replica) (*cheops.Event, error) {
		i := index[site]
		if w.failed[i] != nil {
			return failureRecord(w.r, site, w.in.Attempt, w.failed[i])(rep)
		}
		return w.preps[i].markApplying(w.r, w.how(site))(rep)
	})
	gone := errors.Is(err, store.ErrNotFound)
	if err != nil && !gone {
		return nil, err
	}
	w.prev = make([]*cheops.ObjectRef, len(w.in.Sites))
	var todo []int
	for i, site := range w.in.Sites {
		rep := reps[site]
		switch {
		case w.failed[i] != nil:
			w.settle(i, ApplyOutput{}, &recordedFailure{w.failed[i]})
		case gone:
			w.settle(i, ApplyOutput{Skipped: true}, nil)
		case w.preps[i].done(w.r, w.how(site), &rep):
			w.settle(i, ApplyOutput{LocalID: rep.LocalID, Generation: w.r.Generation, Awaiting: rep.State == cheops.ReplicaApplied}, nil)
		default:
			w.prev[i] = rep.Object
			todo = append(todo, i)
		}
	}
	return todo, nil
}

// record writes the outcomes of the sites applied, in batches (see recordDelay), until results is
// closed and every outcome is written.
func (w *wave) record(ctx context.Context, results <-chan siteResult) {
	var batch []siteResult
	var due <-chan time.Time
	for {
		select {
		case res, ok := <-results:
			if !ok {
				w.flush(ctx, batch)
				return
			}
			batch = append(batch, res)
			if len(batch) == 1 {
				due = time.After(recordDelay)
			}
			if len(batch) < recordBatch {
				continue
			}
		case <-due:
		}
		w.flush(ctx, batch)
		batch, due = nil, nil
	}
}

// flush records a batch of outcomes as applySite records one: Ready with its event, or the failure
// by its class; and when the resource was forgotten while they applied, it deletes the objects
// they made.
func (w *wave) flush(ctx context.Context, batch []siteResult) {
	if len(batch) == 0 {
		return
	}
	sites := make([]string, len(batch))
	bySite := make(map[string]siteResult, len(batch))
	for k, res := range batch {
		site := w.in.Sites[res.i]
		sites[k], bySite[site] = site, res
	}
	reps, err := w.a.Store.UpdateReplicas(ctx, w.r.ID, sites, func(site string, rep *cheops.Replica) (*cheops.Event, error) {
		res := bySite[site]
		if res.err != nil {
			return failureRecord(w.r, site, w.in.Attempt, res.err)(rep)
		}
		return w.preps[res.i].recordApplied(w.r, w.how(site), res.res)(rep)
	})
	var deletes sync.WaitGroup
	for site, res := range bySite {
		_, written := reps[site]
		switch {
		case written && res.err == nil:
			wait := awaiting(w.r, res.res)
			w.settle(res.i, ApplyOutput{LocalID: res.res.LocalID, Generation: w.r.Generation, Awaiting: wait}, nil)
			if !w.r.GenerationAt.IsZero() && !wait {
				w.out[res.i].SinceDeclared = time.Since(w.r.GenerationAt)
			}
		case written:
			w.settle(res.i, ApplyOutput{}, &recordedFailure{res.err})
		case res.err != nil:
			w.settle(res.i, ApplyOutput{}, recorded(res.err, err))
		case errors.Is(err, store.ErrNotFound):
			deletes.Go(func() {
				out, derr := w.a.forgottenWhileApplied(ctx, w.r, site, res.res)
				w.settle(res.i, out, derr)
			})
		default:
			w.settle(res.i, ApplyOutput{}, err)
		}
	}
	deletes.Wait()
}

// settle sets a site's outcome, and counts it done for the wave's heartbeats.
func (w *wave) settle(i int, res ApplyOutput, err error) {
	w.out[i] = outcome(w.in.Sites[i], res, err)
	w.progress.add(w.in.Sites[i])
}

// outcome says what became of a site, from what applying and recording it returned.
func outcome(site string, res ApplyOutput, err error) SiteOutcome {
	o := SiteOutcome{Site: site, LocalID: res.LocalID, Generation: res.Generation, Skipped: res.Skipped, Awaiting: res.Awaiting}
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
