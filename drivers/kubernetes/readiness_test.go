package kubernetes

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/cheops-io/cheops"
)

// What kstatus makes of the statuses cheops meets, in cheops' words.
func TestReadinessOfObjects(t *testing.T) {
	for _, c := range []struct {
		name, object string
		want         cheops.ReadinessState
		message      string
	}{
		{"a ConfigMap has no status to wait for", `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c"}}`, cheops.ObjectReady, ""},
		{"a Deployment its controller has not seen yet",
			`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d","generation":2},"spec":{"replicas":3},
			  "status":{"observedGeneration":1}}`, cheops.ObjectProgressing, ""},
		{"a Deployment not yet available",
			`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d","generation":1},"spec":{"replicas":3},
			  "status":{"observedGeneration":1,"replicas":3,"updatedReplicas":3,"readyReplicas":1,"availableReplicas":1,
			  "conditions":[{"type":"Available","status":"False"},{"type":"Progressing","status":"True","reason":"ReplicaSetUpdated"}]}}`,
			cheops.ObjectProgressing, "Available: 1/3"},
		{"an available Deployment",
			`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d","generation":1},"spec":{"replicas":3},
			  "status":{"observedGeneration":1,"replicas":3,"updatedReplicas":3,"readyReplicas":3,"availableReplicas":3,
			  "conditions":[{"type":"Available","status":"True"},{"type":"Progressing","status":"True","reason":"NewReplicaSetAvailable"}]}}`,
			cheops.ObjectReady, ""},
		{"a Deployment past its progress deadline",
			`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d","generation":1},"spec":{"replicas":3},
			  "status":{"observedGeneration":1,"replicas":3,"updatedReplicas":3,
			  "conditions":[{"type":"Progressing","status":"False","reason":"ProgressDeadlineExceeded","message":"ReplicaSet \"d-1\" has timed out progressing."}]}}`,
			cheops.ObjectFailed, "Progress deadline exceeded"},
		{"a failed Job",
			`{"apiVersion":"batch/v1","kind":"Job","metadata":{"name":"j","generation":1},"spec":{},
			  "status":{"conditions":[{"type":"Failed","status":"True","reason":"BackoffLimitExceeded","message":"Job has reached the specified backoff limit"}]}}`,
			cheops.ObjectFailed, "Job Failed"},
		{"an established CRD",
			`{"apiVersion":"apiextensions.k8s.io/v1","kind":"CustomResourceDefinition","metadata":{"name":"widgets.example.com","generation":1},
			  "spec":{},"status":{"conditions":[{"type":"Established","status":"True"},{"type":"NamesAccepted","status":"True"}]}}`,
			cheops.ObjectReady, ""},
		{"a custom resource not Ready",
			`{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"w","generation":1},
			  "status":{"observedGeneration":1,"conditions":[{"type":"Ready","status":"False","reason":"Waiting","message":"waiting for a bucket"}]}}`,
			cheops.ObjectProgressing, ""},
		{"an object being deleted",
			`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","deletionTimestamp":"2026-11-26T00:00:00Z"}}`,
			cheops.ObjectTerminating, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			// As client-go decodes an object read from a site: numbers as int64.
			var u unstructured.Unstructured
			if err := u.UnmarshalJSON([]byte(c.object)); err != nil {
				t.Fatal(err)
			}
			got := readinessOf(&u)
			if got.State != c.want || !strings.Contains(got.Message, c.message) {
				t.Fatalf("readiness %+v, want %s with a message containing %q", got, c.want, c.message)
			}
		})
	}
}
