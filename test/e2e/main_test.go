// Package e2e runs cheops end to end against real servers: three kube-apiservers built from the Go
// module proxy (the first, site-1, with a controller-manager, a scheduler and kwok, so that its
// workloads really run), a real OpenStack (Debian's packages, two regions, brought up by
// scripts/openstack.sh), `cheops dev` (embedded etcd and Temporal) and a separate `cheops worker`
// process. Nothing here is a fake: each check reads the sites back with client-go or gophercloud.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/client"
	"github.com/cheops-io/cheops/test/harness"
)

// env is what every test shares; TestMain starts it once.
var env struct {
	kube    *harness.KubeCluster
	os      *harness.OpenStack
	osErr   error
	osReady chan struct{} // closed once the OpenStack bring-up has finished, well or not
	cheops  *harness.Cheops
	slow    *harness.SlowProxy
	api     string
	client  *client.Client
	dir     string
}

// Sites registered by TestMain: site-1…site-3 reach the apiservers directly; slow-3 reaches the
// third one through a SlowProxy, with its own default namespace.
var directSites = []string{"site-1", "site-2", "site-3"}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "cheops-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	env.dir = dir
	keep := os.Getenv("CHEOPS_E2E_KEEP") == "1"
	defer func() {
		if !keep {
			os.RemoveAll(dir)
		}
	}()
	fail := func(err error) int {
		keep = true
		fmt.Fprintf(os.Stderr, "e2e setup: %v\n(logs kept in %s)\n", err, dir)
		return 1
	}
	start := time.Now()
	// OpenStack comes up (or is installed, the first time) while the apiservers start and the
	// Kubernetes tests run; the OpenStack tests wait for it (needOpenStack).
	env.osReady = make(chan struct{})
	go func() {
		defer close(env.osReady)
		if os.Getenv("CHEOPS_E2E_OPENSTACK") == "off" {
			// For a run of Kubernetes tests only (-run), beside another run that has OpenStack:
			// the OpenStack tests then fail, they are not skipped.
			env.osErr = errors.New("not started: CHEOPS_E2E_OPENSTACK=off")
			return
		}
		env.os, env.osErr = harness.StartOpenStack(dir)
		if env.osErr == nil {
			fmt.Fprintf(os.Stderr, "e2e: OpenStack (2 regions) ready in %s\n", time.Since(start).Round(time.Millisecond))
		}
	}()
	defer func() {
		<-env.osReady
		if env.os != nil {
			env.os.Close()
		}
	}()
	if env.kube, err = harness.StartKube(dir, 3); err != nil {
		return fail(err)
	}
	defer env.kube.Close()
	fmt.Fprintf(os.Stderr, "e2e: 3 kube-apiservers ready in %s\n", time.Since(start).Round(time.Millisecond))
	// site-1 runs workloads (a controller-manager, a scheduler, kwok), started while cheops is built
	// and started; the cluster is not closed before that start has ended.
	workloads := make(chan error, 1)
	go func() {
		workloads <- env.kube.Apiservers[0].StartWorkloads()
		fmt.Fprintf(os.Stderr, "e2e: workloads on site-1 ready in %s\n", time.Since(start).Round(time.Millisecond))
	}()
	waitWorkloads := sync.OnceValue(func() error { return <-workloads })
	defer func() { _ = waitWorkloads() }()
	bin, err := harness.BuildCheops(dir)
	if err != nil {
		return fail(err)
	}
	if env.cheops, err = harness.StartCheops(bin, dir); err != nil {
		if env.cheops != nil {
			env.cheops.Close()
		}
		return fail(err)
	}
	defer env.cheops.Close()
	env.api = env.cheops.API
	if env.client, err = client.New(env.api, client.WithBearerToken(env.cheops.Token)); err != nil {
		return fail(err)
	}
	if env.slow, err = harness.NewSlowProxy(env.kube.Apiservers[2].URL[len("https://"):], 0); err != nil {
		return fail(err)
	}
	defer env.slow.Close()
	if err := registerSites(); err != nil {
		return fail(err)
	}
	if err := waitWorkloads(); err != nil {
		return fail(err)
	}
	fmt.Fprintf(os.Stderr, "e2e: stack ready in %s\n", time.Since(start).Round(time.Millisecond))
	code := m.Run()
	if code != 0 {
		keep = true
		fmt.Fprintf(os.Stderr, "e2e: logs kept in %s\n", dir)
	}
	return code
}

