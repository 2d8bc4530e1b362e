package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/client"
)

// A Namespace, a ConfigMap in it, a CRD and a custom resource of it, declared at once in reverse
// order (the custom resource first, the Namespace last) on site-2 and site-3, all converge: the
// ConfigMap and the custom resource wait for their namespace and their kind, which other cheops
// resources provide (no dependsOn is written), and their replicas say Waiting meanwhile, never
// Failed. The time from the first declaration to all four Ready is printed.
func TestDependenciesDeclaredInReverseOrderConverge(t *testing.T) {
	sites := []string{"site-2", "site-3"}
	const ns, group = "deps-team", "deps.example.com"
	gadget := map[string]any{"apiVersion": group + "/v1", "kind": "Gadget",
		"metadata": map[string]any{"name": "g1", "namespace": ns}, "spec": map[string]any{"size": 3}}
	settings := configMap("deps-settings", "one")
	settings["metadata"].(map[string]any)["namespace"] = ns
	namespace := map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}}
	decls := []struct {
		name     string
		manifest map[string]any
	}{
		{"deps-gadget", gadget},
		{"deps-gadgets-crd", crdManifest(group, "gadget", "Gadget")},
		{"deps-settings", settings},
		{"deps-namespace", namespace},
	}
	start := time.Now()
	var ids []string
	for _, d := range decls {
		r := post(t, client.ResourceRequest{Name: d.name, Manifest: raw(d.manifest), Scope: onSites(sites...)})
		ids = append(ids, r.ID)
	}
	declared := time.Since(start)
	defer func() {
		// Dependents first, so that no delete waits on a kind or a namespace already gone.
		for _, id := range ids {
			remove(t, id)
		}
	}()

	// Poll every resource until all are Ready, recording each replica state seen.
	seen := map[string]map[cheops.ReplicaState]bool{}
	var messages []string
	readyAt := map[string]time.Duration{}
	deadline := time.Now().Add(3 * time.Minute)
	for len(readyAt) < len(ids) && time.Now().Before(deadline) {
		for i, id := range ids {
			if _, done := readyAt[id]; done {
				continue
			}
			r, code := get(t, id)
			if code != http.StatusOK {
				continue
			}
			for _, rep := range r.Replicas {
				key := decls[i].name
				if seen[key] == nil {
					seen[key] = map[cheops.ReplicaState]bool{}
				}
				if !seen[key][rep.State] && rep.Message != "" {
					messages = append(messages, fmt.Sprintf("%s on %s %s: %s", key, rep.Site, rep.State, rep.Message))
				}
				seen[key][rep.State] = true
			}
			if r.State == cheops.ResourceFailed || r.State == cheops.ResourceDegraded {
				t.Errorf("%s is %s while it waits: %+v", decls[i].name, r.State, r.Replicas)
			}
			if r.State == cheops.ResourceReady && r.ReadyReplicas() == len(sites) {
				readyAt[id] = time.Since(start)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, m := range messages {
		t.Log(m)
	}
	for i, id := range ids {
		states := []string{}
		for s := range seen[decls[i].name] {
			states = append(states, string(s))
		}
		slices.Sort(states)
		at, ok := readyAt[id]
		t.Logf("%s: states seen %s; Ready after %s", decls[i].name, strings.Join(states, ", "), at.Round(time.Millisecond))
		if !ok {
			t.Errorf("%s not Ready after 3m", decls[i].name)
		}
		if seen[decls[i].name][cheops.ReplicaFailed] {
			t.Errorf("%s: a replica was Failed while it waited for its dependencies", decls[i].name)
		}
	}
	if t.Failed() {
		return
	}
	var all time.Duration
	for _, at := range readyAt {
		all = max(all, at)
	}
	fmt.Printf("e2e: Namespace, ConfigMap, CRD and custom resource declared in reverse order (in %s) converged on %d sites in %s\n",
		declared.Round(time.Millisecond), len(sites), all.Round(time.Millisecond))
	if !seen["deps-gadget"][cheops.ReplicaWaiting] && !seen["deps-settings"][cheops.ReplicaWaiting] {
		t.Errorf("neither dependent was seen Waiting: %v", seen)
	}

	// Each object is on both sites, the dependents in the namespace.
	gadgets := schema.GroupVersionResource{Group: group, Version: "v1", Resource: "gadgets"}
	for _, i := range []int{1, 2} {
		a := env.kube.Apiservers[i]
		if _, err := getOn(t, a, gadgets, ns, "g1"); err != nil {
			t.Errorf("gadget on %s: %v", a.Name, err)
		}
		if _, err := getOn(t, a, configMaps, ns, "deps-settings"); err != nil {
			t.Errorf("configmap on %s: %v", a.Name, err)
		}
	}
}

// A dependency cycle is a 422 naming dependsOn, and a dependsOn naming no resource a 422 naming
// the entry; nothing is written.
func TestDependenciesCycleIsRefused(t *testing.T) {
	a := post(t, client.ResourceRequest{Name: "cycle-a", Manifest: raw(configMap("cycle-a", "1")), Scope: onSites("site-2")})
	defer remove(t, a.ID)
	b := post(t, client.ResourceRequest{Name: "cycle-b", Manifest: raw(configMap("cycle-b", "1")), Scope: onSites("site-2"), DependsOn: &[]string{"cycle-a"}})
	defer remove(t, b.ID)
	_, err := env.client.UpdateResource(context.Background(), a.ID, client.ResourceRequest{DependsOn: &[]string{"cycle-b"}}, client.UpdateOptions{})
	var p *client.Problem
	if !errors.As(err, &p) || p.Status != http.StatusUnprocessableEntity || p.Field != "dependsOn" || !strings.Contains(p.Detail, "cycle-a → cycle-b → cycle-a") {
		t.Fatalf("a cycle: %v, want a 422 naming dependsOn", err)
	}
	_, err = env.client.CreateResource(context.Background(), client.ResourceRequest{Name: "cycle-c", Manifest: raw(configMap("cycle-c", "1")),
		Scope: onSites("site-2"), DependsOn: &[]string{"cycle-a", "no-such-resource"}}, client.CreateOptions{})
	if !errors.As(err, &p) || p.Status != http.StatusUnprocessableEntity || p.Field != "dependsOn[1]" {
		t.Fatalf("dependsOn naming no resource: %v, want a 422 naming dependsOn[1]", err)
	}
	if r, code := get(t, a.ID); code != http.StatusOK || r.Generation != 1 || len(r.DependsOn) != 0 {
		t.Fatalf("the refused change was written: %d %+v", code, r)
	}
}

// A dependency whose latest generation a site rejects, while its earlier one is Ready there, does
// not block its dependents: a later update of the dependent converges.
func TestDependenciesRejectedUpdateDoesNotBlockDependents(t *testing.T) {
	base := post(t, client.ResourceRequest{Name: "dep-base", Manifest: raw(configMap("dep-base", "1")), Scope: onSites("site-2", "site-3")})
	defer remove(t, base.ID)
	waitReady(t, base.ID, 1)
	app := post(t, client.ResourceRequest{Name: "dep-app", Manifest: raw(configMap("dep-app", "1")), Scope: onSites("site-2", "site-3"), DependsOn: &[]string{"dep-base"}})
	defer remove(t, app.ID)
	waitReady(t, app.ID, 1)
	// A data key the apiserver refuses: generation 2 of dep-base is rejected on both sites.
	bad := configMap("dep-base", "2")
	bad["data"] = map[string]any{"not a valid key!": "x"}
	put(t, base.ID, client.ResourceRequest{Manifest: raw(bad)})
	waitFor(t, base.ID, time.Minute, "Failed at generation 2", func(r resource, code int) bool {
		return code == http.StatusOK && r.Generation == 2 && r.State == cheops.ResourceFailed
	})
	start := time.Now()
	put(t, app.ID, client.ResourceRequest{Manifest: raw(configMap("dep-app", "2"))})
	r := waitReady(t, app.ID, 2)
	t.Logf("dependent updated over a rejected dependency in %s", time.Since(start).Round(time.Millisecond))
	for _, rep := range r.Replicas {
		if rep.State != cheops.ReplicaReady {
			t.Errorf("dep-app on %s: %s %s", rep.Site, rep.State, rep.Message)
		}
	}
}

// A wait that outlasts a round (the dependency is a Deployment that site-2, which runs no
// controllers, never makes Available, so it stays Applied): the dependent stays Waiting, never
// Failed, its resource Progressing, and is tried every 10 s; once the dependency turns Ready (its
// readiness policy changed to applied), the dependent converges at its next try. The dependent's
// history (which records the "dependencies" version) replays, and is written to workflows/testdata
// with CHEOPS_RECORD_HISTORY.
func TestDependenciesWaitOutlastingARound(t *testing.T) {
	base := post(t, client.ResourceRequest{Name: "dep-slow", Manifest: raw(deployment("dep-slow", "nginx:1.27", 1)), Scope: onSites("site-2")})
	defer remove(t, base.ID)
	waitFor(t, base.ID, time.Minute, "Applied on site-2", func(r resource, code int) bool {
		rep, ok := r.Replica("site-2")
		return code == http.StatusOK && ok && rep.State == cheops.ReplicaApplied
	})
	app := post(t, client.ResourceRequest{Name: "dep-slow-app", Manifest: raw(configMap("dep-slow-app", "1")), Scope: onSites("site-2"), DependsOn: &[]string{"dep-slow"}})
	appGone := false
	defer func() {
		if !appGone {
			remove(t, app.ID)
		}
	}()
	created := time.Now()
	// Past the first round (tries at 0, 1, 3, 7 and 15 s): still Waiting, never Failed.
	for time.Since(created) < 20*time.Second {
		r, code := get(t, app.ID)
		if code != http.StatusOK {
			continue
		}
		rep, _ := r.Replica("site-2")
		if rep.State == cheops.ReplicaFailed || r.State == cheops.ResourceFailed || r.State == cheops.ResourceDegraded {
			t.Fatalf("dep-slow-app is %s, its replica %s (%s), while it waits", r.State, rep.State, rep.Message)
		}
		time.Sleep(500 * time.Millisecond)
	}
	r, _ := get(t, app.ID)
	rep, _ := r.Replica("site-2")
	if rep.State != cheops.ReplicaWaiting || r.State != cheops.ResourceProgressing ||
		!strings.Contains(rep.Message, "dependsOn[0]: waiting for resource dep-slow to be Ready on site site-2 (it is Applied)") {
		t.Fatalf("after 20 s: resource %s, replica %s %q; want Progressing, Waiting for dep-slow", r.State, rep.State, rep.Message)
	}
	applied := cheops.ReadyWhenApplied
	if _, err := env.client.PatchResource(context.Background(), base.ID, client.ResourcePatch{Policy: &client.PolicyPatch{Readiness: &applied}}, client.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitReady(t, base.ID, 2)
	readyAt := time.Now()
	waitReady(t, app.ID, 1)
	woke := time.Since(readyAt)
	fmt.Printf("e2e: a dependent waiting past its first round converged %s after its dependency turned Ready\n", woke.Round(time.Millisecond))
	if woke > 15*time.Second {
		t.Errorf("the dependent converged %s after its dependency turned Ready; want within its 10 s retry", woke)
	}
	remove(t, app.ID)
	appGone = true
	recordAndReplay(t, app.ID, "dependencies")
}
