package workflows

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/activities"
)

// waveLog is what a mocked ApplyWave was asked, in order.
type waveLog struct {
	mu    sync.Mutex
	waves []activities.WaveInput
}

func (l *waveLog) all() []activities.WaveInput {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.waves)
}

// onWave mocks ApplyWave with apply, called for each site of each wave, and logs the waves.
func onWave(env *testsuite.TestWorkflowEnvironment, apply func(in activities.WaveInput, site string) activities.SiteOutcome) *waveLog {
	l := &waveLog{}
	env.OnActivity(a.ApplyWave, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.WaveInput) (activities.WaveOutput, error) {
			l.mu.Lock()
			l.waves = append(l.waves, in)
			l.mu.Unlock()
			var out activities.WaveOutput
			for _, site := range in.Sites {
				out.Sites = append(out.Sites, apply(in, site))
			}
			return out, nil
		})
	return l
}

func queryStatus(t *testing.T, env *testsuite.TestWorkflowEnvironment) Status {
	t.Helper()
	var st Status
	v, err := env.QueryWorkflow(QueryStatus)
	if err == nil {
		err = v.Get(&st)
	}
	if err != nil {
		t.Error(err)
	}
	return st
}

func siteNames(n int) []string {
	sites := make([]string, n)
	for i := range sites {
		sites[i] = fmt.Sprintf("site-%04d", i)
	}
	return sites
}

