package main

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

// Against a server on this machine the CLI uses the dev server's token unless given one; it never
// sends that token anywhere else.
func TestCLIFindsTheDevToken(t *testing.T) {
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Get("Authorization"))
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"items":[],"nextPageToken":""}`))
	}))
	defer srv.Close()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, devTokenFile), []byte("dev-secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CHEOPS_DATA_DIR", dir)
	t.Setenv("CHEOPS_TOKEN", "")
	t.Setenv("CHEOPS_SERVER", "")
	t.Setenv("CHEOPS_CONFIG", filepath.Join(dir, "no-login"))
	if out, err := runCLI(t, "--server", srv.URL, "list"); err != nil {
		t.Fatalf("list: %v\n%s", err, out)
	}
	t.Setenv("CHEOPS_TOKEN", "env-secret")
	if out, err := runCLI(t, "--server", srv.URL, "list"); err != nil {
		t.Fatalf("list: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "--server", srv.URL, "--token", "flag-secret", "list"); err != nil {
		t.Fatalf("list: %v\n%s", err, out)
	}
	want := []string{"Bearer dev-secret", "Bearer env-secret", "Bearer flag-secret"}
	if len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("Authorization headers %q, want %q", got, want)
	}
	for server, want := range map[string]bool{"http://127.0.0.1:8080": true, "http://localhost:1": true, "http://[::1]:8080": true,
		"https://cheops.example.com": false, "http://10.0.0.1:8080": false} {
		if loopback(server) != want {
			t.Errorf("loopback(%s) = %v, want %v", server, !want, want)
		}
	}
}

// 'cheops login' checks the token against the server, saves both (owner-readable only), and the
// next commands use them; the saved token never goes to another server.
func TestLoginIsKeptForTheNextCommands(t *testing.T) {
	seen := map[string][]string{}
	handler := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen[name] = append(seen[name], r.Header.Get("Authorization"))
			if r.Header.Get("Authorization") != "Bearer good" {
				w.Header().Set("Content-Type", "application/problem+json")
				w.WriteHeader(http.StatusUnauthorized)
				_, _ = w.Write([]byte(`{"type":"about:blank","title":"Unauthorized","status":401,"detail":"invalid token"}`))
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"items":[],"nextPageToken":""}`))
		})
	}
	srv, other := httptest.NewServer(handler("srv")), httptest.NewServer(handler("other"))
	defer srv.Close()
	defer other.Close()
	dir := t.TempDir()
	config := filepath.Join(dir, "cheops", "config")
	t.Setenv("CHEOPS_CONFIG", config)
	t.Setenv("CHEOPS_TOKEN", "")
	t.Setenv("CHEOPS_SERVER", "")
	t.Setenv("CHEOPS_DATA_DIR", dir)
	if out, err := runCLI(t, "login", "--server", srv.URL, "--token", "bad"); err == nil {
		t.Fatalf("login with a bad token succeeded: %s", out)
	}
	if _, err := os.Stat(config); !os.IsNotExist(err) {
		t.Fatal("a refused login was saved")
	}
	if out, err := runCLI(t, "login", "--server", srv.URL, "--token", "good"); err != nil {
		t.Fatalf("login: %v\n%s", err, out)
	}
	if st, err := os.Stat(config); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("the saved login: %v, mode %v; want 0600", err, st.Mode())
	}
	if out, err := runCLI(t, "list"); err != nil {
		t.Fatalf("list after login: %v\n%s", err, out)
	}
	if out, err := runCLI(t, "--server", other.URL, "list"); err == nil {
		t.Fatalf("list on another server succeeded: %s", out)
	}
	if got := seen["srv"]; len(got) != 3 || got[2] != "Bearer good" {
		t.Errorf("the logged-in server saw %q", got)
	}
	if got := seen["other"]; len(got) != 1 || got[0] != "" {
		t.Errorf("another server saw %q; want no token", got)
	}
}
