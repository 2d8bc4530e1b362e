package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	clientv3 "go.etcd.io/etcd/client/v3"
	temporalclient "go.temporal.io/sdk/client"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/client"
	"github.com/cheops-io/cheops/test/harness"
)

// bench holds the running stack and the sites registered on it.
type bench struct {
	cfg   config
	kube  *harness.KubeCluster
	stack stack
	api   *client.Client
	sites []benchSite
	// etcd and temporal count the writes cheops makes.
	etcd     *clientv3.Client
	temporal temporalclient.Client
}

// benchSite is one cheops site: one namespace of one apiserver.
type benchSite struct {
	name, namespace string
	dyn             dynamic.Interface
}

var configMaps = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}

// setupSites creates n namespaces spread over the apiservers and registers each as a site.
func (b *bench) setupSites(ctx context.Context, n int) error {
	dyns := make([]dynamic.Interface, len(b.kube.Apiservers))
	for i, a := range b.kube.Apiservers {
		cs, dyn, err := a.Clients()
		if err != nil {
			return err
		}
		dyns[i] = dyn
		for j := i; j < n; j += len(b.kube.Apiservers) {
			ns := fmt.Sprintf("bench-%03d", j+1)
			if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
				return err
			}
		}
	}
	for j := range n {
		a := b.kube.Apiservers[j%len(b.kube.Apiservers)]
		kc, err := os.ReadFile(a.Kubeconfig)
		if err != nil {
			return err
		}
		s := benchSite{name: fmt.Sprintf("s%03d", j+1), namespace: fmt.Sprintf("bench-%03d", j+1), dyn: dyns[j%len(dyns)]}
		req := client.SiteRequest{Name: s.name, Driver: cheops.DriverKubernetes,
			Kubernetes: &client.KubernetesSettings{Kubeconfig: string(kc), Namespace: s.namespace}}
		if _, err := b.api.CreateSite(ctx, req); err != nil {
			return fmt.Errorf("register %s: %w", s.name, err)
		}
		b.sites = append(b.sites, s)
	}
	return b.waitSitesReady(ctx)
}

// waitSitesReady waits until the worker has probed every site and found it Ready: the first probe
// of a site records its health, and those writes must not count against the first measurements.
func (b *bench) waitSitesReady(ctx context.Context) error {
	deadline := time.Now().Add(3 * time.Minute)
	for {
		sites, err := b.api.ListSites(ctx)
		if err != nil {
			return err
		}
		ready := 0
		for _, s := range sites {
			if s.Health == cheops.SiteReady {
				ready++
			}
		}
		if ready == len(b.sites) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d sites Ready after 3 minutes", ready, len(b.sites))
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func configMap(name, value string) json.RawMessage {
	b, _ := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": name},
		"data": map[string]any{"value": value}})
	return b
}

func (b *bench) siteNames(n int) []string {
	names := make([]string, n)
	for i := range n {
		names[i] = b.sites[i].name
	}
	return names
}

// create POSTs a ConfigMap resource to the first n sites and returns its ID.
func (b *bench) create(ctx context.Context, name string, n int) (string, error) {
	r, err := b.api.CreateResource(ctx, client.ResourceRequest{Name: name, Manifest: configMap(name, "1"),
		Scope: &cheops.Scope{Sites: b.siteNames(n)}}, client.CreateOptions{})
	if err != nil {
		return "", fmt.Errorf("create %s: %w", name, err)
	}
	return r.ID, nil
}

// waitUntil polls the resource every pollInterval until cond holds (or the resource is gone, for
// cond nil), and returns when it first saw it.
func (b *bench) waitUntil(ctx context.Context, id string, cond func(client.Resource) bool) error {
	deadline := time.Now().Add(5 * time.Minute)
	var last string
	for time.Now().Before(deadline) {
		r, err := b.api.GetResource(ctx, id)
		switch {
		case cond == nil && client.IsNotFound(err):
			return nil
		case err != nil && client.StatusCode(err) == 0:
			return err // the API cannot be reached, or its answer not read
		case err != nil:
			last = err.Error()
		case cond != nil:
			if cond(r) {
				return nil
			}
			if r.State == cheops.ResourceFailed || r.State == cheops.ResourceDegraded {
				return fmt.Errorf("resource %s is %s: %+v", id, r.State, r.Replicas)
			}
			last = fmt.Sprintf("%s at generation %d: %+v", r.State, r.Generation, r.Replicas)
		default:
			last = fmt.Sprintf("still there, %s", r.State)
		}
		time.Sleep(pollInterval)
	}
	return fmt.Errorf("resource %s: timed out; last seen: %s", id, last)
}

