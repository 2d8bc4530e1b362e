package e2e

import (
	"context"
	"net/http"
	"strconv"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/client"
	"github.com/cheops-io/cheops/test/harness"
)

var (
	configMaps  = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	deployments = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	crds        = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	widgets     = schema.GroupVersionResource{Group: "example.com", Version: "v1", Resource: "widgets"}
)

func configMap(name, value string) map[string]any {
	return map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": name}, "data": map[string]any{"value": value}}
}

// crdManifest is a namespaced CustomResourceDefinition of kind in group, served as v1, whose objects
// may hold any fields.
func crdManifest(group, singular, kind string) map[string]any {
	return map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
		"metadata": map[string]any{"name": singular + "s." + group},
		"spec": map[string]any{
			"group": group, "scope": "Namespaced",
			"names": map[string]any{"plural": singular + "s", "singular": singular, "kind": kind},
			"versions": []any{map[string]any{"name": "v1", "served": true, "storage": true,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{"type": "object",
					"x-kubernetes-preserve-unknown-fields": true}}}},
		},
	}
}

// getOn reads an object from one apiserver with client-go.
func getOn(t *testing.T, a *harness.Apiserver, gvr schema.GroupVersionResource, ns, name string) (*unstructured.Unstructured, error) {
	t.Helper()
	_, dyn, err := a.Clients()
	if err != nil {
		t.Fatal(err)
	}
	ri := dyn.Resource(gvr)
	if ns != "" {
		return ri.Namespace(ns).Get(context.Background(), name, metav1.GetOptions{})
	}
	return ri.Get(context.Background(), name, metav1.GetOptions{})
}

// checkReplicas asserts that each apiserver holds the object with cheops' label and generation,
// and that its UID is the local ID the API reports.
func checkReplicas(t *testing.T, r resource, gvr schema.GroupVersionResource, ns, name string) []*unstructured.Unstructured {
	t.Helper()
	ids := r.LocalIDs()
	var objs []*unstructured.Unstructured
	for i, a := range env.kube.Apiservers {
		u, err := getOn(t, a, gvr, ns, name)
		if err != nil {
			t.Fatalf("%s on %s: %v", name, directSites[i], err)
		}
		if got := u.GetLabels()[cheops.LabelResourceID]; got != r.ID {
			t.Errorf("%s on %s: label %s = %q, want %q", name, directSites[i], cheops.LabelResourceID, got, r.ID)
		}
		if got := u.GetAnnotations()[cheops.AnnotationGeneration]; got != strconv.FormatInt(r.Generation, 10) {
			t.Errorf("%s on %s: generation annotation = %q, want %d", name, directSites[i], got, r.Generation)
		}
		if string(u.GetUID()) != ids[directSites[i]] || ids[directSites[i]] == "" {
			t.Errorf("%s on %s: UID %s, API reports local ID %q", name, directSites[i], u.GetUID(), ids[directSites[i]])
		}
		if mf := u.GetManagedFields(); len(mf) == 0 || mf[0].Manager != cheops.FieldManager {
			t.Errorf("%s on %s: not applied by field manager %s: %+v", name, directSites[i], cheops.FieldManager, mf)
		}
		objs = append(objs, u)
	}
	return objs
}

