package workflows

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/activities"
)

// A rollout in waves of 3 over 10 sites, with one failing site and maxFailures 1, stops after the
// failing wave: the later waves are not applied, the resource is paused with the reason, and
// nothing is committed. The waves are a soak apart.
func TestRolloutStopsAfterMaxFailures(t *testing.T) {
	env := newEnv(t)
	sites := siteNames(10)
	plan := cheops.Plan{Exists: true, Generation: 2, MaxParallel: 10, Sites: sites, Apply: sites,
		Waves: [][]string{sites[0:3], sites[3:6], sites[6:9], sites[9:]}, Soak: 30 * time.Second, MaxFailures: 1}
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(plan, nil).Once()
	var mu sync.Mutex
	var waveAt []time.Time
	waves := onWave(env, func(in activities.WaveInput, site string) activities.SiteOutcome {
		mu.Lock()
		if site == in.Sites[0] {
			waveAt = append(waveAt, env.Now())
		}
		mu.Unlock()
		if site == sites[4] {
			return activities.SiteOutcome{Site: site, Class: cheops.Permanent, Message: "admission webhook denied the request"}
		}
		return activities.SiteOutcome{Site: site, Generation: in.Generation}
	})
	var paused []activities.PauseInput
	env.OnActivity(a.SetPaused, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.PauseInput) error {
		paused = append(paused, in)
		return nil
	})
	stopped := plan
	stopped.Paused, stopped.Apply, stopped.Waves = true, nil, nil
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(stopped, nil).Once()
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(cheops.Plan{}, nil).Once()
	var st Status
	env.RegisterDelayedCallback(func() { st = queryStatus(t, env) }, 2*time.Minute)
	env.ExecuteWorkflow(ResourceWorkflow, ResourceInput{ResourceID: "r1", AppliedGeneration: 1})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var applied []string
	for _, w := range waves.all() {
		applied = append(applied, w.Sites...)
	}
	if !slices.Equal(applied, sites[:6]) {
		t.Fatalf("applied %v; want the first two waves only", applied)
	}
	if len(waveAt) != 2 || waveAt[1].Sub(waveAt[0]) < 30*time.Second {
		t.Fatalf("waves at %v; want two, 30s of soak apart", waveAt)
	}
	if len(paused) != 1 || !paused[0].Paused || !strings.Contains(paused[0].Reason, "rollout stopped after wave 2 of 4: 1 site(s) failed (maxFailures 1): site-0004: admission webhook denied the request") {
		t.Fatalf("paused %+v; want one pause with the reason", paused)
	}
	if !st.Paused {
		t.Fatalf("status %+v; want paused", st)
	}
	// CommitGeneration has no mock: a commit would fail the test.
}

// Without a failure, every wave is applied, in order, and the generation committed.
func TestRolloutAppliesEveryWave(t *testing.T) {
	env := newEnv(t)
	sites := siteNames(5)
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(cheops.Plan{Exists: true, Generation: 1, MaxParallel: 10,
		Sites: sites, Apply: sites, Waves: [][]string{sites[3:4], sites[0:3], sites[4:]}, MaxFailures: 1}, nil).Once()
	waves := onWave(env, func(in activities.WaveInput, site string) activities.SiteOutcome {
		return activities.SiteOutcome{Site: site, Generation: in.Generation}
	})
	env.OnActivity(a.CommitGeneration, mock.Anything, mock.Anything).Return(nil).Once()
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(cheops.Plan{}, nil).Once()
	env.ExecuteWorkflow(ResourceWorkflow, ResourceInput{ResourceID: "r1"})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	w := waves.all()
	if len(w) != 3 || !slices.Equal(w[0].Sites, sites[3:4]) || !slices.Equal(w[1].Sites, sites[0:3]) {
		t.Fatalf("waves %+v; want the plan's, in its order", w)
	}
}

// A transactional rollout stops at the first wave with a failed site and rolls back: the sites of
// earlier waves are put back, those of later waves were never reached and only their records go back.
func TestTransactionalRolloutRollsBack(t *testing.T) {
	env := newEnv(t)
	sites := siteNames(6)
	plan := cheops.Plan{Exists: true, Generation: 2, Consistency: cheops.Transactional, MaxParallel: 3, Timeout: time.Minute,
		Sites: sites, Apply: sites, Waves: [][]string{sites[0:2], sites[2:4], sites[4:]}, MaxFailures: 1}
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(plan, nil).Once()
	waves := onWave(env, func(in activities.WaveInput, site string) activities.SiteOutcome {
		if site == sites[3] {
			return activities.SiteOutcome{Site: site, Class: cheops.Permanent, Message: "denied"}
		}
		return activities.SiteOutcome{Site: site, Generation: in.Generation}
	})
	compensated := onCompensateWave(env)
	var records []activities.RollbackInput
	env.OnActivity(a.RecordRollback, mock.Anything, mock.Anything).Return(func(_ context.Context, in activities.RollbackInput) error {
		records = append(records, in)
		return nil
	})
	rolledBack := plan
	rolledBack.RolledBack, rolledBack.Apply, rolledBack.Waves = true, nil, nil
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(rolledBack, nil).Once()
	env.OnActivity(a.PlanResource, mock.Anything, mock.Anything).Return(cheops.Plan{}, nil).Once()
	env.ExecuteWorkflow(ResourceWorkflow, ResourceInput{ResourceID: "r1", AppliedGeneration: 1})
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var applied []string
	for _, w := range waves.all() {
		applied = append(applied, w.Sites...)
	}
	if !slices.Equal(applied, sites[:4]) {
		t.Fatalf("applied %v; want the first two waves", applied)
	}
	got := compensated.touched()
	for i, site := range sites {
		if want := i < 4 && i != 3; got[site] != want {
			t.Errorf("%s compensated as touched=%v; want %v", site, got[site], want)
		}
	}
	if len(records) != 2 || !strings.Contains(records[1].Reasons[sites[5]], "not applied: the rollout stopped at wave 2 of 3") {
		t.Fatalf("rollback records %+v", records)
	}
}