// pollInterval is how often the benchmark asks the API; it bounds the resolution of every figure.
const pollInterval = 5 * time.Millisecond

func readyAt(gen int64) func(client.Resource) bool {
	return func(r client.Resource) bool { return r.State == cheops.ResourceReady && r.Generation == gen }
}

// latencyResult is one site count's latency, through cheops and direct.
type latencyResult struct {
	Sites  int          `json:"sites"`
	Cheops Distribution `json:"cheops"`
	Direct Distribution `json:"direct"`
	Writes writeCounts  `json:"writes"`
	raw    [2][]time.Duration
}

// writeCounts is what one generation costs the stores: events in the resource workflow's history
// (the median over the resources counted, each created once and settled), and etcd write
// transactions per replica (the revision's rise over the run, divided by the replicas made).
type writeCounts struct {
	HistoryEventsPerGeneration int     `json:"historyEventsPerGeneration"`
	EtcdTxnsPerReplica         float64 `json:"etcdTxnsPerReplica"`
}

// countWrites counts the history events of up to 20 of ids' workflows, and divides etcd's revision
// rise since rev0 by the replicas made.
func (b *bench) countWrites(ctx context.Context, ids []string, replicas int, rev0 int64) (writeCounts, error) {
	var w writeCounts
	rev, err := b.etcdRevision(ctx)
	if err != nil {
		return w, err
	}
	if replicas > 0 {
		w.EtcdTxnsPerReplica = float64(rev-rev0) / float64(replicas)
	}
	var events []int
	for i, id := range ids {
		if i == 20 {
			break
		}
		n, err := b.historyEvents(ctx, id)
		if err != nil {
			return w, err
		}
		events = append(events, n)
	}
	if len(events) > 0 {
		sort.Ints(events)
		w.HistoryEventsPerGeneration = events[len(events)/2]
	}
	return w, nil
}

// latency measures samples resources of n sites each, one at a time, through cheops and then
// direct; with profDir, it captures profiles of the cheops processes over the first 20 s.
func (b *bench) latency(ctx context.Context, n, samples int, profDir string) (latencyResult, error) {
	res := latencyResult{Sites: n}
	if profDir != "" {
		defer b.startProfiles(ctx, 20*time.Second, profDir)()
	}
	var cheops, direct []time.Duration
	rev0, err := b.etcdRevision(ctx)
	if err != nil {
		return res, err
	}
	var ids []string
	for i := range samples {
		name := fmt.Sprintf("lat%d-%d", n, i)
		start := time.Now()
		id, err := b.create(ctx, name, n)
		if err != nil {
			return res, err
		}
		if err := b.waitUntil(ctx, id, readyAt(1)); err != nil {
			return res, err
		}
		cheops = append(cheops, time.Since(start))
		ids = append(ids, id)
	}
	// Ready is seen before the workflow has committed the generation and gone idle: let it.
	time.Sleep(time.Second)
	if res.Writes, err = b.countWrites(ctx, ids, samples*n, rev0); err != nil {
		return res, err
	}
	for i := range samples {
		name := fmt.Sprintf("direct%d-%d", n, i)
		d, err := b.applyDirect(ctx, name, n)
		if err != nil {
			return res, err
		}
		direct = append(direct, d)
	}
	res.Cheops, res.Direct = summarize(cheops), summarize(direct)
	res.raw = [2][]time.Duration{cheops, direct}
	logf("  %d sites: cheops p50 %s p99 %s; direct p50 %s p99 %s; %d history events per generation, %.2f etcd txns per replica",
		n, res.Cheops.P50, res.Cheops.P99, res.Direct.P50, res.Direct.P99, res.Writes.HistoryEventsPerGeneration, res.Writes.EtcdTxnsPerReplica)
	// The samples stay until the stack is torn down: deleting them costs one activity per replica,
	// more than the measurement itself, and delete propagation is measured on its own.
	return res, nil
}

