package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/client"
)

// rolloutSites registers n sites ro-0… as namespaces of the three apiservers, labelled
// rollout-test=true, and removes them when the test ends.
func rolloutSites(t *testing.T, n int) []string {
	t.Helper()
	ctx := context.Background()
	var names []string
	for i := range n {
		name := fmt.Sprintf("ro-%d", i)
		a := env.kube.Apiservers[i%3]
		cs, _, err := a.Clients()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		kc, err := os.ReadFile(a.Kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := env.client.CreateSite(ctx, client.SiteRequest{Name: name, Driver: cheops.DriverKubernetes,
			Labels:     map[string]string{"rollout-test": "true"},
			Kubernetes: &client.KubernetesSettings{Kubeconfig: string(kc), Namespace: name}}); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
		t.Cleanup(func() {
			_ = env.client.DeleteSite(context.Background(), name, true)
			_ = cs.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
		})
	}
	return names
}

// A rollout over 10 sites in waves of 3, with one site that rejects the object and maxFailures 1,
// stops after the failing wave: the resource is paused with the reason and the later waves' sites
// are untouched; resume goes on with them.
func TestRolloutStopsAfterAFailingWaveAndResumes(t *testing.T) {
	sites := rolloutSites(t, 10)
	start := time.Now()
	r := post(t, client.ResourceRequest{Name: "rolled", Manifest: raw(configMap("rolled", "v")),
		Scope: &cheops.Scope{Selector: "rollout-test=true"},
		// ro-4's ConfigMap gets a number for a value, which its apiserver refuses.
		Overrides: &[]cheops.Override{{Site: "ro-4", Patch: raw(map[string]any{"data": map[string]any{"bad": 1}})}},
		Policy:    &cheops.Policy{Rollout: &cheops.Rollout{MaxUnavailable: cheops.WaveSize{N: 3}, MaxFailures: 1}}})
	defer remove(t, r.ID)
	r = waitFor(t, r.ID, 2*time.Minute, "paused by its rollout", func(r resource, code int) bool {
		return code == http.StatusOK && r.Paused && r.PauseReason != ""
	})
	stoppedAfter := time.Since(start)
	if !strings.Contains(r.PauseReason, "rollout stopped after wave 2 of 4: 1 site(s) failed (maxFailures 1): ro-4") {
		t.Fatalf("pause reason %q", r.PauseReason)
	}
	state := map[string]cheops.ReplicaState{}
	for _, rep := range r.Replicas {
		state[rep.Site] = rep.State
	}
	for i, site := range sites {
		want := cheops.ReplicaReady
		switch {
		case i == 4:
			want = cheops.ReplicaFailed
		case i >= 6:
			want = cheops.ReplicaPending
		}
		if state[site] != want {
			t.Errorf("%s is %s after the stop; want %s", site, state[site], want)
		}
		if i >= 6 {
			wantAbsent(t, i%3, site, "rolled")
		}
	}
	// Nothing more happens while it is paused.
	time.Sleep(2 * time.Second)
	if again, _ := get(t, r.ID); again.ReadyReplicas() != 5 {
		t.Fatalf("%d replicas Ready while paused; want the 5 of the first two waves", again.ReadyReplicas())
	}

	if _, err := env.client.Act(context.Background(), r.ID, client.Resume); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	r = waitFor(t, r.ID, 2*time.Minute, "on every site but ro-4", func(r resource, code int) bool {
		return code == http.StatusOK && r.ReadyReplicas() == 9
	})
	if r.Paused || r.State != cheops.ResourceDegraded {
		t.Fatalf("after resume: paused %v, state %s; want not paused, Degraded (ro-4 failed)", r.Paused, r.State)
	}
	fmt.Fprintf(os.Stderr, "e2e: rollout of 10 sites in waves of 3 stopped after wave 2 in %s; resumed to 9/10 Ready in %s\n",
		stoppedAfter.Round(time.Millisecond), time.Since(resumed).Round(time.Millisecond))
}
