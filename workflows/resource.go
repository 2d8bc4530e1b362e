// Package workflows holds the deterministic workflow code that owns each resource for its whole life:
// it fans each generation out to the sites in scope, records progress, then waits for what comes
// next (an update, a delete, an operator's signal, a site's health change, a periodic re-plan),
// continuing as new before its history grows large. It talks to the world only through activities, by their typed function values, and
// knows nothing of HTTP, etcd or client-go.
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

// Names by which the API, the CLI and operators (with the `temporal` CLI) steer a resource's workflow.
const (
	// SignalApply tells the workflow a new generation is stored (payload ApplyRequest). The API
	// sends it with signal-with-start: durable once Temporal has it, answered without waiting for a
	// worker, and harmless when stale, since the workflow plans from the store.
	SignalApply = "apply-generation"
	// UpdateApply is SignalApply as an update, for operators who want the workflow's answer; its
	// validator refuses a stale generation.
	UpdateApply = "apply"
	// SignalDelete tells the workflow a delete was accepted.
	SignalDelete = "delete"
	// SignalReconcile asks for an immediate re-plan.
	SignalReconcile = "reconcile"
	// SignalPause stops applying anything until SignalResume.
	SignalPause = "pause"
	// SignalResume undoes SignalPause.
	SignalResume = "resume"
	// SignalRetry retries failed replicas now, including ones a site rejected, and a rolled-back
	// transactional generation.
	SignalRetry = "retry"
	// SignalResync re-applies every replica, converged or not.
	SignalResync = "resync"
	// SignalSiteHealth tells the workflow a site's health changed, so parked and failed replicas
	// are retried at once instead of after their backoff. The workflow re-plans from the store,
	// which holds every site's health; the payload (SiteHealthChange) only says, to whoever reads
	// the history, which site changed.
	SignalSiteHealth = "site-health"
	// QueryStatus returns the workflow's live Status.
	QueryStatus = "status"
)

// Timing of the loop. Constants: a value that could differ between a run and its replay would make
// the workflow non-deterministic. Per-resource timings come from the resource's policy.
const (
	// ResyncInterval is how often a settled resource is re-planned to catch missed requests.
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

// ApplyRequest is the payload of SignalApply and UpdateApply.
type ApplyRequest struct {
	Generation int64
}

// SiteHealthChange is the payload of SignalSiteHealth: which site changed, for the history's reader.
type SiteHealthChange struct {
	Site   string
	Health cheops.SiteHealth
}

// Status is the answer to QueryStatus.
type Status struct {
	ResourceID        string
	Phase             string
	Consistency       cheops.Consistency
	Paused            bool
	TargetGeneration  int64
	AppliedGeneration int64
	// Failed are the sites whose replica did not converge in the last round, sorted.
	Failed []string
	// Waiting are the sites whose replica waits for its dependencies there (see cheops.Waiting).
	Waiting []string `json:",omitempty"`
	// Parked are sites in scope that are unreachable, waiting for them to come back.
	Parked []string
	// Rejected are sites that rejected the target generation.
	Rejected []string
	// RolledBack is set when the target generation was rolled back (transactional).
	RolledBack bool
	// NextRoundAt is when failed sites are retried, unless a signal comes first.
	NextRoundAt time.Time
}

// Workflow phases, as reported by QueryStatus.
const (
	PhasePlanning    = "Planning"
	PhaseApplying    = "Applying"
	PhaseRollingBack = "RollingBack"
	PhaseIdle        = "Idle"
	PhasePaused      = "Paused"
	PhaseDeleting    = "Deleting"
)

// WorkflowID is the ID of a resource's workflow.
func WorkflowID(resourceID string) string { return "resource-" + resourceID }

var a *activities.Activities

// ResourceWorkflow converges one resource, forever: plan, apply (eventually or as a saga), wait for
// the next change.
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
		if err := run.applyPauseRequest(ctx); err != nil {
			return err
		}
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
		var wait time.Duration
		switch {
		case plan.Paused:
			run.status.Phase = PhasePaused
			wait = ResyncInterval
		case plan.Consistency == cheops.Transactional:
			wait, err = run.transact(ctx, plan)
		default:
			wait = run.converge(ctx, plan)
		}
		if err != nil {
			return err
		}
		if err := run.publish(ctx, plan); err != nil {
			return err
		}
		if run.mustContinueAsNew(ctx) {
			return run.continueAsNew(ctx)
		}
		if !plan.Paused {
			run.status.Phase = PhaseIdle
		}
		run.status.NextRoundAt = workflow.Now(ctx).Add(wait)
		if _, err := workflow.AwaitWithTimeout(ctx, wait, func() bool { return run.wake }); err != nil {
			return err
		}
	}
}

