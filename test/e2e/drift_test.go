package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/client"
)

// handManager is the field manager of the edits made "by hand" here, as kubectl edit would.
const handManager = "kubectl-edit"

// watchSettle is how long a test lets the drift monitor start watching a kind newly in use on a
// site (it reads the replicas again within about a second of a change) before editing by hand.
const watchSettle = 2 * time.Second

// driftConfigMap is a ConfigMap manifest with one data field.
func driftConfigMap(name, color string) map[string]any {
	return map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": name},
		"data": map[string]any{"color": color}}
}

// replicaOn returns the resource's replica on a site.
func replicaOn(r resource, site string) cheops.Replica {
	for _, rep := range r.Replicas {
		if rep.Site == site {
			return rep
		}
	}
	return cheops.Replica{}
}

// repairRounds is how often each repair is timed.
const repairRounds = 3

// A ConfigMap on two sites: deleted by hand on one, it is made again; edited by hand (another
// field manager changes a field cheops applied), its value is restored. Each repair is timed from
// the hand's change to the object being back as declared, and is reported with what changed.
func TestDriftRepaired(t *testing.T) {
	name := "drift-fix"
	r := create(t, name, driftConfigMap(name, "blue"), "site-1", "site-2")
	waitReady(t, r.ID, 1)
	cs, _, err := env.kube.Apiservers[1].Clients()
	if err != nil {
		t.Fatal(err)
	}
	cms := cs.CoreV1().ConfigMaps("default")

	// Deleted by hand, then edited by hand, three times each: the repair times are reported.
	var deletes, edits []time.Duration
	for range repairRounds {
		time.Sleep(watchSettle)
		deletes = append(deletes, deleteByHand(t, cms, name, "blue"))
		r = waitReady(t, r.ID, 1)
		if rep := replicaOn(r, "site-2"); rep.Drifted {
			t.Fatalf("site-2's replica after the repair: %+v", rep)
		}
	}
	wantDriftEvent(t, r.ID, "site-2", "deleted on the site; re-applying it")
	wantEvent(t, r.ID, cheops.EventApplied, "site-2", "repaired drift (deleted on the site)")
	for range repairRounds {
		time.Sleep(watchSettle)
		edits = append(edits, editByHand(t, cms, name))
		r = waitReady(t, r.ID, 1)
	}
	fmt.Printf("drift repair on site-2, from the hand's change to the object back as declared: deleted %v; edited %v (target ≤ 10s)\n", deletes, edits)
	for _, d := range append(deletes, edits...) {
		if d > 10*time.Second {
			t.Errorf("a repair took %s, more than 10s", d)
		}
	}
	wantDriftEvent(t, r.ID, "site-2", "data.color changed by field manager "+handManager+" (Update); re-applying it")
	// One Drift event and one repair per change by hand: cheops' own applies are no drift.
	evs := events(t, r.ID)
	if d, a := countEvents(evs, cheops.EventDrift, "site-2"), countEvents(evs, cheops.EventApplied, "site-2"); d != 2*repairRounds || a != 1+2*repairRounds {
		t.Errorf("site-2: %d Drift and %d Applied events, want %d and %d", d, a, 2*repairRounds, 1+2*repairRounds)
	}
	// site-1 was never touched: no drift there, and one apply.
	if n := countEvents(events(t, r.ID), cheops.EventDrift, "site-1"); n != 0 {
		t.Errorf("%d Drift events on site-1, which nobody touched", n)
	}
	if n := countEvents(events(t, r.ID), cheops.EventApplied, "site-1"); n != 1 {
		t.Errorf("%d Applied events on site-1, want 1", n)
	}
	remove(t, r.ID)
}

// Under policy.drift report, an edit by hand is reported (the replica reads drifted, with a Drift
// event, and the resource Degraded) and left as it is.
func TestDriftReported(t *testing.T) {
	ctx := context.Background()
	name := "drift-report"
	r := post(t, client.ResourceRequest{Name: name, Manifest: raw(driftConfigMap(name, "blue")), Scope: onSites("site-2"),
		Policy: &cheops.Policy{Drift: cheops.DriftReport}})
	waitReady(t, r.ID, 1)
	time.Sleep(watchSettle)
	cs, _, err := env.kube.Apiservers[1].Clients()
	if err != nil {
		t.Fatal(err)
	}
	cms := cs.CoreV1().ConfigMaps("default")
	cm, err := cms.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["color"] = "red"
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: handManager}); err != nil {
		t.Fatal(err)
	}
	r = waitFor(t, r.ID, 30*time.Second, "drifted on site-2", func(r resource, code int) bool {
		return code == 200 && replicaOn(r, "site-2").Drifted
	})
	rep := replicaOn(r, "site-2")
	if !strings.Contains(rep.DriftMessage, "data.color changed by field manager "+handManager) || r.State != "Degraded" {
		t.Errorf("resource %s, replica on site-2: drifted %v %q", r.State, rep.Drifted, rep.DriftMessage)
	}
	wantDriftEvent(t, r.ID, "site-2", "left as it is (policy.drift report)")
	// Left as it is: the hand's value stays, and nothing is applied again.
	time.Sleep(5 * time.Second)
	cm, err = cms.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if cm.Data["color"] != "red" {
		t.Errorf("policy.drift report: the value edited by hand was changed to %q", cm.Data["color"])
	}
	if n := countEvents(events(t, r.ID), cheops.EventApplied, "site-2"); n != 1 {
		t.Errorf("%d Applied events on site-2, want 1: report mode must not re-apply", n)
	}
	if r, _ = get(t, r.ID); !replicaOn(r, "site-2").Drifted {
		t.Errorf("the replica no longer reads drifted: %+v", replicaOn(r, "site-2"))
	}
	remove(t, r.ID)
}

