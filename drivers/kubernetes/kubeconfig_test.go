package kubernetes

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/drivers/hostfile"
)

// kubeconfig returns an inline kubeconfig for a server that refuses connections, with user fields
// added (YAML, indented under the user).
func kubeconfig(cluster, user string) string {
	return `apiVersion: v1
kind: Config
current-context: c
contexts: [{name: c, context: {cluster: k, user: u}}]
clusters:
- name: k
  cluster:
    server: https://127.0.0.1:1
` + cluster + `
users:
- name: u
  user:
` + user
}

func fieldOf(err error) string {
	var fe *cheops.FieldError
	if errors.As(err, &fe) {
		return fe.Field
	}
	return ""
}

// An exec plugin whose command would leave a marker file: refused when the site is added and
// again when it is used, and the marker never appears. Allowed by the operator, the same
// kubeconfig does run it (so the test can tell).
func TestKubeconfigExecPluginIsRefused(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "marker")
	kc := kubeconfig("", `    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: /bin/sh
      args: ["-c", "touch `+marker+`; echo '{\"apiVersion\":\"client.authentication.k8s.io/v1\",\"kind\":\"ExecCredential\",\"status\":{\"token\":\"x\"}}'"]
      interactiveMode: Never
`)
	site := cheops.Site{Name: "s", Driver: cheops.DriverKubernetes, Kubernetes: &cheops.KubernetesSite{}}
	t0 := cheops.Target{Site: site, Credentials: cheops.Credentials{Kubeconfig: kc}}
	d := New()
	d.Timeout = 2 * time.Second
	if err := d.ValidateSite(site, t0.Credentials); fieldOf(err) != "kubernetes.kubeconfig.users[u].exec" {
		t.Fatalf("ValidateSite = %v, want a refusal naming kubernetes.kubeconfig.users[u].exec", err)
	}
	// Stored before the check existed, it is refused at use too.
	err := d.Probe(context.Background(), t0)
	if err == nil || cheops.ClassOf(err) != cheops.Permanent || !strings.Contains(err.Error(), "--allow-kubeconfig-exec") {
		t.Fatalf("Probe = %v, want a permanent refusal", err)
	}
	if _, err := os.Stat(marker); !os.IsNotExist(err) {
		t.Fatalf("the exec plugin ran: %v", err)
	}
	allowing := New()
	allowing.AllowExec, allowing.Timeout = true, 2*time.Second
	if err := allowing.ValidateSite(site, t0.Credentials); err != nil {
		t.Fatalf("allowed: ValidateSite = %v", err)
	}
	_ = allowing.Probe(context.Background(), t0) // the server refuses; the plugin ran before
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("allowed, the plugin did not run (%v): this test could not tell", err)
	}
}

func TestKubeconfigFileReferencesAreRefused(t *testing.T) {
	d := New()
	site := cheops.Site{Name: "s", Driver: cheops.DriverKubernetes}
	for _, tc := range []struct{ cluster, user, field string }{
		{"", "    tokenFile: /etc/hostname\n", "kubernetes.kubeconfig.users[u].tokenFile"},
		{"", "    client-certificate: /etc/ssl/cert.pem\n    client-key-data: eA==\n", "kubernetes.kubeconfig.users[u].client-certificate"},
		{"", "    client-key: /etc/ssl/key.pem\n", "kubernetes.kubeconfig.users[u].client-key"},
		{"", "    auth-provider: {name: oidc}\n", "kubernetes.kubeconfig.users[u].auth-provider"},
		{"    certificate-authority: /etc/ssl/ca.pem\n", "    token: t\n", "kubernetes.kubeconfig.clusters[k].certificate-authority"},
	} {
		cred := cheops.Credentials{Kubeconfig: kubeconfig(tc.cluster, tc.user)}
		if err := d.ValidateSite(site, cred); fieldOf(err) != tc.field {
			t.Errorf("ValidateSite = %v, want a refusal naming %s", err, tc.field)
		}
		if err := d.Probe(context.Background(), cheops.Target{Site: site, Credentials: cred}); fieldOf(err) != tc.field {
			t.Errorf("Probe = %v, want a refusal naming %s", err, tc.field)
		}
	}
	if err := d.ValidateSite(site, cheops.Credentials{Kubeconfig: kubeconfig("", "    token: t\n")}); err != nil {
		t.Errorf("an inline token: %v", err)
	}
}

