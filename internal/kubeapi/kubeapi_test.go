package kubeapi

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A second server of the same folder keeps the first one's token, keys and port, so that its
// kubeconfig, stored elsewhere, stays valid; a token given is used as it is.
func TestNewReusesAFoldersFiles(t *testing.T) {
	dir := t.TempDir()
	c := Config{Binary: "kube-apiserver", Name: "paris", Dir: dir, EtcdEndpoint: "http://127.0.0.1:2379"}
	a, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Token) < 32 || a.EtcdPrefix != "/paris" || !strings.HasPrefix(a.URL, "https://127.0.0.1:") {
		t.Fatalf("first: token %d characters, prefix %s, URL %s", len(a.Token), a.EtcdPrefix, a.URL)
	}
	key, err := os.ReadFile(filepath.Join(dir, "sa.key"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"tokens.csv", "sa.key", "sa.pub", "port"} {
		if fi, err := os.Stat(filepath.Join(dir, f)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v; want mode 0600", f, err, fi)
		}
	}
	b, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	key2, _ := os.ReadFile(filepath.Join(dir, "sa.key"))
	if b.Token != a.Token || b.URL != a.URL || string(key2) != string(key) {
		t.Fatalf("second: token kept %v, URL %s (first %s), key kept %v", b.Token == a.Token, b.URL, a.URL, string(key2) == string(key))
	}
	c.Token = "given"
	g, err := New(c)
	if err != nil || g.Token != "given" {
		t.Fatalf("given token: %v %q", err, g.Token)
	}
	if _, err := g.KubeconfigData(); err == nil || !strings.Contains(err.Error(), "serving certificate") {
		t.Fatalf("a kubeconfig before the first start: %v", err)
	}
}

// A missing binary is an error that says how to build it.
func TestCachedSaysHowToBuild(t *testing.T) {
	t.Setenv("CHEOPS_CACHE", t.TempDir())
	t.Setenv("CHEOPS_KUBE_APISERVER", "")
	if _, err := Binary(); err == nil || !strings.Contains(err.Error(), "bash scripts/kube-tools.sh") {
		t.Fatalf("Binary: %v", err)
	}
	t.Setenv("CHEOPS_KUBE_APISERVER", "/somewhere/kube-apiserver")
	if p, err := Binary(); err != nil || p != "/somewhere/kube-apiserver" {
		t.Fatalf("Binary with CHEOPS_KUBE_APISERVER: %s %v", p, err)
	}
}
