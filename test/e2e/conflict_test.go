package e2e

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/keypairs"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/client"
	"github.com/cheops-io/cheops/test/harness"
)

// handMadeConfigMap creates a ConfigMap on site-1's apiserver as kubectl would, under its field
// manager, and returns it.
func handMadeConfigMap(t *testing.T, name string) *corev1.ConfigMap {
	t.Helper()
	cs, _, err := env.kube.Apiservers[0].Clients()
	if err != nil {
		t.Fatal(err)
	}
	cm, err := cs.CoreV1().ConfigMaps("default").Create(context.Background(), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"team": "ops"}},
		Data:       map[string]string{"owner": "hand", "value": "theirs"}}, metav1.CreateOptions{FieldManager: "kubectl-client-side-apply"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.CoreV1().ConfigMaps("default").Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	return cm
}

func configMapOnSite1(t *testing.T, name string) (*corev1.ConfigMap, error) {
	t.Helper()
	cs, _, err := env.kube.Apiservers[0].Clients()
	if err != nil {
		t.Fatal(err)
	}
	return cs.CoreV1().ConfigMaps("default").Get(context.Background(), name, metav1.GetOptions{})
}

// hasCheopsMarks reports whether an object still carries anything of cheops: its label, its
// annotations, or its field manager.
func hasCheopsMarks(cm *corev1.ConfigMap) bool {
	if _, ok := cm.Labels[cheops.LabelResourceID]; ok {
		return true
	}
	for k := range cm.Annotations {
		if strings.HasPrefix(k, "cheops.io/") {
			return true
		}
	}
	for _, mf := range cm.ManagedFields {
		if mf.Manager == cheops.FieldManager {
			return true
		}
	}
	return false
}

