package kubernetes

import (
	"encoding/json"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/cheops-io/cheops"
)

func object(labels, ann map[string]string, managers ...string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap"}}
	u.SetName("web")
	u.SetNamespace("default")
	u.SetResourceVersion("42")
	u.SetLabels(labels)
	u.SetAnnotations(ann)
	var mf []metav1.ManagedFieldsEntry
	for _, m := range managers {
		mf = append(mf, metav1.ManagedFieldsEntry{Manager: m, Operation: metav1.ManagedFieldsOperationUpdate})
	}
	u.SetManagedFields(mf)
	return u
}

// The owner of an object cheops did not make is named by its field managers, and by the other
// cheops resource whose label it carries.
func TestOwnerOf(t *testing.T) {
	for _, c := range []struct {
		u    *unstructured.Unstructured
		want string
	}{
		{object(nil, nil, "kubectl-client-side-apply", "kubectl-edit", "kubectl-client-side-apply"), "field managers kubectl-client-side-apply, kubectl-edit"},
		{object(nil, nil), "no field manager recorded"},
		{object(map[string]string{cheops.LabelResourceID: "other"}, nil, "cheops"), "field managers cheops; cheops resource other"},
	} {
		if got := ownerOf(c.u); got != c.want {
			t.Errorf("ownerOf = %q, want %q", got, c.want)
		}
	}
}

// Releasing removes cheops' label, annotations and field manager, only from the version read, and
// keeps everything else.
func TestReleasePatch(t *testing.T) {
	u := object(map[string]string{cheops.LabelResourceID: "r1", "app": "web"},
		map[string]string{cheops.AnnotationGeneration: "2", cheops.AnnotationAdoptedFrom: "field managers kubectl", "note": "x"},
		"kubectl-client-side-apply", cheops.FieldManager)
	b, _ := json.Marshal(releasePatch(u))
	got := string(b)
	for _, want := range []string{`{"op":"test","path":"/metadata/resourceVersion","value":"42"}`,
		`{"op":"remove","path":"/metadata/labels/cheops.io~1resource-id"}`,
		`{"op":"remove","path":"/metadata/annotations/cheops.io~1generation"}`,
		`{"op":"remove","path":"/metadata/annotations/cheops.io~1adopted-from"}`,
		`"manager":"kubectl-client-side-apply"`} {
		if !strings.Contains(got, want) {
			t.Errorf("patch %s lacks %s", got, want)
		}
	}
	if strings.Contains(got, `"manager":"cheops"`) || strings.Contains(got, "resource-name") || strings.Contains(got, "labels/app") || strings.Contains(got, "note") {
		t.Errorf("patch %s keeps cheops' manager, or touches what is not cheops'", got)
	}
}
