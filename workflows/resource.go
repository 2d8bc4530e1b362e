// Package workflows holds the deterministic workflow code that owns each resource for its whole life
// (DESIGN §4). It talks to the world only through activities, by their typed function values, and
// knows nothing of HTTP, etcd or client-go.
package workflows

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"github.com/cheops-io/cheops/activities"
)

// Names by which the API, the CLI and operators (with the `temporal` CLI) steer a resource's workflow.
const (
	// UpdateApply tells the workflow a new generation is stored; its validator refuses a stale one.
	UpdateApply = "apply"
	// SignalDelete tells the workflow a delete was accepted.
	SignalDelete = "delete"
	// SignalReconcile asks for an immediate re-plan.
	SignalReconcile = "reconcile"
	// QueryStatus returns the workflow's live Status.
	QueryStatus = "status"
)

// Timing of the loop. Constants: a value that could differ between a run and its replay would make
// the workflow non-deterministic.
const (
	// RetryInterval is how soon failed replicas are retried after their activity retries gave up.
	RetryInterval = 30 * time.Second
	// ResyncInterval is how often a converged resource is re-planned to catch missed requests.
	ResyncInterval = 5 * time.Minute
	// historyLimit is the history length past which the run continues as new.
	historyLimit = 4000
)

// ResourceInput starts (or continues) the workflow of one resource.
type ResourceInput struct {
	ResourceID string
	// AppliedGeneration carries progress across Continue-As-New.
	AppliedGeneration int64
}

// ApplyRequest is the argument of UpdateApply.
type ApplyRequest struct {
	Generation int64
}

// Status is the answer to QueryStatus.
type Status struct {
	ResourceID        string
	Phase             string
	TargetGeneration  int64
	AppliedGeneration int64
	// Failed are the sites whose replica gave up on the applied generation, sorted.
	Failed []string
}

// Workflow phases, as reported by QueryStatus.
const (
	PhasePlanning = "Planning"
	PhaseApplying = "Applying"
	PhaseIdle     = "Idle"
	PhaseDeleting = "Deleting"
)

// WorkflowID is the ID of a resource's workflow.
func WorkflowID(resourceID string) string { return "resource-" + resourceID }

var a *activities.Activities

// ResourceWorkflow converges one resource, forever: plan, fan out, wait for the next change.
func ResourceWorkflow(ctx workflow.Context, in ResourceInput) error {
	if in.ResourceID == "" {
		return temporal.NewNonRetryableApplicationError("ResourceInput.ResourceID is empty", "BadInput", nil)
	}
	run := &resourceRun{status: Status{ResourceID: in.ResourceID, AppliedGeneration: in.AppliedGeneration}}
	if err := run.setup(ctx); err != nil {
		return err
	}
	for {
		run.wake = false
		plan, err := run.plan(ctx)
		if err != nil {
			return err
		}
		if !plan.Exists {
			return nil
		}
		if plan.Deleting {
			return run.delete(ctx, plan)
		}
		run.converge(ctx, plan)
		if run.mustContinueAsNew(ctx) {
			return run.continueAsNew(ctx)
		}
		run.status.Phase = PhaseIdle
		wait := ResyncInterval
		if len(run.status.Failed) > 0 {
			wait = RetryInterval
		}
		if _, err := workflow.AwaitWithTimeout(ctx, wait, func() bool { return run.wake }); err != nil {
			return err
		}
	}
}

// resourceRun is the state of one run of ResourceWorkflow.
type resourceRun struct {
	status Status
	// wake is set by updates and signals to end the wait early.
	wake      bool
	reconcile workflow.ReceiveChannel
	del       workflow.ReceiveChannel
}

func (r *resourceRun) setup(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (Status, error) { return r.status, nil }); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateApply,
		func(ctx workflow.Context, req ApplyRequest) (Status, error) {
			r.status.TargetGeneration = max(r.status.TargetGeneration, req.Generation)
			r.wake = true
			return r.status, nil
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, req ApplyRequest) error {
			if req.Generation < 1 {
				return errors.New("generation must be at least 1")
			}
			if req.Generation < r.status.TargetGeneration {
				return fmt.Errorf("generation %d is older than the target generation %d", req.Generation, r.status.TargetGeneration)
			}
			return nil
		}},
	); err != nil {
		return err
	}
	r.reconcile = workflow.GetSignalChannel(ctx, SignalReconcile)
	r.del = workflow.GetSignalChannel(ctx, SignalDelete)
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			sel := workflow.NewSelector(ctx)
			sel.AddReceive(r.reconcile, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil); r.wake = true })
			sel.AddReceive(r.del, func(c workflow.ReceiveChannel, _ bool) { c.Receive(ctx, nil); r.wake = true })
			sel.Select(ctx)
		}
	})
	return nil
}

