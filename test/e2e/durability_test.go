package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cheops-io/cheops"
)

// countLabelled counts, across all namespaces of apiserver i, the ConfigMaps carrying the resource's label.
func countLabelled(t *testing.T, i int, id string) (int, []string) {
	t.Helper()
	cs, _, err := env.kube.Apiservers[i].Clients()
	if err != nil {
		t.Fatal(err)
	}
	l, err := cs.CoreV1().ConfigMaps("").List(context.Background(), metav1.ListOptions{LabelSelector: cheops.LabelResourceID + "=" + id})
	if err != nil {
		t.Fatal(err)
	}
	var uids []string
	for _, cm := range l.Items {
		uids = append(uids, string(cm.UID))
	}
	return len(l.Items), uids
}

func appliedEvents(t *testing.T, id string) map[string]int {
	t.Helper()
	n := map[string]int{}
	for _, e := range events(t, id) {
		if e.Type == "Applied" {
			n[e.Site]++
		}
	}
	return n
}

// The worker process is SIGKILLed while a fan-out to three sites is in flight (one site made slow by
// a proxy); after a restart every replica exists exactly once and the resource becomes Ready.
func TestWorkerKilledMidFanOut(t *testing.T) {
	env.slow.SetDelay(2 * time.Second)
	defer env.slow.SetDelay(0)
	sites := []string{"site-1", "site-2", "slow-3"}
	r := create(t, "durable", configMap("durable", "v1"), sites...)

	// Kill the worker once the fast sites are done and the slow one is still being applied.
	waitFor(t, r.ID, time.Minute, "fast sites Ready while slow-3 applies", func(r resource, code int) bool {
		states := map[string]cheops.ReplicaState{}
		for _, rep := range r.Replicas {
			states[rep.Site] = rep.State
		}
		return states["site-1"] == "Ready" && states["site-2"] == "Ready" && states["slow-3"] == "Applying"
	})
	env.cheops.Worker.Kill()
	t.Log("worker killed while slow-3 was Applying")
	env.slow.SetDelay(200 * time.Millisecond)
	if err := env.cheops.StartWorker(); err != nil {
		t.Fatal(err)
	}
	r = waitReady(t, r.ID, 1)

	ids := r.LocalIDs()
	for i, site := range map[int]string{0: "site-1", 1: "site-2", 2: "slow-3"} {
		n, uids := countLabelled(t, i, r.ID)
		if n != 1 {
			t.Errorf("%s: %d ConfigMaps labelled with the resource, want exactly 1 (%v)", site, n, uids)
			continue
		}
		if uids[0] != ids[site] {
			t.Errorf("%s: UID %s, API reports %s", site, uids[0], ids[site])
		}
	}
	for site, n := range appliedEvents(t, r.ID) {
		if n != 1 {
			t.Errorf("site %s: %d Applied events, want 1", site, n)
		}
	}
	call(http.MethodDelete, "/v1/resources/"+r.ID, nil, nil)
	waitGone(t, r.ID)
}

// `cheops dev` itself (etcd, Temporal, API) is killed and restarted on the same data folder: the
// resource, its replicas and its workflow all come back, and an update after the restart converges.
func TestDevRestartLosesNothing(t *testing.T) {
	r := create(t, "persistent", configMap("persistent", "before"), "site-1", "site-2")
	r = waitReady(t, r.ID, 1)
	before := r.LocalIDs()

	start := time.Now()
	env.cheops.Dev.Kill()
	if err := env.cheops.StartDev(); err != nil {
		t.Fatal(err)
	}
	t.Logf("cheops dev killed and ready again in %s", time.Since(start).Round(time.Millisecond))
	after, code := get(t, r.ID)
	if code != http.StatusOK || after.Generation != 1 || after.State != "Ready" {
		t.Fatalf("after restart: %d %+v", code, after)
	}
	for site, id := range before {
		if after.LocalIDs()[site] != id {
			t.Errorf("site %s: local ID %s before, %s after the restart", site, id, after.LocalIDs()[site])
		}
	}
	start = time.Now()
	code, out := call(http.MethodPut, "/v1/resources/"+r.ID, map[string]any{"manifest": configMap("persistent", "after")}, nil)
	if code != http.StatusOK {
		t.Fatalf("update after restart: %d %s", code, out)
	}
	t.Logf("PUT answered in %s", time.Since(start).Round(time.Millisecond))
	waitReady(t, r.ID, 2)
	t.Logf("generation 2 Ready everywhere %s after the PUT", time.Since(start).Round(time.Millisecond))
	for i := range 2 {
		u, err := getOn(t, env.kube.Apiservers[i], configMaps, "default", "persistent")
		if err != nil {
			t.Fatal(err)
		}
		if v := u.Object["data"].(map[string]any)["value"]; v != "after" {
			t.Errorf("site-%d: value %v after the post-restart update", i+1, v)
		}
	}
	code, out = call(http.MethodGet, "/v1/sites", nil, nil)
	if code != http.StatusOK || !strings.Contains(string(out), `"slow-3"`) {
		t.Fatalf("sites after restart: %d %s", code, out)
	}
	call(http.MethodDelete, "/v1/resources/"+r.ID, nil, nil)
	waitGone(t, r.ID)
}

// A delete accepted just before cheops dev dies completes within seconds of its restart: the
// replica's object is gone from the site and the resource forgotten.
func TestDeleteAcceptedBeforeACrashCompletesAfterTheRestart(t *testing.T) {
	r := create(t, "deleted-in-crash", configMap("deleted-in-crash", "v"), "site-1")
	waitReady(t, r.ID, 1)
	if code, out := call(http.MethodDelete, "/v1/resources/"+r.ID, nil, nil); code != http.StatusAccepted {
		t.Fatalf("delete: %d %s", code, out)
	}
	env.cheops.Dev.Kill()
	start := time.Now()
	if err := env.cheops.StartDev(); err != nil {
		t.Fatal(err)
	}
	up := time.Since(start)
	waitGone(t, r.ID)
	gone := time.Since(start)
	wantAbsent(t, 0, "default", "deleted-in-crash")
	fmt.Fprintf(os.Stderr, "e2e: a delete accepted before a crash: cheops dev up again in %s, the resource gone %s after the restart began\n",
		up.Round(time.Millisecond), gone.Round(time.Millisecond))
	if gone-up > 10*time.Second {
		t.Errorf("the delete completed %s after cheops was up again; want within seconds", (gone - up).Round(time.Millisecond))
	}
}
