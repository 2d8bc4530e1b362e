// Package cluster tests cheops in its production topology, brought up by scripts/cluster.sh:
// Temporal on PostgreSQL, a 3-member etcd, two API servers and two workers, all over mutual TLS.
// It runs only when CHEOPS_CLUSTER_TEST=1 (make cluster-test, make chaos); the script builds
// Temporal and etcd from this module's internal/tools into the clone's bin/cluster.
package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/client"
	"github.com/cheops-io/cheops/test/harness"
)

// A port range of its own, so that a cluster brought up by hand (default 23100) keeps running.
const defaultPortBase = "23500"

// Cluster is a running cluster.sh cluster and clients of each of its API servers.
type Cluster struct {
	Dir     string
	Clients []*client.Client
	env     []string
	// over is set when the test's deadline is near and the cluster has been stopped for good.
	over atomic.Bool
}

func script() string { return filepath.Join("..", "..", "scripts", "cluster.sh") }

// startCluster runs `cluster.sh up` in a fresh state folder and registers its `down`.
func startCluster(t *testing.T) *Cluster {
	t.Helper()
	// The postgres user must reach the state folder, which MkdirTemp makes 0700.
	dir, err := os.MkdirTemp("", "cheops-cluster-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	base := os.Getenv("CHEOPS_CLUSTER_PORT_BASE")
	if base == "" {
		base = defaultPortBase
	}
	// The binaries outlive the state, in the clone's bin folder: a fresh state then costs no link.
	bin, err := filepath.Abs(filepath.Join("..", "..", "bin", "cluster"))
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{Dir: dir, env: append(os.Environ(), "CHEOPS_CLUSTER_DIR="+dir, "CHEOPS_CLUSTER_PORT_BASE="+base,
		"CHEOPS_CLUSTER_BIN="+bin)}
	t.Cleanup(func() {
		keep := t.Failed() || os.Getenv("CHEOPS_CLUSTER_KEEP") == "1"
		// A state thrown away needs no orderly stop: kill is a second, down about twelve.
		verb := "kill"
		if keep {
			verb = "down"
		}
		if out, err := c.run(verb); err != nil {
			t.Errorf("cluster.sh %s: %v\n%s", verb, err, out)
		}
		if keep {
			t.Logf("cluster state and logs kept in %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	// A test that runs out of time panics without running its cleanups, and the processes, each in
	// a session of its own, would outlive it: stop them a minute before the deadline instead.
	if deadline, ok := t.Deadline(); ok {
		guard := time.AfterFunc(time.Until(deadline)-time.Minute, func() {
			c.over.Store(true)
			out, err := c.run("down")
			fmt.Fprintf(os.Stderr, "test deadline near: cluster.sh down: %v\n%s", err, out)
		})
		t.Cleanup(func() { guard.Stop() })
	}
	start := time.Now()
	if out, err := c.run("up"); err != nil {
		t.Fatalf("cluster.sh up: %v\n%s", err, out)
	}
	t.Logf("cluster up in %s", time.Since(start).Round(time.Millisecond))
	token, err := os.ReadFile(filepath.Join(dir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, "certs", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("ca.crt holds no certificate")
	}
	hc := &http.Client{Timeout: 30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	for _, url := range strings.Fields(c.envValue(t, "CHEOPS_CLUSTER_SERVERS")) {
		cl, err := client.New(url, client.WithHTTPClient(hc), client.WithBearerToken(strings.TrimSpace(string(token))))
		if err != nil {
			t.Fatal(err)
		}
		c.Clients = append(c.Clients, cl)
	}
	if len(c.Clients) < 2 {
		t.Fatalf("want 2 API servers in the env file, got %d", len(c.Clients))
	}
	return c
}

func (c *Cluster) run(args ...string) ([]byte, error) {
	if c.over.Load() && args[0] == "up" {
		return nil, errors.New("the test's deadline is near: the cluster stays down")
	}
	cmd := exec.Command("bash", append([]string{script()}, args...)...)
	cmd.Env = c.env
	return cmd.CombinedOutput()
}

// envValue reads one variable of the env file the script wrote.
func (c *Cluster) envValue(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(c.Dir, "env"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "export "+name+"="); ok {
			return strings.Trim(v, `"`)
		}
	}
	t.Fatalf("%s not in %s/env", name, c.Dir)
	return ""
}

func configMap(name, value string) json.RawMessage {
	b, _ := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": name}, "data": map[string]any{"value": value}})
	return b
}

// waitFor polls the resource through cl until cond holds.
func waitFor(t *testing.T, cl *client.Client, id string, timeout time.Duration, what string, cond func(client.Resource, error) bool) client.Resource {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var r client.Resource
	var err error
	for time.Now().Before(deadline) {
		r, err = cl.GetResource(context.Background(), id)
		if cond(r, err) {
			return r
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("resource %s: not %s after %s; last: %v %+v", id, what, timeout, err, r)
	return r
}

// Brings the cluster up, registers two real kube-apiservers as sites through one API server,
// replicates a ConfigMap through the other, updates and deletes it, and checks each step on both
// apiservers with client-go.
func TestReplicateThroughCluster(t *testing.T) {
	if os.Getenv("CHEOPS_CLUSTER_TEST") != "1" {
		t.Skip("set CHEOPS_CLUSTER_TEST=1 (make cluster-test): brings up the whole production topology")
	}
	kube, err := harness.StartKube(t.TempDir(), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer kube.Close()
	c := startCluster(t)
	ctx := context.Background()
	sites := []string{"site-1", "site-2"}
	for i, a := range kube.Apiservers {
		kc, err := os.ReadFile(a.Kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Clients[0].CreateSite(ctx, client.SiteRequest{Name: sites[i], Driver: cheops.DriverKubernetes,
			Kubernetes: &client.KubernetesSettings{Kubeconfig: string(kc)}}); err != nil {
			t.Fatalf("register %s: %v", sites[i], err)
		}
	}
	start := time.Now()
	r, err := c.Clients[1].CreateResource(ctx, client.ResourceRequest{Name: "cluster-cm", Manifest: configMap("cluster-cm", "one"),
		Scope: &cheops.Scope{Sites: sites}}, client.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ready := func(gen int64) func(client.Resource, error) bool {
		return func(r client.Resource, err error) bool {
			return err == nil && r.Generation == gen && r.State == cheops.ResourceReady && r.ReadyReplicas() == len(sites)
		}
	}
	r = waitFor(t, c.Clients[0], r.ID, 2*time.Minute, "Ready", ready(1))
	t.Logf("created and Ready on %d sites in %s", len(sites), time.Since(start).Round(time.Millisecond))
	check := func(value string) {
		t.Helper()
		for i, a := range kube.Apiservers {
			cs, _, err := a.Clients()
			if err != nil {
				t.Fatal(err)
			}
			cm, err := cs.CoreV1().ConfigMaps("default").Get(ctx, "cluster-cm", metav1.GetOptions{})
			if err != nil {
				t.Fatalf("%s: %v", sites[i], err)
			}
			if cm.Labels[cheops.LabelResourceID] != r.ID || cm.Data["value"] != value {
				t.Errorf("%s: labels %v data %v, want resource %s value %q", sites[i], cm.Labels, cm.Data, r.ID, value)
			}
			if string(cm.UID) != r.LocalIDs()[sites[i]] {
				t.Errorf("%s: UID %s, API reports local ID %q", sites[i], cm.UID, r.LocalIDs()[sites[i]])
			}
		}
	}
	check("one")

	start = time.Now()
	if _, err := c.Clients[0].UpdateResource(ctx, r.ID, client.ResourceRequest{Manifest: configMap("cluster-cm", "two")},
		client.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	r = waitFor(t, c.Clients[1], r.ID, 2*time.Minute, "Ready at generation 2", ready(2))
	t.Logf("updated and Ready in %s", time.Since(start).Round(time.Millisecond))
	check("two")

	start = time.Now()
	if _, err := c.Clients[1].DeleteResource(ctx, r.ID, false); err != nil {
		t.Fatal(err)
	}
	waitFor(t, c.Clients[0], r.ID, 2*time.Minute, "gone", func(_ client.Resource, err error) bool { return client.IsNotFound(err) })
	for i, a := range kube.Apiservers {
		cs, _, err := a.Clients()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cs.CoreV1().ConfigMaps("default").Get(ctx, "cluster-cm", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("%s: cluster-cm still there after the delete: %v", sites[i], err)
		}
	}
	t.Logf("deleted everywhere in %s", time.Since(start).Round(time.Millisecond))

	if out, err := c.run("status"); err != nil {
		t.Errorf("cluster.sh status: %v\n%s", err, out)
	} else {
		fmt.Fprintf(os.Stderr, "%s", out)
	}
}

// clientTLS is the operator's client certificate of a cluster, for talking to etcd directly.
type clientTLS struct{ dir string }

func (c *clientTLS) config() (*tls.Config, error) {
	certs := filepath.Join(c.dir, "certs")
	pair, err := tls.LoadX509KeyPair(filepath.Join(certs, "operator.crt"), filepath.Join(certs, "operator.key"))
	if err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(filepath.Join(certs, "ca.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s/ca.crt holds no certificate", certs)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}