// A kubeconfig path is only read under the folder the operator allows, through no link out of it,
// from a regular file of bounded size, and no failure says whether a path exists or what it holds.
func TestKubeconfigPathIsConfined(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte(kubeconfig("", "    token: t\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(outside, "secret")
	if err := os.WriteFile(secret, []byte("top-secret-line"), 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, make([]byte, hostfile.MaxSize+10), 0o600); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.yaml")
	if err := os.WriteFile(garbage, []byte("top-secret-line: [\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"zero": "/dev/zero", "out": secret, "outdir": outside} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	site := func(path string) cheops.Site {
		return cheops.Site{Name: "s", Driver: cheops.DriverKubernetes, Kubernetes: &cheops.KubernetesSite{KubeconfigPath: path}}
	}
	none := New()
	if err := none.ValidateSite(site(good), cheops.Credentials{}); fieldOf(err) != "kubernetes.kubeconfigPath" {
		t.Fatalf("no allowed folder: ValidateSite = %v", err)
	}
	d := New()
	d.FilesDir = dir
	for _, p := range []string{secret, "relative.yaml", dir + "/../" + filepath.Base(outside) + "/secret"} {
		if err := d.ValidateSite(site(p), cheops.Credentials{}); fieldOf(err) != "kubernetes.kubeconfigPath" {
			t.Errorf("ValidateSite(%s) = %v, want a refusal", p, err)
		}
	}
	if err := d.ValidateSite(site(good), cheops.Credentials{}); err != nil {
		t.Fatalf("ValidateSite(good) = %v", err)
	}
	if _, _, err := d.restConfig(cheops.Target{Site: site(good)}); err != nil {
		t.Fatalf("restConfig(good) = %v", err)
	}
	var first string
	for _, p := range []string{filepath.Join(dir, "zero"), filepath.Join(dir, "out"), filepath.Join(dir, "outdir", "secret"),
		filepath.Join(dir, "missing"), big, garbage, secret, dir} {
		_, _, err := d.restConfig(cheops.Target{Site: site(p)})
		if fieldOf(err) != "kubernetes.kubeconfigPath" {
			t.Errorf("restConfig(%s) = %v, want a refusal", p, err)
			continue
		}
		if strings.Contains(err.Error(), "top-secret-line") {
			t.Errorf("restConfig(%s) echoes the file: %v", p, err)
		}
		if first == "" {
			first = err.Error()
		} else if err.Error() != first {
			t.Errorf("restConfig(%s) = %q; every refusal must read the same, %q", p, err, first)
		}
	}
}

// A probe says what kind of failure it met, never what the endpoint answered: a TCP banner, an
// HTTP body, or a JSON /version that is not an apiserver's (etcd answers one) is no Ready site.
func TestProbeNeverEchoesTheAnswer(t *testing.T) {
	banner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer banner.Close()
	go func() {
		for {
			c, err := banner.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("SSH-2.0-OpenSSH top-secret-banner\r\n"))
			c.Close()
		}
	}()
	etcdLike := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`{"etcdserver":"3.6.7","etcdcluster":"top-secret-version"}`))
	}))
	defer etcdLike.Close()
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "top-secret-body", http.StatusForbidden)
	}))
	defer failing.Close()
	d := New()
	d.Timeout = 2 * time.Second
	for server, want := range map[string]string{
		"http://" + banner.Addr().String(): "",
		etcdLike.URL:                       "not a Kubernetes API server",
		failing.URL:                        "HTTP 403",
		"http://127.0.0.1:1":               "connection refused",
	} {
		kc := strings.Replace(kubeconfig("", "    token: t\n"), "https://127.0.0.1:1", server, 1)
		err := d.Probe(context.Background(), cheops.Target{Site: cheops.Site{Name: "s"}, Credentials: cheops.Credentials{Kubeconfig: kc}})
		t.Logf("%s: %v", server, err)
		var pe *cheops.ProbeError
		switch {
		case err == nil:
			t.Errorf("%s: probed Ready", server)
		case strings.Contains(err.Error(), "top-secret"):
			t.Errorf("%s: the probe echoes the answer: %v", server, err)
		case !errors.As(err, &pe) || !strings.Contains(err.Error(), want):
			t.Errorf("%s: %v, want a ProbeError saying %q", server, err, want)
		}
	}
}
