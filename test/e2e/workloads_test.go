package e2e

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/cheops-io/cheops/test/harness"
)

// The workload site (site-1, which TestMain gives a controller-manager, a scheduler and kwok),
// without cheops: a Deployment becomes Available with Running pods on kwok's node, and one of
// harness.NeverPullsImage has pods that are scheduled but never Ready, so it never becomes Available.
func TestDeploymentBecomesAvailableOnAWorkloadSite(t *testing.T) {
	ctx := context.Background()
	a := env.kube.Apiservers[0]
	cs, _, err := a.Clients()
	if err != nil {
		t.Fatal(err)
	}
	const ns = "workloads"
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The namespace controller deletes what is left in it.
	t.Cleanup(func() { _ = cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })

	start := time.Now()
	web := workloadDeployment(t, cs, ns, "web", "nginx:1.27", 2)
	stuck := workloadDeployment(t, cs, ns, "stuck", harness.NeverPullsImage, 2)

	deadline := time.Now().Add(90 * time.Second)
	var d *appsv1.Deployment
	for {
		if d, err = cs.AppsV1().Deployments(ns).Get(ctx, web.Name, metav1.GetOptions{}); err != nil {
			t.Fatal(err)
		}
		if available(d) && d.Status.AvailableReplicas == 2 && d.Status.ObservedGeneration == d.Generation {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Deployment %s not Available after 90s: %+v", web.Name, d.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
	toAvailable := time.Since(start)
	fmt.Fprintf(os.Stderr, "e2e: a Deployment of 2 replicas Available on %s in %s\n", a.Name, toAvailable.Round(time.Millisecond))
	for _, p := range podsOf(t, cs, ns, web, 2) {
		if p.Status.Phase != corev1.PodRunning || !podReady(p) {
			t.Errorf("pod %s of an Available Deployment: phase %s, Ready %v, want Running and Ready", p.Name, p.Status.Phase, podReady(p))
		}
	}

	// The other has had as long, and at least 10 s, to become Available; its pods exist, on the node,
	// but their containers wait for an image that is never pulled.
	time.Sleep(time.Until(start.Add(10 * time.Second)))
	if d, err = cs.AppsV1().Deployments(ns).Get(ctx, stuck.Name, metav1.GetOptions{}); err != nil {
		t.Fatal(err)
	}
	if available(d) || d.Status.AvailableReplicas != 0 {
		t.Errorf("Deployment of %s Available after %s: %+v", harness.NeverPullsImage, time.Since(start).Round(time.Second), d.Status)
	}
	for _, p := range podsOf(t, cs, ns, stuck, 2) {
		waiting := len(p.Status.ContainerStatuses) == 1 && p.Status.ContainerStatuses[0].State.Waiting != nil &&
			p.Status.ContainerStatuses[0].State.Waiting.Reason == "ImagePullBackOff"
		if p.Status.Phase != corev1.PodPending || podReady(p) || !waiting {
			t.Errorf("pod %s of %s: phase %s, Ready %v, containers %+v; want Pending, not Ready, waiting in ImagePullBackOff",
				p.Name, harness.NeverPullsImage, p.Status.Phase, podReady(p), p.Status.ContainerStatuses)
		}
	}

	rss := a.RSS()
	var total int64
	line := ""
	for _, name := range slices.Sorted(maps.Keys(rss)) {
		total += rss[name]
		line += fmt.Sprintf(" %s %d MB,", name, rss[name]>>20)
	}
	fmt.Fprintf(os.Stderr, "e2e: RSS on %s:%s total %d MB\n", a.Name, line, total>>20)
}

// workloadDeployment creates a Deployment of replicas pods of image.
func workloadDeployment(t *testing.T, cs kubernetes.Interface, ns, name, image string, replicas int32) *appsv1.Deployment {
	t.Helper()
	labels := map[string]string{"app": name}
	d, err := cs.AppsV1().Deployments(ns).Create(context.Background(), &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: name, Image: image}}}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// podsOf returns the Deployment's pods, failing unless there are want of them, all on kwok's node.
func podsOf(t *testing.T, cs kubernetes.Interface, ns string, d *appsv1.Deployment, want int) []corev1.Pod {
	t.Helper()
	pods, err := cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: metav1.FormatLabelSelector(d.Spec.Selector)})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != want {
		t.Fatalf("Deployment %s has %d pods, want %d", d.Name, len(pods.Items), want)
	}
	for _, p := range pods.Items {
		if p.Spec.NodeName != harness.WorkloadNode {
			t.Errorf("pod %s on node %q, want %s", p.Name, p.Spec.NodeName, harness.WorkloadNode)
		}
	}
	return pods.Items
}

func available(d *appsv1.Deployment) bool {
	for _, c := range d.Status.Conditions {
		if c.Type == appsv1.DeploymentAvailable {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func podReady(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
