package workflows

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/activities"
)

// A site that waits for its dependencies is not a failure: it is tried in the round as a transient
// failure would be, then it is neither marked Failed nor counted as rejected, the generation is not
// committed, and the next round comes after waitingRetry rather than the policy's backoff; once its
// dependency is there it converges and the generation is committed.
func TestWaitingSiteIsRetriedSoonAndNeverMarkedFailed(t *testing.T) {
	env := newEnv(t)
	plan := cheops.Plan{Exists: true, Generation: 1, MaxParallel: 5, RetryInitial: time.Minute, RetryMax: time.Hour,
		Sites: []string{"ok", "needy"}, Apply: []string{"ok", "needy"}}
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(plan, nil).Once()
	start := env.Now()
	var round2 time.Duration
	var waves atomic.Int32
	onWave(env, func(in activities.WaveInput, site string) activities.SiteOutcome {
		if site == "needy" && waves.Add(1) <= applyAttempts {
			return activities.SiteOutcome{Site: site, Class: cheops.Waiting, Message: "Waiting: namespace team: waiting for resource team-ns to be Ready on site needy (it is Applying)"}
		}
		return activities.SiteOutcome{Site: site, Generation: 1}
	})
	var st Status
	env.RegisterDelayedCallback(func() { st = queryStatus(t, env) }, 20*time.Second)
	retry := plan
	retry.Apply = []string{"needy"}
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(
		func(_ context.Context, _ activities.PlanInput) (cheops.Plan, error) {
			round2 = env.Now().Sub(start)
			return retry, nil
		}).Once()
	env.OnActivity(a.CommitGeneration, mock.Anything, activities.CommitInput{ResourceID: "r1", Generation: 1, Sites: plan.Sites}).Return(nil).Once()
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(cheops.Plan{}, nil).Once()
	env.ExecuteWorkflow(ResourceWorkflow, ResourceInput{ResourceID: "r1"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	// Tried at 0, 1, 3, 7, 15 s in the round, then the next round 10 s later.
	if !slices.Equal(st.Waiting, []string{"needy"}) || len(st.Failed) != 0 || len(st.Rejected) != 0 {
		t.Fatalf("status = %+v; want needy waiting, neither failed nor rejected", st)
	}
	if want := 15*time.Second + waitingRetry; round2 != want {
		t.Fatalf("next round after %s, want %s", round2, want)
	}
	env.AssertExpectations(t)
}

// In transactional mode a wait counts against policy.timeout: a site still waiting for its
// dependencies at the deadline rolls the generation back, with the wait as its reason; the site
// that waited was never touched, so only its record is put back.
func TestTransactionalWaitCountsAgainstTheTimeout(t *testing.T) {
	env := newEnv(t)
	plan := cheops.Plan{Exists: true, Generation: 2, Consistency: cheops.Transactional, MaxParallel: 3,
		Timeout: time.Minute, Sites: []string{"a", "b"}, Apply: []string{"a", "b"}}
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(plan, nil).Once()
	var tries atomic.Int32
	onWave(env, func(_ activities.WaveInput, site string) activities.SiteOutcome {
		if site == "b" {
			tries.Add(1)
			return activities.SiteOutcome{Site: site, Class: cheops.Waiting, Message: "Waiting: dependsOn[0]: waiting for resource base to be Ready on site b (it is Applying)"}
		}
		return activities.SiteOutcome{Site: site, Generation: 2}
	})
	compensated := onCompensateWave(env)
	var records []activities.RollbackInput
	env.OnActivity(a.RecordRollback, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.RollbackInput) error {
		records = append(records, in)
		return nil
	})
	rolledBack := plan
	rolledBack.RolledBack, rolledBack.Apply = true, nil
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(rolledBack, nil).Once()
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(cheops.Plan{}, nil).Once()
	env.ExecuteWorkflow(ResourceWorkflow, ResourceInput{ResourceID: "r1", AppliedGeneration: 1})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if n := tries.Load(); n < 5 {
		t.Fatalf("b tried %d times within the minute; want it retried until the deadline", n)
	}
	if got := compensated.touched(); !got["a"] || got["b"] {
		t.Fatalf("compensated (site: touched) = %v; want a touched, b (which only waited) untouched", got)
	}
	if len(records) != 2 || !strings.Contains(records[1].Reasons["b"], "not applied within the policy timeout of 1m0s: Waiting: dependsOn[0]") {
		t.Fatalf("rollback records %+v", records)
	}
}