// resourceRun is the state of one run of ResourceWorkflow.
type resourceRun struct {
	status Status
	// wake is set by updates and signals to end the wait early.
	wake bool
	// pause, when set, is an operator's pause (true) or resume (false) not yet recorded.
	pause *bool
	// retry and resync are operator requests for the next plan.
	retry, resync bool
	// failedRounds counts rounds in a row that left sites to retry; it sets the backoff.
	failedRounds int
	// searchState is the last CheopsState published.
	searchState string
	// healthChanged is set when a site's health changed since the current attempt of a wave began,
	// so the wait before the next attempt ends at once (see sleepUnlessHealthChanges).
	healthChanged bool
}

func (r *resourceRun) setup(ctx workflow.Context) error {
	if err := workflow.SetQueryHandler(ctx, QueryStatus, func() (Status, error) { return r.status, nil }); err != nil {
		return err
	}
	if err := workflow.SetUpdateHandlerWithOptions(ctx, UpdateApply,
		func(ctx workflow.Context, req ApplyRequest) (Status, error) {
			r.status.TargetGeneration = max(r.status.TargetGeneration, req.Generation)
			r.failedRounds = 0
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
	on := func(name string, handle func(c workflow.ReceiveChannel)) func(workflow.Selector) {
		ch := workflow.GetSignalChannel(ctx, name)
		return func(sel workflow.Selector) {
			sel.AddReceive(ch, func(c workflow.ReceiveChannel, _ bool) { handle(c); r.wake = true })
		}
	}
	discard := func(c workflow.ReceiveChannel) { c.Receive(ctx, nil) }
	handlers := []func(workflow.Selector){
		on(SignalApply, func(c workflow.ReceiveChannel) {
			var req ApplyRequest
			c.Receive(ctx, &req)
			r.status.TargetGeneration = max(r.status.TargetGeneration, req.Generation)
			r.failedRounds = 0
		}),
		on(SignalReconcile, discard),
		on(SignalDelete, discard),
		on(SignalPause, func(c workflow.ReceiveChannel) { c.Receive(ctx, nil); paused := true; r.pause = &paused }),
		on(SignalResume, func(c workflow.ReceiveChannel) { c.Receive(ctx, nil); paused := false; r.pause = &paused }),
		on(SignalRetry, func(c workflow.ReceiveChannel) { c.Receive(ctx, nil); r.retry, r.failedRounds = true, 0 }),
		on(SignalResync, func(c workflow.ReceiveChannel) { c.Receive(ctx, nil); r.resync = true }),
		on(SignalSiteHealth, func(c workflow.ReceiveChannel) { discard(c); r.failedRounds, r.healthChanged = 0, true }),
	}
	workflow.Go(ctx, func(ctx workflow.Context) {
		for {
			sel := workflow.NewSelector(ctx)
			for _, add := range handlers {
				add(sel)
			}
			sel.Select(ctx)
		}
	})
	return nil
}

// applyPauseRequest records an operator's pause or resume in the store, where the plan reads it.
func (r *resourceRun) applyPauseRequest(ctx workflow.Context) error {
	if r.pause == nil {
		return nil
	}
	paused := *r.pause
	r.pause = nil
	return workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, recordOptions), a.SetPaused,
		activities.PauseInput{ResourceID: r.status.ResourceID, Paused: paused}).Get(ctx, nil)
}

// recordOptions are for activities that only write to the store: retried until they succeed.
var recordOptions = workflow.ActivityOptions{
	StartToCloseTimeout: 30 * time.Second,
	RetryPolicy:         &temporal.RetryPolicy{MaximumInterval: 30 * time.Second},
}

func (r *resourceRun) plan(ctx workflow.Context) (cheops.Plan, error) {
	r.status.Phase = PhasePlanning
	// Planning reads etcd for milliseconds: a local activity spares it a round trip through the
	// task queue and most of its history events.
	ctx = workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: 30 * time.Second,
			NonRetryableErrorTypes: []string{string(cheops.Permanent)},
		},
	})
	in := activities.PlanInput{ResourceID: r.status.ResourceID, Retry: r.retry, Resync: r.resync}
	r.retry, r.resync = false, false
	var plan cheops.Plan
	if err := workflow.ExecuteLocalActivity(ctx, a.PlanResource, in).Get(ctx, &plan); err != nil {
		return plan, err
	}
	r.status.TargetGeneration = max(r.status.TargetGeneration, plan.Generation)
	r.status.Consistency, r.status.Paused, r.status.RolledBack = plan.Consistency, plan.Paused, plan.RolledBack
	r.status.Parked, r.status.Rejected = plan.Parked, plan.Rejected
	return plan, nil
}