func (r *resourceRun) plan(ctx workflow.Context) (activities.Plan, error) {
	r.status.Phase = PhasePlanning
	// Planning reads etcd for milliseconds: a local activity spares it a round trip through the
	// task queue and most of its history events.
	ctx = workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second,
			NonRetryableErrorTypes: []string{"Permanent"},
		},
	})
	var plan activities.Plan
	err := workflow.ExecuteLocalActivity(ctx, a.PlanResource, activities.PlanInput{ResourceID: r.status.ResourceID}).Get(ctx, &plan)
	if err != nil {
		return plan, err
	}
	r.status.TargetGeneration = max(r.status.TargetGeneration, plan.Generation)
	return plan, nil
}

// converge applies the planned generation to every site that needs it and removes replicas that
// left the scope. Sites fail independently: one failing site does not hold the others back.
func (r *resourceRun) converge(ctx workflow.Context, plan activities.Plan) {
	r.status.Phase = PhaseApplying
	applyCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		HeartbeatTimeout:    10 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second,
			MaximumAttempts:        5,
			NonRetryableErrorTypes: []string{"Permanent"},
		},
	})
	errs := fanOut(ctx, plan.Apply, plan.MaxParallel, func(site string) workflow.Future {
		return workflow.ExecuteActivity(applyCtx, a.ApplyReplica, activities.ApplyInput{
			ResourceID: r.status.ResourceID, Site: site, Generation: plan.Generation})
	})
	r.status.Failed = r.status.Failed[:0]
	markCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumInterval: 30 * time.Second},
	})
	for _, site := range plan.Apply {
		if err := errs[site]; err != nil {
			r.status.Failed = append(r.status.Failed, site)
			_ = workflow.ExecuteActivity(markCtx, a.MarkReplicaFailed, activities.MarkInput{
				ResourceID: r.status.ResourceID, Site: site, Message: rootMessage(err)}).Get(ctx, nil)
		}
	}
	r.removeReplicas(ctx, plan.Remove, false, plan.MaxParallel)
	if len(r.status.Failed) == 0 {
		r.status.AppliedGeneration = plan.Generation
	}
}

// removeReplicas deletes (or orphans) replicas until each is gone: deletion retries without limit,
// since a replica forgotten while its object remains would leak it.
func (r *resourceRun) removeReplicas(ctx workflow.Context, sites []string, orphan bool, parallel int) map[string]error {
	delCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		HeartbeatTimeout:    10 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute,
		},
	})
	return fanOut(ctx, sites, parallel, func(site string) workflow.Future {
		return workflow.ExecuteActivity(delCtx, a.DeleteReplica, activities.DeleteInput{
			ResourceID: r.status.ResourceID, Site: site, Orphan: orphan})
	})
}

func (r *resourceRun) delete(ctx workflow.Context, plan activities.Plan) error {
	r.status.Phase = PhaseDeleting
	errs := r.removeReplicas(ctx, plan.Remove, plan.Orphan, plan.MaxParallel)
	for _, site := range plan.Remove {
		if err := errs[site]; err != nil {
			return fmt.Errorf("delete replica on site %s: %w", site, err)
		}
	}
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumInterval: 30 * time.Second},
	})
	return workflow.ExecuteActivity(ctx, a.ForgetResource, r.status.ResourceID).Get(ctx, nil)
}

func (r *resourceRun) mustContinueAsNew(ctx workflow.Context) bool {
	info := workflow.GetInfo(ctx)
	return info.GetContinueAsNewSuggested() || info.GetCurrentHistoryLength() > historyLimit
}

func (r *resourceRun) continueAsNew(ctx workflow.Context) error {
	// Let running update handlers finish; pending signals need no carrying over, since the next run
	// re-plans from the store, which is where every accepted request is recorded.
	if err := workflow.Await(ctx, func() bool { return workflow.AllHandlersFinished(ctx) }); err != nil {
		return err
	}
	return workflow.NewContinueAsNewError(ctx, ResourceWorkflow, ResourceInput{
		ResourceID: r.status.ResourceID, AppliedGeneration: r.status.AppliedGeneration})
}

// fanOut starts one activity per site, at most parallel at once, and returns each site's error.
func fanOut(ctx workflow.Context, sites []string, parallel int, start func(site string) workflow.Future) map[string]error {
	errs := make(map[string]error, len(sites))
	if parallel <= 0 {
		parallel = 1
	}
	sel := workflow.NewSelector(ctx)
	inflight := 0
	for _, site := range sites {
		if inflight == parallel {
			sel.Select(ctx)
			inflight--
		}
		sel.AddFuture(start(site), func(f workflow.Future) { errs[site] = f.Get(ctx, nil) })
		inflight++
	}
	for ; inflight > 0; inflight-- {
		sel.Select(ctx)
	}
	return errs
}

// rootMessage returns the driver's own words from an activity failure.
func rootMessage(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Message()
	}
	return err.Error()
}
