package workflows

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/activities"
)

func newEnv(t *testing.T) *testsuite.TestWorkflowEnvironment {
	var s testsuite.WorkflowTestSuite
	env := s.NewTestWorkflowEnvironment()
	// The SDK's deadlock detector fails a workflow task that runs 1 s without yielding: under the
	// race detector, on two cores shared with the end-to-end tests (make test runs both at once),
	// a task that plans 250 sites can take that long. Production workers keep the 1 s default.
	env.SetWorkerOptions(worker.Options{DeadlockDetectionTimeout: 30 * time.Second})
	env.RegisterActivity(&activities.Activities{})
	t.Cleanup(func() { env.AssertExpectations(t) })
	return env
}

// A permanent failure on one site does not hold the others back, is not retried, and is recorded.
func TestFanOutIsolatesAPermanentFailure(t *testing.T) {
	env := newEnv(t)
	plan := cheops.Plan{Exists: true, Name: "cm", Generation: 1, MaxParallel: 10,
		Sites: []string{"a", "b", "c"}, Apply: []string{"a", "b", "c"}}
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(plan, nil).Once()
	var attemptsB atomic.Int32
	onWave(env, func(in activities.WaveInput, site string) activities.SiteOutcome {
		if site == "b" {
			attemptsB.Add(1)
			return activities.SiteOutcome{Site: site, Class: cheops.Permanent, Message: "admission denied"}
		}
		return activities.SiteOutcome{Site: site, LocalID: "uid-" + site, Generation: in.Generation}
	})
	// After the resync interval the workflow re-plans; the resource is then gone.
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(cheops.Plan{}, nil).Once()
	var st Status
	env.RegisterDelayedCallback(func() { st = queryStatus(t, env) }, time.Second)
	env.ExecuteWorkflow(ResourceWorkflow, ResourceInput{ResourceID: "r1"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if attemptsB.Load() != 1 {
		t.Fatalf("site b applied %d times, want 1 (permanent errors are not retried)", attemptsB.Load())
	}
	if !slices.Equal(st.Failed, []string{"b"}) || !slices.Equal(st.Rejected, []string{"b"}) {
		t.Fatalf("status.Failed = %v, Rejected = %v; want [b] for both", st.Failed, st.Rejected)
	}
}

// Runs that started before waves apply each site with its own activity (the DefaultVersion of
// "apply-waves"), and keep doing so: the same isolation of a permanent failure holds there.
func TestPerSitePathIsolatesAPermanentFailure(t *testing.T) {
	env := newEnv(t)
	env.OnGetVersion("apply-waves", workflow.DefaultVersion, localCommit).Return(workflow.DefaultVersion)
	plan := cheops.Plan{Exists: true, Name: "cm", Generation: 1, MaxParallel: 10,
		Sites: []string{"a", "b", "c"}, Apply: []string{"a", "b", "c"}}
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(plan, nil).Once()
	var attemptsB atomic.Int32
	env.OnActivity(a.ApplyReplica, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ApplyInput) (activities.ApplyOutput, error) {
			if in.Site == "b" {
				attemptsB.Add(1)
				return activities.ApplyOutput{}, temporal.NewNonRetryableApplicationError("admission denied", "Permanent", nil)
			}
			return activities.ApplyOutput{LocalID: "uid-" + in.Site, Generation: in.Generation}, nil
		})
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(cheops.Plan{}, nil).Once()
	var st Status
	env.RegisterDelayedCallback(func() { st = queryStatus(t, env) }, time.Second)
	env.ExecuteWorkflow(ResourceWorkflow, ResourceInput{ResourceID: "r1"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if attemptsB.Load() != 1 {
		t.Fatalf("site b applied %d times, want 1 (permanent errors are not retried)", attemptsB.Load())
	}
	if !slices.Equal(st.Failed, []string{"b"}) {
		t.Fatalf("status.Failed = %v, want [b]", st.Failed)
	}
}

// Each wave is asked to apply no more than the plan's MaxParallel sites at once (ApplyWave keeps to
// it: see activities.TestApplyWaveIsBounded), and every site is applied once.
func TestFanOutIsBounded(t *testing.T) {
	env := newEnv(t)
	sites := []string{"s1", "s2", "s3", "s4", "s5", "s6", "s7"}
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(
		cheops.Plan{Exists: true, Generation: 1, MaxParallel: 2, Sites: sites, Apply: sites}, nil).Once()
	waves := onWave(env, func(in activities.WaveInput, site string) activities.SiteOutcome {
		return activities.SiteOutcome{Site: site, Generation: in.Generation}
	})
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(cheops.Plan{}, nil).Once()
	env.OnActivity(a.CommitGeneration, mock.Anything, mock.Anything).Return(nil).Once()
	env.ExecuteWorkflow(ResourceWorkflow, ResourceInput{ResourceID: "r1"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	got := waves.all()
	if len(got) != 1 || got[0].MaxParallel != 2 || !slices.Equal(got[0].Sites, sites) {
		t.Fatalf("waves = %+v; want one of all %d sites, at most 2 at once", got, len(sites))
	}
}

// An update wakes the workflow at once; a stale generation is refused by the validator.
func TestApplyUpdateWakesAndRefusesStaleGenerations(t *testing.T) {
	env := newEnv(t)
	gen1 := cheops.Plan{Exists: true, Generation: 1, MaxParallel: 1, Sites: []string{"a"}, Apply: []string{"a"}}
	gen2 := gen1
	gen2.Generation = 2
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(gen1, nil).Once()
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(gen2, nil).Once()
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(cheops.Plan{}, nil).Once()
	env.OnActivity(a.CommitGeneration, mock.Anything, mock.Anything).Return(nil)
	var applied []int64
	onWave(env, func(in activities.WaveInput, site string) activities.SiteOutcome {
		applied = append(applied, in.Generation)
		return activities.SiteOutcome{Site: site, Generation: in.Generation}
	})
	var staleErr, okErr error
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdateApply, "u1", &testsuite.TestUpdateCallback{
			OnReject: func(err error) { okErr = err }, OnAccept: func() {}, OnComplete: func(any, error) {},
		}, ApplyRequest{Generation: 2})
	}, time.Minute)
	env.RegisterDelayedCallback(func() {
		env.UpdateWorkflow(UpdateApply, "u2", &testsuite.TestUpdateCallback{
			OnReject: func(err error) { staleErr = err }, OnAccept: func() {}, OnComplete: func(any, error) {},
		}, ApplyRequest{Generation: 1})
	}, 2*time.Minute)
	// The second update lands while the workflow waits; then a reconcile signal makes it re-plan.
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalReconcile, nil) }, 3*time.Minute)
	env.ExecuteWorkflow(ResourceWorkflow, ResourceInput{ResourceID: "r1"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if okErr != nil {
		t.Fatalf("generation 2 refused: %v", okErr)
	}
	if staleErr == nil {
		t.Fatal("stale generation 1 was accepted")
	}
	if len(applied) != 2 || applied[0] != 1 || applied[1] != 2 {
		t.Fatalf("applied generations = %v, want [1 2]", applied)
	}
	if d := env.Now().Sub(time.Time{}); d <= 0 {
		t.Fatal("clock did not move")
	}
}

// The API's SignalApply wakes a waiting workflow, which re-plans and applies the new generation;
// the status query reports the generation the signal named as the target before the plan reads it.
func TestApplySignalWakesTheWorkflow(t *testing.T) {
	env := newEnv(t)
	gen1 := cheops.Plan{Exists: true, Generation: 1, MaxParallel: 1, Sites: []string{"a"}, Apply: []string{"a"}}
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(gen1, nil).Once()
	var target int64
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(func(context.Context, activities.PlanInput) (cheops.Plan, error) {
		v, err := env.QueryWorkflow(QueryStatus)
		if err != nil {
			return cheops.Plan{}, err
		}
		var st Status
		if err := v.Get(&st); err != nil {
			return cheops.Plan{}, err
		}
		target = st.TargetGeneration
		gen3 := gen1
		gen3.Generation = 3
		return gen3, nil
	}).Once()
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(cheops.Plan{}, nil).Once()
	env.OnActivity(a.CommitGeneration, mock.Anything, mock.Anything).Return(nil)
	var applied []int64
	onWave(env, func(in activities.WaveInput, site string) activities.SiteOutcome {
		applied = append(applied, in.Generation)
		return activities.SiteOutcome{Site: site, Generation: in.Generation}
	})
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalApply, ApplyRequest{Generation: 3}) }, time.Minute)
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalReconcile, nil) }, 2*time.Minute)
	env.ExecuteWorkflow(ResourceWorkflow, ResourceInput{ResourceID: "r1"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if len(applied) != 2 || applied[0] != 1 || applied[1] != 3 {
		t.Fatalf("applied generations = %v, want [1 3]", applied)
	}
	if target != 3 {
		t.Fatalf("status target generation after the signal = %d, want 3", target)
	}
}

// A delete removes every replica, then forgets the resource, and the workflow ends.
func TestDeleteRemovesReplicasThenForgets(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(
		cheops.Plan{Exists: true, Deleting: true, MaxParallel: 5, Remove: []string{"a", "b"}}, nil).Once()
	var removed []string
	var mu sync.Mutex
	onDeleteWave(env, func(in activities.DeleteWaveInput, site string) activities.DeleteOutcome {
		mu.Lock()
		removed = append(removed, site)
		mu.Unlock()
		if in.Orphan {
			return activities.DeleteOutcome{Site: site, Class: cheops.Permanent, Message: "not an orphan delete"}
		}
		return activities.DeleteOutcome{Site: site}
	})
	env.OnActivity(a.ForgetResource, mock.Anything, "r1").Return(nil).Once()
	env.ExecuteWorkflow(ResourceWorkflow, ResourceInput{ResourceID: "r1"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if len(removed) != 2 {
		t.Fatalf("removed = %v", removed)
	}
}

func TestEmptyInputIsRefused(t *testing.T) {
	env := newEnv(t)
	env.ExecuteWorkflow(ResourceWorkflow, ResourceInput{})
	if err := env.GetWorkflowError(); err == nil {
		t.Fatal("workflow with no resource ID ran")
	}
}

// A long history continues as new, carrying the applied generation.
func TestContinuesAsNewWhenHistoryGrows(t *testing.T) {
	env := newEnv(t)
	env.SetCurrentHistoryLength(historyLimit + 1)
	sites := []string{"a", "b", "c", "d"}
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(
		cheops.Plan{Exists: true, Generation: 3, MaxParallel: 4, Sites: sites, Apply: sites}, nil).Once()
	onWave(env, func(in activities.WaveInput, site string) activities.SiteOutcome {
		return activities.SiteOutcome{Site: site, Generation: in.Generation}
	})
	env.OnActivity(a.CommitGeneration, mock.Anything, activities.CommitInput{ResourceID: "r1", Generation: 3, Sites: sites}).Return(nil).Once()
	env.ExecuteWorkflow(ResourceWorkflow, ResourceInput{ResourceID: "r1"})
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("workflow ended with %v, want Continue-As-New", err)
	}
	var next ResourceInput
	if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &next); err != nil {
		t.Fatal(err)
	}
	if next.ResourceID != "r1" || next.AppliedGeneration != 3 {
		t.Fatalf("next run input = %+v, want r1 at generation 3", next)
	}
}
