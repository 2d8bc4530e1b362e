package e2e

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/client"
)

// TestDriftMemory measures what watching for drift adds to a worker's memory: 1,000 ConfigMaps
// (100 resources on 10 sites, namespaces of the three apiservers), the worker's resident set
// sampled once with drift detection off (--drift-interval=0) and once with it on, each after a
// restart of the worker and the same settling time. Run by hand (it takes a few minutes):
//
//	CHEOPS_E2E_DRIFT_MEMORY=1 CHEOPS_E2E_OPENSTACK=off go test -count=1 -v -run TestDriftMemory ./test/e2e/
func TestDriftMemory(t *testing.T) {
	if os.Getenv("CHEOPS_E2E_DRIFT_MEMORY") != "1" {
		t.Skip("a measurement, run by hand: CHEOPS_E2E_DRIFT_MEMORY=1")
	}
	const nSites, nResources = 10, 100
	ctx := context.Background()
	var sites []string
	for i := range nSites {
		a := env.kube.Apiservers[i%3]
		name := fmt.Sprintf("mem-%d", i)
		cs, _, err := a.Clients()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		kc, err := os.ReadFile(a.Kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := env.client.CreateSite(ctx, client.SiteRequest{Name: name, Driver: cheops.DriverKubernetes,
			Kubernetes: &client.KubernetesSettings{Kubeconfig: string(kc), Namespace: name}}); err != nil {
			t.Fatal(err)
		}
		sites = append(sites, name)
	}
	for _, s := range sites {
		waitSiteHealth(t, s, "Ready")
	}
	var ids []string
	color := strings.Repeat("x", 64)
	for i := range nResources {
		name := fmt.Sprintf("mem-cm-%03d", i)
		cm := driftConfigMap(name, color)
		ids = append(ids, post(t, client.ResourceRequest{Name: name, Manifest: raw(cm), Scope: onSites(sites...)}).ID)
	}
	for _, id := range ids {
		waitFor(t, id, 5*time.Minute, "Ready", func(r resource, code int) bool { return code == 200 && r.State == "Ready" })
	}
	t.Logf("%d ConfigMaps Ready on %d sites", nResources*nSites, nSites)

	measure := func(args ...string) (median, peak int) {
		env.cheops.Worker.Stop()
		env.cheops.WorkerArgs = args
		if err := env.cheops.StartWorker(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(30 * time.Second)
		var samples []int
		for range 10 {
			samples = append(samples, rssKiB(t, env.cheops.Worker.Pid()))
			time.Sleep(time.Second)
		}
		slices.Sort(samples)
		return samples[len(samples)/2], samples[len(samples)-1]
	}
	offMedian, offPeak := measure("--drift-interval=0")
	onMedian, onPeak := measure()
	env.cheops.WorkerArgs = nil
	// The watches run: a ConfigMap deleted by hand on the last site is made again.
	cs, _, err := env.kube.Apiservers[(nSites-1)%3].Clients()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("worker RSS: off median %d KiB peak %d KiB; on median %d KiB peak %d KiB", offMedian, offPeak, onMedian, onPeak)
	took := deleteByHand(t, cs.CoreV1().ConfigMaps(sites[nSites-1]), "mem-cm-000", color)
	fmt.Printf("drift watch memory, %d ConfigMaps on %d sites: worker RSS median %.1f MiB (peak %.1f) with drift detection off, %.1f MiB (peak %.1f) on: +%.1f MiB (target ≤ 100 MiB); a delete by hand repaired in %s\n",
		nResources*nSites, nSites, mib(offMedian), mib(offPeak), mib(onMedian), mib(onPeak), mib(onMedian-offMedian), took)
	if mib(onMedian-offMedian) > 100 {
		t.Errorf("watching for drift adds %.1f MiB, more than 100 MiB", mib(onMedian-offMedian))
	}
	for _, id := range ids {
		if _, err := env.client.DeleteResource(ctx, id, false); err != nil {
			t.Fatal(err)
		}
	}
	for _, id := range ids {
		waitGone(t, id)
	}
	for _, s := range sites {
		if err := env.client.DeleteSite(ctx, s, false); err != nil {
			t.Error(err)
		}
	}
}

func mib(kib int) float64 { return float64(kib) / 1024 }

// rssKiB reads a process' resident set size, in KiB, from /proc.
func rssKiB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no VmRSS in /proc/<pid>/status")
	return 0
}
