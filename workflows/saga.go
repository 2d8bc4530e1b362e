package workflows

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/activities"
)

// transact is one round of transactional mode, a saga over sites: the generation is applied on
// every site in scope or on none. A site that rejects it, or that cannot take it within the policy's
// timeout, makes every site go back to the last committed generation: replicas this generation
// created are deleted, replicas it updated are restored. Replicas leaving the scope are removed
// only once the generation is committed, since a removal cannot be undone.
func (r *resourceRun) transact(ctx workflow.Context, plan cheops.Plan) (time.Duration, error) {
	r.status.Failed = nil
	if plan.RolledBack {
		if len(plan.Unfinished) > 0 {
			// A rollback that an earlier run started and never finished: finish it, putting back
			// every site whose outcome is now unknown.
			plan.Apply = plan.Unfinished
			return ResyncInterval, r.rollBack(ctx, plan, map[string]siteFailure{}, plan.RollbackReasons)
		}
		// Rolled back earlier; it stays so until a new generation or a retry signal.
		return ResyncInterval, nil
	}
	r.status.Phase = PhaseApplying
	if plan.Timeout <= 0 {
		plan.Timeout = time.Duration(cheops.DefaultTimeout)
	}
	var failures map[string]siteFailure
	switch {
	case r.sagaWaves(ctx) && len(plan.Waves) > 0:
		failures = r.sagaRollOut(ctx, plan)
	case r.sagaWaves(ctx):
		failures = r.sagaApplyInWaves(ctx, plan)
	default:
		failures = r.sagaApplyEachSite(ctx, plan)
	}
	reasons := map[string]string{}
	for _, site := range plan.Apply {
		if f, failed := failures[site]; failed {
			r.status.Failed = append(r.status.Failed, site)
			reasons[site] = f.message
		}
	}
	if len(reasons) == 0 {
		errs := r.removeReplicas(ctx, plan.Remove, false, plan.MaxParallel, untilDone)
		for _, site := range plan.Remove {
			if errors.Is(errs[site], errContinueAsNew) {
				// Not committed: the run continues as new, and the next one removes what is left.
				return ResyncInterval, nil
			}
		}
		for _, site := range plan.Remove {
			if err := errs[site]; err != nil {
				return 0, fmt.Errorf("remove replica on site %s: %w", site, err)
			}
		}
		return ResyncInterval, r.commit(ctx, plan, r.sagaVersion(ctx) >= localCommit)
	}
	return ResyncInterval, r.rollBack(ctx, plan, failures, reasons)
}

// sagaWaves says whether this run applies and compensates transactional generations in waves.
// Runs that started before saga waves keep one activity per site, so that their histories replay;
// the answer is the same for the whole run.
func (r *resourceRun) sagaWaves(ctx workflow.Context) bool {
	return r.sagaVersion(ctx) != workflow.DefaultVersion
}

// sagaVersion is the version of transactional mode this run follows: DefaultVersion (one activity
// per site), 1 (waves) or localCommit (waves, and a local activity records the commit).
func (r *resourceRun) sagaVersion(ctx workflow.Context) workflow.Version {
	return workflow.GetVersion(ctx, "saga-waves", workflow.DefaultVersion, localCommit)
}

// sagaApplyInWaves applies a transactional generation in waves (see inWaves): a site that fails
// transiently, or cannot be reached, is tried again until the policy's timeout, each try given what
// is left of it; a site that rejects the generation is not tried again. It returns each failed
// site's failure, its message saying why the site could not take the generation.
func (r *resourceRun) sagaApplyInWaves(ctx workflow.Context, plan cheops.Plan) map[string]siteFailure {
	deadline := workflow.Now(ctx).Add(plan.Timeout)
	retry := &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Second}
	awaiting := map[string]bool{}
	failures := r.inWaves(ctx, plan.Apply, retry, deadline, func(wave []string, attempt int) []waveOutcome {
		left := max(deadline.Sub(workflow.Now(ctx)), time.Second)
		return applyOutcomes(r.applyWave(ctx, plan, wave, attempt, min(left, activities.SiteTimeout)), awaiting)
	})
	// Every site must also be Ready by its status before the generation counts as applied: a
	// site that is not by the deadline (or its readyTimeout) fails the generation.
	r.awaitReadiness(ctx, plan, inOrder(plan.Apply, awaiting), deadline, failures)
	for site, f := range failures {
		if f.class != cheops.Permanent {
			f.message = fmt.Sprintf("not applied within the policy timeout of %s: %s", plan.Timeout, f.message)
			failures[site] = f
		}
	}
	return failures
}

