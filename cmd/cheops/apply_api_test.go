package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/api"
	"github.com/cheops-io/cheops/auth"
	"github.com/cheops-io/cheops/client"
	"github.com/cheops-io/cheops/drivers/kubernetes"
	"github.com/cheops-io/cheops/internal/etcdtest"
	"github.com/cheops-io/cheops/store"
)

// idle stands in for the workflows, which these tests do not run: they are about what apply
// declares, read back from the API's real handlers over a real etcd.
type idle struct{}

func (idle) Ensure(context.Context, string) error         { return nil }
func (idle) Apply(context.Context, string, int64) error   { return nil }
func (idle) Delete(context.Context, string) error         { return nil }
func (idle) Signal(context.Context, string, string) error { return nil }

// realAPI serves the API's real handlers over a real etcd, with an admin token "test-admin-token",
// and returns the server and a client of it.
func realAPI(t *testing.T) (*httptest.Server, *client.Client) {
	t.Helper()
	srv, c, _ := realAPIAndStore(t)
	return srv, c
}

// realAPIAndStore is realAPI with the store under it, for a test to play the workflows' part.
func realAPIAndStore(t *testing.T) (*httptest.Server, *client.Client, *store.Store) {
	t.Helper()
	st := etcdtest.Store(t)
	srv := httptest.NewServer(api.New(api.Config{Auth: auth.Tokens{"test-admin-token": auth.Identity{Name: "test", Role: auth.Admin}}, Store: st, Orchestrator: idle{},
		Drivers: map[cheops.DriverName]cheops.Driver{cheops.DriverKubernetes: kubernetes.New()},
		Log:     slog.New(slog.NewTextHandler(io.Discard, nil))}))
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL, client.WithBearerToken("test-admin-token"))
	if err != nil {
		t.Fatal(err)
	}
	return srv, c, st
}

