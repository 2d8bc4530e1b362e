package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/client"
)

// recorded is one request as the test server received it.
type recorded struct {
	method, path, query string
	header              http.Header
	body                string
}

// server answers every request with handle and records what it received.
func server(t *testing.T, handle func(w http.ResponseWriter, r *http.Request)) (*client.Client, *[]recorded) {
	t.Helper()
	var got []recorded
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got = append(got, recorded{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Clone(), string(b)})
		handle(w, r)
	}))
	t.Cleanup(srv.Close)
	c, err := client.New(srv.URL+"/", client.WithHTTPClient(srv.Client()), client.WithBearerToken("s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	return c, &got
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// A resource as the API writes it (api.resourceView): the declaration, state and replicas.
const resourceJSON = `{"id":"6f1c1b2e-2d7e-4c55-9d4c-2a1f3b9e8c11","name":"web","driver":"kubernetes",
"manifest":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"web"}},
"scope":{"sites":["paris","berlin"]},"policy":{"consistency":"transactional","timeout":"2m0s"},
"generation":3,"createdAt":"2026-11-26T10:00:00Z","updatedAt":"2026-11-26T10:05:00Z","paused":true,
"rollback":{"generation":2,"reasons":{"berlin":"timeout"},"done":true,"at":"2026-11-26T10:04:00Z"},
"state":"Degraded","replicas":[
{"site":"paris","state":"Ready","localID":"uid-p","observedGeneration":3,"attempts":1,"overrides":["overrides[0]"],"createdAt":"2026-11-26T10:00:01Z","updatedAt":"2026-11-26T10:05:01Z"},
{"site":"berlin","state":"Unreachable","localID":"uid-b","observedGeneration":2,"message":"dial tcp: refused","attempts":4,"createdAt":"2026-11-26T10:00:01Z","updatedAt":"2026-11-26T10:05:02Z"}]}`

func TestGetResourceDecodesTheAPIView(t *testing.T) {
	c, got := server(t, func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, resourceJSON) })
	r, err := c.GetResource(context.Background(), "web")
	if err != nil {
		t.Fatal(err)
	}
	if g := (*got)[0]; g.method != http.MethodGet || g.path != "/v1/resources/web" || g.header.Get("Authorization") != "Bearer s3cret" {
		t.Fatalf("request = %s %s (Authorization %q), want GET /v1/resources/web with the bearer token", g.method, g.path, g.header.Get("Authorization"))
	}
	if r.ID != "6f1c1b2e-2d7e-4c55-9d4c-2a1f3b9e8c11" || r.Name != "web" || r.Generation != 3 || r.State != cheops.ResourceDegraded || !r.Paused {
		t.Errorf("resource = %+v", r)
	}
	if r.Policy.Consistency != cheops.Transactional || r.Policy.Timeout != cheops.Duration(2*time.Minute) {
		t.Errorf("policy = %+v, want transactional with a 2m timeout", r.Policy)
	}
	if len(r.Scope.Sites) != 2 || r.Rollback == nil || r.Rollback.Reasons["berlin"] != "timeout" || !r.Rollback.Done {
		t.Errorf("scope %+v, rollback %+v", r.Scope, r.Rollback)
	}
	b, ok := r.Replica("berlin")
	if !ok || b.State != cheops.ReplicaUnreachable || b.Attempts != 4 || b.Message != "dial tcp: refused" {
		t.Errorf("berlin replica = %+v, %v", b, ok)
	}
	if _, ok := r.Replica("lyon"); ok {
		t.Error("Replica(lyon) found a replica the resource does not have")
	}
	if ids := r.LocalIDs(); ids["paris"] != "uid-p" || ids["berlin"] != "uid-b" || len(ids) != 2 {
		t.Errorf("LocalIDs = %v", ids)
	}
	if n := r.ReadyReplicas(); n != 1 {
		t.Errorf("ReadyReplicas = %d, want 1 (berlin is Unreachable)", n)
	}
}

