package e2e

import (
	"context"
	"os"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/drivers/kubernetes"
)

// The Kubernetes driver itself against a real apiserver: apply, observe, delete (twice), probe, and
// the class of a site that is down.
func TestKubernetesDriverAgainstARealAPIServer(t *testing.T) {
	ctx := context.Background()
	kc, err := os.ReadFile(env.kube.Apiservers[0].Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	d := kubernetes.New()
	tgt := cheops.Target{Site: cheops.Site{Name: "site-1", Driver: cheops.DriverKubernetes,
		Kubernetes: &cheops.KubernetesSite{Namespace: "default"}}, Credentials: cheops.Credentials{Kubeconfig: string(kc)}}
	if err := d.Probe(ctx, tgt); err != nil {
		t.Fatalf("probe of a live apiserver: %v", err)
	}
	res, err := d.Apply(ctx, tgt, cheops.ApplyRequest{ResourceID: "rid-driver", Generation: 7,
		Manifest: []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"driver-cm"},"data":{"k":"v"}}`)})
	if err != nil {
		t.Fatal(err)
	}
	if res.Object.Namespace != "default" || res.LocalID == "" {
		t.Fatalf("apply result %+v: want the site's default namespace and a UID", res)
	}
	again, err := d.Apply(ctx, tgt, cheops.ApplyRequest{ResourceID: "rid-driver", Generation: 7,
		Manifest: []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"driver-cm"},"data":{"k":"v"}}`)})
	if err != nil || again.LocalID != res.LocalID {
		t.Fatalf("second apply: %+v, %v; want the same object", again, err)
	}
	obs, err := d.Observe(ctx, tgt, res.Object)
	if err != nil || !obs.Exists || obs.LocalID != res.LocalID || obs.Generation != 7 {
		t.Fatalf("observe: %+v, %v", obs, err)
	}
	// Find: the object an apply made, by the resource's label, for a replica whose apply was never
	// recorded; not another resource's object of the same name.
	manifest := []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"driver-cm"}}`)
	if ref, err := d.Find(ctx, tgt, cheops.FindRequest{ResourceID: "rid-driver", Manifest: manifest}); err != nil || ref == nil || ref.Object != res.Object {
		t.Fatalf("find: %+v, %v; want %+v", ref, err, res.Object)
	}
	if ref, err := d.Find(ctx, tgt, cheops.FindRequest{ResourceID: "rid-other", Manifest: manifest}); err != nil || ref != nil {
		t.Fatalf("find with another resource's ID: %+v, %v; want nothing", ref, err)
	}
	if err := d.Delete(ctx, tgt, res.Object); err != nil {
		t.Fatal(err)
	}
	if ref, err := d.Find(ctx, tgt, cheops.FindRequest{ResourceID: "rid-driver", Manifest: manifest}); err != nil || ref != nil {
		t.Fatalf("find after delete: %+v, %v; want nothing", ref, err)
	}
	if ref, err := d.Find(ctx, tgt, cheops.FindRequest{ResourceID: "rid-driver", Manifest: []byte(`{"apiVersion":"nowhere.example/v1","kind":"Ghost","metadata":{"name":"g"}}`)}); err != nil || ref != nil {
		t.Fatalf("find of a kind the site does not serve: %+v, %v; want nothing", ref, err)
	}
	if err := d.Delete(ctx, tgt, res.Object); err != nil {
		t.Fatalf("deleting what is gone: %v, want success", err)
	}
	if obs, err := d.Observe(ctx, tgt, res.Object); err != nil || obs.Exists {
		t.Fatalf("observe after delete: %+v, %v", obs, err)
	}
	// A kind the site does not serve is a permanent rejection.
	_, err = d.Apply(ctx, tgt, cheops.ApplyRequest{ResourceID: "rid-driver", Generation: 1,
		Manifest: []byte(`{"apiVersion":"nowhere.example/v1","kind":"Ghost","metadata":{"name":"g"}}`)})
	if cheops.ClassOf(err) != cheops.Permanent {
		t.Fatalf("unknown kind: %v, want a permanent error", err)
	}
	// A site that refuses connections is unreachable.
	down := tgt
	down.Site.Name = "down"
	down.Credentials.Kubeconfig = `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`
	if err := d.Probe(ctx, down); cheops.ClassOf(err) != cheops.Unreachable {
		t.Fatalf("probe of a dead site: %v, want Unreachable", err)
	}
}

// Readiness from real status, against a real apiserver that runs no controllers (site-2: site-1's
// would overwrite the status written here): a Deployment the driver applied is Progressing until its
// status (written here, as its controller would) says it is available, Failed once its progress
// deadline is exceeded, and Missing once deleted; a ConfigMap is Ready at once.
func TestKubernetesReadinessFromStatus(t *testing.T) {
	ctx := context.Background()
	a := env.kube.Apiservers[1]
	kc, err := os.ReadFile(a.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	_, dyn, err := a.Clients()
	if err != nil {
		t.Fatal(err)
	}
	d := kubernetes.New()
	tgt := cheops.Target{Site: cheops.Site{Name: "site-2", Driver: cheops.DriverKubernetes,
		Kubernetes: &cheops.KubernetesSite{Namespace: "default"}}, Credentials: cheops.Credentials{Kubeconfig: string(kc)}}
	readiness := func(ref cheops.ObjectRef) cheops.Readiness {
		t.Helper()
		r, err := d.Readiness(ctx, tgt, ref)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	cm, err := d.Apply(ctx, tgt, cheops.ApplyRequest{ResourceID: "rid-ready", Generation: 1,
		Manifest: []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"ready-cm"},"data":{"k":"v"}}`)})
	if err != nil {
		t.Fatal(err)
	}
	if r := readiness(cm.Object); r.State != cheops.ObjectReady {
		t.Fatalf("ConfigMap: %+v, want Ready", r)
	}
	dep, err := d.Apply(ctx, tgt, cheops.ApplyRequest{ResourceID: "rid-ready", Generation: 1, Manifest: []byte(`{"apiVersion":"apps/v1","kind":"Deployment",
		"metadata":{"name":"ready-web"},"spec":{"replicas":2,"selector":{"matchLabels":{"app":"web"}},
		"template":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"web","image":"nginx"}]}}}}`)})
	if err != nil {
		t.Fatal(err)
	}
	if r := readiness(dep.Object); r.State != cheops.ObjectProgressing {
		t.Fatalf("Deployment no controller has seen: %+v, want Progressing", r)
	}
	deployments := dyn.Resource(schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}).Namespace("default")
	setStatus := func(status map[string]any) {
		t.Helper()
		u, err := deployments.Get(ctx, "ready-web", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		status["observedGeneration"] = u.GetGeneration()
		u.Object["status"] = status
		if _, err := deployments.UpdateStatus(ctx, u, metav1.UpdateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	setStatus(map[string]any{"replicas": int64(2), "updatedReplicas": int64(2), "readyReplicas": int64(2), "availableReplicas": int64(2),
		"conditions": []any{map[string]any{"type": "Available", "status": "True"},
			map[string]any{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}}})
	if r := readiness(dep.Object); r.State != cheops.ObjectReady {
		t.Fatalf("available Deployment: %+v, want Ready", r)
	}
	setStatus(map[string]any{"replicas": int64(2), "updatedReplicas": int64(2),
		"conditions": []any{map[string]any{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}}})
	if r := readiness(dep.Object); r.State != cheops.ObjectFailed || r.Message == "" {
		t.Fatalf("Deployment past its deadline: %+v, want Failed with kstatus' message", r)
	}
	for _, ref := range []cheops.ObjectRef{dep.Object, cm.Object} {
		if err := d.Delete(ctx, tgt, ref); err != nil {
			t.Fatal(err)
		}
	}
	if r := readiness(dep.Object); r.State != cheops.ObjectMissing && r.State != cheops.ObjectTerminating {
		t.Fatalf("deleted Deployment: %+v, want Missing (or Terminating while its finalizers run)", r)
	}
}
