package cluster

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/client"
	"github.com/cheops-io/cheops/test/harness"
)

// chaosConfig is how hard TestChaos pushes: CHEOPS_CHAOS_CLIENTS concurrent clients for
// CHEOPS_CHAOS_DURATION, with the kills spread over that time.
type chaosConfig struct {
	Clients  int
	Duration time.Duration
	Sites    int
}

func chaosSettings() chaosConfig {
	c := chaosConfig{Clients: 4, Duration: 90 * time.Second, Sites: 3}
	if n, err := strconv.Atoi(os.Getenv("CHEOPS_CHAOS_CLIENTS")); err == nil && n > 0 {
		c.Clients = n
	}
	if d, err := time.ParseDuration(os.Getenv("CHEOPS_CHAOS_DURATION")); err == nil && d > 0 {
		c.Duration = d
	}
	return c
}

// tracked is what the clients asked of one resource and what the API accepted.
type tracked struct {
	name, id string
	// values are the ConfigMap values sent, in order; accepted is how many of them the API accepted
	// (a value sent without an answer may or may not have been applied).
	values         []string
	accepted       int
	deleteSent     bool
	deleteAccepted bool
}

// chaosStats counts what happened; every field is guarded by mu.
type chaosStats struct {
	mu                          sync.Mutex
	creates, updates, deletes   int // accepted
	retries                     int // requests retried on another server after a failure
	fivexx                      map[string]int
	fivexxFromSurvivors         []string
	kills                       map[string]int
	lastRestart                 time.Time
	unansweredCreates           int
	serverDownSince, serverUpAt map[int]time.Time
}

// Many clients create, update and delete resources on three real kube-apiservers while the test
// SIGKILLs, one at a time, a worker, an API server, an etcd member, the etcd leader and the
// Temporal server, and restarts each with `cluster.sh up`. Afterwards every accepted request must be
// reflected on every site: no resource lost, none duplicated, each Ready; and no server that stayed
// up may have answered 5xx.
func TestChaos(t *testing.T) {
	if os.Getenv("CHEOPS_CLUSTER_TEST") != "1" {
		t.Skip("set CHEOPS_CLUSTER_TEST=1 (make chaos): brings up the whole production topology and kills parts of it")
	}
	cfg := chaosSettings()
	kube, err := harness.StartKube(t.TempDir(), cfg.Sites)
	if err != nil {
		t.Fatal(err)
	}
	defer kube.Close()
	c := startCluster(t)
	ctx := context.Background()
	var sites []string
	for i, a := range kube.Apiservers {
		kc, err := os.ReadFile(a.Kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		sites = append(sites, fmt.Sprintf("site-%d", i+1))
		if _, err := c.Clients[0].CreateSite(ctx, client.SiteRequest{Name: sites[i], Driver: cheops.DriverKubernetes,
			Kubernetes: &client.KubernetesSettings{Kubeconfig: string(kc)}}); err != nil {
			t.Fatalf("register %s: %v", sites[i], err)
		}
	}

	stats := &chaosStats{fivexx: map[string]int{}, kills: map[string]int{}}
	var (
		mu  sync.Mutex
		all []*tracked
	)
	// Clients start new resources until the end of the period and the last restart, whichever
	// comes later, and finish the one under way: the test never abandons a request half-way.
	begin := time.Now()
	end := begin.Add(cfg.Duration)
	var stopped atomic.Bool
	var wg sync.WaitGroup
	for ci := range cfg.Clients {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(ci), uint64(time.Now().UnixNano())))
			for n := 0; !stopped.Load(); n++ {
				r := &tracked{name: fmt.Sprintf("chaos-%d-%d", ci, n)}
				mu.Lock()
				all = append(all, r)
				mu.Unlock()
				clientOps(ctx, c, stats, r, rng, sites)
			}
		})
	}

	// The kills: one at a time, each at a random moment of its slot, each process restarted by
	// `cluster.sh up` before the next kill.
	victims := []string{"worker-1", "server-2", "etcd-member", "etcd-leader", "temporal"}
	slot := cfg.Duration / time.Duration(len(victims)+1)
	time.Sleep(slot / 2)
	for _, v := range victims {
		time.Sleep(time.Duration(rand.Int64N(int64(slot / 2))))
		name := v
		switch v {
		case "etcd-member", "etcd-leader":
			leader, follower := etcdRoles(t, c)
			name = follower
			if v == "etcd-leader" {
				name = leader
			}
		}
		pid := c.pid(t, name)
		if name == "server-2" {
			stats.mu.Lock()
			stats.serverDownSince = map[int]time.Time{1: time.Now()}
			stats.mu.Unlock()
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill %s (pid %d): %v", name, pid, err)
		}
		t.Logf("%s: SIGKILLed %s (pid %d)", time.Now().Format("15:04:05.000"), name, pid)
		stats.mu.Lock()
		stats.kills[v]++
		stats.mu.Unlock()
		time.Sleep(slot / 4)
		start := time.Now()
		if out, err := c.run("up"); err != nil {
			t.Fatalf("cluster.sh up after killing %s: %v\n%s", name, err, out)
		}
		t.Logf("%s: restarted %s in %s", time.Now().Format("15:04:05.000"), name, time.Since(start).Round(time.Millisecond))
		stats.mu.Lock()
		stats.lastRestart = time.Now()
		if name == "server-2" {
			stats.serverUpAt = map[int]time.Time{1: time.Now()}
		}
		stats.mu.Unlock()
	}
	time.Sleep(time.Until(end))
	stopped.Store(true)
	wg.Wait()
	clientsDone := time.Now()

	// Convergence: every resource the API knows is Ready at its generation on every site, every
	// accepted deletion is complete.
	converged, ok := waitConverged(t, c, all, len(sites), 3*time.Minute)
	convergeTime := converged.Sub(stats.lastRestart)
	lost, dups, wrong := checkSites(t, kube, sites, all)

	stats.mu.Lock()
	defer stats.mu.Unlock()
	summary := fmt.Sprintf("chaos: %d clients for %s (until the last restart) on %d sites\n"+
		"  requests accepted: %d creates, %d updates, %d deletes (%d creates never answered); %d retried on the other server\n"+
		"  kills: %v\n"+
		"  5xx answers: %v (from servers that stayed up: %d)\n"+
		"  converged: %t, %s after the last restart, %s after the last request was answered\n"+
		"  on the sites: %d lost, %d duplicated, %d with a wrong value",
		cfg.Clients, clientsDone.Sub(begin).Round(time.Second), len(sites), stats.creates, stats.updates, stats.deletes, stats.unansweredCreates, stats.retries,
		stats.kills, stats.fivexx, len(stats.fivexxFromSurvivors), ok, convergeTime.Round(time.Millisecond),
		converged.Sub(clientsDone).Round(time.Millisecond), lost, dups, wrong)
	fmt.Fprintln(os.Stderr, summary)
	t.Log(summary)
	for _, s := range stats.fivexxFromSurvivors {
		t.Errorf("5xx from a server that stayed up: %s", s)
	}
	if lost+dups+wrong > 0 {
		t.Errorf("%d lost, %d duplicated, %d wrong", lost, dups, wrong)
	}
}

