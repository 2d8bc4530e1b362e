package workflows

import (
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/activities"
)

// PhaseAwaitingReady is the phase of a run waiting for applied replicas' status to say Ready.
const PhaseAwaitingReady = "AwaitingReady"

// classInterrupted marks a site whose readiness wait an operator's request or a new generation
// cut short: it is neither Ready nor failed, and the next round waits for it again.
const classInterrupted cheops.ErrorClass = "Interrupted"

// readinessVersion is the version of the "readiness" change from which a run waits for the
// status of applied replicas. The version is asked only when a wave reported such a replica,
// which waves before this change never did, so older histories replay unchanged.
const readinessVersion workflow.Version = 1

// awaitReadiness waits, with one AwaitReadiness activity per wave of sites, until every site of
// sites is Ready by its object's status or has failed, and adds each failure to failures. Without
// a deadline (eventual mode), each site has its policy's readyTimeout from when it took the
// generation, and a request to the workflow (a new generation, a delete, a pause…) cuts the wait
// short: its sites then fail with classInterrupted, to be waited for in the next round. With a
// deadline (a transactional generation), the wait also ends there, and is not cut short.
func (r *resourceRun) awaitReadiness(ctx workflow.Context, plan cheops.Plan, sites []string, deadline time.Time, failures map[string]siteFailure) {
	if len(sites) == 0 || workflow.GetVersion(ctx, "readiness", workflow.DefaultVersion, readinessVersion) < readinessVersion {
		return
	}
	r.status.Phase = PhaseAwaitingReady
	wait := plan.ReadyTimeout
	if wait <= 0 {
		wait = time.Duration(cheops.DefaultReadyTimeout)
	}
	if !deadline.IsZero() {
		wait = min(wait, max(deadline.Sub(workflow.Now(ctx)), time.Second))
	}
	actCtx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	actCtx = workflow.WithActivityOptions(actCtx, workflow.ActivityOptions{
		// The activity ends each site's wait at its deadline; the margin is for the last reads and
		// the record.
		StartToCloseTimeout: wait + time.Minute,
		HeartbeatTimeout:    10 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: applyBackoff, BackoffCoefficient: 2, MaximumInterval: applyBackoffMax, MaximumAttempts: 3,
		},
	})
	var futures []workflow.Future
	var waves [][]string
	for start := 0; start < len(sites); start += waveSize {
		wave := sites[start:min(start+waveSize, len(sites))]
		waves = append(waves, wave)
		futures = append(futures, workflow.ExecuteActivity(actCtx, a.AwaitReadiness, activities.ReadinessInput{
			ResourceID: r.status.ResourceID, Generation: plan.Generation, Sites: wave,
			MaxParallel: plan.MaxParallel, Until: deadline}))
	}
	allReady := func() bool {
		for _, f := range futures {
			if !f.IsReady() {
				return false
			}
		}
		return true
	}
	if deadline.IsZero() {
		_ = workflow.Await(ctx, func() bool { return allReady() || r.wake })
	} else {
		_ = workflow.Await(ctx, allReady)
	}
	for i, f := range futures {
		if !f.IsReady() {
			for _, site := range waves[i] {
				failures[site] = siteFailure{class: classInterrupted, message: "waiting for its status to say Ready"}
			}
			continue
		}
		var out activities.ReadinessOutput
		if err := f.Get(ctx, &out); err != nil {
			for _, site := range waves[i] {
				failures[site] = siteFailure{class: cheops.Transient, message: rootMessage(err), mayHaveChanged: true}
			}
			continue
		}
		for _, o := range out.Sites {
			if o.Class != "" {
				failures[o.Site] = siteFailure{class: o.Class, message: o.Message, mayHaveChanged: true}
			}
		}
	}
}
