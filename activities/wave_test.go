package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/testsuite"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/internal/etcdtest"
	"github.com/cheops-io/cheops/store"
)

// siteDriver answers for each site as its name says: "rejects" refuses the object, "down" refuses
// connections, "flaky" times out, any other site takes it. It counts applies per site and how many
// run at once.
type siteDriver struct {
	downDriver
	mu      sync.Mutex
	applied map[string]int
	now     int
	peak    int
}

func (d *siteDriver) Apply(_ context.Context, t cheops.Target, req cheops.ApplyRequest) (cheops.ApplyResult, error) {
	d.mu.Lock()
	d.applied[t.Site.Name]++
	d.now++
	d.peak = max(d.peak, d.now)
	d.mu.Unlock()
	time.Sleep(10 * time.Millisecond)
	d.mu.Lock()
	d.now--
	d.mu.Unlock()
	switch t.Site.Name {
	case "rejects":
		return cheops.ApplyResult{}, cheops.Classify(cheops.Permanent, errors.New(`admission webhook denied the request`))
	case "down":
		return cheops.ApplyResult{}, cheops.Classify(cheops.Unreachable, errors.New("dial tcp 127.0.0.1:1: connection refused"))
	case "flaky":
		return cheops.ApplyResult{}, errors.New("the server was unable to return a response in the time allotted")
	}
	return cheops.ApplyResult{LocalID: "uid-" + t.Site.Name, Object: cheops.ObjectRef{Kind: "ConfigMap", Name: req.ResourceName}}, nil
}

func waveFixture(t *testing.T, sites ...string) (*store.Store, *siteDriver, *Activities, *testsuite.TestActivityEnvironment) {
	t.Helper()
	s, d, a, env, _ := waveFixtureWithClient(t, sites...)
	return s, d, a, env
}