// clientOps creates r, updates it zero to two times and deletes it one time in three.
func clientOps(ctx context.Context, c *Cluster, stats *chaosStats, r *tracked, rng *rand.Rand, sites []string) {
	r.values = append(r.values, "v0")
	key := fmt.Sprintf("%s-%d", r.name, rng.Uint64())
	var created client.Resource
	err := retry(ctx, c, stats, rng, "create "+r.name, func(cl *client.Client) error {
		var err error
		created, err = cl.CreateResource(ctx, client.ResourceRequest{Name: r.name, Manifest: configMap(r.name, "v0"),
			Scope: &cheops.Scope{Sites: sites}}, client.CreateOptions{IdempotencyKey: key})
		return err
	})
	if err != nil {
		stats.mu.Lock()
		stats.unansweredCreates++
		stats.mu.Unlock()
		return
	}
	r.id, r.accepted = created.ID, 1
	stats.mu.Lock()
	stats.creates++
	stats.mu.Unlock()
	for u := range rng.IntN(3) {
		v := fmt.Sprintf("v%d", u+1)
		r.values = append(r.values, v)
		if err := retry(ctx, c, stats, rng, "update "+r.name, func(cl *client.Client) error {
			_, err := cl.UpdateResource(ctx, r.id, client.ResourceRequest{Manifest: configMap(r.name, v)}, client.UpdateOptions{})
			return err
		}); err != nil {
			return
		}
		r.accepted = len(r.values)
		stats.mu.Lock()
		stats.updates++
		stats.mu.Unlock()
	}
	if rng.IntN(3) == 0 {
		r.deleteSent = true
		if err := retry(ctx, c, stats, rng, "delete "+r.name, func(cl *client.Client) error {
			_, err := cl.DeleteResource(ctx, r.id, false)
			if client.IsNotFound(err) {
				return nil // an earlier try got through
			}
			return err
		}); err != nil {
			return
		}
		r.deleteAccepted = true
		stats.mu.Lock()
		stats.deletes++
		stats.mu.Unlock()
	}
}

