package kubernetes

import (
	"testing"

	"github.com/cheops-io/cheops"
)

// Sites that are namespaces of one cluster (same kubeconfig and context) share its clients, and
// so its discovery, each keeping its own namespace; a site whose kubeconfig changes gets clients
// of its own, and a cluster no site uses any more is forgotten.
func TestSitesOfOneClusterShareItsClients(t *testing.T) {
	d := New()
	site := func(name, ns, kubeconfig string) cheops.Target {
		return cheops.Target{Site: cheops.Site{Name: name, Driver: cheops.DriverKubernetes, Kubernetes: &cheops.KubernetesSite{Namespace: ns}},
			Credentials: cheops.Credentials{Kubeconfig: kubeconfig}}
	}
	one := `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`
	other := `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:2"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`
	a, err := d.client(site("a", "team-a", one))
	if err != nil {
		t.Fatal(err)
	}
	b, err := d.client(site("b", "team-b", one))
	if err != nil {
		t.Fatal(err)
	}
	if a.clusterClient != b.clusterClient || a.namespace != "team-a" || b.namespace != "team-b" {
		t.Fatalf("two namespaces of one cluster: shared=%v, namespaces %q and %q", a.clusterClient == b.clusterClient, a.namespace, b.namespace)
	}
	b2, err := d.client(site("b", "team-b", other))
	if err != nil {
		t.Fatal(err)
	}
	if b2.clusterClient == a.clusterClient || len(d.clusters) != 2 {
		t.Fatalf("a site moved to another cluster: shared=%v, %d clusters cached; want its own, 2", b2.clusterClient == a.clusterClient, len(d.clusters))
	}
	if _, err := d.client(site("a", "team-a", other)); err != nil {
		t.Fatal(err)
	}
	if len(d.clusters) != 1 {
		t.Fatalf("%d clusters cached once no site uses the first, want 1", len(d.clusters))
	}
}
