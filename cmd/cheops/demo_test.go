package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// --demo-sites names the binary it needs and how to build it; it never builds one itself.
func TestDemoConfigValidate(t *testing.T) {
	t.Setenv("CHEOPS_CACHE", t.TempDir())
	t.Setenv("CHEOPS_KUBE_APISERVER", "")
	exe := filepath.Join(t.TempDir(), "kube-apiserver")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		c    demoConfig
		want string // "" for no error
	}{
		{demoConfig{Sites: 0}, ""},
		{demoConfig{Sites: 4}, "--demo-sites: 4 is not between 0 and 3"},
		{demoConfig{Sites: -1}, "--demo-sites: -1 is not between 0 and 3"},
		{demoConfig{Sites: 2}, "bash scripts/kube-tools.sh"},
		{demoConfig{Sites: 2, APIServer: "/nonexistent/kube-apiserver"}, "--kube-apiserver: /nonexistent/kube-apiserver is not an executable file"},
		{demoConfig{Sites: 2, APIServer: filepath.Dir(exe)}, "is not an executable file"},
		{demoConfig{Sites: 3, APIServer: exe}, ""},
	} {
		err := tc.c.validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: %v, want %q", tc.c, err, tc.want)
		}
	}
}