// retry sends op to a random server, and after a failure to reach it or a 5xx, 429 or 503, to the
// other one, for up to 60 s. A 5xx from a server that was not killed around that time is recorded.
func retry(ctx context.Context, c *Cluster, stats *chaosStats, rng *rand.Rand, what string, op func(*client.Client) error) error {
	i := rng.IntN(len(c.Clients))
	deadline := time.Now().Add(60 * time.Second)
	for {
		sent := time.Now()
		err := op(c.Clients[i])
		code := client.StatusCode(err)
		if err == nil {
			return nil
		}
		if code >= 500 {
			stats.mu.Lock()
			stats.fivexx[strconv.Itoa(code)]++
			if !stats.wasDown(i, sent) {
				stats.fivexxFromSurvivors = append(stats.fivexxFromSurvivors, fmt.Sprintf("server-%d %s: %v", i+1, what, err))
			}
			stats.mu.Unlock()
		} else if code != 0 && code != http.StatusTooManyRequests {
			return err // the API's considered answer, not a fault
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		stats.mu.Lock()
		stats.retries++
		stats.mu.Unlock()
		i = (i + 1) % len(c.Clients)
		time.Sleep(time.Duration(100+rng.IntN(400)) * time.Millisecond)
	}
}

// wasDown reports whether server i (0-based) was being killed or restarted around t.
func (s *chaosStats) wasDown(i int, t time.Time) bool {
	down, ok := s.serverDownSince[i]
	if !ok || t.Before(down.Add(-time.Second)) {
		return false
	}
	up, ok := s.serverUpAt[i]
	return !ok || t.Before(up.Add(time.Second))
}

// pid is a cluster process's pid, from its pid file.
func (c *Cluster) pid(t *testing.T, name string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(c.Dir, "run", name+".pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// etcdRoles returns the names of the etcd leader and of one follower.
func etcdRoles(t *testing.T, c *Cluster) (leader, follower string) {
	t.Helper()
	tlsCfg, err := (&clientTLS{c.Dir}).config()
	if err != nil {
		t.Fatal(err)
	}
	eps := strings.Split(c.envValue(t, "CHEOPS_ETCD_ENDPOINTS"), ",")
	cl, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, TLS: tlsCfg})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	for i, ep := range eps {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := cl.Status(ctx, ep)
		cancel()
		if err != nil {
			t.Fatalf("etcd status %s: %v", ep, err)
		}
		name := fmt.Sprintf("etcd-%d", i+1)
		if st.Header.MemberId == st.Leader {
			leader = name
		} else if follower == "" {
			follower = name
		}
	}
	if leader == "" || follower == "" {
		t.Fatalf("etcd: leader %q, follower %q", leader, follower)
	}
	return leader, follower
}

// waitConverged waits until every resource the API lists is Ready on every site at its generation
// and every accepted deletion is done, and returns when that happened; a failure of the test when
// that does not happen in time.
func waitConverged(t *testing.T, c *Cluster, all []*tracked, sites int, timeout time.Duration) (time.Time, bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		items, err := c.Clients[0].ListAllResources(ctx, client.ListOptions{})
		cancel()
		if err != nil {
			last = err.Error()
			time.Sleep(time.Second)
			continue
		}
		byName := map[string]client.Resource{}
		for _, r := range items {
			byName[r.Name] = r
		}
		var pending []string
		for _, r := range items {
			if r.State != cheops.ResourceReady || r.ReadyReplicas() != sites {
				pending = append(pending, fmt.Sprintf("%s %s %d/%d", r.Name, r.State, r.ReadyReplicas(), sites))
			}
		}
		for _, r := range all {
			if _, ok := byName[r.name]; ok && r.deleteAccepted {
				pending = append(pending, r.name+" still listed after its accepted delete")
			}
		}
		if len(pending) == 0 {
			return time.Now(), true
		}
		slices.Sort(pending)
		last = fmt.Sprintf("%d pending: %s", len(pending), strings.Join(pending[:min(len(pending), 10)], "; "))
		time.Sleep(time.Second)
	}
	t.Errorf("not converged after %s: %s", timeout, last)
	return time.Now(), false
}

// checkSites compares every site's ConfigMaps labelled with a cheops resource ID with what the
// clients were told: an accepted, undeleted resource must be on every site once with one of the
// values it may have (the last accepted one or a later one sent without an answer).
func checkSites(t *testing.T, kube *harness.KubeCluster, sites []string, all []*tracked) (lost, dups, wrong int) {
	t.Helper()
	ctx := context.Background()
	byID := map[string]*tracked{}
	for _, r := range all {
		if r.id != "" {
			byID[r.id] = r
		}
	}
	for i, a := range kube.Apiservers {
		cs, _, err := a.Clients()
		if err != nil {
			t.Fatal(err)
		}
		list, err := cs.CoreV1().ConfigMaps("default").List(ctx, metav1.ListOptions{LabelSelector: cheops.LabelResourceID})
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		for _, cm := range list.Items {
			id := cm.Labels[cheops.LabelResourceID]
			seen[id]++
			r, ok := byID[id]
			if !ok {
				continue // a create whose answer never came: it may exist; the API's listing vouches for it
			}
			if r.deleteAccepted {
				t.Errorf("%s: %s (%s) still there after its accepted delete", sites[i], r.name, id)
				wrong++
				continue
			}
			if !slices.Contains(r.values[r.accepted-1:], cm.Data["value"]) {
				t.Errorf("%s: %s has value %q, want one of %v", sites[i], r.name, cm.Data["value"], r.values[r.accepted-1:])
				wrong++
			}
		}
		for id, n := range seen {
			if n > 1 {
				t.Errorf("%s: %d objects labelled with resource %s", sites[i], n, id)
				dups += n - 1
			}
		}
		for id, r := range byID {
			if !r.deleteSent && seen[id] == 0 {
				t.Errorf("%s: %s (%s) lost", sites[i], r.name, id)
				lost++
			}
		}
	}
	return lost, dups, wrong
}
