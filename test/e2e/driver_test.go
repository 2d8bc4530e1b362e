package e2e

import (
	"context"
	"os"
	"testing"

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
	if err := d.Delete(ctx, tgt, res.Object); err != nil {
		t.Fatal(err)
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
