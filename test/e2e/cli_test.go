package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/cheops-io/cheops"
)

// cli runs the cheops binary against the test stack.
func cli(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(env.cheops.Bin, append([]string{"--server", env.api}, args...)...)
	cmd.Env = append(os.Environ(), "CHEOPS_TOKEN="+env.cheops.Token)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// The README's walkthrough, through the CLI, on the suite's sites (TestDemoSites runs the README's
// text itself on demo sites): list sites, apply with --wait, get, list, events, update, delete
// with --wait — checked on the apiservers with client-go.
func TestCLIWalkthrough(t *testing.T) {
	out, err := cli(t, "site", "list")
	if err != nil || !strings.Contains(out, "site-1") || !strings.Contains(out, "region=eu") {
		t.Fatalf("site list: %v\n%s", err, out)
	}
	if strings.Contains(out, "token") {
		t.Fatalf("site list shows credentials:\n%s", out)
	}
	if out, err = cli(t, "site", "events", "site-1"); err != nil || !strings.Contains(out, "SiteCreated") || !strings.Contains(out, "dev-admin") {
		t.Fatalf("site events: %v\n%s", err, out)
	}
	file := filepath.Join(t.TempDir(), "cm.yaml")
	manifest := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-cli\ndata:\n  greeting: hello\n"
	if err := os.WriteFile(file, []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = cli(t, "apply", "-f", file, "--sites", "site-1,site-3", "--wait")
	if err != nil || !strings.Contains(out, "Ready") {
		t.Fatalf("apply --wait: %v\n%s", err, out)
	}
	out, err = cli(t, "get", "from-cli", "-o", "json")
	if err != nil {
		t.Fatalf("get: %v\n%s", err, out)
	}
	var r resource
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("get -o json: %v\n%s", err, out)
	}
	if r.State != "Ready" || len(r.Replicas) != 2 {
		t.Fatalf("get: %+v", r)
	}
	r.Generation = 1
	for _, i := range []int{0, 2} {
		u, err := getOn(t, env.kube.Apiservers[i], configMaps, "default", "from-cli")
		if err != nil || string(u.GetUID()) != r.LocalIDs()[directSites[i]] {
			t.Fatalf("from-cli on %s: %v (uid %v, reported %s)", directSites[i], err, u, r.LocalIDs()[directSites[i]])
		}
	}
	if out, err = cli(t, "list", "--name-prefix", "from-"); err != nil || !strings.Contains(out, "from-cli") || !strings.Contains(out, "2/2") {
		t.Fatalf("list: %v\n%s", err, out)
	}
	// Update through apply: same name, new data.
	if err := os.WriteFile(file, []byte(strings.Replace(manifest, "hello", "bonjour", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err = cli(t, "apply", "-f", file, "--wait"); err != nil || !strings.Contains(out, "generation 2") {
		t.Fatalf("apply update: %v\n%s", err, out)
	}
	u, err := getOn(t, env.kube.Apiservers[2], configMaps, "default", "from-cli")
	if err != nil || u.Object["data"].(map[string]any)["greeting"] != "bonjour" {
		t.Fatalf("update not on site-3: %v %v", err, u)
	}
	if out, err = cli(t, "events", "from-cli"); err != nil || !strings.Contains(out, "Applied") || !strings.Contains(out, "Updated") || !strings.Contains(out, "dev-admin") {
		t.Fatalf("events: %v\n%s", err, out)
	}
	if out, err = cli(t, "delete", "from-cli", "--wait"); err != nil || !strings.Contains(out, "deleted") {
		t.Fatalf("delete --wait: %v\n%s", err, out)
	}
	for _, i := range []int{0, 2} {
		if _, err := getOn(t, env.kube.Apiservers[i], configMaps, "default", "from-cli"); !apierrors.IsNotFound(err) {
			t.Fatalf("from-cli still on %s: %v", directSites[i], err)
		}
	}
	// A clear error, and a non-zero exit, for a bad request.
	out, err = cli(t, "apply", "-f", file, "--name", "Bad_Name", "--sites", "site-1")
	if err == nil || !strings.Contains(out, "422") || !strings.Contains(out, "name") {
		t.Fatalf("bad name: %v\n%s", err, out)
	}
	// Removing a site that holds replicas is refused.
	if out, err = cli(t, "apply", "-f", file, "--sites", "site-2", "--wait"); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	out, err = cli(t, "site", "remove", "site-2")
	if err == nil || !strings.Contains(out, "409") {
		t.Fatalf("site remove of a site in use: %v\n%s", err, out)
	}
	if out, err = cli(t, "delete", "from-cli", "--wait"); err != nil {
		t.Fatalf("delete: %v\n%s", err, out)
	}
}

// apply with one policy flag changes that policy field only: a transactional resource stays
// transactional after `apply --policy-timeout 2m`, and the new manifest converges on every site.
func TestCLIApplyKeepsThePolicyFlagsNotGiven(t *testing.T) {
	file := filepath.Join(t.TempDir(), "cli-txn.yaml")
	manifest := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cli-txn\ndata:\n  value: one\n"
	if err := os.WriteFile(file, []byte(manifest), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := cli(t, "apply", "-f", file, "--sites", "site-1,site-2", "--consistency", "transactional", "--wait"); err != nil {
		t.Fatalf("apply --consistency transactional: %v\n%s", err, out)
	}
	r, code := get(t, "cli-txn")
	if code != http.StatusOK || r.Policy.Consistency != cheops.Transactional || r.Generation != 1 {
		t.Fatalf("after the first apply: %d, policy %+v at generation %d; want transactional at 1", code, r.Policy, r.Generation)
	}
	if err := os.WriteFile(file, []byte(strings.Replace(manifest, "one", "two", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := cli(t, "apply", "-f", file, "--policy-timeout", "2m", "--wait")
	if err != nil || !strings.Contains(out, "generation 2") {
		t.Fatalf("apply --policy-timeout 2m: %v\n%s", err, out)
	}
	r, code = get(t, "cli-txn")
	if code != http.StatusOK || r.Policy.Consistency != cheops.Transactional || r.Policy.Timeout != cheops.Duration(2*time.Minute) {
		t.Fatalf("after apply --policy-timeout 2m: %d, policy %+v; want transactional with a 2m timeout", code, r.Policy)
	}
	if r.Generation != 2 || r.State != cheops.ResourceReady || len(r.Scope.Sites) != 2 {
		t.Fatalf("after apply --policy-timeout 2m: generation %d, %s, scope %+v; want 2, Ready, the same two sites", r.Generation, r.State, r.Scope)
	}
	for i := range 2 {
		wantValue(t, i, "cli-txn", "two", "2")
	}
	if out, err := cli(t, "delete", "cli-txn", "--wait"); err != nil {
		t.Fatalf("delete: %v\n%s", err, out)
	}
}