// localCommit is the version (of the "apply-waves" and "saga-waves" changes) from which the
// commit of a generation is a local activity: it only writes to etcd, and a local activity spares
// the history five of the six events of an activity and its workflow task. Runs that recorded an
// older version keep the activity, so that their histories replay.
const localCommit workflow.Version = 2

// commit records the planned generation as applied everywhere, once per generation, by a local
// activity when local is set, else by an activity.
func (r *resourceRun) commit(ctx workflow.Context, plan cheops.Plan, local bool) error {
	if r.status.AppliedGeneration == plan.Generation {
		return nil
	}
	in := activities.CommitInput{ResourceID: r.status.ResourceID, Generation: plan.Generation, Sites: plan.Sites}
	var err error
	if local {
		err = workflow.ExecuteLocalActivity(workflow.WithLocalActivityOptions(ctx, workflow.LocalActivityOptions{
			StartToCloseTimeout: recordOptions.StartToCloseTimeout, RetryPolicy: recordOptions.RetryPolicy,
		}), a.CommitGeneration, in).Get(ctx, nil)
	} else {
		err = workflow.ExecuteActivity(workflow.WithActivityOptions(ctx, recordOptions), a.CommitGeneration, in).Get(ctx, nil)
	}
	if err != nil {
		return err
	}
	r.status.AppliedGeneration = plan.Generation
	return nil
}

func (r *resourceRun) delete(ctx workflow.Context, plan cheops.Plan) error {
	r.status.Phase = PhaseDeleting
	errs := r.removeReplicas(ctx, plan.Remove, plan.Orphan, plan.MaxParallel, untilDone)
	for _, site := range plan.Remove {
		if errors.Is(errs[site], errContinueAsNew) {
			return r.continueAsNew(ctx) // the next run plans the deletion again, of what is left
		}
	}
	for _, site := range plan.Remove {
		if err := errs[site]; err != nil {
			return fmt.Errorf("delete replica on site %s: %w", site, err)
		}
	}
	ctx = workflow.WithActivityOptions(ctx, recordOptions)
	return workflow.ExecuteActivity(ctx, a.ForgetResource, r.status.ResourceID).Get(ctx, nil)
}

// untilDone retries a step that must not be abandoned (a deletion, a compensation) without limit.
var untilDone = &temporal.RetryPolicy{InitialInterval: time.Second, BackoffCoefficient: 2, MaximumInterval: time.Minute}

// removeReplicas deletes (or orphans) replicas on sites, with the given retry policy for each site,
// and returns each site's error. Runs that started before deletion waves remove each site with its
// own DeleteReplica activity (removeEachSite), kept unchanged so that their histories replay.
func (r *resourceRun) removeReplicas(ctx workflow.Context, sites []string, orphan bool, parallel int, retry *temporal.RetryPolicy) map[string]error {
	if len(sites) == 0 {
		return map[string]error{}
	}
	if workflow.GetVersion(ctx, "delete-waves", workflow.DefaultVersion, 1) == workflow.DefaultVersion {
		return r.removeEachSite(ctx, sites, orphan, parallel, retry)
	}
	return r.removeInWaves(ctx, sites, orphan, parallel, retry)
}

// removeEachSite removes each replica with its own DeleteReplica activity, retried by Temporal.
func (r *resourceRun) removeEachSite(ctx workflow.Context, sites []string, orphan bool, parallel int, retry *temporal.RetryPolicy) map[string]error {
	delCtx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 2 * time.Minute,
		HeartbeatTimeout:    10 * time.Second,
		RetryPolicy:         retry,
	})
	return fanOut(ctx, sites, parallel, func(site string) workflow.Future {
		return workflow.ExecuteActivity(delCtx, a.DeleteReplica, activities.DeleteInput{
			ResourceID: r.status.ResourceID, Site: site, Orphan: orphan})
	})
}

func (r *resourceRun) mustContinueAsNew(ctx workflow.Context) bool {
	info := workflow.GetInfo(ctx)
	return info.GetContinueAsNewSuggested() || info.GetCurrentHistoryLength() > historyLimit
}

func (r *resourceRun) continueAsNew(ctx workflow.Context) error {
	// Let running update handlers finish. Pending signals need no carrying over: the next run
	// re-plans from the store, where every accepted request and every pause is recorded.
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

// errorClass returns the class an activity failure carries (see activities.asTemporalError), or ""
// when it carries none (a timeout, a worker lost).
func errorClass(err error) cheops.ErrorClass {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return cheops.ErrorClass(appErr.Type())
	}
	return ""
}

// rootMessage returns the driver's own words from an activity failure.
func rootMessage(err error) string {
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		return appErr.Message()
	}
	return err.Error()
}
