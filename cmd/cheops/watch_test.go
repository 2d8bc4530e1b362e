package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/client"
	"github.com/cheops-io/cheops/store"
)

// markReady records a resource's replica on site Ready, as a workflow would.
func markReady(t *testing.T, st *store.Store, id, site string) {
	t.Helper()
	if _, err := st.UpdateReplica(context.Background(), id, site, func(rep *cheops.Replica) (*cheops.Event, error) {
		rep.State, rep.ObservedGeneration, rep.LocalID = cheops.ReplicaReady, 1, "uid-"+site
		return nil, nil
	}); err != nil {
		t.Error(err)
	}
}

// Against the real API's stream: `apply --wait` ends as soon as the replica is recorded Ready, with
// a summary, and `get -w -o json` writes the resource at each change until it is deleted.
func TestWaitAndWatchFollowTheStream(t *testing.T) {
	srv, c, st := realAPIAndStore(t)
	ctx := context.Background()
	if _, err := c.CreateSite(ctx, client.SiteRequest{Name: "paris", Driver: cheops.DriverKubernetes,
		Kubernetes: &client.KubernetesSettings{Kubeconfig: testKubeconfig}}); err != nil {
		t.Fatal(err)
	}
	go func() {
		// The workflow's part: once the resource exists, its replica turns Ready.
		for {
			r, err := c.GetResource(ctx, "web")
			if err == nil {
				time.Sleep(300 * time.Millisecond)
				markReady(t, st, r.ID, "paris")
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	file := writeManifest(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\n")
	start := time.Now()
	out, err := runCLI(t, "--server", srv.URL, "--token", "test-admin-token", "apply", "-f", file, "--sites", "paris", "--wait", "--timeout", "20s")
	if err != nil || !strings.Contains(out, "resource web: Ready, 1/1 replicas Ready at generation 1") {
		t.Fatalf("apply --wait: %v\n%s", err, out)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("apply --wait took %s; the stream should end it at once", took)
	}

	r, err := c.GetResource(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		if _, err := st.UpdateSite(ctx, "paris", nil, func(s *cheops.Site) (*cheops.Event, error) {
			s.Health = cheops.SiteUnreachable
			return nil, nil
		}); err != nil {
			t.Error(err)
		}
		time.Sleep(300 * time.Millisecond)
		if err := st.DeleteReplica(ctx, r.ID, "paris", nil); err != nil {
			t.Error(err)
		}
		if err := st.DeleteResource(ctx, r.ID); err != nil {
			t.Error(err)
		}
	}()
	out, err = runCLI(t, "--server", srv.URL, "--token", "test-admin-token", "get", "web", "-w", "-o", "json")
	if err != nil || !strings.HasSuffix(out, "resource web deleted\n") {
		t.Fatalf("get -w: %v\n%s", err, out)
	}
	var states []cheops.ResourceState
	dec := json.NewDecoder(strings.NewReader(strings.TrimSuffix(out, "resource web deleted\n")))
	for dec.More() {
		var r client.Resource
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("%v in\n%s", err, out)
		}
		states = append(states, r.State)
	}
	if len(states) < 2 || states[0] != cheops.ResourceReady || states[1] != cheops.ResourceDegraded {
		t.Fatalf("get -w showed %v; want Ready, then Degraded (its site unreachable), then more", states)
	}
}
