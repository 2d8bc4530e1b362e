package kubernetes

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/cheops-io/cheops"
)

func keys(ps []cheops.Prerequisite) []string {
	out := []string{}
	for _, p := range ps {
		out = append(out, p.Key())
	}
	return out
}

// A Namespace provides its namespace, a CRD its kind; a namespaced object needs its namespace (its
// own, else the site's default one) and a custom kind its CRD; a cluster-scoped kind of
// Kubernetes' own needs no namespace.
func TestProvidesAndNeeds(t *testing.T) {
	d := New()
	site := cheops.Target{Site: cheops.Site{Name: "s", Driver: cheops.DriverKubernetes, Kubernetes: &cheops.KubernetesSite{Namespace: "site-ns"}},
		Credentials: cheops.Credentials{Kubeconfig: kubeconfig("", "    token: t\n")}}
	crd := `{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition","metadata":{"name":"gadgets.example.com"},
		"spec":{"group":"example.com","scope":"Namespaced","names":{"plural":"gadgets","kind":"Gadget"}}}`
	for _, tc := range []struct {
		name, manifest  string
		provides, needs []string
	}{
		{"namespace", `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"team"}}`, []string{"namespace/team"}, []string{}},
		{"crd", crd, []string{"kind/example.com/Gadget"}, []string{}},
		{"configmap in a namespace", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","namespace":"team"}}`, []string{}, []string{"namespace/team"}},
		{"configmap in the site's namespace", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}`, []string{}, []string{"namespace/site-ns"}},
		{"custom resource", `{"apiVersion":"example.com/v1","kind":"Gadget","metadata":{"name":"g","namespace":"team"}}`, []string{}, []string{"kind/example.com/Gadget", "namespace/team"}},
		{"cluster role", `{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRole","metadata":{"name":"r"}}`, []string{}, []string{}},
		{"deployment", `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d","namespace":"team"}}`, []string{}, []string{"namespace/team"}},
		{"gateway (a CRD in a k8s.io group)", `{"apiVersion":"gateway.networking.k8s.io/v1","kind":"Gateway","metadata":{"name":"g","namespace":"team"}}`, []string{}, []string{"kind/gateway.networking.k8s.io/Gateway", "namespace/team"}},
	} {
		if got := keys(d.Provides(json.RawMessage(tc.manifest))); !slices.Equal(got, tc.provides) {
			t.Errorf("%s: provides %v, want %v", tc.name, got, tc.provides)
		}
		if got := keys(d.Needs(site, json.RawMessage(tc.manifest))); !slices.Equal(got, tc.needs) {
			t.Errorf("%s: needs %v, want %v", tc.name, got, tc.needs)
		}
	}
}

// A refusal for want of a kind or a namespace is Permanent and says which is missing, so that the
// activity can make it a wait when another resource provides it; any other NotFound says nothing.
func TestClassifyMissingPrerequisite(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"kind not served", fmt.Errorf("map: %w", &meta.NoKindMatchError{GroupKind: schema.GroupKind{Group: "example.com", Kind: "Gadget"}}), "kind/example.com/Gadget"},
		{"namespace missing", apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, "team"), "namespace/team"},
		{"object missing", apierrors.NewNotFound(schema.GroupResource{Resource: "configmaps"}, "c"), ""},
	}
	for _, c := range cases {
		err := classify(c.err)
		if cheops.ClassOf(err) != cheops.Permanent {
			t.Errorf("%s: class %s, want Permanent", c.name, cheops.ClassOf(err))
		}
		var m *cheops.MissingError
		got := ""
		if errors.As(err, &m) {
			got = m.Missing.Key()
		}
		if got != c.want {
			t.Errorf("%s: missing %q, want %q", c.name, got, c.want)
		}
	}
}
