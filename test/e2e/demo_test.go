package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/client"
	"github.com/cheops-io/cheops/test/harness"
)

// `cheops dev --demo-sites 2`, a stack of its own beside the suite's: the demo sites paris and
// berlin are registered and Ready, a resource replicates to them (read back with client-go from
// the demo apiservers), the README's walkthrough runs verbatim against them, a restart of dev
// keeps them, and once dev has stopped no kube-apiserver it started is left.
func TestDemoSites(t *testing.T) {
	dir := filepath.Join(env.dir, "demo")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	c, err := harness.StartCheops(env.cheops.Bin, dir, harness.Options{LogLevel: "debug", DemoSites: 2})
	if err != nil {
		if c != nil {
			c.Close()
		}
		t.Fatalf("cheops dev --demo-sites 2: %v", err)
	}
	stopped := false
	defer func() {
		if !stopped {
			c.Close()
		}
	}()
	t.Logf("cheops dev --demo-sites 2 ready in %s", time.Since(start).Round(time.Millisecond))
	demoDir := filepath.Join(dir, "data", "demo-sites")
	sites := []string{"paris", "berlin"}
	pids := demoApiservers(t, demoDir)
	if len(pids) != 2 {
		t.Fatalf("kube-apiservers of %s: %v, want 2", demoDir, pids)
	}
	for _, pid := range pids {
		t.Logf("demo kube-apiserver %d: %s resident", pid, rss(pid))
	}
	cl, err := client.New(c.API, client.WithBearerToken(c.Token))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	t.Run("registered and Ready", func(t *testing.T) {
		waitSitesReady(t, cl, sites)
		for _, name := range sites {
			s, err := cl.GetSite(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			if s.Labels["region"] != "eu" || s.Labels["demo"] != "true" || !s.HasCredentials || s.CreatedBy != "cheops-dev" {
				t.Fatalf("site %s: %+v", name, s)
			}
			// The admin token is a credential: files 0600, never in a log or the API.
			token := demoToken(t, filepath.Join(demoDir, name))
			for _, f := range []string{"tokens.csv", "kubeconfig", "sa.key"} {
				if fi, err := os.Stat(filepath.Join(demoDir, name, f)); err != nil || fi.Mode().Perm() != 0o600 {
					t.Fatalf("%s of %s: %v, mode %v; want 0600", f, name, err, fi.Mode())
				}
			}
			for _, log := range []string{c.Dev.Log, c.Worker.Log} {
				if b, _ := os.ReadFile(log); bytes.Contains(b, []byte(token)) {
					t.Fatalf("%s holds the admin token of %s", log, name)
				}
			}
			if _, body := callAt(c, "GET", "/v1/sites/"+name); strings.Contains(body, token) {
				t.Fatalf("GET /v1/sites/%s shows its token: %s", name, body)
			}
		}
	})

	t.Run("a resource replicates to them", func(t *testing.T) {
		replicateToDemoSites(t, cl, demoDir, sites, "demo-cm")
	})

	t.Run("README walkthrough", func(t *testing.T) {
		runReadmeWalkthrough(t, c)
	})

	t.Run("a restart keeps them", func(t *testing.T) {
		c.Dev.Stop()
		if left := demoApiservers(t, demoDir); len(left) != 0 {
			t.Fatalf("kube-apiservers left after cheops dev stopped: %v", left)
		}
		if err := c.StartDev(); err != nil {
			t.Fatal(err)
		}
		waitSitesReady(t, cl, sites)
		for _, name := range sites {
			evs, err := cl.SiteEvents(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			created := 0
			for _, e := range evs {
				if e.Type == cheops.EventSiteCreated {
					created++
				}
			}
			if created != 1 {
				t.Fatalf("site %s created %d times: %+v", name, created, evs)
			}
		}
		replicateToDemoSites(t, cl, demoDir, sites, "demo-cm-2")
	})

	stopped = true
	c.Close()
	if left := demoApiservers(t, demoDir); len(left) != 0 {
		t.Fatalf("kube-apiservers left after cheops dev stopped: %v", left)
	}
}

// replicateToDemoSites creates a ConfigMap on the region=eu sites, waits until it is Ready, reads
// it back from each demo apiserver with client-go, and deletes it.
func replicateToDemoSites(t *testing.T, cl *client.Client, demoDir string, sites []string, name string) {
	t.Helper()
	ctx := context.Background()
	manifest := map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": name}, "data": map[string]any{"city": "any"}}
	r, err := cl.CreateResource(ctx, client.ResourceRequest{Name: name, Manifest: raw(manifest), Scope: &cheops.Scope{Selector: "region=eu"}}, client.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for r.State != cheops.ResourceReady || len(r.Replicas) != len(sites) {
		if time.Now().After(deadline) {
			t.Fatalf("%s not Ready on %v: %+v", name, sites, r)
		}
		time.Sleep(200 * time.Millisecond)
		if r, err = cl.GetResource(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	for _, site := range sites {
		cs := demoClient(t, filepath.Join(demoDir, site))
		cm, err := cs.CoreV1().ConfigMaps("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("%s on %s: %v", name, site, err)
		}
		if string(cm.UID) != r.LocalIDs()[site] || cm.Data["city"] != "any" {
			t.Fatalf("%s on %s: uid %s, data %v; cheops reports %s", name, site, cm.UID, cm.Data, r.LocalIDs()[site])
		}
	}
	if _, err := cl.DeleteResource(ctx, name, false); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(time.Minute)
	for {
		if _, err := cl.GetResource(ctx, name); client.StatusCode(err) == 404 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not deleted", name)
		}
		time.Sleep(200 * time.Millisecond)
	}
	cs := demoClient(t, filepath.Join(demoDir, sites[0]))
	if _, err := cs.CoreV1().ConfigMaps("default").Get(ctx, name, metav1.GetOptions{}); err == nil {
		t.Fatalf("%s still on %s", name, sites[0])
	}
}

// runReadmeWalkthrough runs README.md's walkthrough, its first sh block as written, with bash -e
// in an empty folder whose bin/cheops is the test's binary pointed at c (CHEOPS_SERVER and
// CHEOPS_TOKEN, as a reader's shell would set them without `make run`'s defaults); `get -w`,
// which a reader ends with Ctrl-C, gets a SIGINT after 3 s.
func runReadmeWalkthrough(t *testing.T, c *harness.Cheops) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(readme), "## A five-minute walkthrough")
	if !ok {
		t.Fatal("README.md has no walkthrough")
	}
	_, rest, _ = strings.Cut(rest, "```sh\n")
	script, _, ok := strings.Cut(rest, "```\n")
	if !ok {
		t.Fatal("README.md's walkthrough has no sh block")
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	wrapper := fmt.Sprintf(`#!/bin/sh
case " $* " in
*" -w "*) timeout -s INT 3 %[1]s "$@"; s=$?; [ $s = 124 ] && exit 0; exit $s ;;
esac
exec %[1]s "$@"
`, strconv.Quote(c.Bin))
	if err := os.WriteFile(filepath.Join(dir, "bin", "cheops"), []byte(wrapper), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "walkthrough.sh"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "-e", "walkthrough.sh")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CHEOPS_SERVER="+c.API, "CHEOPS_TOKEN="+c.Token)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("README walkthrough ran in %s", time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("README walkthrough: %v\n%s", err, out)
	}
	for _, want := range []string{"paris", "berlin", "2/2 replicas Ready at generation 1", "2/2 replicas Ready at generation 2", "Updated", "resource web deleted"} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("README walkthrough: no %q in its output:\n%s", want, out)
		}
	}
}

