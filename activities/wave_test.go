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
	// The attempts, in 2 (64 sites of 2 operations each, then 36), and the outcomes, in batches of
	// up to 42 (3 operations each) as they come: 3 when they come together, a few more when the
	// recordDelay flushes a batch early (on a loaded machine the sites finish further apart).
	// Before batching, a wave wrote 200 (2 per site).
	if txns < 5 || txns > 20 {
		t.Errorf("%d transactions for a wave of %d sites, want between 5 and 20", txns, len(sites))
	}
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
		if rep.State != cheops.ReplicaReady || rep.Attempts != 1 {
			t.Fatalf("%s: %s after %d attempts, want Ready after 1", rep.Site, rep.State, rep.Attempts)
		}
	}
	if n := countApplied(t, s); n != len(sites) {
		t.Errorf("%d Applied events, want one per site", n)
	}
	// Again, every site done: nothing is applied, nothing written.
	d.applied = map[string]int{}
	before = revision(t, c)
	runWave(t, env, a, WaveInput{ResourceID: "r1", Generation: 1, Sites: sites, MaxParallel: 100, Attempt: 2})
	if txns := revision(t, c) - before; txns != 0 || len(d.applied) != 0 {
		t.Errorf("a wave of sites all done wrote %d transactions and applied %d sites, want none", txns, len(d.applied))
	}
}

func countApplied(t *testing.T, s *store.Store) int {
	t.Helper()
	evs, err := s.Events(context.Background(), "r1")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ev := range evs {
		if ev.Type == cheops.EventApplied {
			n++
		}
	}
	return n
}