// Replicates a CRD, a namespaced custom resource of it, a ConfigMap and a Deployment to three real
// apiservers; updates the ConfigMap; deletes it; orphan-deletes the Deployment.
func TestReplicateUpdateDeleteAcrossThreeSites(t *testing.T) {
	rc := create(t, "widgets-crd", crdManifest("example.com", "widget", "Widget"), directSites...)
	rc = waitReady(t, rc.ID, 1)
	checkReplicas(t, rc, crds, "", "widgets.example.com")
	// The CRD must be served before its objects can be; wait for Established on each site.
	for _, a := range env.kube.Apiservers {
		deadline := time.Now().Add(30 * time.Second)
		for {
			u, err := getOn(t, a, crds, "", "widgets.example.com")
			if err == nil && established(u) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("CRD not established on %s", a.Name)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}

	cm := create(t, "settings", configMap("settings", "one"), directSites...)
	// No controller runs on sites 2 and 3, so this Deployment never becomes Available there: it
	// is Ready once applied (TestReadiness* wait for real status on the site that has controllers).
	dep := post(t, client.ResourceRequest{Name: "web", Manifest: raw(map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment", "metadata": map[string]any{"name": "web"},
		"spec": map[string]any{
			"replicas": 1, "selector": map[string]any{"matchLabels": map[string]any{"app": "web"}},
			"template": map[string]any{"metadata": map[string]any{"labels": map[string]any{"app": "web"}},
				"spec": map[string]any{"containers": []any{map[string]any{"name": "web", "image": "nginx:1.27"}}}},
		},
	}), Scope: onSites(directSites...), Policy: &cheops.Policy{Readiness: cheops.ReadyWhenApplied}})
	w := create(t, "widget-a", map[string]any{"apiVersion": "example.com/v1", "kind": "Widget",
		"metadata": map[string]any{"name": "widget-a"}, "spec": map[string]any{"size": 3}}, directSites...)

	cm = waitReady(t, cm.ID, 1)
	dep = waitReady(t, dep.ID, 1)
	w = waitReady(t, w.ID, 1)
	checkReplicas(t, cm, configMaps, "default", "settings")
	checkReplicas(t, dep, deployments, "default", "web")
	checkReplicas(t, w, widgets, "default", "widget-a")

	// Update, with optimistic concurrency.
	code, out := call(http.MethodPut, "/v1/resources/"+cm.ID, map[string]any{"manifest": configMap("settings", "two")},
		map[string]string{"If-Match": `"1"`})
	if code != http.StatusOK {
		t.Fatalf("update: %d %s", code, out)
	}
	if code, out := call(http.MethodPut, "/v1/resources/"+cm.ID, map[string]any{"manifest": configMap("settings", "three")},
		map[string]string{"If-Match": "1"}); code != http.StatusPreconditionFailed {
		t.Fatalf("update with a stale If-Match: %d %s, want 412", code, out)
	}
	cm = waitReady(t, cm.ID, 2)
	for i, u := range checkReplicas(t, cm, configMaps, "default", "settings") {
		if v, _, _ := unstructured.NestedString(u.Object, "data", "value"); v != "two" {
			t.Errorf("site %s: data.value = %q after update, want two", directSites[i], v)
		}
	}

	// Delete: gone everywhere.
	if code, out := call(http.MethodDelete, "/v1/resources/"+cm.ID, nil, nil); code != http.StatusAccepted {
		t.Fatalf("delete: %d %s", code, out)
	}
	waitGone(t, cm.ID)
	for i, a := range env.kube.Apiservers {
		if _, err := getOn(t, a, configMaps, "default", "settings"); !apierrors.IsNotFound(err) {
			t.Errorf("ConfigMap still on %s after delete: %v", directSites[i], err)
		}
	}

	// Orphan delete: cheops forgets, the sites keep the objects.
	if code, out := call(http.MethodDelete, "/v1/resources/"+dep.ID+"?orphan=true", nil, nil); code != http.StatusAccepted {
		t.Fatalf("orphan delete: %d %s", code, out)
	}
	waitGone(t, dep.ID)
	for i, a := range env.kube.Apiservers {
		u, err := getOn(t, a, deployments, "default", "web")
		if err != nil {
			t.Errorf("orphaned Deployment gone from %s: %v", directSites[i], err)
		} else if string(u.GetUID()) != dep.LocalIDs()[directSites[i]] {
			t.Errorf("orphaned Deployment on %s was replaced", directSites[i])
		}
	}

	// Clean up the rest through cheops, widgets before their CRD.
	for _, id := range []string{w.ID, rc.ID} {
		if code, out := call(http.MethodDelete, "/v1/resources/"+id, nil, nil); code != http.StatusAccepted {
			t.Fatalf("delete %s: %d %s", id, code, out)
		}
		waitGone(t, id)
	}
}

func established(u *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

// A selector scope places the resource on every site whose labels match, and only there.
func TestSelectorScope(t *testing.T) {
	code, out := call(http.MethodPost, "/v1/resources", map[string]any{
		"name": "eu-only", "manifest": configMap("eu-only", "x"), "scope": map[string]any{"selector": "region=eu"}}, nil)
	if code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, out)
	}
	r, _ := get(t, "eu-only")
	r = waitReady(t, r.ID, 1)
	if ids := r.LocalIDs(); len(ids) != 2 || ids["site-1"] == "" || ids["site-2"] == "" {
		t.Fatalf("replicas = %+v, want site-1 and site-2", r.Replicas)
	}
	if _, err := getOn(t, env.kube.Apiservers[2], configMaps, "default", "eu-only"); !apierrors.IsNotFound(err) {
		t.Fatalf("eu-only exists on site-3 (region=us): %v", err)
	}
	call(http.MethodDelete, "/v1/resources/"+r.ID, nil, nil)
	waitGone(t, r.ID)
}
