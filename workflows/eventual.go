package workflows

import (
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/activities"
)

// Waves. Constants: a value that could differ between a run and its replay would make the workflow
// non-deterministic.
const (
	// waveSize is the most sites one ApplyWave applies: its input and its result (an outcome per
	// site) stay small in the history, and a wave retried after its worker died repeats little.
	waveSize = 100
	// applyAttempts is how often a site's transient failure is tried within a round, with a wait
	// of applyBackoff doubling up to applyBackoffMax in between: the budget the per-site
	// activity's retry policy had.
	applyAttempts   = 5
	applyBackoff    = time.Second
	applyBackoffMax = 30 * time.Second
	// waitingRetry is the wait before the next round when sites wait for their dependencies (and
	// nothing else failed): a dependency turns Ready within seconds of being applied, and its
	// dependents must not sit out a failure's backoff, which grows to minutes.
	waitingRetry = 10 * time.Second
)

// dependenciesVersion is the version of the "dependencies" change from which a site that waits
// for its dependencies (class Waiting) is neither marked Failed nor backed off as a failure. The
// version is asked only when a site waits, which no site did before this change, so older
// histories replay unchanged.
const dependenciesVersion workflow.Version = 1

// converge is one round of eventual mode: apply the generation to every site that needs it, remove
// replicas that left the scope, and say how long to wait before the next round. Sites fail
// independently: a failing site does not hold the others back, and is retried with capped
// exponential backoff, or at once when its health changes.
func (r *resourceRun) converge(ctx workflow.Context, plan cheops.Plan) time.Duration {
	r.status.Phase = PhaseApplying
	var failures map[string]siteFailure
	version := workflow.GetVersion(ctx, "apply-waves", workflow.DefaultVersion, localCommit)
	if version == workflow.DefaultVersion {
		failures = r.applyEachSite(ctx, plan, eachSiteOptions, rootMessage)
	} else {
		if len(plan.Waves) > 0 {
			failures = r.rollOut(ctx, plan)
		} else {
			var awaiting []string
			failures, awaiting = r.applyInWaves(ctx, plan)
			r.awaitReadiness(ctx, plan, awaiting, time.Time{}, failures)
		}
	}
	r.status.Failed, r.status.Waiting = nil, nil
	retryLater := len(plan.Parked) > 0
	for _, site := range plan.Apply {
		f, failed := failures[site]
		if !failed {
			continue
		}
		if f.class == cheops.Waiting && r.dependencies(ctx) {
			// Not a failure: the site is tried again soon (see waitingRetry).
			r.status.Waiting = append(r.status.Waiting, site)
			continue
		}
		r.status.Failed = append(r.status.Failed, site)
		switch f.class {
		case classInterrupted, classStopped:
			// A request came while the site was awaited, or a rollout stopped before the site:
			// the next round goes on (once resumed).
			retryLater = true
		case cheops.Permanent:
			r.status.Rejected = append(r.status.Rejected, site)
		case cheops.Unreachable:
			retryLater = true
		default:
			// Transient failures outlasted their retries: record why, and retry in a later round.
			retryLater = true
			_ = workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, recordOptions), a.MarkReplicaFailed,
				activities.MarkInput{ResourceID: r.status.ResourceID, Site: site, Message: f.message}).Get(ctx, nil)
		}
	}
	// A replica that cannot be removed yet (its site is down) is removed in a later round.
	removeErrs := r.removeReplicas(ctx, plan.Remove, false, plan.MaxParallel, &temporal.RetryPolicy{
		InitialInterval: time.Second, MaximumAttempts: 3,
		NonRetryableErrorTypes: []string{string(cheops.Unreachable)},
	})
	for _, site := range plan.Remove {
		if removeErrs[site] != nil {
			retryLater = true
		}
	}
	if len(r.status.Failed) == 0 && len(r.status.Waiting) == 0 && len(plan.Parked) == 0 && len(plan.Rejected) == 0 && !retryLater {
		// Applied everywhere: remember it as the generation a transactional change rolls back to.
		if err := r.commit(ctx, plan, version >= localCommit); err != nil {
			retryLater = true
		}
	}
	if !retryLater {
		r.failedRounds = 0
		if len(r.status.Waiting) > 0 {
			return waitingRetry
		}
		return ResyncInterval
	}
	r.failedRounds++
	wait := backoff(plan.RetryInitial, plan.RetryMax, r.failedRounds)
	if len(r.status.Waiting) > 0 {
		wait = min(wait, waitingRetry)
	}
	return wait
}

// dependencies says whether this run treats a site waiting for its dependencies as a wait rather
// than a failure (see dependenciesVersion).
func (r *resourceRun) dependencies(ctx workflow.Context) bool {
	return workflow.GetVersion(ctx, "dependencies", workflow.DefaultVersion, dependenciesVersion) >= dependenciesVersion
}

// backoff is the wait before retry round n (from 1): initial doubled each round, capped at max.
func backoff(initial, maxWait time.Duration, n int) time.Duration {
	if initial <= 0 {
		initial = time.Duration(cheops.DefaultRetryInitial)
	}
	if maxWait <= 0 {
		maxWait = time.Duration(cheops.DefaultRetryMax)
	}
	d := initial
	for i := 1; i < n && d < maxWait; i++ {
		d *= 2
	}
	return min(d, maxWait)
}

