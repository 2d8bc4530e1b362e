package workflows

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/activities"
)

// deleteLog is what a mocked DeleteWave was asked, in order, and when.
type deleteLog struct {
	mu    sync.Mutex
	waves []activities.DeleteWaveInput
	at    []time.Time
}

func (l *deleteLog) all() ([]activities.DeleteWaveInput, []time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.waves), slices.Clone(l.at)
}

// onDeleteWave mocks DeleteWave with remove, called for each site of each wave, and logs the waves.
func onDeleteWave(env *testsuite.TestWorkflowEnvironment, remove func(in activities.DeleteWaveInput, site string) activities.DeleteOutcome) *deleteLog {
	l := &deleteLog{}
	env.OnActivity(a.DeleteWave, mock.Anything, mock.Anything).Return(
		func(_ context.Context, in activities.DeleteWaveInput) (activities.DeleteWaveOutput, error) {
			l.mu.Lock()
			l.waves = append(l.waves, in)
			l.at = append(l.at, env.Now())
			l.mu.Unlock()
			var out activities.DeleteWaveOutput
			for _, site := range in.Sites {
				out.Sites = append(out.Sites, remove(in, site))
			}
			return out, nil
		})
	return l
}

func waveSizes(waves []activities.DeleteWaveInput) []int {
	var sizes []int
	for _, w := range waves {
		sizes = append(sizes, len(w.Sites))
	}
	return sizes
}

