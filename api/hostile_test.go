package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/cheops-io/cheops/api"
)

// hostile is a request a caller should not send, and the problem it must get back.
type hostile struct {
	name, method, path string
	body               any
	header             []string
	status             int
	field              string
}

// hostileRequests are refusals of every kind: the router's, the decoder's and the handlers'. The
// fuzz test seeds its corpus with them too.
func hostileRequests() []hostile {
	huge := `{"name":"x","manifest":{"data":"` + strings.Repeat("a", 70<<10) + `"}}`
	return []hostile{
		{"unknown path", "GET", "/v2/nothing", nil, nil, 404, "path"},
		{"unknown path under v1", "GET", "/v1/things", nil, nil, 404, "path"},
		{"trailing slash", "GET", "/v1/sites/", nil, nil, 404, "path"},
		{"double slash", "GET", "//v1/resources", nil, nil, 404, "path"},
		{"action on the collection", "POST", "/v1/resources:pause", `{}`, nil, 404, "path"},
		{"wrong method on sites", "DELETE", "/v1/sites", nil, nil, 405, "method"},
		{"wrong method on a site", "PATCH", "/v1/sites/paris", `{}`, nil, 405, "method"},
		{"unknown method", "BREW", "/v1/resources", nil, nil, 405, "method"},
		{"POST a resource without an action", "POST", "/v1/resources/x", `{}`, nil, 405, "action"},
		{"text body", "POST", "/v1/resources", `{}`, []string{"Content-Type", "text/plain"}, 415, "Content-Type"},
		{"form body", "POST", "/v1/sites", `name=x`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, "Content-Type"},
		{"bad media type", "PUT", "/v1/sites/paris", `{}`, []string{"Content-Type", "application/json; ="}, 415, "Content-Type"},
		{"patch as text", "PATCH", "/v1/resources/x", `{}`, []string{"Content-Type", "text/plain"}, 415, "Content-Type"},
		{"trailing data", "POST", "/v1/resources", `{} {}`, nil, 400, "body"},
		{"trailing bracket", "POST", "/v1/sites", `{}]`, nil, 400, "body"},
		{"empty body", "POST", "/v1/resources", ``, nil, 400, "body"},
		{"malformed JSON", "POST", "/v1/sites", `{"name":`, nil, 400, "body"},
		{"not an object", "POST", "/v1/resources", `[1]`, nil, 422, ""},
		{"huge body", "POST", "/v1/resources", huge, nil, 413, "body"},
		{"patch not an object", "PATCH", "/v1/resources/x", `[]`, []string{"Content-Type", "application/merge-patch+json"}, 400, "body"},
		{"missing resource", "GET", "/v1/resources/no-such-thing", nil, nil, 404, "id"},
		{"missing resource by uuid", "DELETE", "/v1/resources/00000000-0000-0000-0000-000000000000", nil, nil, 404, "id"},
		{"events of a missing resource", "GET", "/v1/resources/nothing/events", nil, nil, 404, "id"},
		{"missing site", "GET", "/v1/sites/nowhere", nil, nil, 404, "name"},
		{"put a missing site", "PUT", "/v1/sites/nowhere", `{}`, nil, 404, "name"},
		{"site exists", "POST", "/v1/sites", map[string]any{"name": "paris", "driver": "kubernetes", "kubernetes": map[string]any{"kubeconfig": kubeconfig}}, nil, 409, "name"},
		{"resource exists", "POST", "/v1/resources", map[string]any{"name": "hostile", "manifest": cm("hostile"), "scope": map[string]any{"sites": []string{"paris"}}}, nil, 409, "name"},
		{"stale If-Match", "PUT", "/v1/resources/hostile", `{}`, []string{"If-Match", `"7"`}, 412, "If-Match"},
		{"negative If-Match", "PUT", "/v1/resources/hostile", `{}`, []string{"If-Match", `"-1"`}, 422, "If-Match"},
		{"zero If-Match", "PATCH", "/v1/resources/hostile", `{}`, []string{"If-Match", `"0"`, "Content-Type", "application/merge-patch+json"}, 422, "If-Match"},
		{"lone high surrogate", "POST", "/v1/resources", `{"name":"u","manifest":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"u"},"data":{"k":"\ud800"}},"scope":{"sites":["paris"]}}`, nil, 422, "manifest.data.k"},
		{"lone low surrogate", "PUT", "/v1/resources/hostile", `{"manifest":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"hostile","labels":{"a":"x\udc00"}}}}`, nil, 422, "manifest.metadata.labels.a"},
		{"reversed pair", "POST", "/v1/resources", `{"name":"u","manifest":{"data":["ok","\udc00\ud800"]}}`, nil, 422, "manifest.data[1]"},
		{"invalid UTF-8", "POST", "/v1/resources", "{\"name\":\"u\",\"manifest\":{\"kind\":\"\xff\xfe\"}}", nil, 422, "manifest.kind"},
		{"encoded surrogate", "POST", "/v1/resources", "{\"name\":\"u\",\"manifest\":{\"kind\":\"\xed\xa0\x80\"}}", nil, 422, "manifest.kind"},
		{"invalid key", "POST", "/v1/resources", `{"name":"u","manifest":{"metadata":{"\ud800":"x"}}}`, nil, 422, "manifest.metadata"},
		{"surrogate in an override", "PATCH", "/v1/resources/hostile", `{"overrides":[{"site":"paris","patch":{"data":{"k":"\udbff"}}}]}`, []string{"Content-Type", "application/merge-patch+json"}, 422, "overrides[0].patch.data.k"},
		{"surrogate in a site label", "POST", "/v1/sites", `{"name":"u","driver":"kubernetes","labels":{"r":"\ud800"}}`, nil, 422, "labels.r"},
	}
}