func registerSites() error {
	for i, a := range env.kube.Apiservers {
		kc, err := os.ReadFile(a.Kubeconfig)
		if err != nil {
			return err
		}
		req := client.SiteRequest{Name: directSites[i], Driver: cheops.DriverKubernetes,
			Labels:     map[string]string{"region": []string{"eu", "eu", "us"}[i]},
			Kubernetes: &client.KubernetesSettings{Kubeconfig: string(kc)}}
		if _, err := env.client.CreateSite(context.Background(), req); err != nil {
			return fmt.Errorf("register %s: %w", directSites[i], err)
		}
	}
	// slow-3: the third apiserver through the proxy, in namespace "slow".
	cs, _, err := env.kube.Apiservers[2].Clients()
	if err != nil {
		return err
	}
	if _, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "slow"}}, metav1.CreateOptions{}); err != nil {
		return err
	}
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: slow, cluster: {server: "https://%s", insecure-skip-tls-verify: true}}]
users: [{name: admin, user: {token: %s}}]
contexts: [{name: slow, context: {cluster: slow, user: admin}}]
current-context: slow
`, env.slow.Addr, env.kube.Apiservers[2].Token)
	req := client.SiteRequest{Name: "slow-3", Driver: cheops.DriverKubernetes, Labels: map[string]string{"speed": "slow"},
		Kubernetes: &client.KubernetesSettings{Kubeconfig: kc, Namespace: "slow"}}
	if _, err := env.client.CreateSite(context.Background(), req); err != nil {
		return fmt.Errorf("register slow-3: %w", err)
	}
	return nil
}

// call sends a JSON request to the cheops API and returns the status and body, for the checks of
// raw HTTP behaviour (statuses, headers, bodies); everything else goes through env.client.
func call(method, path string, body any, header map[string]string) (int, []byte) {
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, env.api+path, r)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+env.cheops.Token)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

// resource is a resource as the API shows it.
type resource = client.Resource

// raw encodes a manifest, an override's patch or any other part of a request written as a map.
func raw(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("encode %#v: %v", v, err))
	}
	return b
}

// onSites is a scope of site names.
func onSites(sites ...string) *cheops.Scope { return &cheops.Scope{Sites: sites} }

func create(t *testing.T, name string, manifest any, sites ...string) resource {
	t.Helper()
	return post(t, client.ResourceRequest{Name: name, Manifest: raw(manifest), Scope: onSites(sites...)})
}

// post creates a resource.
func post(t *testing.T, req client.ResourceRequest) resource {
	t.Helper()
	r, err := env.client.CreateResource(context.Background(), req, client.CreateOptions{})
	if err != nil {
		t.Fatalf("create %s: %v", req.Name, err)
	}
	return r
}

// put changes a resource and returns it at its new generation.
func put(t *testing.T, id string, req client.ResourceRequest) resource {
	t.Helper()
	r, err := env.client.UpdateResource(context.Background(), id, req, client.UpdateOptions{})
	if err != nil {
		t.Fatalf("update %s: %v", id, err)
	}
	return r
}

// get returns the resource and the status the API answered with (0 when it could not be reached,
// e.g. while cheops restarts).
func get(t *testing.T, id string) (resource, int) {
	t.Helper()
	r, err := env.client.GetResource(context.Background(), id)
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se) || errors.As(err, &te):
		t.Fatal(err)
	case err == nil:
		return r, http.StatusOK
	}
	return r, client.StatusCode(err)
}

// waitFor polls the resource until cond holds, failing the test after timeout.
func waitFor(t *testing.T, id string, timeout time.Duration, what string, cond func(r resource, code int) bool) resource {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var r resource
	var code int
	for time.Now().Before(deadline) {
		r, code = get(t, id)
		if cond(r, code) {
			return r
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("resource %s: not %s after %s; last: %d %+v", id, what, timeout, code, r)
	return r
}

func waitReady(t *testing.T, id string, gen int64) resource {
	t.Helper()
	return waitFor(t, id, 2*time.Minute, fmt.Sprintf("Ready at generation %d", gen), func(r resource, code int) bool {
		return code == http.StatusOK && r.State == "Ready" && r.Generation == gen
	})
}

func waitGone(t *testing.T, id string) {
	t.Helper()
	waitFor(t, id, 2*time.Minute, "gone", func(_ resource, code int) bool { return code == http.StatusNotFound })
}