// A deletion of 250 replicas runs three waves (100, 100, 50), in order, then forgets the resource.
func TestDeleteRemovesInWaves(t *testing.T) {
	env := newEnv(t)
	sites := siteNames(250)
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(
		cheops.Plan{Exists: true, Deleting: true, MaxParallel: 20, Remove: sites}, nil).Once()
	waves := onDeleteWave(env, func(_ activities.DeleteWaveInput, site string) activities.DeleteOutcome {
		return activities.DeleteOutcome{Site: site}
	})
	env.OnActivity(a.ForgetResource, mock.Anything, "r1").Return(nil).Once()
	env.ExecuteWorkflow(ResourceWorkflow, ResourceInput{ResourceID: "r1"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	got, _ := waves.all()
	if sizes := waveSizes(got); !slices.Equal(sizes, []int{100, 100, 50}) {
		t.Fatalf("wave sizes %v, want [100 100 50]", sizes)
	}
	if !slices.Equal(got[0].Sites, sites[:100]) || !slices.Equal(got[1].Sites, sites[100:200]) || !slices.Equal(got[2].Sites, sites[200:]) {
		t.Fatal("the waves do not split the sites in order")
	}
	for _, w := range got {
		if w.ResourceID != "r1" || w.MaxParallel != 20 || w.Orphan {
			t.Errorf("wave input %+v", w)
		}
	}
}

// A site that is unreachable is tried again, alone, with a growing backoff capped at a minute,
// until it comes back; the others are removed once. The resource is forgotten only after that.
func TestDeleteRetriesAnUnreachableSiteUntilItComesBack(t *testing.T) {
	env := newEnv(t)
	sites := siteNames(5)
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(
		cheops.Plan{Exists: true, Deleting: true, MaxParallel: 5, Remove: sites}, nil).Once()
	var mu sync.Mutex
	tries := map[string]int{}
	down := 10 // site-0003 is unreachable for its first 10 tries
	var gone time.Time
	waves := onDeleteWave(env, func(_ activities.DeleteWaveInput, site string) activities.DeleteOutcome {
		mu.Lock()
		defer mu.Unlock()
		tries[site]++
		if site == "site-0003" && tries[site] <= down {
			return activities.DeleteOutcome{Site: site, Class: cheops.Unreachable, Message: "dial tcp: connection refused"}
		}
		if site == "site-0003" {
			gone = env.Now()
		}
		return activities.DeleteOutcome{Site: site}
	})
	var forgotten time.Time
	env.OnActivity(a.ForgetResource, mock.Anything, "r1").Return(func(context.Context, string) error {
		forgotten = env.Now()
		return nil
	}).Once()
	env.ExecuteWorkflow(ResourceWorkflow, ResourceInput{ResourceID: "r1"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	for _, site := range sites {
		want := 1
		if site == "site-0003" {
			want = down + 1
		}
		if tries[site] != want {
			t.Errorf("%s tried %d times, want %d", site, tries[site], want)
		}
	}
	got, at := waves.all()
	for _, w := range got[1:] {
		if !slices.Equal(w.Sites, []string{"site-0003"}) {
			t.Fatalf("retry wave %v, want site-0003 alone", w.Sites)
		}
	}
	// Waits of 1, 2, 4, 8, 16, 32 s, then a minute each.
	wantWaits := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60, 60, 60}
	for i, w := range wantWaits {
		if d := at[i+1].Sub(at[i]); d != w*time.Second {
			t.Errorf("wait before try %d = %s, want %s", i+2, d, w*time.Second)
		}
	}
	if forgotten.IsZero() || forgotten.Before(gone) {
		t.Fatalf("forgotten at %s, last replica gone at %s", forgotten, gone)
	}
}

// A delete waiting for an unreachable site tries it again as soon as a site's health changes,
// not after the rest of its backoff.
func TestDeleteRetriesAtOnceWhenASiteComesBack(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(
		cheops.Plan{Exists: true, Deleting: true, MaxParallel: 5, Remove: []string{"down"}}, nil).Once()
	var mu sync.Mutex
	back := false
	waves := onDeleteWave(env, func(_ activities.DeleteWaveInput, site string) activities.DeleteOutcome {
		mu.Lock()
		defer mu.Unlock()
		if !back {
			return activities.DeleteOutcome{Site: site, Class: cheops.Unreachable, Message: "dial tcp: connection refused"}
		}
		return activities.DeleteOutcome{Site: site}
	})
	env.OnActivity(a.ForgetResource, mock.Anything, "r1").Return(nil).Once()
	// Down for 100 s: the backoff by then is a minute long. It comes back, and the probe says so.
	var cameBack time.Time
	env.RegisterDelayedCallback(func() {
		mu.Lock()
		back, cameBack = true, env.Now()
		mu.Unlock()
		env.SignalWorkflow(SignalSiteHealth, SiteHealthChange{Site: "down", Health: cheops.SiteReady})
	}, 100*time.Second)
	env.ExecuteWorkflow(ResourceWorkflow, ResourceInput{ResourceID: "r1"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	_, at := waves.all()
	if d := at[len(at)-1].Sub(cameBack); d < 0 || d > time.Second {
		t.Fatalf("the last try came %s after the site came back; want at once", d)
	}
}

// An orphan deletion asks the waves to orphan.
func TestDeleteOrphansInWaves(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(
		cheops.Plan{Exists: true, Deleting: true, Orphan: true, MaxParallel: 2, Remove: []string{"a", "b", "c"}}, nil).Once()
	waves := onDeleteWave(env, func(_ activities.DeleteWaveInput, site string) activities.DeleteOutcome {
		return activities.DeleteOutcome{Site: site}
	})
	env.OnActivity(a.ForgetResource, mock.Anything, "r1").Return(nil).Once()
	env.ExecuteWorkflow(ResourceWorkflow, ResourceInput{ResourceID: "r1"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	got, _ := waves.all()
	if len(got) != 1 || !got[0].Orphan || !slices.Equal(got[0].Sites, []string{"a", "b", "c"}) || got[0].MaxParallel != 2 {
		t.Fatalf("waves %+v, want one orphaning wave of a, b, c", got)
	}
}

// A site that rejects the deletion is not tried again, and the resource is not forgotten: the
// workflow fails with the site's error, as it did with one DeleteReplica per site.
func TestDeleteStopsOnAPermanentFailure(t *testing.T) {
	env := newEnv(t)
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(
		cheops.Plan{Exists: true, Deleting: true, MaxParallel: 2, Remove: []string{"a", "b"}}, nil).Once()
	waves := onDeleteWave(env, func(_ activities.DeleteWaveInput, site string) activities.DeleteOutcome {
		if site == "b" {
			return activities.DeleteOutcome{Site: site, Class: cheops.Permanent, Message: "forbidden"}
		}
		return activities.DeleteOutcome{Site: site}
	})
	// ForgetResource has no mock: calling it fails the test.
	env.ExecuteWorkflow(ResourceWorkflow, ResourceInput{ResourceID: "r1"})
	err := env.GetWorkflowError()
	if err == nil || !strings.Contains(err.Error(), "site b") || !strings.Contains(err.Error(), "forbidden") {
		t.Fatalf("workflow ended with %v, want site b's failure", err)
	}
	if got, _ := waves.all(); len(got) != 1 {
		t.Fatalf("%d waves, want 1", len(got))
	}
}

// A deletion whose site stays down while the history grows continues as new, without forgetting
// the resource: the next run deletes what is left.
func TestDeleteContinuesAsNewWhenASiteStaysDown(t *testing.T) {
	env := newEnv(t)
	env.SetCurrentHistoryLength(historyLimit + 1)
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(
		cheops.Plan{Exists: true, Deleting: true, MaxParallel: 2, Remove: []string{"a", "b"}}, nil).Once()
	waves := onDeleteWave(env, func(_ activities.DeleteWaveInput, site string) activities.DeleteOutcome {
		if site == "b" {
			return activities.DeleteOutcome{Site: site, Class: cheops.Unreachable, Message: "no route to host"}
		}
		return activities.DeleteOutcome{Site: site}
	})
	env.ExecuteWorkflow(ResourceWorkflow, ResourceInput{ResourceID: "r1"})
	var can *workflow.ContinueAsNewError
	if err := env.GetWorkflowError(); !errors.As(err, &can) {
		t.Fatalf("workflow ended with %v, want Continue-As-New", err)
	}
	if got, _ := waves.all(); len(got) != 1 {
		t.Fatalf("%d waves, want 1", len(got))
	}
}

// Replicas that left the scope are removed in waves with the budget their DeleteReplica had: a
// transient failure three tries, an unreachable site one, both retried in a later round.
func TestConvergeRemovesOutOfScopeInWaves(t *testing.T) {
	env := newEnv(t)
	plan := cheops.Plan{Exists: true, Generation: 1, MaxParallel: 5, RetryInitial: time.Minute, RetryMax: time.Minute,
		Sites: []string{"a"}, Apply: []string{"a"}, Remove: []string{"gone", "flaky", "down"}}
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(plan, nil).Once()
	onWave(env, func(in activities.WaveInput, site string) activities.SiteOutcome {
		return activities.SiteOutcome{Site: site, Generation: in.Generation}
	})
	var mu sync.Mutex
	tries := map[string]int{}
	waves := onDeleteWave(env, func(_ activities.DeleteWaveInput, site string) activities.DeleteOutcome {
		mu.Lock()
		defer mu.Unlock()
		tries[site]++
		switch site {
		case "flaky":
			return activities.DeleteOutcome{Site: site, Class: cheops.Transient, Message: "etcdserver: request timed out"}
		case "down":
			return activities.DeleteOutcome{Site: site, Class: cheops.Unreachable, Message: "no route to host"}
		}
		return activities.DeleteOutcome{Site: site}
	})
	// Not committed: a replica is left to remove. The next round plans nothing more.
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(cheops.Plan{}, nil).Once()
	env.ExecuteWorkflow(ResourceWorkflow, ResourceInput{ResourceID: "r1"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	if tries["gone"] != 1 || tries["flaky"] != 3 || tries["down"] != 1 {
		t.Fatalf("tries = %v, want gone 1, flaky 3, down 1", tries)
	}
	got, at := waves.all()
	if sizes := waveSizes(got); !slices.Equal(sizes, []int{3, 1, 1}) {
		t.Fatalf("wave sizes %v, want [3 1 1]", sizes)
	}
	if at[1].Sub(at[0]) != time.Second || at[2].Sub(at[1]) != 2*time.Second {
		t.Fatalf("waits %s, %s, want 1s, 2s", at[1].Sub(at[0]), at[2].Sub(at[1]))
	}
}