// siteFailure is why a site did not converge in a round: the class of its last failure ("" when
// the class is unknown: a timeout, a worker lost) and the driver's own words.
type siteFailure struct {
	class   cheops.ErrorClass
	message string
	// mayHaveChanged is set when an earlier attempt at the site ended in a way that may have changed
	// it (a transient failure, a timeout), whatever the last attempt's class: a rollback must then
	// look at the site rather than trust that it is untouched.
	mayHaveChanged bool
}

// changesSite says whether a failure of this class may have left a change on the site: only a
// rejection, a site that could not be reached, and a wait for dependencies are known not to.
func changesSite(class cheops.ErrorClass) bool {
	return class != cheops.Permanent && class != cheops.Unreachable && class != cheops.Waiting
}

// applyEachSite applies the plan with one ApplyReplica activity per site, retried by Temporal as
// options say, and returns each failed site's failure, its message from message. It is how runs
// that started before waves apply (and before saga waves, transact), kept unchanged so that their
// histories replay.
func (r *resourceRun) applyEachSite(ctx workflow.Context, plan cheops.Plan, options workflow.ActivityOptions, message func(error) string) map[string]siteFailure {
	applyCtx := workflow.WithActivityOptions(ctx, options)
	errs := fanOut(ctx, plan.Apply, plan.MaxParallel, func(site string) workflow.Future {
		return workflow.ExecuteActivity(applyCtx, a.ApplyReplica, activities.ApplyInput{
			ResourceID: r.status.ResourceID, Site: site, Generation: plan.Generation, Force: plan.Resync})
	})
	failures := map[string]siteFailure{}
	for _, site := range plan.Apply {
		if err := errs[site]; err != nil {
			failures[site] = siteFailure{class: errorClass(err), message: message(err)}
		}
	}
	return failures
}

// eachSiteOptions are the options of eventual mode's ApplyReplica activities.
var eachSiteOptions = workflow.ActivityOptions{
	StartToCloseTimeout: 2 * time.Minute,
	HeartbeatTimeout:    10 * time.Second,
	RetryPolicy: &temporal.RetryPolicy{
		InitialInterval: applyBackoff, BackoffCoefficient: 2, MaximumInterval: applyBackoffMax,
		MaximumAttempts: applyAttempts,
		// A rejected object fails at once; an unreachable site is parked until it comes back.
		NonRetryableErrorTypes: []string{string(cheops.Permanent), string(cheops.Unreachable)},
	},
}

// applyInWaves applies the plan in waves of at most waveSize sites, one ApplyWave activity per
// wave, each applying plan.MaxParallel sites at once. Sites that failed transiently are tried
// again, and only they, after a backoff, up to applyAttempts in all; a rejected site is not
// tried again, nor an unreachable one (it is parked). It returns each failed site's last failure,
// and the sites that took the generation but whose status does not say Ready yet.
func (r *resourceRun) applyInWaves(ctx workflow.Context, plan cheops.Plan) (map[string]siteFailure, []string) {
	retry := &temporal.RetryPolicy{InitialInterval: applyBackoff, BackoffCoefficient: 2, MaximumInterval: applyBackoffMax,
		MaximumAttempts: applyAttempts, NonRetryableErrorTypes: []string{string(cheops.Unreachable)}}
	awaiting := map[string]bool{}
	failures := r.inWaves(ctx, plan.Apply, retry, time.Time{}, func(wave []string, attempt int) []waveOutcome {
		return applyOutcomes(r.applyWave(ctx, plan, wave, attempt, 0), awaiting)
	})
	return failures, inOrder(plan.Apply, awaiting)
}

// applyOutcomes are a wave's outcomes as inWaves takes them; awaiting is told which sites took
// the generation and wait for their status to say Ready.
func applyOutcomes(sites []activities.SiteOutcome, awaiting map[string]bool) []waveOutcome {
	out := make([]waveOutcome, len(sites))
	for i, o := range sites {
		out[i] = waveOutcome{o.Site, siteFailure{class: o.Class, message: o.Message}}
		awaiting[o.Site] = o.Class == "" && o.Awaiting
	}
	return out
}

// inOrder returns the sites of all that are set in which, in the order of all.
func inOrder(all []string, which map[string]bool) []string {
	var out []string
	for _, site := range all {
		if which[site] {
			out = append(out, site)
		}
	}
	return out
}

// waveOutcome is one site's outcome of a wave, whatever the wave did: a failure with an empty
// class is a success.
type waveOutcome struct {
	site string
	siteFailure
}