func TestPathsAreEscaped(t *testing.T) {
	c, got := server(t, func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, resourceJSON) })
	ctx := context.Background()
	if _, err := c.GetResource(ctx, "a/b c"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Act(ctx, "web", client.Resync); err != nil {
		t.Fatal(err)
	}
	if p := (*got)[0].path; p != "/v1/resources/a%2Fb%20c" {
		t.Errorf("path for %q = %s, want it escaped as one segment", "a/b c", p)
	}
	if g := (*got)[1]; g.method != http.MethodPost || g.path != "/v1/resources/web:resync" {
		t.Errorf("action request = %s %s, want POST /v1/resources/web:resync", g.method, g.path)
	}
}

func TestCreateResourceSendsTheRequestAndIdempotencyKey(t *testing.T) {
	c, got := server(t, func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusCreated, resourceJSON) })
	ctx := context.Background()
	req := client.ResourceRequest{Name: "web", Manifest: json.RawMessage(`{"apiVersion":"v1","kind":"ConfigMap"}`),
		Scope:  &cheops.Scope{Selector: "region=eu"},
		Policy: &cheops.Policy{Consistency: cheops.Transactional, Timeout: cheops.Duration(90 * time.Second)}}
	if _, err := c.CreateResource(ctx, req, client.CreateOptions{IdempotencyKey: "key-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateResource(ctx, req, client.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	first, second := (*got)[0], (*got)[1]
	if first.method != http.MethodPost || first.path != "/v1/resources" || first.header.Get("Content-Type") != "application/json" {
		t.Errorf("request = %s %s (%s)", first.method, first.path, first.header.Get("Content-Type"))
	}
	if k := first.header.Get("Idempotency-Key"); k != "key-1" {
		t.Errorf("Idempotency-Key = %q, want key-1", k)
	}
	if _, sent := second.header["Idempotency-Key"]; sent {
		t.Errorf("Idempotency-Key sent without one being asked for: %q", second.header.Get("Idempotency-Key"))
	}
	// Exactly the fields the API's resourceRequest knows, durations as text, nothing empty.
	want := `{"name":"web","manifest":{"apiVersion":"v1","kind":"ConfigMap"},"scope":{"selector":"region=eu"},"policy":{"consistency":"transactional","timeout":"1m30s"}}`
	if first.body != want {
		t.Errorf("body =\n%s\nwant\n%s", first.body, want)
	}
}

func TestUpdateAndPatchSendIfMatch(t *testing.T) {
	c, got := server(t, func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, resourceJSON) })
	ctx := context.Background()
	timeout := cheops.Duration(2 * time.Minute)
	if _, err := c.UpdateResource(ctx, "web", client.ResourceRequest{Manifest: json.RawMessage(`{"a":1}`)}, client.UpdateOptions{IfGeneration: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PatchResource(ctx, "web", client.ResourcePatch{Policy: &client.PolicyPatch{Timeout: &timeout}}, client.UpdateOptions{IfGeneration: 12}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateResource(ctx, "web", client.ResourceRequest{Manifest: json.RawMessage(`{"a":1}`)}, client.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	put, patch, blind := (*got)[0], (*got)[1], (*got)[2]
	if put.method != http.MethodPut || put.header.Get("If-Match") != `"3"` {
		t.Errorf("PUT: %s If-Match %q, want PUT with \"3\"", put.method, put.header.Get("If-Match"))
	}
	if patch.method != http.MethodPatch || patch.header.Get("If-Match") != `"12"` || patch.header.Get("Content-Type") != "application/merge-patch+json" {
		t.Errorf("PATCH: %s If-Match %q Content-Type %q", patch.method, patch.header.Get("If-Match"), patch.header.Get("Content-Type"))
	}
	if patch.body != `{"policy":{"timeout":"2m0s"}}` {
		t.Errorf("PATCH body = %s, want only the policy timeout", patch.body)
	}
	if _, sent := blind.header["If-Match"]; sent {
		t.Errorf("If-Match sent without a generation: %q", blind.header.Get("If-Match"))
	}
}

func TestProblemIsDecodedWithTheFieldAtFault(t *testing.T) {
	c, _ := server(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusUnprocessableEntity)
		// As api.errorHandler writes it.
		_, _ = io.WriteString(w, `{"type":"about:blank","title":"Unprocessable Entity","status":422,"detail":"policy.timeout: must be between 1s and 24h","errors":[{"field":"policy.timeout","message":"must be between 1s and 24h"}]}`)
	})
	_, err := c.CreateResource(context.Background(), client.ResourceRequest{Name: "web"}, client.CreateOptions{})
	var p *client.Problem
	if !errors.As(err, &p) {
		t.Fatalf("error %T %v is not a *client.Problem", err, err)
	}
	if p.Status != 422 || p.Title != "Unprocessable Entity" || p.Type != "about:blank" || p.Field != "policy.timeout" ||
		len(p.Errors) != 1 || p.Errors[0].Message != "must be between 1s and 24h" {
		t.Errorf("problem = %+v", p)
	}
	if want := "POST /v1/resources: 422 Unprocessable Entity: policy.timeout: must be between 1s and 24h"; err.Error() != want {
		t.Errorf("Error() = %q, want %q", err.Error(), want)
	}
	if client.StatusCode(err) != 422 || client.IsNotFound(err) {
		t.Errorf("StatusCode = %d, IsNotFound = %v", client.StatusCode(err), client.IsNotFound(err))
	}
}

func TestANonProblemErrorBodyStillSaysWhatHappened(t *testing.T) {
	c, _ := server(t, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		_, _ = io.WriteString(w, "<html><body>upstream cheops is down</body></html>\n")
	})
	_, err := c.GetSite(context.Background(), "paris")
	var p *client.Problem
	if !errors.As(err, &p) || p.Status != http.StatusBadGateway || p.Title != "Bad Gateway" {
		t.Fatalf("error = %T %v, want a *client.Problem with status 502", err, err)
	}
	for _, want := range []string{"GET /v1/sites/paris", "502 Bad Gateway", "text/html", "upstream cheops is down"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Error() = %q, does not say %q", err.Error(), want)
		}
	}
}

