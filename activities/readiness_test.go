package activities

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/testsuite"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/internal/etcdtest"
	"github.com/cheops-io/cheops/store"
)

// statusDriver takes every object and reports its status as each site's script says: the apply's
// answer first, then one entry per read (the last repeated).
type statusDriver struct {
	downDriver
	mu      sync.Mutex
	applied map[string]int
	reads   map[string]int
	script  map[string][]cheops.ReadinessState
}

func (d *statusDriver) Apply(_ context.Context, t cheops.Target, req cheops.ApplyRequest) (cheops.ApplyResult, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.applied[t.Site.Name]++
	rd := cheops.Readiness{State: d.script[t.Site.Name][0], Message: "as applied"}
	return cheops.ApplyResult{LocalID: "uid-" + t.Site.Name, Object: cheops.ObjectRef{Kind: "Deployment", Name: req.ResourceName}, Readiness: &rd}, nil
}

func (d *statusDriver) Readiness(_ context.Context, t cheops.Target, _ cheops.ObjectRef) (cheops.Readiness, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.reads[t.Site.Name]++
	s := d.script[t.Site.Name]
	state := s[min(d.reads[t.Site.Name], len(s)-1)]
	return cheops.Readiness{State: state, Message: "read " + string(state)}, nil
}

func readinessFixture(t *testing.T, policy cheops.Policy, script map[string][]cheops.ReadinessState) (*store.Store, *statusDriver, *Activities, *testsuite.TestActivityEnvironment) {
	t.Helper()
	ctx := context.Background()
	s := etcdtest.Store(t)
	for name := range script {
		if _, err := s.CreateSite(ctx, cheops.Site{Name: name, Driver: cheops.DriverKubernetes}, cheops.Credentials{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.CreateResource(ctx, cheops.Resource{ID: "r1", Name: "web", Driver: cheops.DriverKubernetes, Generation: 1,
		Manifest: json.RawMessage(`{}`), Policy: policy, GenerationAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	d := &statusDriver{applied: map[string]int{}, reads: map[string]int{}, script: script}
	a := &Activities{Store: s, Drivers: map[cheops.DriverName]cheops.Driver{cheops.DriverKubernetes: d}}
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	return s, d, a, env
}

func replicaStates(t *testing.T, s *store.Store) map[string]cheops.Replica {
	t.Helper()
	reps, err := s.ListReplicas(context.Background(), "r1")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]cheops.Replica{}
	for _, rep := range reps {
		out[rep.Site] = rep
	}
	return out
}

const (
	ready       = cheops.ObjectReady
	progressing = cheops.ObjectProgressing
	failed      = cheops.ObjectFailed
	missing     = cheops.ObjectMissing
)

// A replica whose status does not say Ready in the apply's answer is Applied, and the wave says so;
// applying the generation again leaves it alone and says so again. AwaitReadiness then settles each
// site by what its status says: Ready (BecameReady), Failed by its status or by the readyTimeout
// (NotReady, a permanent failure of the site at this generation), Pending again when the object
// is gone.
func TestReadinessFromStatus(t *testing.T) {
	s, d, a, env := readinessFixture(t, cheops.Policy{ReadyTimeout: cheops.Duration(2 * time.Second)}, map[string][]cheops.ReadinessState{
		"quick":  {ready},
		"slow":   {progressing, progressing, ready},
		"broken": {progressing, failed},
		"stuck":  {progressing},
		"gone":   {progressing, missing},
	})
	sites := []string{"broken", "gone", "quick", "slow", "stuck"}
	for range 2 {
		out := runWave(t, env, a, WaveInput{ResourceID: "r1", Generation: 1, Sites: sites, MaxParallel: 5, Attempt: 1})
		for _, site := range sites {
			if o := out[site]; o.Class != "" || o.Awaiting != (site != "quick") {
				t.Errorf("%s: outcome %+v; want no failure, awaiting unless quick", site, o)
			}
		}
	}
	if d.applied["slow"] != 1 {
		t.Errorf("slow applied %d times; an Applied replica at this generation is done", d.applied["slow"])
	}
	reps := replicaStates(t, s)
	if reps["quick"].State != cheops.ReplicaReady || reps["slow"].State != cheops.ReplicaApplied || reps["slow"].AppliedAt == nil ||
		!strings.Contains(reps["slow"].Message, "waiting for its status to say Ready") {
		t.Fatalf("after the wave: quick %+v, slow %+v", reps["quick"], reps["slow"])
	}

	start := time.Now()
	v, err := env.ExecuteActivity(a.AwaitReadiness, ReadinessInput{ResourceID: "r1", Generation: 1, Sites: sites, MaxParallel: 2})
	if err != nil {
		t.Fatal(err)
	}
	var out ReadinessOutput
	if err := v.Get(&out); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	got := map[string]SiteOutcome{}
	for _, o := range out.Sites {
		got[o.Site] = o
	}
	if !got["quick"].Skipped || got["slow"].Class != "" || got["slow"].Skipped || got["slow"].SinceDeclared <= 0 {
		t.Errorf("quick %+v (want skipped: it was Ready), slow %+v (want Ready)", got["quick"], got["slow"])
	}
	if got["broken"].Class != cheops.Permanent || !strings.Contains(got["broken"].Message, "its status says it failed: read Failed") {
		t.Errorf("broken: %+v", got["broken"])
	}
	if got["stuck"].Class != cheops.Permanent || !strings.Contains(got["stuck"].Message, "not Ready within the policy's readyTimeout of 2s; last status Progressing") {
		t.Errorf("stuck: %+v", got["stuck"])
	}
	if got["gone"].Class != cheops.Transient {
		t.Errorf("gone: %+v", got["gone"])
	}
	if took > 10*time.Second {
		t.Errorf("the wait took %s for a 2s readyTimeout", took)
	}
	reps = replicaStates(t, s)
	want := map[string]cheops.ReplicaState{"quick": cheops.ReplicaReady, "slow": cheops.ReplicaReady, "broken": cheops.ReplicaFailed,
		"stuck": cheops.ReplicaFailed, "gone": cheops.ReplicaPending}
	for site, state := range want {
		if reps[site].State != state {
			t.Errorf("%s is %s (%s); want %s", site, reps[site].State, reps[site].Message, state)
		}
	}
	if reps["broken"].FailedGeneration != 1 || reps["stuck"].FailedGeneration != 1 || reps["gone"].FailedGeneration != 0 {
		t.Errorf("failed generations: broken %d, stuck %d, gone %d", reps["broken"].FailedGeneration, reps["stuck"].FailedGeneration, reps["gone"].FailedGeneration)
	}
	evs, err := s.Events(context.Background(), "r1")
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, ev := range evs {
		count[string(ev.Type)+" "+ev.Site]++
	}
	for _, k := range []string{"BecameReady slow", "NotReady broken", "NotReady stuck", "NotReady gone"} {
		if count[k] != 1 {
			t.Errorf("%d %q events; want 1 (all: %v)", count[k], k, count)
		}
	}
	if count["BecameReady quick"] != 0 {
		t.Errorf("quick was Ready at once, yet has a BecameReady event")
	}

	// The next round applies the gone site again; the failed ones wait for a new generation.
	out2 := runWave(t, env, a, WaveInput{ResourceID: "r1", Generation: 1, Sites: []string{"gone"}, MaxParallel: 1, Attempt: 2})
	if d.applied["gone"] != 2 || !out2["gone"].Awaiting {
		t.Errorf("gone applied %d times, outcome %+v; want a second apply, awaiting", d.applied["gone"], out2["gone"])
	}
}

// With policy readiness "applied", a replica is Ready once the site took it, whatever its status.
func TestReadinessWhenApplied(t *testing.T) {
	s, _, a, env := readinessFixture(t, cheops.Policy{Readiness: cheops.ReadyWhenApplied}, map[string][]cheops.ReadinessState{
		"slow": {progressing},
	})
	out := runWave(t, env, a, WaveInput{ResourceID: "r1", Generation: 1, Sites: []string{"slow"}, MaxParallel: 1, Attempt: 1})
	if out["slow"].Awaiting || replicaStates(t, s)["slow"].State != cheops.ReplicaReady {
		t.Errorf("outcome %+v, replica %+v; want Ready at once", out["slow"], replicaStates(t, s)["slow"])
	}
}

// A wait bounded by Until (a transactional generation's deadline) ends there, before the
// replica's own readyTimeout.
func TestReadinessUntil(t *testing.T) {
	s, _, a, env := readinessFixture(t, cheops.Policy{}, map[string][]cheops.ReadinessState{"stuck": {progressing}})
	runWave(t, env, a, WaveInput{ResourceID: "r1", Generation: 1, Sites: []string{"stuck"}, MaxParallel: 1, Attempt: 1})
	start := time.Now()
	v, err := env.ExecuteActivity(a.AwaitReadiness, ReadinessInput{ResourceID: "r1", Generation: 1, Sites: []string{"stuck"},
		MaxParallel: 1, Until: time.Now().Add(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	var out ReadinessOutput
	if err := v.Get(&out); err != nil {
		t.Fatal(err)
	}
	if out.Sites[0].Class != cheops.Permanent || time.Since(start) > 5*time.Second {
		t.Errorf("outcome %+v after %s; want a failure after about 1s", out.Sites[0], time.Since(start))
	}
	if rep := replicaStates(t, s)["stuck"]; rep.State != cheops.ReplicaFailed {
		t.Errorf("replica %+v; want Failed", rep)
	}
}