// normalized is a resource's replicas and events with what differs between two resources made
// alike (times, the object's name, which is the resource's) left out, in a stable order.
func normalized(t *testing.T, s *store.Store, id string) ([]cheops.Replica, []string) {
	t.Helper()
	reps, err := s.ListReplicas(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	for i := range reps {
		reps[i].ResourceID, reps[i].CreatedAt, reps[i].UpdatedAt = "", time.Time{}, time.Time{}
		if reps[i].AppliedAt != nil {
			reps[i].AppliedAt = &time.Time{}
		}
		if reps[i].ApplyingSince != nil {
			reps[i].ApplyingSince = &time.Time{}
		}
		if reps[i].Object != nil {
			o := *reps[i].Object
			o.Name = ""
			reps[i].Object = &o
		}
	}
	evs, err := s.Events(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, ev := range evs {
		if ev.Type != cheops.EventCreated {
			lines = append(lines, fmt.Sprintf("%s %s gen %d: %s", ev.Site, ev.Type, ev.Generation, ev.Message))
		}
	}
	slices.Sort(lines)
	return reps, lines
}

// A wave records every site as applying each site alone does (applySite, the path the saga and
// compensation still take): the same replicas (state by class, local ID, object, overrides, hash,
// FailedGeneration, attempts, message) and the same events (one Applied per site, one ApplyFailed
// per distinct failure), over a first attempt and a second one that finds the Ready sites done and
// the failed ones failing again.
func TestApplyWaveRecordsAsApplyingEachSiteAlone(t *testing.T) {
	ctx := context.Background()
	sites := []string{"a", "b", "rejects", "down", "flaky"}
	s, _, a, env := waveFixture(t, sites...)
	over := []cheops.Override{{Site: "a", Patch: json.RawMessage(`{"data":{"x":"1"}}`)}}
	if _, err := s.UpdateResource(ctx, "r1", func(r *cheops.Resource) (*cheops.Event, error) {
		r.Overrides = over
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	alone, _, err := s.CreateResource(ctx, cheops.Resource{ID: "r2", Name: "cm2", Driver: cheops.DriverKubernetes, Generation: 1,
		Manifest: json.RawMessage(`{}`), Overrides: over})
	if err != nil {
		t.Fatal(err)
	}
	all := append(slices.Clone(sites), "ghost")
	for attempt := 3; attempt <= 4; attempt++ {
		out := runWave(t, env, a, WaveInput{ResourceID: "r1", Generation: 1, Sites: all, MaxParallel: 3, Attempt: attempt})
		for _, site := range all {
			res, err := a.applySite(ctx, alone, site, siteApply{event: cheops.EventApplied, attempt: attempt})
			want := outcome(site, res, err)
			if got := out[site]; got.Class != want.Class || got.LocalID != want.LocalID || got.Generation != want.Generation ||
				got.Skipped != want.Skipped || got.Message != want.Message {
				t.Errorf("attempt %d, %s: the wave says %+v, alone %+v", attempt, site, got, want)
			}
		}
		gotReps, gotEvs := normalized(t, s, "r1")
		wantReps, wantEvs := normalized(t, s, "r2")
		g, _ := json.MarshalIndent(gotReps, "", " ")
		w, _ := json.MarshalIndent(wantReps, "", " ")
		if string(g) != string(w) {
			t.Errorf("attempt %d: the wave recorded\n%s\nalone:\n%s", attempt, g, w)
		}
		if !slices.Equal(gotEvs, wantEvs) {
			t.Errorf("attempt %d: the wave's events\n%s\nalone:\n%s", attempt, strings.Join(gotEvs, "\n"), strings.Join(wantEvs, "\n"))
		}
		if attempt == 3 && (len(gotEvs) != 6 || !strings.Contains(string(g), `"overrides[0]"`) || !strings.Contains(string(g), `"failedGeneration": 1`)) {
			t.Errorf("events %v, replicas %s; want 2 Applied and 4 ApplyFailed, a's override and rejects' failed generation", gotEvs, g)
		}
	}
}

// gatedDriver makes and deletes objects it keeps count of; its applies wait for open to close.
type gatedDriver struct {
	downDriver
	open    chan struct{}
	mu      sync.Mutex
	started int
	objects map[string]bool
}

func (d *gatedDriver) Apply(ctx context.Context, t cheops.Target, req cheops.ApplyRequest) (cheops.ApplyResult, error) {
	d.mu.Lock()
	d.started++
	d.mu.Unlock()
	select {
	case <-d.open:
	case <-ctx.Done():
		return cheops.ApplyResult{}, ctx.Err()
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.objects[t.Site.Name] = true
	return cheops.ApplyResult{LocalID: "uid-" + t.Site.Name, Object: cheops.ObjectRef{Kind: "ConfigMap", Name: t.Site.Name}}, nil
}

func (d *gatedDriver) Delete(_ context.Context, _ cheops.Target, ref cheops.ObjectRef) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.objects, ref.Name)
	return nil
}

// A resource forgotten while its wave applied leaves no object behind: the records the wave then
// makes are refused, and it deletes the objects it made, each site Skipped.
func TestApplyWaveDeletesWhatItMadeForAForgottenResource(t *testing.T) {
	ctx := context.Background()
	var sites []string
	for i := range 60 {
		sites = append(sites, fmt.Sprintf("site-%03d", i))
	}
	s, _, a, env := waveFixture(t, sites...)
	d := &gatedDriver{open: make(chan struct{}), objects: map[string]bool{}}
	a.Drivers[cheops.DriverKubernetes] = d
	in := WaveInput{ResourceID: "r1", Generation: 1, Sites: sites, MaxParallel: 60, Attempt: 1}
	type result struct {
		v   converter.EncodedValue
		err error
	}
	done := make(chan result)
	go func() {
		v, err := env.ExecuteActivity(a.ApplyWave, in)
		done <- result{v, err}
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		d.mu.Lock()
		started := d.started
		d.mu.Unlock()
		if started == len(sites) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d applies started, want %d", started, len(sites))
		}
	}
	if err := s.DeleteResource(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	close(d.open)
	res := <-done
	if res.err != nil {
		t.Fatalf("ApplyWave failed: %v", res.err)
	}
	var out WaveOutput
	if err := res.v.Get(&out); err != nil {
		t.Fatal(err)
	}
	for _, o := range out.Sites {
		if !o.Skipped || o.Class != "" {
			t.Errorf("%s: %+v, want Skipped", o.Site, o)
		}
	}
	if len(d.objects) != 0 {
		t.Errorf("objects left on %d sites: %v", len(d.objects), d.objects)
	}
	if reps, _ := s.ListReplicas(ctx, "r1"); len(reps) != 0 {
		t.Errorf("replicas recorded for a forgotten resource: %+v", reps)
	}
}

// stallDriver makes an object on every site it applies, counting applies per site; on the sites
// named slow it then stalls until its context ends, as a worker killed mid-wave leaves them.
type stallDriver struct {
	downDriver
	slow    map[string]bool
	mu      sync.Mutex
	applied map[string]int
	objects map[string]int
}

func (d *stallDriver) Apply(ctx context.Context, t cheops.Target, req cheops.ApplyRequest) (cheops.ApplyResult, error) {
	d.mu.Lock()
	d.applied[t.Site.Name]++
	d.objects[t.Site.Name] = 1 // applying again makes no second object
	slow := d.slow[t.Site.Name]
	d.mu.Unlock()
	if slow {
		<-ctx.Done()
		return cheops.ApplyResult{}, ctx.Err()
	}
	return cheops.ApplyResult{LocalID: "uid-" + t.Site.Name, Object: cheops.ObjectRef{Kind: "ConfigMap", Name: t.Site.Name}}, nil
}

// A wave cut short loses the outcomes it had not recorded, and no more: its retry skips the sites
// recorded Ready and applies the others again (their replicas still say Applying), so each site
// ends with one object and one Applied event.
func TestApplyWaveCutShortIsRetriedWithoutDuplicates(t *testing.T) {
	ctx := context.Background()
	var sites []string
	slow := map[string]bool{}
	for i := range 20 {
		sites = append(sites, fmt.Sprintf("site-%03d", i))
		slow[sites[i]] = i%4 == 0
	}
	s, _, a, _ := waveFixture(t, sites...)
	d := &stallDriver{slow: slow, applied: map[string]int{}, objects: map[string]int{}}
	a.Drivers[cheops.DriverKubernetes] = d
	in := WaveInput{ResourceID: "r1", Generation: 1, Sites: sites, MaxParallel: 20, Attempt: 1}
	cut, cancel := context.WithCancel(ctx)
	waveDone := make(chan error)
	go func() {
		_, err := a.ApplyWave(cut, in)
		waveDone <- err
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		reps, err := s.ListReplicas(ctx, "r1")
		if err != nil {
			t.Fatal(err)
		}
		ready := 0
		for _, rep := range reps {
			if rep.State == cheops.ReplicaReady {
				ready++
			}
		}
		if ready == 15 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d sites recorded Ready, want the 15 fast ones", ready)
		}
	}
	cancel()
	if err := <-waveDone; err == nil {
		t.Fatal("a wave cut short succeeded")
	}
	for site, stalled := range slow {
		if !stalled {
			continue
		}
		if rep, err := s.GetReplica(ctx, "r1", site); err != nil || rep.State != cheops.ReplicaApplying {
			t.Fatalf("%s after the cut: %+v, %v; want Applying", site, rep, err)
		}
	}

	d.slow = nil
	out, err := a.ApplyWave(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range out.Sites {
		if o.Class != "" || o.LocalID != "uid-"+o.Site {
			t.Errorf("%s on retry: %+v, want Ready", o.Site, o)
		}
		want := 1
		if slow[o.Site] {
			want = 2
		}
		if d.applied[o.Site] != want || d.objects[o.Site] != 1 {
			t.Errorf("%s: applied %d times, %d objects; want %d, 1", o.Site, d.applied[o.Site], d.objects[o.Site], want)
		}
	}
	if n := countApplied(t, s); n != len(sites) {
		t.Errorf("%d Applied events, want one per site (%d)", n, len(sites))
	}
}

// A site a wave applies reports how long after its generation was declared it was recorded Ready,
// for the replication-latency metric; a site already Ready, or one that failed, reports nothing.
func TestApplyWaveReportsTheTimeSinceDeclared(t *testing.T) {
	_, _, a, env := waveFixture(t, "a", "down")
	out := runWave(t, env, a, WaveInput{ResourceID: "r1", Generation: 1, Sites: []string{"a", "down"}, MaxParallel: 2, Attempt: 1})
	if out["a"].SinceDeclared <= 0 || out["a"].SinceDeclared > time.Minute || out["down"].SinceDeclared != 0 {
		t.Fatalf("since declared: a %s, down %s; want a short positive time for a, none for down", out["a"].SinceDeclared, out["down"].SinceDeclared)
	}
	again := runWave(t, env, a, WaveInput{ResourceID: "r1", Generation: 1, Sites: []string{"a"}, MaxParallel: 1, Attempt: 1})
	if again["a"].SinceDeclared != 0 {
		t.Fatalf("a site Ready already reports %s, want nothing", again["a"].SinceDeclared)
	}
}

// A replica reported drifted is never skipped as done: the next wave applies it again, even at the
// generation and hash it records, and the record clears the drift and says it was repaired.
func TestApplyWaveRepairsADriftedReplica(t *testing.T) {
	ctx := context.Background()
	s, d, a, env := waveFixture(t, "a", "b")
	in := WaveInput{ResourceID: "r1", Generation: 1, Sites: []string{"a", "b"}, MaxParallel: 2, Attempt: 1}
	runWave(t, env, a, in)
	if _, err := s.UpdateReplica(ctx, "r1", "b", func(rep *cheops.Replica) (*cheops.Event, error) {
		rep.Drifted, rep.DriftMessage = true, "deleted on the site"
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	out := runWave(t, env, a, in)
	if out["a"].Class != "" || out["b"].Class != "" {
		t.Fatalf("outcomes: %+v", out)
	}
	if d.applied["a"] != 1 || d.applied["b"] != 2 {
		t.Fatalf("applies: %v; want a once (done) and b twice (drifted, repaired)", d.applied)
	}
	rep, err := s.GetReplica(ctx, "r1", "b")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Drifted || rep.DriftMessage != "" || rep.State != cheops.ReplicaReady {
		t.Fatalf("replica after the repair: %+v", rep)
	}
	evs, err := s.Events(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	last := evs[len(evs)-1]
	if last.Type != cheops.EventApplied || last.Site != "b" || !strings.Contains(last.Message, "repaired drift (deleted on the site)") {
		t.Fatalf("last event: %+v", last)
	}
}
