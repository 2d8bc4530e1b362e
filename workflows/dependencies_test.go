package workflows

import (
	"context"
	"slices"
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