// 250 sites are applied in three waves (100, 100, 50); the one site that failed transiently is
// tried again, alone, as attempt 2, after the first backoff.
func TestWavesRetryOnlyTheFailedSites(t *testing.T) {
	env := newEnv(t)
	sites := siteNames(250)
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(
		cheops.Plan{Exists: true, Generation: 4, MaxParallel: 20, Sites: sites, Apply: sites}, nil).Once()
	var sleptAt time.Time
	waves := onWave(env, func(in activities.WaveInput, site string) activities.SiteOutcome {
		if site == "site-0142" && in.Attempt == 1 {
			sleptAt = env.Now()
			return activities.SiteOutcome{Site: site, Class: cheops.Transient, Message: "etcdserver: leader changed"}
		}
		return activities.SiteOutcome{Site: site, Generation: in.Generation, LocalID: "uid-" + site}
	})
	env.OnActivity(a.CommitGeneration, mock.Anything, activities.CommitInput{ResourceID: "r1", Generation: 4, Sites: sites}).Return(nil).Once()
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(cheops.Plan{}, nil).Once()
	var retriedAt time.Time
	env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, args converter.EncodedValues) {
		var in activities.WaveInput
		if info.ActivityType.Name == "ApplyWave" && args.Get(&in) == nil && in.Attempt == 2 {
			retriedAt = env.Now()
		}
	})
	env.ExecuteWorkflow(ResourceWorkflow, ResourceInput{ResourceID: "r1"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	got := waves.all()
	var sizes []int
	for _, w := range got {
		sizes = append(sizes, len(w.Sites))
		if w.Generation != 4 || w.MaxParallel != 20 || w.ResourceID != "r1" {
			t.Errorf("wave input %+v", w)
		}
	}
	if !slices.Equal(sizes, []int{100, 100, 50, 1}) {
		t.Fatalf("wave sizes %v, want [100 100 50 1]", sizes)
	}
	if last := got[3]; !slices.Equal(last.Sites, []string{"site-0142"}) || last.Attempt != 2 {
		t.Fatalf("second attempt = %+v, want site-0142 alone as attempt 2", last)
	}
	if !slices.Equal(got[0].Sites, sites[:100]) || !slices.Equal(got[2].Sites, sites[200:]) || got[0].Attempt != 1 {
		t.Fatalf("first waves do not split the plan in order")
	}
	if d := retriedAt.Sub(sleptAt); d < applyBackoff {
		t.Fatalf("retried %s after the failure, want a backoff of at least %s", d, applyBackoff)
	}
}

// A site that keeps failing transiently is tried applyAttempts times in the round, numbered, with
// waits of 1, 2, 4, 8 s; then it is marked Failed with its last message and retried in a later
// round. The other site is not tried again.
func TestTransientFailureUsesItsBudgetThenIsMarkedFailed(t *testing.T) {
	env := newEnv(t)
	plan := cheops.Plan{Exists: true, Generation: 1, MaxParallel: 5, RetryInitial: time.Minute, RetryMax: time.Minute,
		Sites: []string{"ok", "flaky"}, Apply: []string{"ok", "flaky"}}
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(plan, nil).Once()
	start := env.Now()
	var mu sync.Mutex
	var at []time.Duration
	waves := onWave(env, func(in activities.WaveInput, site string) activities.SiteOutcome {
		if site == "flaky" {
			mu.Lock()
			at = append(at, env.Now().Sub(start))
			mu.Unlock()
			return activities.SiteOutcome{Site: site, Class: cheops.Transient, Message: fmt.Sprintf("timeout %d", in.Attempt)}
		}
		return activities.SiteOutcome{Site: site, Generation: 1}
	})
	env.OnActivity(a.MarkReplicaFailed, mock.Anything, activities.MarkInput{ResourceID: "r1", Site: "flaky", Message: "timeout 5"}).Return(nil).Once()
	var st Status
	env.RegisterDelayedCallback(func() { st = queryStatus(t, env) }, 30*time.Second)
	// The later round (after RetryInitial) finds the resource gone.
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(cheops.Plan{}, nil).Once()
	env.ExecuteWorkflow(ResourceWorkflow, ResourceInput{ResourceID: "r1"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var attempts []int
	for i, w := range waves.all() {
		attempts = append(attempts, w.Attempt)
		if i > 0 && !slices.Equal(w.Sites, []string{"flaky"}) {
			t.Errorf("attempt %d applied %v, want only the failed site", w.Attempt, w.Sites)
		}
	}
	if !slices.Equal(attempts, []int{1, 2, 3, 4, 5}) {
		t.Fatalf("attempts %v, want 1 to %d", attempts, applyAttempts)
	}
	if want := []time.Duration{0, time.Second, 3 * time.Second, 7 * time.Second, 15 * time.Second}; !slices.Equal(at, want) {
		t.Fatalf("flaky tried at %v, want %v", at, want)
	}
	if !slices.Equal(st.Failed, []string{"flaky"}) || len(st.Rejected) != 0 || st.NextRoundAt.Sub(start) != 15*time.Second+time.Minute {
		t.Fatalf("status = %+v; want flaky failed, not rejected, retried a minute after", st)
	}
}

// A wave that fails as a whole (its worker kept dying) counts as a transient failure of each of its
// sites: they are tried again as the next attempt.
func TestFailedWaveRetriesItsSites(t *testing.T) {
	env := newEnv(t)
	sites := []string{"a", "b"}
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(
		cheops.Plan{Exists: true, Generation: 1, MaxParallel: 2, Sites: sites, Apply: sites}, nil).Once()
	var inputs []activities.WaveInput
	env.OnActivity(a.ApplyWave, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.WaveInput) (activities.WaveOutput, error) {
			inputs = append(inputs, in)
			if in.Attempt == 1 {
				return activities.WaveOutput{}, temporal.NewApplicationError("etcd unavailable", "Transient")
			}
			return activities.WaveOutput{Sites: []activities.SiteOutcome{{Site: "a", Generation: 1}, {Site: "b", Generation: 1}}}, nil
		})
	env.OnActivity(a.CommitGeneration, mock.Anything, mock.Anything).Return(nil).Once()
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(cheops.Plan{}, nil).Once()
	env.ExecuteWorkflow(ResourceWorkflow, ResourceInput{ResourceID: "r1"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	// Attempt 1 is run three times by its retry policy (infrastructure failures), then attempt 2.
	if n := len(inputs); n != 4 || inputs[n-1].Attempt != 2 || !slices.Equal(inputs[n-1].Sites, sites) {
		t.Fatalf("wave inputs %+v; want attempt 1 three times, then attempt 2 of both sites", inputs)
	}
}

// What a round of 10 sites and one of 100 cost the workflow's history. The testsuite does not
// expose the history, so this counts the commands that make history events: activities, local
// activities and timers started. With waves the count does not grow with the number of sites; on
// the per-site path (DefaultVersion) it grows by one activity per site.
func TestHistoryDoesNotGrowWithSites(t *testing.T) {
	commands := func(t *testing.T, n int, perSite bool) (count, waves int) {
		env := newEnv(t)
		log := &waveLog{}
		if perSite {
			env.OnGetVersion("apply-waves", workflow.DefaultVersion, localCommit).Return(workflow.DefaultVersion)
			env.OnActivity(a.ApplyReplica, mock.Anything, mock.Anything).Return(activities.ApplyOutput{Generation: 1}, nil)
		} else {
			log = onWave(env, func(in activities.WaveInput, site string) activities.SiteOutcome {
				return activities.SiteOutcome{Site: site, Generation: 1}
			})
		}
		sites := siteNames(n)
		env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(
			cheops.Plan{Exists: true, Generation: 1, MaxParallel: 10, Sites: sites, Apply: sites}, nil).Once()
		env.OnActivity(a.CommitGeneration, mock.Anything, mock.Anything).Return(nil).Once()
		env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(cheops.Plan{}, nil).Once()
		env.SetOnActivityStartedListener(func(*activity.Info, context.Context, converter.EncodedValues) { count++ })
		env.SetOnLocalActivityStartedListener(func(*activity.Info, context.Context, []any) { count++ })
		env.SetOnTimerScheduledListener(func(string, time.Duration) { count++ })
		env.ExecuteWorkflow(ResourceWorkflow, ResourceInput{ResourceID: "r1"})
		if err := env.GetWorkflowError(); err != nil {
			t.Fatal(err)
		}
		return count, len(log.all())
	}
	c10, w10 := commands(t, 10, false)
	c100, w100 := commands(t, 100, false)
	c101, w101 := commands(t, 101, false)
	old10, _ := commands(t, 10, true)
	old100, _ := commands(t, 100, true)
	t.Logf("commands per round: waves %d (10 sites), %d (100), %d (101); per site %d (10), %d (100)", c10, c100, c101, old10, old100)
	if w10 != 1 || w100 != 1 || w101 != 2 {
		t.Fatalf("ApplyWave calls: %d for 10 sites, %d for 100, %d for 101; want 1, 1, 2", w10, w100, w101)
	}
	if c10 != c100 || c101 != c100+1 {
		t.Fatalf("commands: %d for 10 sites, %d for 100, %d for 101; want equal, then one more wave", c10, c100, c101)
	}
	if old100-old10 != 90 {
		t.Fatalf("per-site path: %d commands for 10 sites, %d for 100; want one more per site", old10, old100)
	}
}

// From version localCommit, a generation's commit is a local activity (one marker in the history);
// a run that recorded version 1 of apply-waves keeps committing with an activity.
func TestCommitIsALocalActivityFromItsVersion(t *testing.T) {
	for _, c := range []struct {
		version workflow.Version
		local   bool
	}{{localCommit, true}, {1, false}} {
		env := newEnv(t)
		env.OnGetVersion("apply-waves", workflow.DefaultVersion, localCommit).Return(c.version)
		onWave(env, func(in activities.WaveInput, site string) activities.SiteOutcome {
			return activities.SiteOutcome{Site: site, Generation: 1}
		})
		env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(
			cheops.Plan{Exists: true, Generation: 1, MaxParallel: 10, Sites: []string{"a"}, Apply: []string{"a"}}, nil).Once()
		env.OnActivity(a.CommitGeneration, mock.Anything, mock.Anything).Return(nil).Once()
		env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(cheops.Plan{}, nil).Once()
		var locals, remotes []string
		env.SetOnActivityStartedListener(func(info *activity.Info, _ context.Context, _ converter.EncodedValues) {
			remotes = append(remotes, info.ActivityType.Name)
		})
		env.SetOnLocalActivityStartedListener(func(info *activity.Info, _ context.Context, _ []any) {
			locals = append(locals, info.ActivityType.Name)
		})
		env.ExecuteWorkflow(ResourceWorkflow, ResourceInput{ResourceID: "r1"})
		if err := env.GetWorkflowError(); err != nil {
			t.Fatal(err)
		}
		if got := slices.Contains(locals, "CommitGeneration"); got != c.local || slices.Contains(remotes, "CommitGeneration") == c.local {
			t.Fatalf("version %d: local activities %v, activities %v; want CommitGeneration local=%v", c.version, locals, remotes, c.local)
		}
	}
}
