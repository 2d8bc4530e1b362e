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
	"github.com/cheops-io/cheops/client"
	"github.com/cheops-io/cheops/test/harness"
)

// deployment is a Deployment manifest of replicas pods running image.
func deployment(name, image string, replicas int) map[string]any {
	return map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment", "metadata": map[string]any{"name": name},
		"spec": map[string]any{
			"replicas": replicas, "selector": map[string]any{"matchLabels": map[string]any{"app": name}},
			"template": map[string]any{"metadata": map[string]any{"labels": map[string]any{"app": name}},
				"spec": map[string]any{"containers": []any{map[string]any{"name": "main", "image": image}}}},
		},
	}
}

// eventWith returns the first event of typ on site whose message contains text.
func eventWith(evs []cheops.Event, typ cheops.EventType, site, text string) *cheops.Event {
	for i, ev := range evs {
		if ev.Type == typ && ev.Site == site && strings.Contains(ev.Message, text) {
			return &evs[i]
		}
	}
	return nil
}

// On the site that runs controllers (site-1), a replicated Deployment is Applied when the site
// takes it and Ready only once the site says it is Available; one whose pods never become ready
// fails on the site when its readyTimeout passes, with the last status in its message.
func TestReadinessFollowsDeploymentStatus(t *testing.T) {
	cs, _, err := env.kube.Apiservers[0].Clients()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	web := create(t, "ready-web", deployment("ready-web", "nginx:1.27", 2), "site-1")
	defer remove(t, web.ID)
	web = waitReady(t, web.ID, 1)
	took := time.Since(start)
	d, err := cs.AppsV1().Deployments("default").Get(context.Background(), "ready-web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !available(d) || d.Status.AvailableReplicas != 2 {
		t.Fatalf("cheops says Ready, yet the Deployment's status is %+v", d.Status)
	}
	evs := events(t, web.ID)
	applied := eventWith(evs, cheops.EventApplied, "site-1", "waiting for its status to say Ready")
	ready := eventWith(evs, cheops.EventBecameReady, "site-1", "")
	if applied == nil || ready == nil || ready.Time.Before(applied.Time) {
		t.Fatalf("events %+v; want Applied (waiting for its status), then BecameReady", evs)
	}
	fmt.Fprintf(os.Stderr, "e2e: a Deployment of 2 replicas declared to Ready (Available on its site) in %s; Applied to BecameReady %s\n",
		took.Round(time.Millisecond), ready.Time.Sub(applied.Time).Round(time.Millisecond))

	start = time.Now()
	stuck := post(t, client.ResourceRequest{Name: "stuck-web", Manifest: raw(deployment("stuck-web", harness.NeverPullsImage, 1)),
		Scope: onSites("site-1"), Policy: &cheops.Policy{ReadyTimeout: seconds(8)}})
	defer remove(t, stuck.ID)
	sawApplied := false
	stuck = waitFor(t, stuck.ID, 90*time.Second, "Failed", func(r resource, code int) bool {
		sawApplied = sawApplied || (len(r.Replicas) == 1 && r.Replicas[0].State == cheops.ReplicaApplied)
		return code == http.StatusOK && r.State == cheops.ResourceFailed
	})
	rep := stuck.Replicas[0]
	if !sawApplied || rep.State != cheops.ReplicaFailed || rep.FailedGeneration != 1 ||
		!strings.Contains(rep.Message, "not Ready within the policy's readyTimeout of 8s; last status Progressing") {
		t.Fatalf("saw Applied %v; replica %+v; want Applied, then Failed at generation 1 by the readyTimeout", sawApplied, rep)
	}
	if took := time.Since(start); took < 8*time.Second {
		t.Fatalf("failed after %s, before its readyTimeout of 8s", took)
	}
	if eventWith(events(t, stuck.ID), cheops.EventNotReady, "site-1", "readyTimeout") == nil {
		t.Fatalf("no NotReady event: %+v", events(t, stuck.ID))
	}
}

// A transactional generation whose Deployment does not become Available within its readyTimeout
// is rolled back: the site's Deployment is the previous generation's again.
func TestTransactionalRollsBackAGenerationThatIsNotReady(t *testing.T) {
	cs, _, err := env.kube.Apiservers[0].Clients()
	if err != nil {
		t.Fatal(err)
	}
	tx := post(t, client.ResourceRequest{Name: "tx-web", Manifest: raw(deployment("tx-web", "nginx:1.27", 1)), Scope: onSites("site-1"),
		Policy: &cheops.Policy{Consistency: cheops.Transactional, ReadyTimeout: seconds(8)}})
	defer remove(t, tx.ID)
	waitReady(t, tx.ID, 1)
	put(t, tx.ID, client.ResourceRequest{Manifest: raw(deployment("tx-web", harness.NeverPullsImage, 1))})
	r := waitFor(t, tx.ID, 2*time.Minute, "RolledBack", func(r resource, code int) bool {
		return code == http.StatusOK && r.State == cheops.ResourceRolledBack
	})
	if reason := r.Rollback.Reasons["site-1"]; !strings.Contains(reason, "not Ready") {
		t.Fatalf("rollback reasons %v; want site-1 not Ready", r.Rollback.Reasons)
	}
	d, err := cs.AppsV1().Deployments("default").Get(context.Background(), "tx-web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img := d.Spec.Template.Spec.Containers[0].Image; img != "nginx:1.27" {
		t.Fatalf("after the rollback the Deployment runs %s; want nginx:1.27 back", img)
	}
}

// A replica on a site that turns unreachable is no longer shown Ready: it is Unknown, with what was
// last known, and the resource Degraded, until the site answers again.
func TestReplicaIsUnknownWhileItsSiteIsUnreachable(t *testing.T) {
	cm := create(t, "seen-cm", configMap("seen-cm", "v"), "site-1", "site-3")
	defer remove(t, cm.ID)
	waitReady(t, cm.ID, 1)
	restart := stopSite3(t)
	r, _ := get(t, cm.ID)
	var site3 cheops.Replica
	for _, rep := range r.Replicas {
		if rep.Site == "site-3" {
			site3 = rep
		}
	}
	if r.State != cheops.ResourceDegraded || site3.State != cheops.ReplicaUnknown ||
		!strings.Contains(site3.Message, "site unreachable; last known Ready at generation 1") {
		t.Fatalf("with site-3 unreachable: state %s, site-3 %+v; want Degraded and Unknown", r.State, site3)
	}
	list, err := env.client.ListResources(context.Background(), client.ListOptions{State: cheops.ResourceDegraded})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, item := range list.Items {
		found = found || item.ID == cm.ID
	}
	if !found {
		t.Fatalf("the list of Degraded resources does not hold %s", cm.Name)
	}
	restart()
	waitSiteHealth(t, "site-3", "Ready")
	waitReady(t, cm.ID, 1)
}