// waitSitesReady waits until each named site is probed Ready.
func waitSitesReady(t *testing.T, cl *client.Client, names []string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for _, name := range names {
		for {
			s, err := cl.GetSite(context.Background(), name)
			if err == nil && s.Health == cheops.SiteReady {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("site %s not Ready: %+v %v", name, s, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// demoClient is a client of a demo apiserver, from the kubeconfig cheops dev wrote for it.
func demoClient(t *testing.T, siteDir string) kubernetes.Interface {
	t.Helper()
	kc, err := os.ReadFile(filepath.Join(siteDir, "kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(kc)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The kubeconfig verifies the apiserver's certificate: it answers.
	if _, err := cs.CoreV1().Namespaces().Get(context.Background(), corev1.NamespaceDefault, metav1.GetOptions{}); err != nil {
		t.Fatalf("demo apiserver of %s: %v", siteDir, err)
	}
	return cs
}

// demoToken is a demo apiserver's admin token.
func demoToken(t *testing.T, siteDir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(siteDir, "tokens.csv"))
	if err != nil {
		t.Fatal(err)
	}
	tok, _, _ := strings.Cut(string(b), ",")
	if len(tok) < 32 {
		t.Fatalf("demo token of %s is %d characters long", siteDir, len(tok))
	}
	return tok
}

// demoApiservers returns the kube-apiserver processes whose files are under demoDir.
func demoApiservers(t *testing.T, demoDir string) []int {
	t.Helper()
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if filepath.Base(args[0]) == "kube-apiserver" && strings.Contains(string(b), "--cert-dir="+demoDir+"/") {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(p)))
			pids = append(pids, pid)
		}
	}
	return pids
}

// rss is a process's resident memory, as /proc says it.
func rss(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for l := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

// callAt sends an authenticated request to another stack's API and returns its status and body.
func callAt(c *harness.Cheops, method, path string) (int, string) {
	req, _ := http.NewRequest(method, c.API+path, nil)
	req.Header.Set("Authorization", "Bearer "+c.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