// wantDriftEvent checks that a Drift event on site says what.
func wantDriftEvent(t *testing.T, id, site, what string) {
	t.Helper()
	wantEvent(t, id, cheops.EventDrift, site, what)
}

// wantEvent checks that an event of typ on site holds what in its message.
func wantEvent(t *testing.T, id string, typ cheops.EventType, site, what string) {
	t.Helper()
	var seen []string
	for _, e := range events(t, id) {
		if e.Type == typ && e.Site == site {
			if strings.Contains(e.Message, what) {
				return
			}
			seen = append(seen, e.Message)
		}
	}
	t.Errorf("no %s event on %s saying %q; seen: %q", typ, site, what, seen)
}

// deleteByHand deletes the ConfigMap and returns how long it took to be back, made anew as declared.
func deleteByHand(t *testing.T, cms corev1client.ConfigMapInterface, name, color string) time.Duration {
	t.Helper()
	ctx := context.Background()
	before, err := cms.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := cms.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for deadline := start.Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		cm, err := cms.Get(ctx, name, metav1.GetOptions{})
		if err == nil && cm.UID != before.UID && cm.Data["color"] == color {
			return time.Since(start).Round(time.Millisecond)
		}
		if err != nil && !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
	}
	t.Fatal("the ConfigMap deleted by hand was not made again within a minute")
	return 0
}

// editByHand changes data.color as another field manager and returns how long it took to be
// restored.
func editByHand(t *testing.T, cms corev1client.ConfigMapInterface, name string) time.Duration {
	t.Helper()
	ctx := context.Background()
	cm, err := cms.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data["color"] = "red"
	start := time.Now()
	edited, err := cms.Update(ctx, cm, metav1.UpdateOptions{FieldManager: handManager})
	if err != nil {
		t.Fatal(err)
	}
	if edited.Data["color"] != "red" {
		t.Fatalf("the edit by hand did not take: %v", edited.Data)
	}
	for deadline := start.Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		cm, err := cms.Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if cm.Data["color"] == "blue" {
			return time.Since(start).Round(time.Millisecond)
		}
	}
	t.Fatal("the value edited by hand was not restored within a minute")
	return 0
}

// A site whose credentials may read only its own namespace (a Role, not a ClusterRole) is watched
// for drift all the same: the cluster refuses a watch of ConfigMaps in every namespace, so the
// kind is watched in the site's namespace, and an object deleted there by hand is made again.
func TestDriftOnASiteLimitedToItsNamespace(t *testing.T) {
	ctx := context.Background()
	a := env.kube.Apiservers[1]
	cs, _, err := a.Clients()
	if err != nil {
		t.Fatal(err)
	}
	const ns, sa, site = "drift-limited", "cheops", "limited-2"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: sa},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"*"}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: sa},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: sa},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: ns}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	hour := int64(3600)
	tok, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &hour}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: %q, insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: %s}}]
contexts: [{name: c, context: {cluster: c, user: u, namespace: %s}}]
current-context: c
`, a.URL, tok.Status.Token, ns)

	// What the test stands on: these credentials may not list ConfigMaps in every namespace.
	limited, err := kubernetes.NewForConfig(&rest.Config{Host: a.URL, BearerToken: tok.Status.Token,
		TLSClientConfig: rest.TLSClientConfig{Insecure: true}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := limited.CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{Limit: 1}); !apierrors.IsForbidden(err) {
		t.Fatalf("listing ConfigMaps in every namespace with the site's credentials: %v, want Forbidden", err)
	}

	if _, err := env.client.CreateSite(ctx, client.SiteRequest{Name: site, Driver: cheops.DriverKubernetes,
		Kubernetes: &client.KubernetesSettings{Kubeconfig: kc, Namespace: ns}}); err != nil {
		t.Fatal(err)
	}
	name := "drift-limited"
	r := create(t, name, driftConfigMap(name, "blue"), site)
	t.Cleanup(func() {
		remove(t, r.ID)
		if err := env.client.DeleteSite(context.Background(), site, false); err != nil {
			t.Errorf("delete site %s: %v", site, err)
		}
	})
	waitReady(t, r.ID, 1)
	time.Sleep(watchSettle)
	took := deleteByHand(t, cs.CoreV1().ConfigMaps(ns), name, "blue")
	fmt.Printf("drift repair on a site limited to its namespace: deleted, back as declared %v later\n", took)
	wantDriftEvent(t, r.ID, site, "deleted on the site; re-applying it")
}
