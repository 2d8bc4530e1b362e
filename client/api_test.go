package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/api"
	"github.com/cheops-io/cheops/auth"
	"github.com/cheops-io/cheops/client"
	"github.com/cheops-io/cheops/drivers/kubernetes"
	"github.com/cheops-io/cheops/internal/etcdtest"
)

// signals records what the API asks of the workflows; no workflow runs in these tests, which are
// about the HTTP contract between the client and the real handlers over a real etcd.
type signals struct {
	mu   sync.Mutex
	sent []string
}

func (s *signals) add(what string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sent = append(s.sent, what)
	return nil
}

func (s *signals) list() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sent)
}

func (s *signals) Ensure(_ context.Context, id string) error { return s.add("ensure " + id) }
func (s *signals) Apply(_ context.Context, id string, gen int64) error {
	return s.add("apply " + id + " " + strconv.FormatInt(gen, 10))
}
func (s *signals) Delete(_ context.Context, id string) error       { return s.add("delete " + id) }
func (s *signals) Signal(_ context.Context, id, name string) error { return s.add(name + " " + id) }

const kubeconfig = `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`

// The client against the API's real handlers: every route, with what the handlers really write.
func TestClientAgainstTheRealAPI(t *testing.T) {
	sig := &signals{}
	h := api.New(api.Config{Auth: auth.Tokens{"test-admin-token": auth.Identity{Name: "test", Role: auth.Admin}}, Store: etcdtest.Store(t), Orchestrator: sig,
		Drivers: map[cheops.DriverName]cheops.Driver{cheops.DriverKubernetes: kubernetes.New()},
		Log:     slog.New(slog.NewTextHandler(io.Discard, nil))})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL, client.WithBearerToken("test-admin-token"))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := c.Health(ctx); err != nil {
		t.Fatalf("health: %v", err)
	}
	if err := c.Ready(ctx); err != nil {
		t.Fatalf("ready: %v", err)
	}
	if doc, err := c.OpenAPI(ctx); err != nil || !strings.HasPrefix(string(doc), "openapi: 3") {
		t.Fatalf("openapi: %v, %.40q", err, doc)
	}

	// Sites.
	for _, name := range []string{"paris", "berlin"} {
		s, err := c.CreateSite(ctx, client.SiteRequest{Name: name, Driver: cheops.DriverKubernetes,
			Labels: map[string]string{"region": "eu"}, Kubernetes: &client.KubernetesSettings{Kubeconfig: kubeconfig, Namespace: "apps"}})
		if err != nil {
			t.Fatalf("create site %s: %v", name, err)
		}
		if s.Name != name || !s.HasCredentials || s.Kubernetes == nil || s.Kubernetes.Namespace != "apps" {
			t.Fatalf("created site = %+v", s)
		}
	}
	_, err = c.CreateSite(ctx, client.SiteRequest{Name: "paris", Driver: cheops.DriverKubernetes, Kubernetes: &client.KubernetesSettings{Kubeconfig: kubeconfig}})
	if client.StatusCode(err) != http.StatusConflict {
		t.Fatalf("create a site twice: %v, want a 409", err)
	}
	_, err = c.CreateSite(ctx, client.SiteRequest{Name: "lyon", Driver: cheops.DriverKubernetes, Kubernetes: &client.KubernetesSettings{}})
	var p *client.Problem
	if !errors.As(err, &p) || p.Status != http.StatusUnprocessableEntity || p.Field != "kubernetes.kubeconfig" {
		t.Fatalf("site without a kubeconfig: %v, want a 422 naming kubernetes.kubeconfig", err)
	}
	sites, err := c.ListSites(ctx)
	if err != nil || len(sites) != 2 || sites[0].Name != "berlin" || sites[1].Name != "paris" {
		t.Fatalf("list sites: %+v, %v", sites, err)
	}
	s, err := c.UpdateSite(ctx, "paris", client.SiteRequest{Labels: map[string]string{"region": "fr"},
		Kubernetes: &client.KubernetesSettings{Namespace: "web"}})
	if err != nil || s.Labels["region"] != "fr" || s.Kubernetes.Namespace != "web" || !s.HasCredentials {
		t.Fatalf("update site: %+v, %v; want new labels and namespace, credentials kept", s, err)
	}
	if s, err = c.GetSite(ctx, "paris"); err != nil || s.Labels["region"] != "fr" {
		t.Fatalf("get site: %+v, %v", s, err)
	}
	if _, err := c.GetSite(ctx, "nowhere"); !client.IsNotFound(err) {
		t.Fatalf("get an unknown site: %v, want a 404", err)
	}

	// Resources.
	req := client.ResourceRequest{Name: "web", Manifest: json.RawMessage(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"web"},"data":{"v":"1"}}`),
		Scope: &cheops.Scope{Sites: []string{"paris", "berlin"}}, Policy: &cheops.Policy{Consistency: cheops.Transactional}}
	web, err := c.CreateResource(ctx, req, client.CreateOptions{IdempotencyKey: "k-web"})
	if err != nil {
		t.Fatalf("create resource: %v", err)
	}
	if web.ID == "" || web.Generation != 1 || web.State != cheops.ResourcePending || web.Policy.Consistency != cheops.Transactional {
		t.Fatalf("created resource = %+v", web)
	}
	again, err := c.CreateResource(ctx, req, client.CreateOptions{IdempotencyKey: "k-web"})
	if err != nil || again.ID != web.ID {
		t.Fatalf("create replayed with the same key: %+v, %v; want the same resource %s", again, err, web.ID)
	}
	other := req
	other.Name = "api"
	other.Manifest = json.RawMessage(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"api"}}`)
	if _, err := c.CreateResource(ctx, other, client.CreateOptions{}); err != nil {
		t.Fatalf("create a second resource: %v", err)
	}
	bad := req
	bad.Name = "Bad_Name"
	if _, err := c.CreateResource(ctx, bad, client.CreateOptions{}); !errors.As(err, &p) || p.Status != http.StatusUnprocessableEntity || p.Field != "name" {
		t.Fatalf("create with a bad name: %v, want a 422 naming name", err)
	}
	if got, err := c.GetResource(ctx, "web"); err != nil || got.ID != web.ID {
		t.Fatalf("get by name: %+v, %v", got, err)
	}
	if got, err := c.GetResource(ctx, web.ID); err != nil || got.Name != "web" {
		t.Fatalf("get by ID: %+v, %v", got, err)
	}
	page, err := c.ListResources(ctx, client.ListOptions{Limit: 1})
	if err != nil || len(page.Items) != 1 || page.Items[0].Name != "api" || page.NextPageToken == "" {
		t.Fatalf("first page of one: %+v, %v", page, err)
	}
	all, err := c.ListAllResources(ctx, client.ListOptions{Limit: 1})
	if err != nil || len(all) != 2 || all[0].Name != "api" || all[1].Name != "web" {
		t.Fatalf("all pages: %+v, %v", all, err)
	}
	if only, err := c.ListAllResources(ctx, client.ListOptions{NamePrefix: "we"}); err != nil || len(only) != 1 || only[0].Name != "web" {
		t.Fatalf("list by name prefix: %+v, %v", only, err)
	}

	// Updates with optimistic concurrency.
	upd := client.ResourceRequest{Manifest: json.RawMessage(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"web"},"data":{"v":"2"}}`)}
	if _, err := c.UpdateResource(ctx, "web", upd, client.UpdateOptions{IfGeneration: 7}); client.StatusCode(err) != http.StatusPreconditionFailed {
		t.Fatalf("update with a stale generation: %v, want a 412", err)
	}
	web, err = c.UpdateResource(ctx, "web", upd, client.UpdateOptions{IfGeneration: 1})
	if err != nil || web.Generation != 2 || web.Policy.Consistency != cheops.Transactional {
		t.Fatalf("update: %+v, %v; want generation 2, still transactional", web, err)
	}

	// Merge patches: what the patch leaves out keeps its value.
	timeout := cheops.Duration(2 * time.Minute)
	web, err = c.PatchResource(ctx, "web", client.ResourcePatch{Policy: &client.PolicyPatch{Timeout: &timeout}}, client.UpdateOptions{IfGeneration: 2})
	if err != nil || web.Generation != 3 || web.Policy.Consistency != cheops.Transactional || web.Policy.Timeout != timeout {
		t.Fatalf("patch of the policy timeout: %+v, %v; want generation 3, transactional, 2m", web.Policy, err)
	}
	if _, err := c.PatchResource(ctx, "web", client.ResourcePatch{Policy: &client.PolicyPatch{Timeout: &timeout}}, client.UpdateOptions{IfGeneration: 2}); client.StatusCode(err) != http.StatusPreconditionFailed {
		t.Fatalf("patch with a stale generation: %v, want a 412", err)
	}
	web, err = c.PatchResource(ctx, "web", client.ResourcePatch{Scope: &cheops.Scope{Selector: "region=eu"}}, client.UpdateOptions{})
	if err != nil || web.Generation != 4 || web.Scope.Selector != "region=eu" || len(web.Scope.Sites) != 0 {
		t.Fatalf("patch of the scope: %+v, %v; want generation 4 and only the selector", web.Scope, err)
	}
	next := json.RawMessage(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"web"},"data":{"w":"3"}}`)
	mp, err := client.ManifestPatch(web.Manifest, next)
	if err != nil {
		t.Fatal(err)
	}
	web, err = c.PatchResource(ctx, "web", client.ResourcePatch{Manifest: mp}, client.UpdateOptions{IfGeneration: 4})
	var data struct{ Data map[string]string }
	if err == nil {
		err = json.Unmarshal(web.Manifest, &data)
	}
	if err != nil || web.Generation != 5 || len(data.Data) != 1 || data.Data["w"] != "3" || web.Policy.Timeout != timeout {
		t.Fatalf("patch of the manifest: %s, %v; want generation 5 with exactly data.w = 3", web.Manifest, err)
	}

	// Actions, events, deletes.
	if _, err := c.Act(ctx, "web", client.Pause); err != nil {
		t.Fatalf("pause: %v", err)
	}
	if _, err := c.Act(ctx, "web", "explode"); !errors.As(err, &p) || p.Field != "action" {
		t.Fatalf("unknown action: %v, want a 422 naming action", err)
	}
	evs, err := c.Events(ctx, "web")
	if err != nil || len(evs) < 2 || evs[0].Type != cheops.EventCreated || evs[1].Type != cheops.EventUpdated || evs[1].Generation != 2 {
		t.Fatalf("events: %+v, %v; want Created then Updated at generation 2", evs, err)
	}
	if err := c.DeleteSite(ctx, "berlin", false); err != nil {
		// No replica is recorded without a worker, so the site is free to go.
		t.Fatalf("delete an unused site: %v", err)
	}
	gone, err := c.DeleteResource(ctx, "web", true)
	if err != nil || gone.State != cheops.ResourceDeleting || gone.Deletion == nil || !gone.Deletion.Orphan {
		t.Fatalf("orphan delete: %+v, %v", gone, err)
	}
	if _, err := c.Act(ctx, "web", client.Resume); client.StatusCode(err) != http.StatusConflict {
		t.Fatalf("resume while deleting: %v, want a 409", err)
	}
	want := []string{"ensure " + web.ID, "ensure " + web.ID, "apply " + web.ID + " 2", "apply " + web.ID + " 3", "apply " + web.ID + " 4",
		"apply " + web.ID + " 5", "pause " + web.ID, "delete " + web.ID}
	var got []string
	for _, s := range sig.list() {
		if strings.Contains(s, web.ID) {
			got = append(got, s)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("the API asked of web's workflow %v, want %v", got, want)
	}
}