// sagaApplyEachSite applies a transactional generation with one ApplyReplica activity per site,
// each retried by Temporal until the policy's timeout, as runs that started before saga waves do.
func (r *resourceRun) sagaApplyEachSite(ctx workflow.Context, plan cheops.Plan) map[string]siteFailure {
	return r.applyEachSite(ctx, plan, workflow.ActivityOptions{
		StartToCloseTimeout:    2 * time.Minute,
		ScheduleToCloseTimeout: plan.Timeout,
		HeartbeatTimeout:       10 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Second,
			NonRetryableErrorTypes: []string{string(cheops.Permanent)},
		},
	}, func(err error) string { return reason(err, plan.Timeout) })
}

// rollBack runs the compensations of a failed transactional generation, given each site's failure
// to apply it, retried until done, so a worker lost in the middle resumes them where the history
// left off. A site that rejected the generation or was never reached did not change: only its
// record goes back. Any other outcome may have changed the site, which is then put back.
func (r *resourceRun) rollBack(ctx workflow.Context, plan cheops.Plan, failures map[string]siteFailure, reasons map[string]string) error {
	r.status.Phase = PhaseRollingBack
	record := func(done bool) error {
		return workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, recordOptions), a.RecordRollback,
			activities.RollbackInput{ResourceID: r.status.ResourceID, Generation: plan.Generation, Reasons: reasons, Done: done}).Get(ctx, nil)
	}
	if err := record(false); err != nil {
		return err
	}
	touched := func(site string) bool {
		f, failed := failures[site]
		return !failed || f.mayHaveChanged || changesSite(f.class)
	}
	if r.sagaWaves(ctx) {
		var untouched []string
		for _, site := range plan.Apply {
			if !touched(site) {
				untouched = append(untouched, site)
			}
		}
		failed := r.inWaves(ctx, plan.Apply, untilDone, time.Time{}, func(wave []string, attempt int) []waveOutcome {
			return r.compensateWave(ctx, plan, wave, untouched, attempt)
		})
		for _, site := range plan.Apply {
			if f, ok := failed[site]; ok && f.class == classContinueAsNew {
				// The next run finds the rollback unfinished and finishes it.
				return r.continueAsNew(ctx)
			}
		}
		for _, site := range plan.Apply {
			if f, ok := failed[site]; ok {
				return fmt.Errorf("roll back site %s: %s", site, f.message)
			}
		}
	} else {
		compCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: 2 * time.Minute,
			HeartbeatTimeout:    10 * time.Second,
			RetryPolicy:         untilDone,
		})
		compErrs := fanOut(ctx, plan.Apply, plan.MaxParallel, func(site string) workflow.Future {
			return workflow.ExecuteActivity(compCtx, a.CompensateReplica, activities.CompensateInput{
				ResourceID: r.status.ResourceID, Site: site, Generation: plan.Generation, Touched: touched(site)})
		})
		for _, site := range plan.Apply {
			if err := compErrs[site]; err != nil {
				return fmt.Errorf("roll back site %s: %w", site, err)
			}
		}
	}
	r.status.RolledBack = true
	return record(true)
}

// compensateWave runs one CompensateWave and returns its outcomes. A wave that fails as a whole
// counts as a transient failure of each of its sites.
func (r *resourceRun) compensateWave(ctx workflow.Context, plan cheops.Plan, sites, untouched []string, attempt int) []waveOutcome {
	var out activities.CompensateWaveOutput
	var wantUntouched []string
	for _, site := range sites {
		if slices.Contains(untouched, site) {
			wantUntouched = append(wantUntouched, site)
		}
	}
	err := workflow.ExecuteActivity(waveOptions(ctx, len(sites), plan.MaxParallel, 0), a.CompensateWave, activities.CompensateWaveInput{
		ResourceID: r.status.ResourceID, Generation: plan.Generation, Sites: sites, Untouched: wantUntouched,
		MaxParallel: plan.MaxParallel, Attempt: attempt}).Get(ctx, &out)
	outcomes := make([]waveOutcome, len(sites))
	for i, site := range sites {
		switch {
		case err != nil:
			outcomes[i] = waveOutcome{site, siteFailure{class: cheops.Transient, message: rootMessage(err)}}
		case i < len(out.Sites):
			outcomes[i] = waveOutcome{site, siteFailure{class: out.Sites[i].Class, message: out.Sites[i].Message}}
		default:
			outcomes[i] = waveOutcome{site, siteFailure{class: cheops.Transient, message: "the wave reported no outcome for this site"}}
		}
	}
	return outcomes
}

// reason says in a line why a site could not take a generation.
func reason(err error, timeout time.Duration) string {
	var te *temporal.TimeoutError
	if errors.As(err, &te) {
		return fmt.Sprintf("not applied within the policy timeout of %s: %s", timeout, rootMessage(err))
	}
	return rootMessage(err)
}
