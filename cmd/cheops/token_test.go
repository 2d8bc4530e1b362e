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
