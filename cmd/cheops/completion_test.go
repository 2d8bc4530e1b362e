package main

import (
	"context"
	"strings"
	"testing"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/client"
)

// Shell completion asks the real API for the names a command takes: resources for get, delete,
// events and the actions; sites for the site commands; the sites not yet typed for apply --sites.
// A server that cannot be reached completes nothing, without an error in the user's line.
func TestCompletionNamesComeFromTheAPI(t *testing.T) {
	srv, c := realAPI(t)
	ctx := context.Background()
	for _, name := range []string{"paris", "berlin", "prague"} {
		if _, err := c.CreateSite(ctx, client.SiteRequest{Name: name, Driver: cheops.DriverKubernetes,
			Kubernetes: &client.KubernetesSettings{Kubeconfig: testKubeconfig}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"web", "worker", "db"} {
		if _, err := c.CreateResource(ctx, client.ResourceRequest{Name: name, Manifest: []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"` + name + `"}}`),
			Scope: &cheops.Scope{Sites: []string{"paris"}}}, client.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	complete := func(args ...string) []string {
		t.Helper()
		out, err := runCLI(t, append([]string{"--server", srv.URL, "--token", "test-admin-token", "__complete"}, args...)...)
		if err != nil {
			t.Fatalf("__complete %v: %v\n%s", args, err, out)
		}
		var names []string
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if !strings.HasPrefix(line, ":") && !strings.HasPrefix(line, "Completion ended") {
				names = append(names, line)
			}
		}
		return names
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"get", "w"}, "web worker"},
		{[]string{"delete", ""}, "db web worker"},
		{[]string{"pause", "d"}, "db"},
		{[]string{"get", "web", ""}, ""},
		{[]string{"site", "get", "p"}, "paris prague"},
		{[]string{"site", "events", "b"}, "berlin"},
		{[]string{"apply", "--sites", "paris,"}, "paris,berlin paris,prague"},
		{[]string{"apply", "--consistency", ""}, "eventual transactional"},
	} {
		if got := strings.Join(complete(c.args...), " "); got != c.want {
			t.Errorf("completion of %q: %q, want %q", c.args, got, c.want)
		}
	}
	out, err := runCLI(t, "--server", "http://127.0.0.1:1", "--token", "x", "__complete", "get", "")
	if err != nil || strings.Contains(out, "web") {
		t.Fatalf("completion against no server: %v\n%s; want nothing completed", err, out)
	}
}