// The bug end to end through the real API: `apply --policy-timeout 2m` on a transactional resource
// leaves it transactional, sets the timeout, and makes the manifest exactly the file's.
func TestApplyPolicyTimeoutAgainstTheRealAPI(t *testing.T) {
	srv, c := realAPI(t)
	ctx := context.Background()
	for _, name := range []string{"paris", "berlin"} {
		if _, err := c.CreateSite(ctx, client.SiteRequest{Name: name, Driver: cheops.DriverKubernetes, Labels: map[string]string{"region": "eu"},
			Kubernetes: &client.KubernetesSettings{Kubeconfig: testKubeconfig}}); err != nil {
			t.Fatal(err)
		}
	}
	file := writeManifest(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\ndata: {v: \"1\", gone: x}\n")
	if out, err := runCLI(t, "--server", srv.URL, "--token", "test-admin-token", "apply", "-f", file, "--sites", "paris,berlin", "--consistency", "transactional"); err != nil {
		t.Fatalf("apply --consistency transactional: %v\n%s", err, out)
	}
	file = writeManifest(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\ndata: {v: \"2\"}\n")
	if out, err := runCLI(t, "--server", srv.URL, "--token", "test-admin-token", "apply", "-f", file, "--policy-timeout", "2m"); err != nil {
		t.Fatalf("apply --policy-timeout 2m: %v\n%s", err, out)
	}
	r, err := c.GetResource(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if r.Policy.Consistency != cheops.Transactional || r.Policy.Timeout != cheops.Duration(2*time.Minute) || r.Generation != 2 {
		t.Fatalf("after apply --policy-timeout 2m: policy %+v at generation %d; want transactional, 2m, generation 2", r.Policy, r.Generation)
	}
	var m struct{ Data map[string]string }
	if err := json.Unmarshal(r.Manifest, &m); err != nil || len(m.Data) != 1 || m.Data["v"] != "2" {
		t.Fatalf("manifest after apply = %s, want exactly the file's data {v: 2}", r.Manifest)
	}
	if len(r.Scope.Sites) != 2 {
		t.Fatalf("scope after apply without a scope flag = %+v, want the two sites kept", r.Scope)
	}
	if out, err := runCLI(t, "--server", srv.URL, "--token", "test-admin-token", "apply", "-f", file, "--selector", "region=eu"); err != nil {
		t.Fatalf("apply --selector: %v\n%s", err, out)
	}
	if r, err = c.GetResource(ctx, "web"); err != nil || r.Scope.Selector != "region=eu" || len(r.Scope.Sites) != 0 || r.Policy.Consistency != cheops.Transactional {
		t.Fatalf("after apply --selector: scope %+v, policy %+v, %v", r.Scope, r.Policy, err)
	}
	// A manifest name that cannot name a resource: the error says where the name came from.
	dotted := writeManifest(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: my.config}\ndata: {v: \"1\"}\n")
	out, err := runCLI(t, "--server", srv.URL, "--token", "test-admin-token", "apply", "-f", dotted, "--sites", "paris")
	if err == nil || !strings.Contains(out, "metadata.name") || !strings.Contains(out, `"my.config"`) || !strings.Contains(out, "--name") {
		t.Fatalf("apply of a manifest named my.config: %v\n%s; want the error to name metadata.name and --name", err, out)
	}
	if out, err := runCLI(t, "--server", srv.URL, "--token", "test-admin-token", "apply", "-f", dotted, "--sites", "paris", "--name", "my-config"); err != nil {
		t.Fatalf("apply --name my-config: %v\n%s", err, out)
	}
}

const testKubeconfig = `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`

// apply -f takes a YAML file of several documents, and a folder of .yaml, .yml and .json files in
// name order (other files ignored): each manifest is a resource. A manifest that fails does not
// stop the others, and apply exits non-zero naming it; --name with several manifests is refused.
func TestApplyManyManifests(t *testing.T) {
	srv, c := realAPI(t)
	ctx := context.Background()
	if _, err := c.CreateSite(ctx, client.SiteRequest{Name: "paris", Driver: cheops.DriverKubernetes,
		Kubernetes: &client.KubernetesSettings{Kubeconfig: testKubeconfig}}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, text := range map[string]string{
		"a.yaml":    "# two ConfigMaps\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: one}\n---\n# nothing here\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: two}\n",
		"b.json":    `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"three"}}`,
		"notes.txt": "not a manifest",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cli := func(args ...string) (string, error) {
		return runCLI(t, append([]string{"--server", srv.URL, "--token", "test-admin-token"}, args...)...)
	}
	if out, err := cli("apply", "-f", dir, "--sites", "paris"); err != nil {
		t.Fatalf("apply -f folder: %v\n%s", err, out)
	}
	for _, name := range []string{"one", "two", "three"} {
		if _, err := c.GetResource(ctx, name); err != nil {
			t.Errorf("resource %s from the folder: %v", name, err)
		}
	}
	bad := writeManifest(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: four}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: no.dots}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: five}\n")
	out, err := cli("apply", "-f", bad, "--sites", "paris")
	if err == nil || !strings.Contains(out, "(document 2)") || !strings.Contains(err.Error(), "1 of 3") {
		t.Fatalf("apply with a bad second document: %v\n%s; want an error naming document 2, 1 of 3", err, out)
	}
	for _, name := range []string{"four", "five"} {
		if _, err := c.GetResource(ctx, name); err != nil {
			t.Errorf("resource %s, around the bad document: %v", name, err)
		}
	}
	if out, err := cli("apply", "-f", bad, "--sites", "paris", "--name", "x"); err == nil || !strings.Contains(out+err.Error(), "--name names one resource") {
		t.Fatalf("--name with three manifests: %v\n%s", err, out)
	}
}

// apply --depends-on declares what a resource depends on, keeps it on an apply without the flag,
// clears it when given empty, and a name that is no resource is refused naming dependsOn.
func TestApplyDependsOn(t *testing.T) {
	srv, c := realAPI(t)
	ctx := context.Background()
	if _, err := c.CreateSite(ctx, client.SiteRequest{Name: "paris", Driver: cheops.DriverKubernetes,
		Kubernetes: &client.KubernetesSettings{Kubeconfig: testKubeconfig}}); err != nil {
		t.Fatal(err)
	}
	cli := func(args ...string) (string, error) {
		return runCLI(t, append([]string{"--server", srv.URL, "--token", "test-admin-token", "apply"}, args...)...)
	}
	base := writeManifest(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: base}\n")
	if out, err := cli("-f", base, "--sites", "paris"); err != nil {
		t.Fatalf("apply base: %v\n%s", err, out)
	}
	app := writeManifest(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\ndata: {v: \"1\"}\n")
	if out, err := cli("-f", app, "--sites", "paris", "--depends-on", "base, nowhere"); err == nil || !strings.Contains(out, "dependsOn[1]") {
		t.Fatalf("apply --depends-on naming no resource: %v\n%s", err, out)
	}
	if out, err := cli("-f", app, "--sites", "paris", "--depends-on", "base"); err != nil || !strings.Contains(out, "Depends on:") {
		t.Fatalf("apply --depends-on base: %v\n%s", err, out)
	}
	app2 := writeManifest(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app}\ndata: {v: \"2\"}\n")
	if out, err := cli("-f", app2); err != nil {
		t.Fatalf("apply without --depends-on: %v\n%s", err, out)
	}
	if r, err := c.GetResource(ctx, "app"); err != nil || !slices.Equal(r.DependsOn, []string{"base"}) || r.Generation != 2 {
		t.Fatalf("after an apply without the flag: dependsOn %v at generation %d, %v; want [base] kept", r.DependsOn, r.Generation, err)
	}
	if out, err := cli("-f", app2, "--depends-on", ""); err != nil {
		t.Fatalf("apply --depends-on '': %v\n%s", err, out)
	}
	if r, err := c.GetResource(ctx, "app"); err != nil || len(r.DependsOn) != 0 {
		t.Fatalf("after --depends-on '': dependsOn %v, %v; want none", r.DependsOn, err)
	}
}

// The rollout flags declare a progressive rollout, through the real API.
func TestApplyRolloutFlags(t *testing.T) {
	srv, c := realAPI(t)
	ctx := context.Background()
	if _, err := c.CreateSite(ctx, client.SiteRequest{Name: "paris", Driver: cheops.DriverKubernetes,
		Kubernetes: &client.KubernetesSettings{Kubeconfig: testKubeconfig}}); err != nil {
		t.Fatal(err)
	}
	file := writeManifest(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\n")
	if out, err := runCLI(t, "--server", srv.URL, "--token", "test-admin-token", "apply", "-f", file, "--sites", "paris",
		"--rollout-wave", "30%", "--rollout-group", "canary=true", "--rollout-group", "region in (eu, us)",
		"--rollout-soak", "10s", "--rollout-max-failures", "1"); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	r, err := c.GetResource(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	ro := r.Policy.Rollout
	if ro == nil || ro.MaxUnavailable != (cheops.WaveSize{N: 30, Percent: true}) || len(ro.Groups) != 2 || ro.Groups[1] != "region in (eu, us)" ||
		ro.Soak != cheops.Duration(10*time.Second) || ro.MaxFailures != 1 {
		t.Fatalf("rollout %+v", ro)
	}
	if out, err := runCLI(t, "--server", srv.URL, "--token", "test-admin-token", "apply", "-f", file, "--rollout-wave", "lots"); err == nil {
		t.Fatalf("--rollout-wave lots accepted:\n%s", out)
	}
}