func TestAnUnreachableServerIsNotAProblem(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close() // nothing listens there any more
	c, err := client.New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Health(context.Background())
	if err == nil || client.StatusCode(err) != 0 || !strings.Contains(err.Error(), "cannot reach the cheops API at "+srv.URL) {
		t.Fatalf("Health against a closed server = %v (status %d), want a transport error naming the address", err, client.StatusCode(err))
	}
}

func TestListAllResourcesFollowsPagesWithTheFilters(t *testing.T) {
	pages := map[string]string{
		"":   `{"items":[{"id":"1","name":"a","state":"Ready"},{"id":"2","name":"b","state":"Ready"}],"nextPageToken":"t1"}`,
		"t1": `{"items":[{"id":"3","name":"c","state":"Ready"},{"id":"4","name":"d","state":"Ready"}],"nextPageToken":"t2"}`,
		"t2": `{"items":[{"id":"5","name":"e","state":"Ready"}],"nextPageToken":""}`,
	}
	c, got := server(t, func(w http.ResponseWriter, r *http.Request) {
		page, ok := pages[r.URL.Query().Get("pageToken")]
		if !ok {
			writeJSON(w, http.StatusUnprocessableEntity, `{"title":"Unprocessable Entity","status":422,"detail":"pageToken: is not a token this API returned"}`)
			return
		}
		writeJSON(w, http.StatusOK, page)
	})
	all, err := c.ListAllResources(context.Background(), client.ListOptions{State: cheops.ResourceReady, Site: "paris", NamePrefix: "we", Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range all {
		names = append(names, r.Name)
	}
	if strings.Join(names, ",") != "a,b,c,d,e" {
		t.Fatalf("names = %v, want a…e across three pages", names)
	}
	if len(*got) != 3 {
		t.Fatalf("%d requests, want 3 (one per page)", len(*got))
	}
	for i, token := range []string{"", "t1", "t2"} {
		want := "limit=2&namePrefix=we&site=paris&state=Ready"
		if token != "" {
			want = "limit=2&namePrefix=we&pageToken=" + token + "&site=paris&state=Ready"
		}
		if q := (*got)[i].query; q != want {
			t.Errorf("page %d query = %s, want %s", i, q, want)
		}
	}
}

func TestDeletesSendTheirFlags(t *testing.T) {
	c, got := server(t, func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/sites/") {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		writeJSON(w, http.StatusAccepted, resourceJSON)
	})
	ctx := context.Background()
	if err := c.DeleteSite(ctx, "paris", true); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteSite(ctx, "paris", false); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteResource(ctx, "web", true); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteResource(ctx, "web", false); err != nil {
		t.Fatal(err)
	}
	for i, want := range []string{"DELETE /v1/sites/paris?force=true", "DELETE /v1/sites/paris?", "DELETE /v1/resources/web?orphan=true", "DELETE /v1/resources/web?"} {
		g := (*got)[i]
		if s := g.method + " " + g.path + "?" + g.query; s != want {
			t.Errorf("request %d = %s, want %s", i, s, want)
		}
	}
}

func TestNewRefusesABadAddress(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:8080", "ftp://host", "http://", "://x"} {
		if _, err := client.New(addr); err == nil {
			t.Errorf("New(%q) succeeded, want an error", addr)
		}
	}
}

