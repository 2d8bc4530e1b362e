package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/internal/etcdtest"
	"github.com/cheops-io/cheops/internal/kubeapi"
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

// The demo sites are registered once; a restart leaves them as they are unless their kubeconfig
// changed (a new port), and a site of a demo site's name that someone else registered is left alone.
func TestDemoRegisterIsIdempotent(t *testing.T) {
	ctx := context.Background()
	s := etcdtest.Store(t)
	drv := hostConfig{}.drivers()[cheops.DriverKubernetes]
	log := slog.New(slog.DiscardHandler)
	d := &demo{sites: demoSites}
	for _, site := range demoSites {
		dir := filepath.Join(t.TempDir(), site.name)
		srv, err := kubeapi.New(kubeapi.Config{Binary: "kube-apiserver", Name: site.name, Dir: dir, EtcdEndpoint: "http://127.0.0.1:2379"})
		if err != nil {
			t.Fatal(err)
		}
		// What the apiserver writes at its first start.
		if err := os.WriteFile(filepath.Join(dir, "certs", "apiserver.crt"), []byte("-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		d.servers = append(d.servers, srv)
	}
	if _, err := s.CreateSite(ctx, cheops.Site{Name: "lyon", Driver: cheops.DriverKubernetes, Labels: map[string]string{"mine": "yes"},
		Kubernetes: &cheops.KubernetesSite{}, CreatedBy: "someone"}, cheops.Credentials{Kubeconfig: "theirs"}); err != nil {
		t.Fatal(err)
	}
	events := func(name string) []cheops.EventType {
		evs, err := s.SiteEvents(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		var types []cheops.EventType
		for _, e := range evs {
			types = append(types, e.Type)
		}
		return types
	}
	for range 2 {
		if err := d.register(ctx, s, drv, log); err != nil {
			t.Fatal(err)
		}
	}
	paris, err := s.GetSite(ctx, "paris")
	if err != nil || paris.Labels["region"] != "eu" || paris.CreatedBy != demoActor || !paris.HasCredentials {
		t.Fatalf("paris: %+v %v", paris, err)
	}
	if got := events("paris"); !slices.Equal(got, []cheops.EventType{cheops.EventSiteCreated}) {
		t.Fatalf("paris after two registrations: %v", got)
	}
	if cred, _ := s.SiteCredentials(ctx, "lyon"); cred.Kubeconfig != "theirs" || len(events("lyon")) != 1 {
		t.Fatalf("someone's lyon was changed: %q, %v", cred.Kubeconfig, events("lyon"))
	}
	// A new port: the kubeconfig is stored again, the labels an operator changed are kept.
	if _, err := s.UpdateSite(ctx, "berlin", nil, func(st *cheops.Site) (*cheops.Event, error) {
		st.Labels["tier"] = "lab"
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	d.servers[1].URL = "https://127.0.0.1:1"
	if err := d.register(ctx, s, drv, log); err != nil {
		t.Fatal(err)
	}
	berlin, _ := s.GetSite(ctx, "berlin")
	cred, _ := s.SiteCredentials(ctx, "berlin")
	if !strings.Contains(cred.Kubeconfig, "https://127.0.0.1:1\n") || berlin.Labels["tier"] != "lab" ||
		!slices.Equal(events("berlin"), []cheops.EventType{cheops.EventSiteCreated, cheops.EventSiteUpdated}) {
		t.Fatalf("berlin after a new port: %+v, %v", berlin, events("berlin"))
	}
}
