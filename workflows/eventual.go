package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/activities"
)

// converge is one round of eventual mode: apply the generation to every site that needs it, remove
// replicas that left the scope, and say how long to wait before the next round. Sites fail
// independently: a failing site does not hold the others back, and is retried with capped
// exponential backoff, or at once when its health changes.
func (r *resourceRun) converge(ctx workflow.Context, plan cheops.Plan) time.Duration {
	r.status.Phase = PhaseApplying
	applyCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		HeartbeatTimeout:    10 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second,
			MaximumAttempts: 5,
			// A rejected object fails at once; an unreachable site is parked until it comes back.
			NonRetryableErrorTypes: []string{string(cheops.Permanent), string(cheops.Unreachable)},
		},
	})
	errs := fanOut(ctx, plan.Apply, plan.MaxParallel, func(site string) workflow.Future {
		return workflow.ExecuteActivity(applyCtx, a.ApplyReplica, activities.ApplyInput{
			ResourceID: r.status.ResourceID, Site: site, Generation: plan.Generation, Force: plan.Resync})
	})
	r.status.Failed = nil
	retryLater := len(plan.Parked) > 0
	for _, site := range plan.Apply {
		err := errs[site]
		if err == nil {
			continue
		}
		r.status.Failed = append(r.status.Failed, site)
		switch errorClass(err) {
		case cheops.Permanent:
			r.status.Rejected = append(r.status.Rejected, site)
		case cheops.Unreachable:
			retryLater = true
		default:
			// Transient failures outlasted their retries: record why, and retry in a later round.
			retryLater = true
			_ = workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, recordOptions), a.MarkReplicaFailed,
				activities.MarkInput{ResourceID: r.status.ResourceID, Site: site, Message: rootMessage(err)}).Get(ctx, nil)
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
	if len(r.status.Failed) == 0 && len(plan.Parked) == 0 && len(plan.Rejected) == 0 && !retryLater {
		// Applied everywhere: remember it as the generation a transactional change rolls back to.
		if err := r.commit(ctx, plan); err != nil {
			retryLater = true
		}
	}
	if !retryLater {
		r.failedRounds = 0
		return ResyncInterval
	}
	r.failedRounds++
	return backoff(plan.RetryInitial, plan.RetryMax, r.failedRounds)
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