// A ConfigMap made by hand on site-1, then a cheops resource of the same name on site-1 and
// site-2. By default (policy.conflict abort) site-1's replica fails naming kubectl's field manager,
// the ConfigMap is left as it was, and deleting the resource leaves it. With adopt the replica is
// Ready and adopted, an Adopted event names the manager, and deleting the resource releases it
// (policy.adopted release): still there, with its data, and nothing of cheops on it. With
// adopted: delete, deleting the resource deletes it.
func TestConflictKubernetesConfigMap(t *testing.T) {
	const name = "conflict-cm"
	before := handMadeConfigMap(t, name)

	// abort, the default.
	r := create(t, "conflict-abort", configMap(name, "ours"), "site-1", "site-2")
	r = waitFor(t, r.ID, 2*time.Minute, "site-1 Failed and site-2 Ready", func(r resource, code int) bool {
		one, _ := r.Replica("site-1")
		two, _ := r.Replica("site-2")
		return code == http.StatusOK && one.State == cheops.ReplicaFailed && two.State == cheops.ReplicaReady
	})
	one, _ := r.Replica("site-1")
	if !strings.Contains(one.Message, "kubectl-client-side-apply") || !strings.Contains(one.Message, "policy.conflict abort") || one.Adopted {
		t.Errorf("site-1 replica %+v: want a message naming the field manager kubectl-client-side-apply and the policy", one)
	}
	if r.State != cheops.ResourceDegraded {
		t.Errorf("resource state %s, want Degraded", r.State)
	}
	cm, err := configMapOnSite1(t, name)
	if err != nil || cm.ResourceVersion != before.ResourceVersion || hasCheopsMarks(cm) {
		t.Fatalf("the hand-made ConfigMap after the failed apply: %+v, %v; want it untouched (resourceVersion %s)", cm, err, before.ResourceVersion)
	}
	remove(t, r.ID)
	if cm, err := configMapOnSite1(t, name); err != nil || cm.ResourceVersion != before.ResourceVersion {
		t.Fatalf("after deleting the resource: %+v, %v; want the hand-made ConfigMap untouched", cm, err)
	}
	if _, err := getOn(t, env.kube.Apiservers[1], configMaps, "default", name); !apierrors.IsNotFound(err) {
		t.Errorf("site-2's ConfigMap, which cheops made, after the delete: %v; want it gone", err)
	}

	// adopt, released on delete.
	r = post(t, client.ResourceRequest{Name: "conflict-adopt", Manifest: raw(configMap(name, "ours")), Scope: onSites("site-1"),
		Policy: &cheops.Policy{Conflict: cheops.ConflictAdopt}})
	r = waitReady(t, r.ID, 1)
	one, _ = r.Replica("site-1")
	if !one.Adopted || one.LocalID != string(before.UID) {
		t.Errorf("site-1 replica %+v: want adopted, with the hand-made ConfigMap's UID %s", one, before.UID)
	}
	evs := events(t, r.ID)
	var adopted []cheops.Event
	for _, ev := range evs {
		if ev.Type == cheops.EventAdopted {
			adopted = append(adopted, ev)
		}
	}
	if len(adopted) != 1 || adopted[0].Site != "site-1" || !strings.Contains(adopted[0].Message, "kubectl-client-side-apply") {
		t.Errorf("Adopted events %+v: want one on site-1 naming kubectl-client-side-apply", adopted)
	}
	cm, err = configMapOnSite1(t, name)
	if err != nil || cm.Labels[cheops.LabelResourceID] != r.ID || cm.Data["value"] != "ours" || cm.Annotations[cheops.AnnotationAdoptedFrom] == "" {
		t.Fatalf("the adopted ConfigMap: %+v, %v; want cheops' label, its value, and the adopted-from annotation", cm, err)
	}
	// A new generation keeps saying whence the object came.
	from := cm.Annotations[cheops.AnnotationAdoptedFrom]
	r = put(t, r.ID, client.ResourceRequest{Name: "conflict-adopt", Manifest: raw(configMap(name, "ours-2")), Scope: onSites("site-1"),
		Policy: &cheops.Policy{Conflict: cheops.ConflictAdopt}})
	r = waitReady(t, r.ID, 2)
	cm, err = configMapOnSite1(t, name)
	if one, _ := r.Replica("site-1"); err != nil || !one.Adopted || cm.UID != before.UID || cm.Data["value"] != "ours-2" || cm.Annotations[cheops.AnnotationAdoptedFrom] != from {
		t.Fatalf("the adopted ConfigMap at generation 2: %+v, %v (replica %+v); want its value, the same UID and adopted-from %q", cm, err, one, from)
	}
	remove(t, r.ID)
	cm, err = configMapOnSite1(t, name)
	if err != nil || hasCheopsMarks(cm) || cm.UID != before.UID || cm.Data["owner"] != "hand" || cm.Labels["team"] != "ops" {
		t.Fatalf("after deleting the adopting resource: %+v, %v; want the same ConfigMap left, its data and labels, nothing of cheops", cm, err)
	}

	// adopt in a transactional first generation that site-2 rejects: the rollback releases the
	// adopted ConfigMap, it does not delete it.
	r = post(t, client.ResourceRequest{Name: "conflict-adopt-rollback", Manifest: raw(configMap(name, "ours")), Scope: onSites("site-1", "site-2"),
		Overrides: &[]cheops.Override{{Site: "site-2", Patch: raw(map[string]any{"metadata": map[string]any{"labels": map[string]any{"bad": "not a valid label value!"}}})}},
		Policy:    &cheops.Policy{Consistency: cheops.Transactional, Conflict: cheops.ConflictAdopt}})
	r = waitFor(t, r.ID, 2*time.Minute, "RolledBack", func(r resource, code int) bool { return code == http.StatusOK && r.State == cheops.ResourceRolledBack })
	cm, err = configMapOnSite1(t, name)
	if err != nil || hasCheopsMarks(cm) || cm.UID != before.UID || cm.Data["owner"] != "hand" {
		t.Fatalf("after the rollback of the adopting generation: %+v, %v; want the same ConfigMap left, nothing of cheops", cm, err)
	}
	remove(t, r.ID)
	if cm, err := configMapOnSite1(t, name); err != nil || cm.UID != before.UID {
		t.Fatalf("after deleting the rolled-back resource: %+v, %v; want the ConfigMap still there", cm, err)
	}

	// adopt, deleted on delete.
	r = post(t, client.ResourceRequest{Name: "conflict-adopt-delete", Manifest: raw(configMap(name, "ours")), Scope: onSites("site-1"),
		Policy: &cheops.Policy{Conflict: cheops.ConflictAdopt, Adopted: cheops.AdoptedDelete}})
	r = waitReady(t, r.ID, 1)
	if one, _ := r.Replica("site-1"); !one.Adopted {
		t.Errorf("site-1 replica %+v: want adopted", one)
	}
	remove(t, r.ID)
	if _, err := configMapOnSite1(t, name); !apierrors.IsNotFound(err) {
		t.Errorf("after deleting with policy.adopted delete: %v; want the ConfigMap gone", err)
	}

	// A ConfigMap cheops made, deleted by hand and made again by hand under its name, is someone
	// else's though the replica still records that name: deleting the resource leaves it.
	const replaced = "conflict-replaced"
	r = create(t, "conflict-replaced", configMap(replaced, "ours"), "site-1")
	r = waitReady(t, r.ID, 1)
	cs, _, err := env.kube.Apiservers[0].Clients()
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.CoreV1().ConfigMaps("default").Delete(context.Background(), replaced, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	again := handMadeConfigMap(t, replaced)
	remove(t, r.ID)
	if cm, err := configMapOnSite1(t, replaced); err != nil || cm.UID != again.UID {
		t.Errorf("after deleting the resource: %v, %v; want the ConfigMap made by hand since left", cm, err)
	}

	// The same, then a new generation (drift only reported, so that cheops does not make the
	// ConfigMap again first): the apply, made for the object recorded, finds another under its
	// name, and policy.conflict abort leaves that one as it is.
	const swapped = "conflict-swapped"
	r = post(t, client.ResourceRequest{Name: swapped, Manifest: raw(configMap(swapped, "ours")), Scope: onSites("site-1"),
		Policy: &cheops.Policy{Drift: cheops.DriftReport}})
	r = waitReady(t, r.ID, 1)
	if err := cs.CoreV1().ConfigMaps("default").Delete(context.Background(), swapped, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	hands := handMadeConfigMap(t, swapped)
	put(t, r.ID, client.ResourceRequest{Name: swapped, Manifest: raw(configMap(swapped, "ours-2")), Scope: onSites("site-1"),
		Policy: &cheops.Policy{Drift: cheops.DriftReport}})
	r = waitFor(t, r.ID, 2*time.Minute, "site-1 Failed at generation 2", func(r resource, code int) bool {
		one, _ := r.Replica("site-1")
		return code == http.StatusOK && one.State == cheops.ReplicaFailed && one.FailedGeneration == 2
	})
	if one, _ := r.Replica("site-1"); !strings.Contains(one.Message, "policy.conflict abort") {
		t.Errorf("site-1 replica %+v: want the conflict named", one)
	}
	if cm, err := configMapOnSite1(t, swapped); err != nil || cm.ResourceVersion != hands.ResourceVersion || hasCheopsMarks(cm) {
		t.Errorf("the ConfigMap made by hand after generation 2: %+v, %v; want it untouched", cm, err)
	}
	remove(t, r.ID)
}

// A keypair made by hand on RegionOne, then a cheops keypair of the same name and key on both
// regions. By default RegionOne's replica fails naming the keypair's owner, RegionTwo's is Ready,
// and deleting the resource never deletes the hand-made keypair (the crash-safe look-up of an
// unrecorded keypair does not take it for cheops'). With adopt it is taken, an Adopted event says
// so, and deleting the resource (adopted: release) leaves it.
func TestOpenStackConflictKeypair(t *testing.T) {
	needOpenStack(t)
	ctx := context.Background()
	regs := regions(t)
	name, key := osName("conflict-kp"), sshKey(7)
	if _, err := keypairs.Create(ctx, regs[0].compute, keypairs.CreateOpts{Name: name, PublicKey: key}).Extract(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = keypairs.Delete(context.Background(), regs[0].compute, name, nil).ExtractErr() })
	handMade := func(when string) {
		t.Helper()
		if _, err := keypairs.Get(ctx, regs[0].compute, name, nil).Extract(); err != nil {
			t.Fatalf("%s: the hand-made keypair on %s: %v; want it still there", when, regs[0].name, err)
		}
	}
	spec := map[string]any{"name": name, "publicKey": key}

	r := osResource(t, "conflict-kp", "compute.keypair", spec, nil, osSites...)
	r = waitFor(t, r.ID, 2*time.Minute, "os-1 Failed and os-2 Ready", func(r resource, code int) bool {
		one, _ := r.Replica("os-1")
		two, _ := r.Replica("os-2")
		return code == http.StatusOK && one.State == cheops.ReplicaFailed && two.State == cheops.ReplicaReady
	})
	one, _ := r.Replica("os-1")
	if !strings.Contains(one.Message, "cheops did not create it") || !strings.Contains(one.Message, "user ") || !strings.Contains(one.Message, "policy.conflict abort") {
		t.Errorf("os-1 replica %+v: want a message saying cheops did not create the keypair, naming its user and the policy", one)
	}
	handMade("after the failed apply")
	remove(t, r.ID)
	handMade("after deleting the resource")
	if _, err := keypairs.Get(ctx, regs[1].compute, name, nil).Extract(); err == nil {
		t.Errorf("%s: the keypair cheops made is still there after the delete", regs[1].name)
	}

	r = osResource(t, "conflict-kp-adopt", "compute.keypair", spec, &cheops.Policy{Conflict: cheops.ConflictAdopt}, osSites...)
	r = waitReady(t, r.ID, 1)
	if one, _ := r.Replica("os-1"); !one.Adopted || one.LocalID != name {
		t.Errorf("os-1 replica %+v: want adopted, local ID %s", one, name)
	}
	if two, _ := r.Replica("os-2"); two.Adopted {
		t.Errorf("os-2 replica %+v: cheops made it there, it is not adopted", two)
	}
	var adopted []cheops.Event
	for _, ev := range events(t, r.ID) {
		if ev.Type == cheops.EventAdopted {
			adopted = append(adopted, ev)
		}
	}
	if len(adopted) != 1 || adopted[0].Site != "os-1" || !strings.Contains(adopted[0].Message, "user ") {
		t.Errorf("Adopted events %+v: want one on os-1 naming the keypair's user", adopted)
	}
	remove(t, r.ID)
	handMade("after deleting the adopting resource (adopted: release)")
	if _, err := keypairs.Get(ctx, regs[1].compute, name, nil).Extract(); err == nil {
		t.Errorf("%s: the keypair cheops made is still there after the delete", regs[1].name)
	}
}

// An image whose URL answers 404 fails on both regions and leaves no image on either: the bytes
// are fetched and checked before the image is made.
func TestOpenStackConflictImageURLNotFoundLeavesNoImage(t *testing.T) {
	needOpenStack(t)
	ctx := context.Background()
	srv := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	name := osName("missing-image")
	r := osResource(t, "missing-image", "image.image", map[string]any{"name": name, "url": srv.URL + "/disk.img",
		"checksum": strings.Repeat("ab", 32)}, nil, osSites...)
	r = waitFor(t, r.ID, 2*time.Minute, "Failed", func(r resource, code int) bool { return code == http.StatusOK && r.State == cheops.ResourceFailed })
	for _, rep := range r.Replicas {
		if !strings.Contains(rep.Message, "404") {
			t.Errorf("%s: %q; want the 404 named", rep.Site, rep.Message)
		}
	}
	for _, reg := range regions(t) {
		pages, err := images.List(reg.image, images.ListOpts{Name: name}).AllPages(ctx)
		if err != nil {
			t.Fatal(err)
		}
		all, _ := images.ExtractImages(pages)
		if len(all) != 0 {
			t.Errorf("%s: images named %s: %+v; want none", reg.name, name, all)
		}
	}
	remove(t, r.ID)
}

// A keypair carries no cheops mark, so telling the one a dead worker made from one made by hand
// rests on the replica's record: the worker is SIGKILLed after nova made the keypair and before
// the worker hears of it; after a restart the apply is retried, takes the keypair for its own
// (nova made it after the first attempt began), and does not call it adopted, even under abort.
// Deleting the resource then deletes it.
func TestOpenStackConflictKeypairWorkerKilledBetweenCreateAndRecord(t *testing.T) {
	needOpenStack(t)
	ctx := context.Background()
	proxy, err := harness.NewOpenStackProxy(env.os.Env["OS_AUTH_URL"])
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	e := env.os.Env
	const site = "oskp-1"
	body := map[string]any{"name": site, "driver": "openstack", "openstack": map[string]any{"authURL": proxy.AuthURL,
		"region": env.os.Regions[0], "username": e["OS_USERNAME"], "password": e["OS_PASSWORD"], "projectName": e["OS_PROJECT_NAME"]}}
	if code, out := call(http.MethodPost, "/v1/sites", body, nil); code != http.StatusCreated {
		t.Fatalf("register %s: %d %s", site, code, out)
	}
	defer call(http.MethodDelete, "/v1/sites/"+site+"?force=true", nil, nil)
	name := osName("crash-kp")
	reached := proxy.Hold(func(r *http.Request) bool {
		return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/os-keypairs")
	})
	r := osResource(t, "crash-kp", "compute.keypair", map[string]any{"name": name, "publicKey": sshKey(8)}, nil, site)
	select {
	case msg := <-reached:
		t.Logf("OpenStack answered %s; killing the worker before it hears of it", msg)
	case <-time.After(2 * time.Minute):
		t.Fatal("no create call reached OpenStack")
	}
	env.cheops.Worker.Kill()
	if err := env.cheops.StartWorker(); err != nil {
		t.Fatal(err)
	}
	r = waitReady(t, r.ID, 1)
	if rep, _ := r.Replica(site); rep.Adopted || rep.LocalID != name || rep.ApplyingSince != nil {
		t.Errorf("replica %+v: want Ready with the keypair cheops made, not adopted", rep)
	}
	for _, ev := range events(t, r.ID) {
		if ev.Type == cheops.EventAdopted || ev.Type == cheops.EventApplyFailed {
			t.Errorf("event %+v: the keypair the dead worker made is cheops' own", ev)
		}
	}
	remove(t, r.ID)
	if _, err := keypairs.Get(ctx, regions(t)[0].compute, name, nil).Extract(); err == nil {
		t.Errorf("the keypair cheops made is still there after the delete")
	}
}