// applyDirect is the floor: the same object server-side-applied to the same sites in parallel from
// one process, with clients built beforehand.
func (b *bench) applyDirect(ctx context.Context, name string, n int) (time.Duration, error) {
	body := configMap(name, "1")
	force := true
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for _, s := range b.sites[:n] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.dyn.Resource(configMaps).Namespace(s.namespace).Patch(ctx, name, types.ApplyPatchType, body,
				metav1.PatchOptions{FieldManager: "bench", Force: &force})
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	d := time.Since(start)
	close(errs)
	for err := range errs {
		return d, err
	}
	return d, nil
}

// propagation measures PUT → every replica at the new generation, and DELETE → gone.
func (b *bench) propagation(ctx context.Context, n, samples int) (Distribution, Distribution, error) {
	var ids []string
	for i := range samples {
		id, err := b.create(ctx, fmt.Sprintf("prop-%d", i), n)
		if err != nil {
			return Distribution{}, Distribution{}, err
		}
		ids = append(ids, id)
	}
	for _, id := range ids {
		if err := b.waitUntil(ctx, id, readyAt(1)); err != nil {
			return Distribution{}, Distribution{}, err
		}
	}
	var upd, del []time.Duration
	for i, id := range ids {
		start := time.Now()
		if _, err := b.api.UpdateResource(ctx, id, client.ResourceRequest{Manifest: configMap(fmt.Sprintf("prop-%d", i), "2")}, client.UpdateOptions{}); err != nil {
			return Distribution{}, Distribution{}, fmt.Errorf("update: %w", err)
		}
		if err := b.waitUntil(ctx, id, readyAt(2)); err != nil {
			return Distribution{}, Distribution{}, err
		}
		upd = append(upd, time.Since(start))
	}
	for _, id := range ids {
		start := time.Now()
		if _, err := b.api.DeleteResource(ctx, id, false); err != nil {
			return Distribution{}, Distribution{}, fmt.Errorf("delete: %w", err)
		}
		if err := b.waitUntil(ctx, id, nil); err != nil {
			return Distribution{}, Distribution{}, err
		}
		del = append(del, time.Since(start))
	}
	u, d := summarize(upd), summarize(del)
	logf("  update p50 %s p99 %s; delete p50 %s p99 %s", u.P50, u.P99, d.P50, d.P99)
	return u, d, nil
}

// throughputResult is the outcome of the concurrent-clients run.
type throughputResult struct {
	Clients           int          `json:"clients"`
	SitesPerResource  int          `json:"sitesPerResource"`
	Duration          string       `json:"duration"`
	Resources         int          `json:"resources"`
	ReplicasInWindow  int          `json:"replicasReadyInWindow"`
	ReplicasPerSecond float64      `json:"replicasPerSecond"`
	DrainSeconds      float64      `json:"drainSeconds"`
	Errors            int64        `json:"errors"`
	API               Distribution `json:"apiPost"`
	CPUSecondsPerRep  float64      `json:"cpuSecondsPerReplica"`
	Writes            writeCounts  `json:"writes"`
}

