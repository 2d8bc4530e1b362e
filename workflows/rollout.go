package workflows

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/workflow"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/activities"
)

// classStopped marks a site a progressive rollout did not reach because it stopped first.
const classStopped cheops.ErrorClass = "RolloutStopped"

// rollOut applies an eventual generation wave by wave (plan.Waves): each wave's sites are applied
// (see applyInWaves) and awaited until Ready (see awaitReadiness) before the soak and the next
// wave. Once plan.MaxFailures sites failed, the rollout stops: the resource is paused with the
// reason, and the sites of the later waves are left as they are (classStopped) until an operator
// resumes it. A request to the workflow during a wave or a soak ends the round; the next one goes
// on from the sites not done. It returns each site's failure, those not reached included.
func (r *resourceRun) rollOut(ctx workflow.Context, plan cheops.Plan) map[string]siteFailure {
	failures := map[string]siteFailure{}
	var failed []string
	leave := func(from int, class cheops.ErrorClass, message string) {
		for _, site := range slices.Concat(plan.Waves[from:]...) {
			failures[site] = siteFailure{class: class, message: message}
		}
	}
	for i, wave := range plan.Waves {
		sub := plan
		sub.Apply, sub.Waves = wave, nil
		f, awaiting := r.applyInWaves(ctx, sub)
		r.awaitReadiness(ctx, sub, awaiting, time.Time{}, f)
		interrupted := false
		for _, site := range wave {
			fl, ok := f[site]
			if !ok {
				continue
			}
			failures[site] = fl
			switch fl.class {
			case classInterrupted:
				interrupted = true
			case cheops.Waiting:
				// Waiting for its dependencies on the site is not a failure of the site.
			default:
				failed = append(failed, site)
			}
		}
		if interrupted {
			leave(i+1, classInterrupted, "waiting for the rollout's earlier waves")
			return failures
		}
		if plan.MaxFailures > 0 && len(failed) >= plan.MaxFailures {
			reason := fmt.Sprintf("rollout stopped after wave %d of %d: %d site(s) failed (maxFailures %d): %s",
				i+1, len(plan.Waves), len(failed), plan.MaxFailures, failedSummary(failed, failures))
			leave(i+1, classStopped, reason)
			r.stopRollout(ctx, reason)
			return failures
		}
		if i < len(plan.Waves)-1 && plan.Soak > 0 {
			if woken, err := workflow.AwaitWithTimeout(ctx, plan.Soak, func() bool { return r.wake }); woken || err != nil {
				leave(i+1, classInterrupted, "waiting for the rollout's earlier waves")
				return failures
			}
		}
	}
	return failures
}

// failedSummary names the failed sites and why, the first three in full.
func failedSummary(sites []string, failures map[string]siteFailure) string {
	var parts []string
	for i, site := range sites {
		if i == 3 {
			parts = append(parts, fmt.Sprintf("and %d more", len(sites)-3))
			break
		}
		parts = append(parts, site+": "+failures[site].message)
	}
	return strings.Join(parts, "; ")
}

// stopRollout pauses the resource with the reason a rollout stopped, in the store, where the plan
// and the API read it.
func (r *resourceRun) stopRollout(ctx workflow.Context, reason string) {
	_ = workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, recordOptions), a.SetPaused,
		activities.PauseInput{ResourceID: r.status.ResourceID, Paused: true, Reason: reason}).Get(ctx, nil)
	r.status.Paused = true
}

// sagaRollOut applies a transactional generation wave by wave (plan.Waves), each wave as
// sagaApplyInWaves does, each within the policy's timeout, with the soak between waves. The
// first wave with a failed site stops it: the sites of the later waves are not reached (and only
// their records go back in the rollback that follows).
func (r *resourceRun) sagaRollOut(ctx workflow.Context, plan cheops.Plan) map[string]siteFailure {
	failures := map[string]siteFailure{}
	for i, wave := range plan.Waves {
		sub := plan
		sub.Apply, sub.Waves = wave, nil
		f := r.sagaApplyInWaves(ctx, sub)
		for site, fl := range f {
			failures[site] = fl
		}
		if len(f) > 0 {
			for _, site := range slices.Concat(plan.Waves[i+1:]...) {
				failures[site] = siteFailure{class: cheops.Unreachable,
					message: fmt.Sprintf("not applied: the rollout stopped at wave %d of %d", i+1, len(plan.Waves))}
			}
			return failures
		}
		if i < len(plan.Waves)-1 && plan.Soak > 0 {
			if err := workflow.Sleep(ctx, plan.Soak); err != nil {
				return failures
			}
		}
	}
	return failures
}