// The patch a ResourcePatch writes, applied by an independent RFC 7386 implementation to a stored
// declaration, gives what the caller meant: untouched fields keep their values.
func TestResourcePatchIsAMergePatchOfWhatItSets(t *testing.T) {
	stored := `{"manifest":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"web","labels":{"a":"1","b":"2"}},"data":{"old":"x","keep":"y"}},
"scope":{"selector":"region=eu"},"overrides":[{"site":"paris","patch":{"data":{"p":"1"}}}],
"policy":{"consistency":"transactional","timeout":"5m0s","retryMax":"1m0s"}}`
	desired := json.RawMessage(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"web","labels":{"a":"1"}},"data":{"keep":"y","new":12345678901234567890}}`)
	var cur struct{ Manifest json.RawMessage }
	if err := json.Unmarshal([]byte(stored), &cur); err != nil {
		t.Fatal(err)
	}
	mp, err := client.ManifestPatch(cur.Manifest, desired)
	if err != nil {
		t.Fatal(err)
	}
	timeout := cheops.Duration(2 * time.Minute)
	patch, err := json.Marshal(client.ResourcePatch{Manifest: mp, Scope: &cheops.Scope{Sites: []string{"paris"}},
		Policy: &client.PolicyPatch{Timeout: &timeout}})
	if err != nil {
		t.Fatal(err)
	}
	merged, err := jsonpatch.MergePatch([]byte(stored), patch)
	if err != nil {
		t.Fatalf("apply %s: %v", patch, err)
	}
	var got struct {
		Manifest  json.RawMessage
		Scope     map[string]any
		Overrides []cheops.Override
		Policy    map[string]string
	}
	if err := json.Unmarshal(merged, &got); err != nil {
		t.Fatal(err)
	}
	if !jsonpatch.Equal(got.Manifest, desired) {
		t.Errorf("manifest after the patch = %s, want %s", got.Manifest, desired)
	}
	if len(got.Scope) != 1 || got.Scope["sites"] == nil {
		t.Errorf("scope after the patch = %v, want only sites: a selector must not survive", got.Scope)
	}
	if len(got.Overrides) != 1 || got.Overrides[0].Site != "paris" {
		t.Errorf("overrides after the patch = %+v, want them untouched", got.Overrides)
	}
	if want := map[string]string{"consistency": "transactional", "timeout": "2m0s", "retryMax": "1m0s"}; len(got.Policy) != 3 ||
		got.Policy["consistency"] != want["consistency"] || got.Policy["timeout"] != want["timeout"] || got.Policy["retryMax"] != want["retryMax"] {
		t.Errorf("policy after the patch = %v, want %v", got.Policy, want)
	}
	if !strings.Contains(string(patch), "12345678901234567890") {
		t.Errorf("patch %s lost the large integer's digits", patch)
	}
}

func TestEmptyPatch(t *testing.T) {
	empty := []client.ResourcePatch{{}, {Policy: &client.PolicyPatch{}}}
	for _, p := range empty {
		if !p.Empty() {
			t.Errorf("%+v is not Empty", p)
		}
		if b, _ := json.Marshal(p); string(b) != "{}" {
			t.Errorf("%+v marshals to %s, want {}", p, b)
		}
	}
	none := []cheops.Override{}
	if p := (client.ResourcePatch{Overrides: &none}); p.Empty() {
		t.Error("a patch clearing the overrides is Empty")
	}
}