func (b *bench) throughput(ctx context.Context, clients int, d time.Duration, profDir string) (throughputResult, error) {
	res := throughputResult{Clients: clients, SitesPerResource: 10, Duration: d.String()}
	rev0, err := b.etcdRevision(ctx)
	if err != nil {
		return res, err
	}
	cpu0 := b.cpuSeconds()
	stopProfiles := b.startProfiles(ctx, d, profDir)
	start := time.Now()
	end := start.Add(d)
	var mu sync.Mutex
	var ids []string
	var posts []time.Duration
	var errs atomic.Int64
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(end); i++ {
				t0 := time.Now()
				id, err := b.create(ctx, fmt.Sprintf("tp-%d-%d", c, i), 10)
				lat := time.Since(t0)
				if err != nil {
					errs.Add(1)
					continue
				}
				mu.Lock()
				ids, posts = append(ids, id), append(posts, lat)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	stopProfiles()
	readyInWindow := 0
	for _, id := range ids {
		var last client.Resource
		err := b.waitUntil(ctx, id, func(r client.Resource) bool { last = r; return r.State == cheops.ResourceReady })
		if err != nil {
			return res, err
		}
		for _, r := range last.Replicas {
			if !r.UpdatedAt.After(end) {
				readyInWindow++
			}
		}
	}
	res.DrainSeconds = time.Since(end).Seconds()
	res.Resources, res.Errors, res.API = len(ids), errs.Load(), summarize(posts)
	res.ReplicasInWindow = readyInWindow
	res.ReplicasPerSecond = float64(readyInWindow) / d.Seconds()
	if total := len(ids) * 10; total > 0 {
		res.CPUSecondsPerRep = (b.cpuSeconds() - cpu0) / float64(total)
	}
	time.Sleep(time.Second)
	if res.Writes, err = b.countWrites(ctx, ids, len(ids)*10, rev0); err != nil {
		return res, err
	}
	logf("  %d resources, %.0f replicas/s in the window, API POST p99 %s, %d errors, drained in %.1fs; %d history events per generation, %.2f etcd txns per replica",
		res.Resources, res.ReplicasPerSecond, res.API.P99, res.Errors, res.DrainSeconds, res.Writes.HistoryEventsPerGeneration, res.Writes.EtcdTxnsPerReplica)
	return res, nil
}

// startProfiles captures a CPU profile of each cheops process over most of the run, and an
// allocation profile at its end.
func (b *bench) startProfiles(ctx context.Context, d time.Duration, dir string) func() {
	if !b.cfg.profile || len(b.stack.pprof) == 0 {
		return func() {}
	}
	_ = os.MkdirAll(dir, 0o755)
	var wg sync.WaitGroup
	secs := max(int(d.Seconds())-2, 1)
	logf("  profiling cheops for %d s into %s", secs, dir)
	for name, addr := range b.stack.pprof {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fetch(ctx, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, secs), filepath.Join(dir, name+".cpu.pprof"))
		}()
	}
	return func() {
		wg.Wait()
		for name, addr := range b.stack.pprof {
			fetch(ctx, "http://"+addr+"/debug/pprof/allocs", filepath.Join(dir, name+".allocs.pprof"))
		}
	}
}

func fetch(ctx context.Context, url, path string) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		logf("profile %s: %v", url, err)
		return
	}
	defer resp.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return
	}
	defer f.Close()
	_, _ = io.Copy(f, resp.Body)
}

// cpuSeconds is the user+system CPU time so far of the stack's processes (of a cluster: every
// process of each one's session; a PostgreSQL backend that ended between two readings is missed).
func (b *bench) cpuSeconds() float64 {
	total := 0.0
	for _, pids := range b.stack.processes() {
		for _, pid := range pids {
			var ut, st float64
			fmt.Sscan(statField(pid, 11), &ut)
			fmt.Sscan(statField(pid, 12), &st)
			total += (ut + st) / 100 // clock ticks; USER_HZ is 100 on Linux
		}
	}
	return total
}

// costResult is what the cheops processes cost.
type costResult struct {
	PeakRSSMiB map[string]float64 `json:"peakRSSMiB"`
}

func (b *bench) cost() costResult {
	c := costResult{PeakRSSMiB: map[string]float64{}}
	for name, pids := range b.stack.processes() {
		if len(pids) == 0 {
			continue
		}
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pids[0]))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(line, "VmHWM:") {
				var kb float64
				fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(line, "VmHWM:"), "kB")), &kb)
				c.PeakRSSMiB[name] = kb / 1024
			}
		}
	}
	return c
}

// Distribution summarises durations.
type Distribution struct {
	N   int      `json:"n"`
	P50 Duration `json:"p50"`
	P95 Duration `json:"p95"`
	P99 Duration `json:"p99"`
	Max Duration `json:"max"`
}

// Duration prints as milliseconds.
type Duration time.Duration

func (d Duration) String() string { return fmt.Sprintf("%.1f ms", float64(d)/1e6) }

// MarshalJSON writes milliseconds.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(float64(d) / 1e6) }

func summarize(ds []time.Duration) Distribution {
	if len(ds) == 0 {
		return Distribution{}
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	// Nearest rank: the smallest sample with at least p of the samples at or below it.
	q := func(p float64) Duration { return Duration(s[max(0, int(math.Ceil(p*float64(len(s))))-1)]) }
	return Distribution{N: len(s), P50: q(0.50), P95: q(0.95), P99: q(0.99), Max: Duration(s[len(s)-1])}
}
