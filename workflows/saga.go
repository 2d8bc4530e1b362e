package workflows

import (
	"errors"
	"fmt"
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
			return ResyncInterval, r.rollBack(ctx, plan, map[string]error{}, plan.RollbackReasons)
		}
		// Rolled back earlier; it stays so until a new generation or a retry signal.
		return ResyncInterval, nil
	}
	r.status.Phase = PhaseApplying
	if plan.Timeout <= 0 {
		plan.Timeout = time.Duration(cheops.DefaultTimeout)
	}
	applyCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout:    2 * time.Minute,
		ScheduleToCloseTimeout: plan.Timeout,
		HeartbeatTimeout:       10 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 10 * time.Second,
			NonRetryableErrorTypes: []string{string(cheops.Permanent)},
		},
	})
	errs := fanOut(ctx, plan.Apply, plan.MaxParallel, func(site string) workflow.Future {
		return workflow.ExecuteActivity(applyCtx, a.ApplyReplica, activities.ApplyInput{
			ResourceID: r.status.ResourceID, Site: site, Generation: plan.Generation, Force: plan.Resync})
	})
	reasons := map[string]string{}
	for _, site := range plan.Apply {
		if err := errs[site]; err != nil {
			r.status.Failed = append(r.status.Failed, site)
			reasons[site] = reason(err, plan.Timeout)
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
		return ResyncInterval, r.commit(ctx, plan)
	}
	return ResyncInterval, r.rollBack(ctx, plan, errs, reasons)
}

// rollBack runs the compensations of a failed transactional generation. Each is its own activity,
// retried until done, so a worker lost in the middle resumes them where the history left off.
func (r *resourceRun) rollBack(ctx workflow.Context, plan cheops.Plan, errs map[string]error, reasons map[string]string) error {
	r.status.Phase = PhaseRollingBack
	record := func(done bool) error {
		return workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, recordOptions), a.RecordRollback,
			activities.RollbackInput{ResourceID: r.status.ResourceID, Generation: plan.Generation, Reasons: reasons, Done: done}).Get(ctx, nil)
	}
	if err := record(false); err != nil {
		return err
	}
	compCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		HeartbeatTimeout:    10 * time.Second,
		RetryPolicy:         untilDone,
	})
	compErrs := fanOut(ctx, plan.Apply, plan.MaxParallel, func(site string) workflow.Future {
		// A site that rejected the generation or was never reached did not change: only its record
		// goes back. Any other outcome may have changed the site, which is then put back.
		class := errorClass(errs[site])
		touched := errs[site] == nil || (class != cheops.Permanent && class != cheops.Unreachable)
		return workflow.ExecuteActivity(compCtx, a.CompensateReplica, activities.CompensateInput{
			ResourceID: r.status.ResourceID, Site: site, Generation: plan.Generation, Touched: touched})
	})
	for _, site := range plan.Apply {
		if err := compErrs[site]; err != nil {
			return fmt.Errorf("roll back site %s: %w", site, err)
		}
	}
	r.status.RolledBack = true
	return record(true)
}

// reason says in a line why a site could not take a generation.
func reason(err error, timeout time.Duration) string {
	var te *temporal.TimeoutError
	if errors.As(err, &te) {
		return fmt.Sprintf("not applied within the policy timeout of %s: %s", timeout, rootMessage(err))
	}
	return rootMessage(err)
}
