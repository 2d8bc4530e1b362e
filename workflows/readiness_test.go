package workflows

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/testsuite"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/activities"
)

// readinessLog is what a mocked AwaitReadiness was asked, in order.
type readinessLog struct {
	mu    sync.Mutex
	calls []activities.ReadinessInput
}

func (l *readinessLog) all() []activities.ReadinessInput {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls)
}

// onReadiness mocks AwaitReadiness with settle, called for each site, and logs the calls.
func onReadiness(env *testsuite.TestWorkflowEnvironment, settle func(site string) activities.SiteOutcome) *readinessLog {
	l := &readinessLog{}
	env.OnActivity(a.AwaitReadiness, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.ReadinessInput) (activities.ReadinessOutput, error) {
			l.mu.Lock()
			l.calls = append(l.calls, in)
			l.mu.Unlock()
			var out activities.ReadinessOutput
			for _, site := range in.Sites {
				out.Sites = append(out.Sites, settle(site))
			}
			return out, nil
		})
	return l
}

// awaitingWave answers a wave: the sites of awaiting took the generation and wait for their status.
func awaitingWave(awaiting ...string) func(in activities.WaveInput, site string) activities.SiteOutcome {
	return func(in activities.WaveInput, site string) activities.SiteOutcome {
		return activities.SiteOutcome{Site: site, Generation: in.Generation, Awaiting: slices.Contains(awaiting, site)}
	}
}

// In eventual mode, the sites a wave reports as awaiting their status are waited for, in one
// AwaitReadiness; a site that does not become Ready is a rejection of the generation, and the
// generation is not committed.
func TestEventualWaitsForReadiness(t *testing.T) {
	env := newEnv(t)
	plan := cheops.Plan{Exists: true, Generation: 3, MaxParallel: 10, ReadyTimeout: time.Minute,
		Sites: []string{"a", "b", "c"}, Apply: []string{"a", "b", "c"}}
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(plan, nil).Once()
	onWave(env, awaitingWave("b", "c"))
	waits := onReadiness(env, func(site string) activities.SiteOutcome {
		if site == "c" {
			return activities.SiteOutcome{Site: site, Class: cheops.Permanent, Message: "not Ready within the policy's readyTimeout of 1m0s"}
		}
		return activities.SiteOutcome{Site: site}
	})
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(cheops.Plan{}, nil).Once()
	var st Status
	env.RegisterDelayedCallback(func() { st = queryStatus(t, env) }, 2*time.Minute)
	env.ExecuteWorkflow(ResourceWorkflow, ResourceInput{ResourceID: "r1"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	calls := waits.all()
	if len(calls) != 1 || !slices.Equal(calls[0].Sites, []string{"b", "c"}) || calls[0].Generation != 3 || !calls[0].Until.IsZero() {
		t.Fatalf("AwaitReadiness calls %+v; want one for b and c, generation 3, no deadline", calls)
	}
	if !slices.Equal(st.Failed, []string{"c"}) || !slices.Equal(st.Rejected, []string{"c"}) {
		t.Fatalf("status Failed %v, Rejected %v; want [c]", st.Failed, st.Rejected)
	}
	// CommitGeneration has no mock: a commit would fail the test.
}

// Once every awaited site is Ready, the generation is committed.
func TestEventualCommitsOnceReady(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(
		cheops.Plan{Exists: true, Generation: 1, MaxParallel: 10, Sites: []string{"a"}, Apply: []string{"a"}}, nil).Once()
	onWave(env, awaitingWave("a"))
	onReadiness(env, func(site string) activities.SiteOutcome { return activities.SiteOutcome{Site: site} })
	env.OnActivity(a.CommitGeneration, mock.Anything, mock.Anything).Return(nil).Once()
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(cheops.Plan{}, nil).Once()
	env.ExecuteWorkflow(ResourceWorkflow, ResourceInput{ResourceID: "r1"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
}

// A new generation declared while a readiness wait runs cuts it short: the next round plans the
// new generation at once, rather than after the wait.
func TestReadinessWaitIsCutShortByANewGeneration(t *testing.T) {
	env := newEnv(t)
	plan := cheops.Plan{Exists: true, Generation: 1, MaxParallel: 10, ReadyTimeout: 5 * time.Minute, Sites: []string{"a"}, Apply: []string{"a"}}
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(plan, nil).Once()
	next := plan
	next.Generation = 2
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(next, nil).Once()
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(cheops.Plan{}, nil).Once()
	var waveAt []time.Time
	waves := onWave(env, func(in activities.WaveInput, site string) activities.SiteOutcome {
		waveAt = append(waveAt, env.Now())
		return awaitingWave("a")(in, site)
	})
	var mu sync.Mutex
	var generations []int64
	env.OnActivity(a.AwaitReadiness, mock.Anything, mock.Anything).Return(
		func(ctx context.Context, in activities.ReadinessInput) (activities.ReadinessOutput, error) {
			mu.Lock()
			generations = append(generations, in.Generation)
			mu.Unlock()
			return activities.ReadinessOutput{Sites: []activities.SiteOutcome{{Site: "a"}}}, nil
		}).After(4 * time.Minute)
	env.OnActivity(a.CommitGeneration, mock.Anything, mock.Anything).Return(nil).Maybe()
	var signalledAt time.Time
	env.RegisterDelayedCallback(func() {
		signalledAt = env.Now()
		env.SignalWorkflow(SignalApply, ApplyRequest{Generation: 2})
	}, 30*time.Second)
	env.ExecuteWorkflow(ResourceWorkflow, ResourceInput{ResourceID: "r1"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	w := waves.all()
	if len(w) != 2 || w[1].Generation != 2 {
		t.Fatalf("waves %+v; want generation 1 then 2", w)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(generations, []int64{1, 2}) {
		t.Fatalf("readiness waits for generations %v; want 1 then 2", generations)
	}
	if d := waveAt[1].Sub(signalledAt); d < 0 || d > time.Minute {
		t.Fatalf("generation 2 was applied %s after the signal; want at once, not after the first wait's 4 minutes", d)
	}
}

// A transactional generation waits for readiness within its deadline; a site that does not become
// Ready rolls every site back, the touched ones put back.
func TestTransactionalRollsBackWhenASiteIsNotReady(t *testing.T) {
	env := newEnv(t)
	plan := cheops.Plan{Exists: true, Generation: 2, Consistency: cheops.Transactional, MaxParallel: 3,
		Timeout: time.Minute, ReadyTimeout: 5 * time.Minute, Sites: []string{"a", "b"}, Apply: []string{"a", "b"}}
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(plan, nil).Once()
	onWave(env, awaitingWave("a", "b"))
	waits := onReadiness(env, func(site string) activities.SiteOutcome {
		if site == "b" {
			return activities.SiteOutcome{Site: site, Class: cheops.Permanent, Message: "its status says it failed: ProgressDeadlineExceeded"}
		}
		return activities.SiteOutcome{Site: site}
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
	calls := waits.all()
	if len(calls) != 1 || calls[0].Until.IsZero() {
		t.Fatalf("AwaitReadiness calls %+v; want one, bounded by the generation's deadline", calls)
	}
	if got := compensated.touched(); !got["a"] || !got["b"] {
		t.Fatalf("compensated (site: touched) = %v; want both touched", got)
	}
	if len(records) != 2 || records[1].Reasons["b"] != "its status says it failed: ProgressDeadlineExceeded" {
		t.Fatalf("rollback records %+v", records)
	}
}