// Every refusal, from the router's own to the decoder's, is a problem+json document with a detail
// that names the field at fault, and writes nothing.
func TestEveryRefusalIsAProblemNamingAField(t *testing.T) {
	rec := &recorder{}
	h := newAPIWith(t, rec)
	addSite(t, h, "paris")
	if res := do(t, h, http.MethodPost, "/v1/resources", map[string]any{"name": "hostile", "manifest": cm("hostile"), "scope": map[string]any{"sites": []string{"paris"}}}); res.Code != http.StatusCreated {
		t.Fatalf("POST: %d %s", res.Code, res.Body)
	}
	t.Cleanup(func() { do(t, h, http.MethodDelete, "/v1/resources/hostile", nil) })
	rec.Calls()
	for _, c := range hostileRequests() {
		t.Run(c.name, func(t *testing.T) {
			res := do(t, h, c.method, c.path, c.body, c.header...)
			if res.Code != c.status {
				t.Fatalf("status %d, want %d: %s", res.Code, c.status, res.Body)
			}
			if ct := res.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("Content-Type %q: %s", ct, res.Body)
			}
			var p api.Problem
			if err := json.Unmarshal(res.Body.Bytes(), &p); err != nil || p.Status != c.status || p.Detail == "" {
				t.Fatalf("not a problem document: %s", res.Body)
			}
			if len(p.Errors) == 0 || p.Errors[0].Field == "" {
				t.Fatalf("names no field: %s", res.Body)
			}
			if c.field != "" && p.Errors[0].Field != c.field {
				t.Fatalf("errors = %+v, want field %s", p.Errors, c.field)
			}
		})
	}
	if res := do(t, h, http.MethodGet, "/v1/resources/hostile", nil); !strings.Contains(res.Body.String(), `"generation":1`) {
		t.Errorf("a refused request changed the resource: %s", res.Body)
	}
	if res := do(t, h, http.MethodGet, "/v1/resources/u", nil); res.Code != http.StatusNotFound {
		t.Errorf("a refused request created a resource: %d %s", res.Code, res.Body)
	}
	if calls := rec.Calls(); len(calls) != 0 {
		t.Errorf("refused requests told the workflows %+v", calls)
	}
}
