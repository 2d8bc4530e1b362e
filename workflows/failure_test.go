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

// An unreachable site is parked after one attempt and retried in later rounds with a backoff that
// doubles up to the policy's cap; a site-health signal retries it at once.
func TestUnreachableSiteBacksOffUntilItsHealthChanges(t *testing.T) {
	env := newEnv(t)
	plan := cheops.Plan{Exists: true, Generation: 1, Consistency: cheops.Eventual, MaxParallel: 2,
		RetryInitial: 10 * time.Second, RetryMax: 40 * time.Second, Sites: []string{"a", "down"}}
	var mu sync.Mutex
	var rounds []time.Duration
	var attempts int
	start := env.Now()
	up := false
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(func(context.Context, activities.PlanInput) (cheops.Plan, error) {
		mu.Lock()
		defer mu.Unlock()
		rounds = append(rounds, env.Now().Sub(start))
		if len(rounds) == 7 {
			return cheops.Plan{}, nil // resource gone: end the test
		}
		p := plan
		p.Apply = []string{"down"}
		if len(rounds) == 1 {
			p.Apply = []string{"a", "down"}
		}
		return p, nil
	})
	onWave(env, func(_ activities.WaveInput, site string) activities.SiteOutcome {
		mu.Lock()
		defer mu.Unlock()
		if site == "down" {
			attempts++
			if !up {
				return activities.SiteOutcome{Site: site, Class: cheops.Unreachable, Message: "connection refused"}
			}
		}
		return activities.SiteOutcome{Site: site, Generation: 1}
	})
	env.OnActivity(a.CommitGeneration, mock.Anything, mock.Anything).Return(nil).Once()
	// After four rounds (0, 10, 30, 70 s: waits of 10, 20, 40) the site comes back and says so.
	env.RegisterDelayedCallback(func() {
		mu.Lock()
		up = true
		mu.Unlock()
		env.SignalWorkflow(SignalSiteHealth, SiteHealthChange{Site: "down", Health: cheops.SiteReady})
	}, 80*time.Second)
	env.ExecuteWorkflow(ResourceWorkflow, ResourceInput{ResourceID: "r1"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{0, 10 * time.Second, 30 * time.Second, 70 * time.Second, 80 * time.Second}
	if len(rounds) < len(want) || !slices.Equal(rounds[:len(want)], want) {
		t.Fatalf("rounds at %v, want %v then resyncs", rounds, want)
	}
	if attempts != len(rounds)-1 {
		t.Fatalf("%d attempts on the down site in %d rounds, want one per round: none retried inside a round", attempts, len(rounds)-1)
	}
}

// A transactional generation that one site rejects is compensated on every site: the site that
// took it is restored, and so is one that timed out once before turning unreachable (it may have
// taken it); the site that rejected it, and the one never reached, only have their records put
// back; the rollback is recorded, and nothing is committed or removed.
func TestTransactionalRejectionRollsEverySiteBack(t *testing.T) {
	env := newEnv(t)
	plan := cheops.Plan{Exists: true, Generation: 2, Consistency: cheops.Transactional, MaxParallel: 3,
		Timeout: time.Minute, Sites: []string{"a", "b", "c", "d"}, Apply: []string{"a", "b", "c", "d"}, Remove: []string{"old"}}
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(plan, nil).Once()
	var attemptsB, attemptsC int
	waves := onWave(env, func(in activities.WaveInput, site string) activities.SiteOutcome {
		switch site {
		case "b":
			attemptsB++
			return activities.SiteOutcome{Site: site, Class: cheops.Permanent, Message: "no matches for kind Widget"}
		case "c":
			attemptsC++
			return activities.SiteOutcome{Site: site, Class: cheops.Unreachable, Message: "connection refused"}
		case "d":
			// Timed out once (it may have taken it), unreachable since.
			if in.Attempt == 1 {
				return activities.SiteOutcome{Site: site, Class: cheops.Transient, Message: "i/o timeout"}
			}
			return activities.SiteOutcome{Site: site, Class: cheops.Unreachable, Message: "connection refused"}
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
	rolledBack.RolledBack, rolledBack.Apply, rolledBack.Remove = true, nil, nil
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(rolledBack, nil).Once()
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(cheops.Plan{}, nil).Once()
	env.ExecuteWorkflow(ResourceWorkflow, ResourceInput{ResourceID: "r1", AppliedGeneration: 1})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	// c is unreachable: retried within the timeout, each try given no more than what is left of
	// it. b is rejected: once.
	if attemptsB != 1 || attemptsC < 3 {
		t.Fatalf("site b tried %d times, want 1; site c %d times, want several within the timeout", attemptsB, attemptsC)
	}
	for _, w := range waves.all() {
		if w.SiteTimeout <= 0 || w.SiteTimeout > time.Minute {
			t.Fatalf("a wave gave each site %s, want at most the policy timeout of 1m", w.SiteTimeout)
		}
	}
	want := map[string]bool{"a": true, "b": false, "c": false, "d": true}
	if got := compensated.touched(); len(got) != 4 || !got["a"] || got["b"] || got["c"] || !got["d"] {
		t.Fatalf("compensated (site: touched) = %v, want %v", got, want)
	}
	if len(records) != 2 || records[0].Done || !records[1].Done || records[1].Reasons["b"] != "no matches for kind Widget" ||
		records[1].Reasons["a"] != "" || records[1].Reasons["c"] != "not applied within the policy timeout of 1m0s: connection refused" {
		t.Fatalf("rollback records = %+v", records)
	}
	// DeleteWave and CommitGeneration have no mock: calling either fails the test.
}

// A transactional generation every site takes removes replicas that left the scope, then commits.
func TestTransactionalSuccessRemovesThenCommits(t *testing.T) {
	env := newEnv(t)
	plan := cheops.Plan{Exists: true, Generation: 1, Consistency: cheops.Transactional, MaxParallel: 3,
		Timeout: time.Minute, Sites: []string{"a", "b"}, Apply: []string{"a", "b"}, Remove: []string{"old"}}
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(plan, nil).Once()
	onWave(env, func(in activities.WaveInput, site string) activities.SiteOutcome {
		return activities.SiteOutcome{Site: site, Generation: 1}
	})
	var order []string
	env.OnActivity(a.DeleteWave, mock.Anything, activities.DeleteWaveInput{ResourceID: "r1", Sites: []string{"old"}, MaxParallel: 3}).Return(
		func(context.Context, activities.DeleteWaveInput) (activities.DeleteWaveOutput, error) {
			order = append(order, "remove")
			return activities.DeleteWaveOutput{Sites: []activities.DeleteOutcome{{Site: "old"}}}, nil
		}).Once()
	env.OnActivity(a.CommitGeneration, mock.Anything, activities.CommitInput{ResourceID: "r1", Generation: 1, Sites: []string{"a", "b"}}).Return(func(context.Context, activities.CommitInput) error {
		order = append(order, "commit")
		return nil
	}).Once()
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(cheops.Plan{}, nil).Once()
	env.ExecuteWorkflow(ResourceWorkflow, ResourceInput{ResourceID: "r1"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(order, []string{"remove", "commit"}) {
		t.Fatalf("order = %v, want remove then commit", order)
	}
}

// Pause is recorded and stops applying; an update while paused applies nothing; resume applies it.
func TestPauseUpdateResume(t *testing.T) {
	env := newEnv(t)
	var mu sync.Mutex
	paused, generation := false, int64(1)
	var applied []int64
	env.OnActivity(a.SetPaused, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.PauseInput) error {
		mu.Lock()
		defer mu.Unlock()
		paused = in.Paused
		return nil
	}).Twice()
	plans := 0
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(func(context.Context, activities.PlanInput) (cheops.Plan, error) {
		mu.Lock()
		defer mu.Unlock()
		plans++
		if len(applied) == 2 {
			return cheops.Plan{}, nil
		}
		return cheops.Plan{Exists: true, Generation: generation, Consistency: cheops.Eventual, Paused: paused,
			MaxParallel: 1, Sites: []string{"a"}, Apply: []string{"a"}}, nil
	})
	onWave(env, func(in activities.WaveInput, site string) activities.SiteOutcome {
		mu.Lock()
		defer mu.Unlock()
		applied = append(applied, in.Generation)
		return activities.SiteOutcome{Site: site, Generation: in.Generation}
	})
	env.OnActivity(a.CommitGeneration, mock.Anything, mock.Anything).Return(nil)
	var appliedWhilePaused []int64
	env.RegisterDelayedCallback(func() { env.SignalWorkflow(SignalPause, nil) }, time.Minute)
	env.RegisterDelayedCallback(func() {
		mu.Lock()
		generation = 2
		mu.Unlock()
		env.SignalWorkflow(SignalReconcile, nil)
	}, 2*time.Minute)
	env.RegisterDelayedCallback(func() {
		mu.Lock()
		appliedWhilePaused = slices.Clone(applied)
		mu.Unlock()
		env.SignalWorkflow(SignalResume, nil)
	}, 3*time.Minute)
	env.ExecuteWorkflow(ResourceWorkflow, ResourceInput{ResourceID: "r1"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(appliedWhilePaused, []int64{1}) || !slices.Equal(applied, []int64{1, 2}) {
		t.Fatalf("applied %v before resume and %v in all; want [1] then [1 2]", appliedWhilePaused, applied)
	}
}

func TestBackoffIsCapped(t *testing.T) {
	var got []time.Duration
	for n := 1; n <= 6; n++ {
		got = append(got, backoff(5*time.Second, 30*time.Second, n))
	}
	want := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 30 * time.Second, 30 * time.Second, 30 * time.Second}
	if !slices.Equal(got, want) {
		t.Fatalf("backoff = %v, want %v", got, want)
	}
}

// A rollback recorded as started but not done (its run was ended midway) is finished by the next
// run, on every site holding a replica, as sites whose outcome is unknown.
func TestUnfinishedRollbackIsFinished(t *testing.T) {
	env := newEnv(t)
	reasons := map[string]string{"b": "rejected"}
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(cheops.Plan{Exists: true, Generation: 2,
		Consistency: cheops.Transactional, MaxParallel: 2, RolledBack: true, Unfinished: []string{"a", "b"}, RollbackReasons: reasons}, nil).Once()
	compensated := onCompensateWave(env)
	env.OnActivity(a.RecordRollback, mock.Anything, activities.RollbackInput{ResourceID: "r1", Generation: 2, Reasons: reasons, Done: false}).Return(nil).Once()
	env.OnActivity(a.RecordRollback, mock.Anything, activities.RollbackInput{ResourceID: "r1", Generation: 2, Reasons: reasons, Done: true}).Return(nil).Once()
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(cheops.Plan{}, nil).Once()
	env.ExecuteWorkflow(ResourceWorkflow, ResourceInput{ResourceID: "r1"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if got := compensated.touched(); len(got) != 2 || !got["a"] || !got["b"] {
		t.Fatalf("compensations (site: touched) = %+v, want a and b, both as touched", got)
	}
}

// compensations is what a mocked CompensateWave was asked, in order.
type compensations struct {
	mu    sync.Mutex
	waves []activities.CompensateWaveInput
}

// touched says, for each site compensated, whether it was compensated as touched.
func (c *compensations) touched() map[string]bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]bool{}
	for _, w := range c.waves {
		for _, site := range w.Sites {
			out[site] = !slices.Contains(w.Untouched, site)
		}
	}
	return out
}

// onCompensateWave mocks CompensateWave: every site is brought back.
func onCompensateWave(env *testsuite.TestWorkflowEnvironment) *compensations {
	c := &compensations{}
	env.OnActivity(a.CompensateWave, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.CompensateWaveInput) (activities.CompensateWaveOutput, error) {
			c.mu.Lock()
			c.waves = append(c.waves, in)
			c.mu.Unlock()
			var out activities.CompensateWaveOutput
			for _, site := range in.Sites {
				out.Sites = append(out.Sites, activities.DeleteOutcome{Site: site})
			}
			return out, nil
		})
	return c
}
