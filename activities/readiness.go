package activities

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/store"
)

// ReadinessInput names the sites of a generation whose replicas are Applied, waiting for their
// objects' status to say Ready.
type ReadinessInput struct {
	ResourceID string
	Generation int64
	Sites      []string
	// MaxParallel is how many sites are read at once (at least one).
	MaxParallel int
	// Until, when set, ends the wait for every site (a transactional generation's deadline), even
	// before a site's own readyTimeout.
	Until time.Time
}

// ReadinessOutput reports each site's outcome, in the order of ReadinessInput.Sites: Ready (no
// class), not Ready in time or failed on the site (Permanent, recorded Failed), its object gone from
// the site (Transient, recorded for a new apply), or the site unreachable when the wait ended
// (Unreachable, left Applied). Skipped: the replica is no longer Applied at this generation.
type ReadinessOutput struct {
	Driver cheops.DriverName `json:",omitempty"`
	Sites  []SiteOutcome
}

// Polling of the sites waited for: the first read after readinessPollFirst, then each wait half
// as long again, up to readinessPollMax.
const (
	readinessPollFirst = 500 * time.Millisecond
	readinessPollMax   = 5 * time.Second
)

// AwaitReadiness waits until each Applied replica of in.Sites is Ready by its object's status, or
// fails it: when the site's status says it failed (kstatus Failed), or when the resource's
// policy.readyTimeout has passed since the site took the generation (or in.Until, if sooner). It
// reads every site waited for in rounds, at most in.MaxParallel at once, and records each round's
// changes in one batched write: Ready with a BecameReady event, Failed with a NotReady event. It
// heartbeats the sites it is done with, so its retry after a lost worker does not wait for them
// again. A replica no longer Applied at in.Generation (a newer generation, a delete, a resync) is
// not waited for.
func (a *Activities) AwaitReadiness(ctx context.Context, in ReadinessInput) (ReadinessOutput, error) {
	out := ReadinessOutput{Sites: make([]SiteOutcome, len(in.Sites))}
	for i, site := range in.Sites {
		out.Sites[i] = SiteOutcome{Site: site, Generation: in.Generation, Skipped: true}
	}
	r, ok, err := a.resource(ctx, in.ResourceID)
	if err != nil {
		return ReadinessOutput{}, err
	}
	if !ok || r.Deletion != nil || r.Generation != in.Generation {
		return out, nil
	}
	out.Driver = r.Driver
	pol := r.Policy.WithDefaults()
	reps, err := a.Store.ListReplicas(ctx, r.ID)
	if err != nil {
		return ReadinessOutput{}, err
	}
	targets, err := a.Store.Targets(ctx, in.Sites)
	if err != nil {
		return ReadinessOutput{}, err
	}
	var before WaveProgress
	if activity.IsActivity(ctx) && activity.HasHeartbeatDetails(ctx) {
		_ = activity.GetHeartbeatDetails(ctx, &before)
	}
	progress := &waveProgress{done: slices.Clone(before.Done)}
	waitCtx, stop := context.WithCancel(context.WithValue(ctx, waveKey{}, true))
	defer stop()
	if activity.IsActivity(ctx) {
		go progress.heartbeat(waitCtx)
	}

	w := readinessWait{a: a, r: r, in: in, out: out.Sites, progress: progress}
	byName := map[string]cheops.Replica{}
	for _, rep := range reps {
		byName[rep.Site] = rep
	}
	for i, site := range in.Sites {
		rep, ok := byName[site]
		if !ok || rep.State != cheops.ReplicaApplied || rep.ObservedGeneration != in.Generation || rep.Object == nil ||
			slices.Contains(before.Done, site) {
			progress.add(site)
			continue
		}
		s := &awaited{i: i, site: site, ref: *rep.Object, deadline: time.Now().Add(time.Duration(pol.ReadyTimeout))}
		if rep.AppliedAt != nil {
			s.deadline = rep.AppliedAt.Add(time.Duration(pol.ReadyTimeout))
		}
		s.bound = fmt.Sprintf("within the policy's readyTimeout of %s", time.Duration(pol.ReadyTimeout))
		if !in.Until.IsZero() && in.Until.Before(s.deadline) {
			s.deadline, s.bound = in.Until, "by the generation's deadline (policy timeout)"
		}
		t, terr := targets(site)
		s.target, s.driver, s.err = a.driverFor(t, terr, r.Driver, site)
		if s.err == nil {
			if _, reads := s.driver.(cheops.StatusReader); !reads {
				s.verdict = &cheops.Readiness{State: cheops.ObjectReady} // nothing to wait for
			}
		}
		w.pending = append(w.pending, s)
	}

	// Sites with nothing to read (no status, or no driver) are settled at once.
	if err := w.settleRound(waitCtx); err != nil {
		return ReadinessOutput{}, err
	}
	for poll := readinessPollFirst; len(w.pending) > 0; poll = min(poll*3/2, readinessPollMax) {
		select {
		case <-ctx.Done():
			return ReadinessOutput{}, ctx.Err()
		case <-time.After(poll):
		}
		w.readAll(waitCtx)
		if err := ctx.Err(); err != nil {
			return ReadinessOutput{}, err
		}
		if err := w.settleRound(waitCtx); err != nil {
			return ReadinessOutput{}, err
		}
	}
	lines := make([]siteLine, 0, len(in.Sites))
	for _, o := range out.Sites {
		if !o.Skipped {
			lines = append(lines, siteLine{o.Site, o.Class, o.Message})
		}
	}
	a.logWave(ctx, "readiness", in.ResourceID, in.Generation, 1, lines)
	return out, nil
}