// waveFixtureWithClient is waveFixture, with the etcd client under the store.
func waveFixtureWithClient(t *testing.T, sites ...string) (*store.Store, *siteDriver, *Activities, *testsuite.TestActivityEnvironment, *clientv3.Client) {
	t.Helper()
	ctx := context.Background()
	s, c := etcdtest.StoreAndClient(t)
	for _, name := range sites {
		if _, err := s.CreateSite(ctx, cheops.Site{Name: name, Driver: cheops.DriverKubernetes}, cheops.Credentials{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.CreateResource(ctx, cheops.Resource{ID: "r1", Name: "cm", Driver: cheops.DriverKubernetes, Generation: 1,
		Manifest: json.RawMessage(`{}`)}); err != nil {
		t.Fatal(err)
	}
	d := &siteDriver{applied: map[string]int{}}
	a := &Activities{Store: s, Drivers: map[cheops.DriverName]cheops.Driver{cheops.DriverKubernetes: d}}
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	return s, d, a, env, c
}

func runWave(t *testing.T, env *testsuite.TestActivityEnvironment, a *Activities, in WaveInput) map[string]SiteOutcome {
	t.Helper()
	v, err := env.ExecuteActivity(a.ApplyWave, in)
	if err != nil {
		t.Fatalf("ApplyWave failed: %v", err)
	}
	var out WaveOutput
	if err := v.Get(&out); err != nil {
		t.Fatal(err)
	}
	if len(out.Sites) != len(in.Sites) {
		t.Fatalf("%d outcomes for %d sites", len(out.Sites), len(in.Sites))
	}
	bySite := map[string]SiteOutcome{}
	for i, o := range out.Sites {
		if o.Site != in.Sites[i] {
			t.Fatalf("outcome %d is for %s, want %s: outcomes follow the input's order", i, o.Site, in.Sites[i])
		}
		bySite[o.Site] = o
	}
	return bySite
}

// A wave reports each site's outcome with its class, records each replica with the workflow's
// attempt number, and one site's failure fails neither the others nor the activity.
func TestApplyWaveReportsEachSite(t *testing.T) {
	ctx := context.Background()
	sites := []string{"a", "b", "rejects", "down", "flaky"}
	s, d, a, env := waveFixture(t, sites...)
	in := WaveInput{ResourceID: "r1", Generation: 1, Sites: append(slices.Clone(sites), "ghost"), MaxParallel: 3, Attempt: 3}
	out := runWave(t, env, a, in)
	want := map[string]cheops.ErrorClass{"a": "", "b": "", "rejects": cheops.Permanent, "down": cheops.Unreachable,
		"flaky": cheops.Transient, "ghost": cheops.Permanent}
	for site, class := range want {
		o := out[site]
		if o.Class != class {
			t.Errorf("%s: class %q (%s), want %q", site, o.Class, o.Message, class)
		}
		if class == "" && (o.LocalID != "uid-"+site || o.Generation != 1 || o.Message != "") {
			t.Errorf("%s: outcome %+v, want Ready at generation 1", site, o)
		}
		if class != "" && o.Message == "" {
			t.Errorf("%s: failed without a message", site)
		}
	}
	if !strings.Contains(out["ghost"].Message, "does not exist") {
		t.Errorf("ghost: %q, want the site named as missing", out["ghost"].Message)
	}
	states := map[string]cheops.ReplicaState{"a": cheops.ReplicaReady, "b": cheops.ReplicaReady, "rejects": cheops.ReplicaFailed,
		"down": cheops.ReplicaUnreachable, "flaky": cheops.ReplicaApplying, "ghost": cheops.ReplicaFailed}
	for site, state := range states {
		rep, err := s.GetReplica(ctx, "r1", site)
		if err != nil || rep.State != state {
			t.Errorf("%s: replica %+v, %v; want %s", site, rep, err, state)
			continue
		}
		if rep.Attempts != 3 {
			t.Errorf("%s: %d attempts recorded, want the workflow's attempt 3", site, rep.Attempts)
		}
	}
	evs, err := s.Events(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	failedEvents := 0
	for _, ev := range evs {
		if ev.Type == cheops.EventApplyFailed {
			failedEvents++
			if !strings.HasPrefix(ev.Message, "attempt 3: ") {
				t.Errorf("event %q, want it to name attempt 3", ev.Message)
			}
		}
	}
	if failedEvents != 4 {
		t.Errorf("%d ApplyFailed events, want one per failed site (4)", failedEvents)
	}

	// The next attempt, of the flaky site alone, applies it alone; the same failure is not logged again.
	d.applied = map[string]int{}
	out = runWave(t, env, a, WaveInput{ResourceID: "r1", Generation: 1, Sites: []string{"flaky"}, MaxParallel: 3, Attempt: 4})
	if out["flaky"].Class != cheops.Transient || len(d.applied) != 1 || d.applied["flaky"] != 1 {
		t.Errorf("second attempt: outcome %+v, applied %v; want flaky alone, transient again", out["flaky"], d.applied)
	}
	rep, _ := s.GetReplica(ctx, "r1", "flaky")
	if evs2, _ := s.Events(ctx, "r1"); len(evs2) != len(evs) || rep.Attempts != 4 {
		t.Errorf("%d events after %d, attempts %d; want no new event and 4 attempts", len(evs2), len(evs), rep.Attempts)
	}
}

// No more than MaxParallel sites are applied at once, and every site once.
func TestApplyWaveIsBounded(t *testing.T) {
	sites := []string{"s1", "s2", "s3", "s4", "s5", "s6", "s7"}
	_, d, a, env := waveFixture(t, sites...)
	runWave(t, env, a, WaveInput{ResourceID: "r1", Generation: 1, Sites: sites, MaxParallel: 2, Attempt: 1})
	if d.peak > 2 || d.peak < 1 || len(d.applied) != len(sites) {
		t.Fatalf("peak concurrency %d, applied %v; want every site once, at most 2 at once", d.peak, d.applied)
	}
}

// A wave heartbeats the sites it is done with; a retry of the wave (its worker died) does not force
// again the sites its last heartbeat named, and applies the rest.
func TestApplyWaveHeartbeatsItsProgress(t *testing.T) {
	sites := []string{"a", "b", "c"}
	_, d, a, env := waveFixture(t, sites...)
	var mu sync.Mutex
	var beats []WaveProgress
	env.SetOnActivityHeartbeatListener(func(_ *activity.Info, details converter.EncodedValues) {
		var p WaveProgress
		if details.HasValues() && details.Get(&p) == nil {
			mu.Lock()
			beats = append(beats, p)
			mu.Unlock()
		}
	})
	runWave(t, env, a, WaveInput{ResourceID: "r1", Generation: 1, Sites: sites, MaxParallel: 1, Attempt: 1})
	mu.Lock()
	if len(beats) == 0 {
		t.Error("the wave never heartbeat its progress")
	}
	mu.Unlock()
	env.SetHeartbeatDetails(WaveProgress{Done: []string{"a", "b"}})
	d.applied = map[string]int{}
	runWave(t, env, a, WaveInput{ResourceID: "r1", Generation: 1, Sites: sites, MaxParallel: 1, Force: true, Attempt: 1})
	if !maps.Equal(d.applied, map[string]int{"c": 1}) {
		t.Fatalf("forced retry applied %v, want only c (a and b were done)", d.applied)
	}
}

// A resource being deleted, or gone, applies nothing: every site is Skipped.
func TestApplyWaveSkipsADeletedResource(t *testing.T) {
	s, d, a, env := waveFixture(t, "a", "b")
	if _, err := s.UpdateResource(context.Background(), "r1", func(r *cheops.Resource) (*cheops.Event, error) {
		r.Deletion = &cheops.Deletion{RequestedAt: time.Now()}
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"r1", "gone"} {
		out := runWave(t, env, a, WaveInput{ResourceID: id, Generation: 1, Sites: []string{"a", "b"}, MaxParallel: 2, Attempt: 1})
		if !out["a"].Skipped || !out["b"].Skipped || out["a"].Class != "" || len(d.applied) != 0 {
			t.Fatalf("%s: outcomes %+v, applied %v; want both skipped, nothing applied", id, out, d.applied)
		}
	}
}

// revision is etcd's revision: every transaction that writes bumps it by one.
func revision(t *testing.T, c *clientv3.Client) int64 {
	t.Helper()
	resp, err := c.Get(context.Background(), "/revision")
	if err != nil {
		t.Fatal(err)
	}
	return resp.Header.Revision
}

// A wave of 100 sites records its replicas in a handful of etcd transactions, not two per site;
// running it again, with every site done, writes nothing.
func TestApplyWaveWritesInBatches(t *testing.T) {
	var sites []string
	for i := range 100 {
		sites = append(sites, fmt.Sprintf("site-%03d", i))
	}
	s, d, a, env, c := waveFixtureWithClient(t, sites...)
	before := revision(t, c)
	out := runWave(t, env, a, WaveInput{ResourceID: "r1", Generation: 1, Sites: sites, MaxParallel: 100, Attempt: 1})
	txns := revision(t, c) - before
	t.Logf("a wave of %d sites: %d etcd transactions that wrote", len(sites), txns)
	for _, site := range sites {
		if o := out[site]; o.Class != "" || o.LocalID != "uid-"+site {
			t.Fatalf("%s: %+v, want Ready", site, o)
		}
	}
	reps, err := s.ListReplicas(context.Background(), "r1")
	if err != nil || len(reps) != len(sites) {
		t.Fatalf("%d replicas, %v", len(reps), err)
	}
	for _, rep := range reps {
		if rep.State != cheops.ReplicaReady {
			t.Fatalf("%s: %s, want Ready", rep.Site, rep.State)
		}
	}
	_ = d
}
