package kubernetes

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cheops-io/cheops"
)

// object is a ConfigMap's metadata as a watch holds it: cheops' label and generation, and the
// managed fields given (manager, operation, subresource, fieldsV1).
func metaObject(gen string, fields ...[4]string) *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: "cm", Namespace: "default", UID: "uid-1",
		Labels: map[string]string{cheops.LabelResourceID: "r1"}, Annotations: map[string]string{cheops.AnnotationGeneration: gen}}}
	for _, f := range fields {
		m.ManagedFields = append(m.ManagedFields, metav1.ManagedFieldsEntry{Manager: f[0], Operation: metav1.ManagedFieldsOperationType(f[1]),
			Subresource: f[2], FieldsV1: &metav1.FieldsV1{Raw: []byte(f[3])}})
	}
	return m
}

// The drift of an update is the fields cheops applied and no longer owns, named with whoever owns
// them now; an update that leaves cheops its fields, or that is cheops' own apply of a new
// generation, is none.
func TestDriftOfAnUpdate(t *testing.T) {
	const both = `{"f:data":{"f:color":{},"f:size":{}},"f:metadata":{"f:labels":{"f:cheops.io/resource-id":{}}}}`
	const sizeOnly = `{"f:data":{"f:size":{}},"f:metadata":{"f:labels":{"f:cheops.io/resource-id":{}}}}`
	applied := metaObject("1", [4]string{"cheops", "Apply", "", both})
	cases := []struct {
		name     string
		old, new *metav1.PartialObjectMetadata
		want     string
	}{
		{"edited by another manager", applied,
			metaObject("1", [4]string{"cheops", "Apply", "", sizeOnly}, [4]string{"kubectl-edit", "Update", "", `{"f:data":{"f:color":{}}}`}),
			"data.color changed by field manager kubectl-edit (Update)"},
		{"a field removed", applied, metaObject("1", [4]string{"cheops", "Apply", "", sizeOnly}), "data.color removed by another field manager"},
		{"another field added", applied,
			metaObject("1", [4]string{"cheops", "Apply", "", both}, [4]string{"kubectl-edit", "Update", "", `{"f:data":{"f:other":{}}}`}), ""},
		{"status written", applied,
			metaObject("1", [4]string{"cheops", "Apply", "", both}, [4]string{"kubelet", "Update", "status", `{"f:status":{}}`}), ""},
		{"cheops applied a new generation", applied, metaObject("2", [4]string{"cheops", "Apply", "", sizeOnly}), ""},
	}
	for _, tc := range cases {
		var got []cheops.Drift
		inf := &driftInformer{watchers: map[string][]driftWatcher{"default/cm": {{site: "a", id: "r1"}}},
			report: func(d cheops.Drift) { got = append(got, d) }}
		old, _ := trimForDrift(tc.old)
		updated, _ := trimForDrift(tc.new)
		inf.updated(old, updated)
		switch {
		case tc.want == "" && len(got) != 0:
			t.Errorf("%s: drift %+v, want none", tc.name, got)
		case tc.want != "" && (len(got) != 1 || got[0].Message != tc.want || got[0].LocalID != "uid-1" || got[0].Site != "a" || got[0].Generation != 1):
			t.Errorf("%s: drift %+v, want one saying %q", tc.name, got, tc.want)
		}
	}
}