// inWaves runs sites through run in waves of at most waveSize, and tries each failed site again
// as retry would retry an activity of its own: only the failed sites go again, after retry's
// backoff, up to its MaximumAttempts (none: until done, or until deadline when one is given, else
// continuing as new first when the history grows long); a Permanent failure, or one of retry's
// NonRetryableErrorTypes, is not tried again. It returns each site's last failure, if any.
func (r *resourceRun) inWaves(ctx workflow.Context, sites []string, retry *temporal.RetryPolicy, deadline time.Time,
	run func(wave []string, attempt int) []waveOutcome) map[string]siteFailure {
	wait, coefficient, maxWait := retry.InitialInterval, retry.BackoffCoefficient, retry.MaximumInterval
	if wait <= 0 {
		wait = time.Second
	}
	if coefficient < 1 {
		coefficient = 2
	}
	if maxWait <= 0 {
		maxWait = 100 * wait
	}
	failures := map[string]siteFailure{}
	for attempt := 1; len(sites) > 0; attempt++ {
		if attempt > 1 {
			if !deadline.IsZero() {
				left := deadline.Sub(workflow.Now(ctx))
				if left <= 0 {
					break // out of time: the sites left keep their failures
				}
				wait = min(wait, left)
			} else if retry.MaximumAttempts == 0 && r.mustContinueAsNew(ctx) {
				// A site down for days must not grow this run's history past Temporal's limits.
				for _, site := range sites {
					failures[site] = siteFailure{class: classContinueAsNew}
				}
				break
			}
			if err := r.sleepUnlessHealthChanges(ctx, wait); err != nil {
				break // the run is ending: the sites left keep their failures
			}
			wait = min(time.Duration(float64(wait)*coefficient), maxWait)
		}
		r.healthChanged = false
		var again []string
		for wave := range slices.Chunk(sites, waveSize) {
			for _, o := range run(wave, attempt) {
				if o.class == "" {
					delete(failures, o.site)
					continue
				}
				f := o.siteFailure
				f.mayHaveChanged = f.mayHaveChanged || failures[o.site].mayHaveChanged || changesSite(f.class)
				failures[o.site] = f
				stop := o.class == cheops.Permanent || slices.Contains(retry.NonRetryableErrorTypes, string(o.class)) ||
					(retry.MaximumAttempts > 0 && attempt >= int(retry.MaximumAttempts))
				if !stop {
					again = append(again, o.site)
				}
			}
		}
		sites = again
	}
	return failures
}

// healthWakesVersion is the version of the "health-wakes-waves" change from which the wait before
// a wave's next attempt ends early when a site's health changes: a site that comes back is tried
// at once rather than after its backoff. Runs that recorded no such version sleep out the backoff,
// so that their histories replay.
const healthWakesVersion workflow.Version = 1

// sleepUnlessHealthChanges waits d, or less when a site's health changes meanwhile (or changed
// since the attempt before began).
func (r *resourceRun) sleepUnlessHealthChanges(ctx workflow.Context, d time.Duration) error {
	if workflow.GetVersion(ctx, "health-wakes-waves", workflow.DefaultVersion, healthWakesVersion) < healthWakesVersion {
		return workflow.Sleep(ctx, d)
	}
	_, err := workflow.AwaitWithTimeout(ctx, d, func() bool { return r.healthChanged })
	return err
}

// classContinueAsNew marks a site whose removal, retried without limit, was cut short because the
// history grew long: the run continues as new, and the next one goes on with it.
const classContinueAsNew cheops.ErrorClass = "ContinueAsNew"

// waveOptions are the options of a wave's activity: each of its sites has siteTimeout (0:
// activities.SiteTimeout), parallel at a time; the heartbeat notices a lost worker; a wave that
// keeps failing as a whole counts as a transient failure of each of its sites.
func waveOptions(ctx workflow.Context, sites, parallel int, siteTimeout time.Duration) workflow.Context {
	parallel = max(parallel, 1)
	if siteTimeout <= 0 {
		siteTimeout = activities.SiteTimeout
	}
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: time.Minute + siteTimeout*time.Duration((sites+parallel-1)/parallel),
		HeartbeatTimeout:    10 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: applyBackoff, BackoffCoefficient: 2, MaximumInterval: applyBackoffMax, MaximumAttempts: 3,
		},
	})
}

// applyWave runs one ApplyWave, giving each site siteTimeout (0: activities.SiteTimeout), and
// returns its outcomes. A wave that fails as a whole (its worker kept dying, the store could not be
// read) counts as a transient failure of each of its sites.
func (r *resourceRun) applyWave(ctx workflow.Context, plan cheops.Plan, sites []string, attempt int, siteTimeout time.Duration) []activities.SiteOutcome {
	var out activities.WaveOutput
	err := workflow.ExecuteActivity(waveOptions(ctx, len(sites), plan.MaxParallel, siteTimeout), a.ApplyWave, activities.WaveInput{
		ResourceID: r.status.ResourceID, Generation: plan.Generation, Sites: sites,
		MaxParallel: plan.MaxParallel, Force: plan.Resync, Attempt: attempt, SiteTimeout: siteTimeout}).Get(ctx, &out)
	if err == nil {
		return out.Sites
	}
	outcomes := make([]activities.SiteOutcome, len(sites))
	for i, site := range sites {
		outcomes[i] = activities.SiteOutcome{Site: site, Class: cheops.Transient, Message: rootMessage(err)}
	}
	return outcomes
}
