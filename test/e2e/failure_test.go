package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/client"
)

// remove deletes a resource and waits until it is gone.
func remove(t *testing.T, id string) {
	t.Helper()
	if _, err := env.client.DeleteResource(context.Background(), id, false); err != nil {
		t.Logf("delete %s: %v (waiting for it to be gone all the same)", id, err)
	}
	waitGone(t, id)
}

func events(t *testing.T, id string) []cheops.Event {
	t.Helper()
	evs, err := env.client.Events(context.Background(), id)
	if err != nil {
		t.Fatalf("events: %v", err)
	}
	return evs
}

// seconds is a policy duration.
func seconds(n int) cheops.Duration { return cheops.Duration(time.Duration(n) * time.Second) }

func countEvents(evs []cheops.Event, typ cheops.EventType, site string) int {
	n := 0
	for _, e := range evs {
		if e.Type == typ && e.Site == site {
			n++
		}
	}
	return n
}

func waitSiteHealth(t *testing.T, site, want string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	var last string
	for time.Now().Before(deadline) {
		if s, err := env.client.GetSite(context.Background(), site); err == nil {
			if string(s.Health) == want {
				return
			}
			last = string(s.Health) + " " + s.HealthMessage
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("site %s not %s after 1m; last %s", site, want, last)
}

// stopSite3 stops the third kube-apiserver (sites site-3 and slow-3) and makes sure it runs again
// when the test ends, whatever happens.
func stopSite3(t *testing.T) (restart func()) {
	t.Helper()
	a := env.kube.Apiservers[2]
	a.Stop()
	running := false
	restart = func() {
		if running {
			return
		}
		if err := a.Start(""); err != nil {
			t.Fatalf("restart site-3's apiserver: %v", err)
		}
		running = true
	}
	t.Cleanup(func() {
		restart()
		waitSiteHealth(t, "site-3", "Ready")
	})
	waitSiteHealth(t, "site-3", "Unreachable")
	return restart
}

// configMapOn reads a ConfigMap from apiserver i with client-go.
func configMapOn(t *testing.T, i int, ns, name string) (*corev1.ConfigMap, error) {
	t.Helper()
	cs, _, err := env.kube.Apiservers[i].Clients()
	if err != nil {
		t.Fatal(err)
	}
	return cs.CoreV1().ConfigMaps(ns).Get(context.Background(), name, metav1.GetOptions{})
}

func wantValue(t *testing.T, i int, name, value, generation string) {
	t.Helper()
	cm, err := configMapOn(t, i, "default", name)
	if err != nil {
		t.Fatalf("site-%d: %v", i+1, err)
	}
	if cm.Data["value"] != value || cm.Annotations[cheops.AnnotationGeneration] != generation {
		t.Fatalf("site-%d: %s has value %q at generation %s, want %q at %s", i+1, name, cm.Data["value"],
			cm.Annotations[cheops.AnnotationGeneration], value, generation)
	}
}

func wantAbsent(t *testing.T, i int, ns, name string) {
	t.Helper()
	if _, err := configMapOn(t, i, ns, name); !apierrors.IsNotFound(err) {
		t.Fatalf("apiserver %d: %s/%s should not exist (err %v)", i+1, ns, name, err)
	}
}

// Eventual: with site-3's apiserver down before the fan-out, the other sites become Ready and
// site-3 Unreachable (Degraded); once it is back it converges with no user action.
func TestEventualSiteDownThenBack(t *testing.T) {
	restart := stopSite3(t)
	r := post(t, client.ResourceRequest{Name: "down-eventual", Manifest: raw(configMap("down-eventual", "v1")),
		Scope: onSites(directSites...), Policy: &cheops.Policy{RetryInitial: seconds(1), RetryMax: seconds(4)}})
	waitFor(t, r.ID, time.Minute, "Degraded with site-3 Unreachable", func(r resource, _ int) bool {
		r1, _ := r.Replica("site-1")
		r2, _ := r.Replica("site-2")
		r3, _ := r.Replica("site-3")
		return r.State == "Degraded" && r1.State == "Ready" && r2.State == "Ready" && r3.State == "Unreachable"
	})
	start := time.Now()
	restart()
	r = waitReady(t, r.ID, 1)
	t.Logf("site-3 back: converged %s after its apiserver was ready again", time.Since(start).Round(time.Millisecond))
	cm, err := configMapOn(t, 2, "default", "down-eventual")
	if err != nil {
		t.Fatal(err)
	}
	if rep, _ := r.Replica("site-3"); string(cm.UID) != rep.LocalID {
		t.Fatalf("site-3: UID %s, API reports %s", cm.UID, rep.LocalID)
	}
	remove(t, r.ID)
}

// Transactional: with site-3 down, a new generation that cannot reach it within the policy timeout
// is rolled back on the sites that took it; a first generation that cannot leaves nothing anywhere.
func TestTransactionalRollsBackWhenASiteIsDown(t *testing.T) {
	policy := &cheops.Policy{Consistency: cheops.Transactional, Timeout: seconds(6)}
	r := post(t, client.ResourceRequest{Name: "txn-down", Manifest: raw(configMap("txn-down", "v1")),
		Scope: onSites(directSites...), Policy: policy})
	waitReady(t, r.ID, 1)
	restart := stopSite3(t)

	r = put(t, r.ID, client.ResourceRequest{Manifest: raw(configMap("txn-down", "v2"))})
	r = waitFor(t, r.ID, 2*time.Minute, "RolledBack", func(r resource, _ int) bool { return r.State == "RolledBack" })
	if r.Rollback == nil || r.Rollback.Generation != 2 || !strings.Contains(r.Rollback.Reasons["site-3"], "timeout") {
		t.Fatalf("rollback = %+v, want generation 2 with site-3's reason", r.Rollback)
	}
	for i := range 2 {
		wantValue(t, i, "txn-down", "v1", "1")
	}

	first := post(t, client.ResourceRequest{Name: "txn-first", Manifest: raw(configMap("txn-first", "v1")),
		Scope: onSites(directSites...), Policy: policy})
	waitFor(t, first.ID, 2*time.Minute, "RolledBack", func(r resource, _ int) bool { return r.State == "RolledBack" })
	for i := range 2 {
		wantAbsent(t, i, "default", "txn-first")
	}

	restart()
	waitSiteHealth(t, "site-3", "Ready")
	wantValue(t, 2, "txn-down", "v1", "1")
	wantAbsent(t, 2, "default", "txn-first")
	remove(t, r.ID)
	remove(t, first.ID)
}

// A kind that site-3 does not serve (its CRD is on site-1 and site-2 only) fails there at once, with
// no retry; eventual mode reports Degraded, transactional mode rolls back.
func TestPermanentRejection(t *testing.T) {
	rc := create(t, "gadgets-crd", crdManifest("faults.cheops.io", "gadget", "Gadget"), "site-1", "site-2")
	waitReady(t, rc.ID, 1)
	gadgets := schema.GroupVersionResource{Group: "faults.cheops.io", Version: "v1", Resource: "gadgets"}
	for i := range 2 {
		_, dyn, _ := env.kube.Apiservers[i].Clients()
		deadline := time.Now().Add(time.Minute)
		for {
			if _, err := dyn.Resource(gadgets).Namespace("default").List(context.Background(), metav1.ListOptions{}); err == nil {
				break
			} else if time.Now().After(deadline) {
				t.Fatalf("gadgets not served on site-%d: %v", i+1, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	gadget := func(name string) map[string]any {
		return map[string]any{"apiVersion": "faults.cheops.io/v1", "kind": "Gadget", "metadata": map[string]any{"name": name}, "spec": map[string]any{"size": 3}}
	}

	ev := post(t, client.ResourceRequest{Name: "gadget-eventual", Manifest: raw(gadget("gadget-eventual")),
		Scope: onSites(directSites...), Policy: &cheops.Policy{RetryInitial: seconds(1), RetryMax: seconds(2)}})
	waitFor(t, ev.ID, time.Minute, "Degraded with site-3 Failed", func(r resource, _ int) bool {
		r3, _ := r.Replica("site-3")
		return r.State == "Degraded" && r3.State == "Failed"
	})
	// Several backoff rounds pass; a rejected generation is not retried in any of them.
	time.Sleep(5 * time.Second)
	r, _ := get(t, ev.ID)
	r3, _ := r.Replica("site-3")
	evs := events(t, ev.ID)
	t.Logf("site-3 rejected the Gadget after %d attempt(s): %s", r3.Attempts, r3.Message)
	if r3.Attempts != 1 || countEvents(evs, "ApplyFailed", "site-3") != 1 || r.State != "Degraded" {
		t.Fatalf("site-3: %d attempts, %d ApplyFailed events, state %s; want 1, 1, Degraded", r3.Attempts, countEvents(evs, "ApplyFailed", "site-3"), r.State)
	}

	txn := post(t, client.ResourceRequest{Name: "gadget-txn", Manifest: raw(gadget("gadget-txn")),
		Scope: onSites(directSites...), Policy: &cheops.Policy{Consistency: cheops.Transactional}})
	r = waitFor(t, txn.ID, time.Minute, "RolledBack", func(r resource, _ int) bool { return r.State == "RolledBack" })
	if !strings.Contains(r.Rollback.Reasons["site-3"], "Gadget") {
		t.Fatalf("rollback reasons = %v, want site-3's rejection", r.Rollback.Reasons)
	}
	for i := range 2 {
		_, dyn, _ := env.kube.Apiservers[i].Clients()
		if _, err := dyn.Resource(gadgets).Namespace("default").Get(context.Background(), "gadget-txn", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Fatalf("site-%d still has gadget-txn after the rollback (err %v)", i+1, err)
		}
	}
	remove(t, ev.ID)
	remove(t, txn.ID)
	remove(t, rc.ID)
}

// "site-3 | site-1": the replica lives on site-3; when site-3 dies it fails over to site-1, and the
// abandoned replica on site-3 is deleted once site-3 is back.
func TestFailoverOnScopeExpression(t *testing.T) {
	r := post(t, client.ResourceRequest{Name: "failover", Manifest: raw(configMap("failover", "v1")),
		Scope: &cheops.Scope{Expression: "site-3 | site-1"}, Policy: &cheops.Policy{RetryInitial: seconds(1), RetryMax: seconds(2)}})
	r = waitReady(t, r.ID, 1)
	if len(r.Replicas) != 1 || r.Replicas[0].Site != "site-3" {
		t.Fatalf("replicas = %+v, want one on site-3", r.Replicas)
	}
	restart := stopSite3(t)
	start := time.Now()
	waitFor(t, r.ID, time.Minute, "Ready on site-1", func(r resource, _ int) bool {
		rep, ok := r.Replica("site-1")
		return ok && rep.State == "Ready"
	})
	t.Logf("failed over to site-1 %s after site-3 was marked Unreachable", time.Since(start).Round(time.Millisecond))
	wantValue(t, 0, "failover", "v1", "1")
	restart()
	r = waitFor(t, r.ID, time.Minute, "only on site-1", func(r resource, _ int) bool {
		return r.State == "Ready" && len(r.Replicas) == 1 && r.Replicas[0].Site == "site-1"
	})
	wantAbsent(t, 2, "default", "failover")
	remove(t, r.ID)
}

// The worker is SIGKILLed while a rollback is deleting a replica on a slow site; after a restart the
// compensation completes, exactly once per site.
func TestWorkerKilledMidCompensation(t *testing.T) {
	// Namespace "comp" exists on the first and third apiservers: site-2 rejects the ConfigMap.
	for _, i := range []int{0, 2} {
		cs, _, _ := env.kube.Apiservers[i].Clients()
		if _, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "comp"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
	env.slow.SetDelay(time.Second)
	defer env.slow.SetDelay(0)
	cm := configMap("compensated", "v1")
	cm["metadata"].(map[string]any)["namespace"] = "comp"
	r := post(t, client.ResourceRequest{Name: "compensated", Manifest: raw(cm),
		Scope: onSites("site-1", "site-2", "slow-3"), Policy: &cheops.Policy{Consistency: cheops.Transactional}})
	waitFor(t, r.ID, 2*time.Minute, "compensating slow-3", func(r resource, _ int) bool {
		rep, _ := r.Replica("slow-3")
		return rep.State == "Deleting" && strings.HasPrefix(rep.Message, "rollback")
	})
	env.cheops.Worker.Kill()
	t.Log("worker killed while slow-3's replica was being compensated")
	env.slow.SetDelay(200 * time.Millisecond)
	if err := env.cheops.StartWorker(); err != nil {
		t.Fatal(err)
	}
	r = waitFor(t, r.ID, 2*time.Minute, "RolledBack", func(r resource, _ int) bool { return r.State == "RolledBack" })
	if len(r.Replicas) != 0 {
		t.Fatalf("replicas left after rolling back a first generation: %+v", r.Replicas)
	}
	wantAbsent(t, 0, "comp", "compensated")
	wantAbsent(t, 2, "comp", "compensated")
	evs := events(t, r.ID)
	for _, site := range []string{"site-1", "site-2", "slow-3"} {
		if n := countEvents(evs, "RolledBack", site); n != 1 {
			t.Errorf("site %s: %d RolledBack events, want exactly 1", site, n)
		}
	}
	remove(t, r.ID)
}

// Pause, update, resume: nothing is applied while paused and the update lands on resume. A per-site
// override adds a key on site-2 only.
func TestPauseUpdateResumeWithOverride(t *testing.T) {
	overrides := []cheops.Override{{Site: "site-2", Patch: raw(map[string]any{"data": map[string]any{"site": "two"}})}}
	r := post(t, client.ResourceRequest{Name: "paused", Manifest: raw(configMap("paused", "v1")),
		Scope: onSites("site-1", "site-2"), Overrides: &overrides})
	r = waitReady(t, r.ID, 1)
	if rep, _ := r.Replica("site-2"); len(rep.Overrides) != 1 || rep.Overrides[0] != "overrides[0]" {
		t.Fatalf("site-2 replica overrides = %v", rep.Overrides)
	}
	if cm, _ := configMapOn(t, 1, "default", "paused"); cm == nil || cm.Data["site"] != "two" {
		t.Fatalf("site-2 ConfigMap without its override: %+v", cm)
	}
	if cm, _ := configMapOn(t, 0, "default", "paused"); cm == nil || cm.Data["site"] != "" {
		t.Fatalf("site-1 ConfigMap has site-2's override: %+v", cm)
	}

	if code, out := call(http.MethodPost, "/v1/resources/paused:pause", nil, nil); code != http.StatusAccepted {
		t.Fatalf("pause: %d %s", code, out)
	}
	waitFor(t, r.ID, 30*time.Second, "paused", func(r resource, _ int) bool { return r.Paused })
	put(t, r.ID, client.ResourceRequest{Manifest: raw(configMap("paused", "v2"))})
	time.Sleep(3 * time.Second)
	wantValue(t, 0, "paused", "v1", "1")
	if code, out := call(http.MethodPost, "/v1/resources/paused:resume", nil, nil); code != http.StatusAccepted {
		t.Fatalf("resume: %d %s", code, out)
	}
	waitReady(t, r.ID, 2)
	wantValue(t, 0, "paused", "v2", "2")
	if cm, _ := configMapOn(t, 1, "default", "paused"); cm == nil || cm.Data["value"] != "v2" || cm.Data["site"] != "two" {
		t.Fatalf("site-2 after resume: %+v", cm)
	}
	remove(t, r.ID)
}

// temporalCLI returns the real `temporal` CLI, installed by the project's own script.
func temporalCLI(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHEOPS_TEMPORAL_CLI"); p != "" {
		return p
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("bash", filepath.Join(root, "scripts/tools.sh"), "temporal").Output()
	if err != nil {
		t.Fatalf("install the temporal CLI: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "temporal")
}

// The README's operator commands, run with the real temporal CLI against the dev server: signal
// pause and resume, query status, list by search attribute, and resync repairing drift.
func TestTemporalCLIControls(t *testing.T) {
	bin := temporalCLI(t)
	temporal := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(bin, append(args, "--address", env.cheops.TemporalAddr, "--namespace", "default")...).CombinedOutput()
		if err != nil {
			t.Fatalf("temporal %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	// policy.drift report: the drift monitor only reports the object deleted below; the resync
	// is what puts it back.
	r := post(t, client.ResourceRequest{Name: "operated", Manifest: raw(configMap("operated", "v1")), Scope: onSites("site-1"),
		Policy: &cheops.Policy{Drift: cheops.DriftReport}})
	r = waitReady(t, r.ID, 1)
	wid := "resource-" + r.ID

	temporal("workflow", "signal", "--workflow-id", wid, "--name", "pause")
	waitFor(t, r.ID, 30*time.Second, "paused", func(r resource, _ int) bool { return r.Paused })
	if out := temporal("workflow", "query", "--workflow-id", wid, "--type", "status"); !strings.Contains(out, `"Paused": true`) && !strings.Contains(out, `"Paused":true`) {
		t.Fatalf("status query does not say paused:\n%s", out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out := temporal("workflow", "list", "--query", `CheopsResourceName="operated" AND CheopsState="Paused"`)
		if strings.Contains(out, wid) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("workflow list by search attributes does not find %s:\n%s", wid, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
	temporal("workflow", "signal", "--workflow-id", wid, "--name", "resume")
	waitFor(t, r.ID, 30*time.Second, "resumed", func(r resource, _ int) bool { return !r.Paused })

	// Drift: someone deletes the object on the site; it is reported, and resync puts it back.
	cs, _, _ := env.kube.Apiservers[0].Clients()
	if err := cs.CoreV1().ConfigMaps("default").Delete(context.Background(), "operated", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, r.ID, 30*time.Second, "drifted on site-1", func(r resource, _ int) bool { return replicaOn(r, "site-1").Drifted })
	if _, err := configMapOn(t, 0, "default", "operated"); err == nil {
		t.Fatal("policy.drift report: the deleted ConfigMap was made again before the resync")
	}
	temporal("workflow", "signal", "--workflow-id", wid, "--name", "resync")
	deadline = time.Now().Add(30 * time.Second)
	for {
		if _, err := configMapOn(t, 0, "default", "operated"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("resync did not re-create the deleted ConfigMap")
		}
		time.Sleep(200 * time.Millisecond)
	}
	remove(t, r.ID)
}

// Transactional, with the site dying in the middle of the fan-out: slow-3 (behind a slowing proxy)
// is being updated when its apiserver stops. Its outcome is unknown, so its compensation waits for
// it to return; then every site is back at generation 1.
func TestTransactionalSiteDiesDuringFanOut(t *testing.T) {
	r := post(t, client.ResourceRequest{Name: "txn-midway", Manifest: raw(configMap("txn-midway", "v1")),
		Scope: onSites("site-1", "slow-3"), Policy: &cheops.Policy{Consistency: cheops.Transactional, Timeout: seconds(5)}})
	waitReady(t, r.ID, 1)
	env.slow.SetDelay(time.Second)
	defer env.slow.SetDelay(0)
	put(t, r.ID, client.ResourceRequest{Manifest: raw(configMap("txn-midway", "v2"))})
	waitFor(t, r.ID, time.Minute, "slow-3 Applying generation 2", func(r resource, _ int) bool {
		rep, _ := r.Replica("slow-3")
		return rep.State == "Applying"
	})
	// The driver applies the object it recorded at once, with its UID (no read first): the apply
	// takes the proxy's second of delay. Stop the site during it, so that its outcome is unknown.
	time.Sleep(400 * time.Millisecond)
	restart := stopSite3(t)
	r = waitFor(t, r.ID, time.Minute, "rolling back", func(r resource, _ int) bool { return r.Rollback != nil && r.Rollback.Generation == 2 })
	if r.State == "RolledBack" {
		t.Fatalf("rolled back while slow-3, whose outcome is unknown, is still down: %+v", r)
	}
	env.slow.SetDelay(100 * time.Millisecond)
	restart()
	r = waitFor(t, r.ID, 2*time.Minute, "RolledBack", func(r resource, _ int) bool { return r.State == "RolledBack" })
	wantValue(t, 0, "txn-midway", "v1", "1")
	cm, err := configMapOn(t, 2, "slow", "txn-midway")
	if err != nil || cm.Data["value"] != "v1" || cm.Annotations[cheops.AnnotationGeneration] != "1" {
		t.Fatalf("slow-3 after the rollback: %+v, %v; want v1 at generation 1", cm, err)
	}
	remove(t, r.ID)
}

// Eventual, with the site dying in the middle of the fan-out: site-1 becomes Ready without waiting
// for slow-3, and slow-3 converges once its apiserver is back, with no action.
func TestEventualSiteDiesDuringFanOut(t *testing.T) {
	env.slow.SetDelay(time.Second)
	defer env.slow.SetDelay(0)
	r := post(t, client.ResourceRequest{Name: "ev-midway", Manifest: raw(configMap("ev-midway", "v1")),
		Scope: onSites("site-1", "slow-3"), Policy: &cheops.Policy{RetryInitial: seconds(1), RetryMax: seconds(4)}})
	waitFor(t, r.ID, time.Minute, "slow-3 Applying", func(r resource, _ int) bool {
		rep, _ := r.Replica("slow-3")
		return rep.State == "Applying"
	})
	restart := stopSite3(t)
	waitFor(t, r.ID, time.Minute, "site-1 Ready while slow-3 is down", func(r resource, _ int) bool {
		r1, _ := r.Replica("site-1")
		r3, _ := r.Replica("slow-3")
		return r1.State == "Ready" && r3.State != "Ready"
	})
	env.slow.SetDelay(100 * time.Millisecond)
	start := time.Now()
	restart()
	r = waitReady(t, r.ID, 1)
	t.Logf("slow-3 converged %s after its apiserver was ready again", time.Since(start).Round(time.Millisecond))
	cm, err := configMapOn(t, 2, "slow", "ev-midway")
	if err != nil {
		t.Fatal(err)
	}
	if rep, _ := r.Replica("slow-3"); string(cm.UID) != rep.LocalID {
		t.Fatalf("slow-3: UID %s, API reports %s", cm.UID, rep.LocalID)
	}
	remove(t, r.ID)
}

// A delete waiting for an unreachable site proceeds as soon as the site's probe says it is back,
// rather than after the rest of the delete's backoff.
func TestDeleteProceedsWhenItsSiteComesBack(t *testing.T) {
	r := create(t, "delete-on-return", configMap("delete-on-return", "v"), "site-3")
	waitReady(t, r.ID, 1)
	restart := stopSite3(t)
	if code, out := call(http.MethodDelete, "/v1/resources/"+r.ID, nil, nil); code != http.StatusAccepted {
		t.Fatalf("delete: %d %s", code, out)
	}
	// Down long enough for the delete's backoff to reach 16 s between tries.
	time.Sleep(16 * time.Second)
	restart()
	waitSiteHealth(t, "site-3", "Ready")
	back := time.Now()
	waitGone(t, r.ID)
	took := time.Since(back)
	wantAbsent(t, 2, "default", "delete-on-return")
	fmt.Fprintf(os.Stderr, "e2e: a delete waiting for site-3 completed %s after its probe saw it Ready\n", took.Round(time.Millisecond))
	if took > 5*time.Second {
		t.Errorf("the delete completed %s after site-3 was Ready again; want at once, not after its backoff", took.Round(time.Millisecond))
	}
}