// awaited is one site AwaitReadiness waits for.
type awaited struct {
	i        int // index in the input's sites
	site     string
	ref      cheops.ObjectRef
	deadline time.Time
	bound    string // what the deadline is, in words
	target   cheops.Target
	driver   cheops.Driver
	// verdict is the last read of the object's status; err the failure to read it.
	verdict *cheops.Readiness
	err     error
	// read is set once the site's status was read (or tried): a deadline already past when the wait
	// starts still gives the site one read.
	read bool
}

// readinessWait is one AwaitReadiness under way.
type readinessWait struct {
	a        *Activities
	r        cheops.Resource
	in       ReadinessInput
	out      []SiteOutcome
	progress *waveProgress
	pending  []*awaited
}

// readAll reads the status of every site still waited for, at most in.MaxParallel at once.
func (w *readinessWait) readAll(ctx context.Context) {
	idx := make([]int, 0, len(w.pending))
	for i, s := range w.pending {
		if s.driver != nil && (s.verdict == nil || s.verdict.State != cheops.ObjectReady) {
			idx = append(idx, i)
		}
	}
	bounded(ctx, idx, w.in.MaxParallel, func(i int) {
		s := w.pending[i]
		rctx, cancel := context.WithTimeout(ctx, min(SiteTimeout, 30*time.Second))
		defer cancel()
		rd, err := s.driver.(cheops.StatusReader).Readiness(rctx, s.target, s.ref)
		s.read = true
		if err != nil {
			s.err = err
			return
		}
		s.verdict, s.err = &rd, nil
	})
}

// change is what a round decided for one site: the replica's new record, and the site's outcome.
type change struct {
	s       *awaited
	state   cheops.ReplicaState
	event   cheops.EventType
	message string
	class   cheops.ErrorClass
}

// settleRound decides, for each site waited for, whether this round settles it, and records the
// settled ones in one batched write.
func (w *readinessWait) settleRound(ctx context.Context) error {
	now := time.Now()
	var changes []change
	var still []*awaited
	for _, s := range w.pending {
		c, settled := w.decide(s, now)
		if settled {
			changes = append(changes, c)
		} else {
			still = append(still, s)
		}
	}
	if len(changes) == 0 {
		return nil
	}
	sites := make([]string, 0, len(changes))
	bySite := map[string]change{}
	for _, c := range changes {
		if c.state != "" {
			sites = append(sites, c.s.site)
			bySite[c.s.site] = c
		}
	}
	written, err := w.a.Store.UpdateReplicas(ctx, w.r.ID, sites, func(site string, rep *cheops.Replica) (*cheops.Event, error) {
		c := bySite[site]
		if rep.State != cheops.ReplicaApplied || rep.ObservedGeneration != w.in.Generation {
			return nil, store.ErrSkip // a newer apply, a delete, a resync: not this wait's to settle
		}
		rep.State, rep.Message = c.state, c.message
		if c.state == cheops.ReplicaFailed {
			rep.FailedGeneration = w.in.Generation
		}
		return &cheops.Event{Type: c.event, Site: site, Generation: w.in.Generation, Message: c.message}, nil
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	for _, c := range changes {
		o := &w.out[c.s.i]
		_, recorded := written[c.s.site]
		switch {
		case c.state != "" && !recorded:
			// Skipped: someone else moved the replica on.
		case c.class == "" && c.state == cheops.ReplicaReady:
			o.Skipped = false
			if !w.r.GenerationAt.IsZero() {
				o.SinceDeclared = time.Since(w.r.GenerationAt)
			}
		default:
			o.Skipped, o.Class, o.Message = false, c.class, c.message
		}
		w.progress.add(c.s.site)
	}
	w.pending = still
	return nil
}

// decide is what the last read of a site's status settles, if anything: Ready; Failed when its
// status says so or its deadline has passed; Pending again when its object is gone; an unreachable
// site at its deadline is left Applied, to be waited for when it answers again.
func (w *readinessWait) decide(s *awaited, now time.Time) (change, bool) {
	if s.driver == nil { // the site could not be resolved: deleted, or no longer of this driver
		return change{s: s, state: cheops.ReplicaFailed, event: cheops.EventNotReady, message: s.err.Error(), class: cheops.Permanent}, true
	}
	if s.err == nil && s.verdict != nil {
		switch s.verdict.State {
		case cheops.ObjectReady:
			return change{s: s, state: cheops.ReplicaReady, event: cheops.EventBecameReady, message: s.verdict.Message}, true
		case cheops.ObjectFailed:
			return change{s: s, state: cheops.ReplicaFailed, event: cheops.EventNotReady,
				message: "its status says it failed: " + s.verdict.Message, class: cheops.Permanent}, true
		case cheops.ObjectMissing:
			return change{s: s, state: cheops.ReplicaPending, event: cheops.EventNotReady,
				message: s.verdict.Message + "; applied again in the next round", class: cheops.Transient}, true
		}
	}
	if now.Before(s.deadline) || !s.read {
		return change{}, false
	}
	last := "no status read yet"
	switch {
	case s.err != nil:
		if cheops.ClassOf(s.err) == cheops.Unreachable {
			return change{s: s, class: cheops.Unreachable, message: s.err.Error()}, true
		}
		last = s.err.Error()
	case s.verdict != nil:
		last = fmt.Sprintf("%s: %s", s.verdict.State, s.verdict.Message)
	}
	return change{s: s, state: cheops.ReplicaFailed, event: cheops.EventNotReady, class: cheops.Permanent,
		message: fmt.Sprintf("not Ready %s; last status %s", s.bound, last)}, true
}
