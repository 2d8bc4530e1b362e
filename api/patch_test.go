package api_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"

	"github.com/cheops-io/cheops/api"
)

const mergePatch = "application/merge-patch+json"

type resourceBody struct {
	ID         string
	Generation int64
	Manifest   map[string]any
	Scope      map[string]any
	Overrides  []map[string]any
	Policy     map[string]any
}

func decodeResource(t *testing.T, rec *httptest.ResponseRecorder) resourceBody {
	t.Helper()
	var r resourceBody
	if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
		t.Fatalf("%v: %s", err, rec.Body)
	}
	return r
}

// createForPatch declares a transactional resource on paris with one override, and returns it.
func createForPatch(t *testing.T, h http.Handler, name string) resourceBody {
	t.Helper()
	addSite(t, h, "paris")
	addSite(t, h, "lyon")
	manifest := cm(name)
	manifest["data"] = map[string]any{"a": "1", "b": "2"}
	rec := do(t, h, http.MethodPost, "/v1/resources", map[string]any{"name": name, "manifest": manifest,
		"scope":     map[string]any{"sites": []string{"paris"}},
		"overrides": []any{map[string]any{"site": "paris", "patch": map[string]any{"data": map[string]any{"c": "3"}}}},
		"policy":    map[string]any{"consistency": "transactional", "maxParallel": 5}})
	if rec.Code != http.StatusCreated {
		t.Fatalf("POST: %d %s", rec.Code, rec.Body)
	}
	t.Cleanup(func() { do(t, h, http.MethodDelete, "/v1/resources/"+name, nil) })
	return decodeResource(t, rec)
}

// A merge patch changes what it names and keeps the rest: a transactional resource patched with
// only a policy timeout stays transactional. The change is one generation, told to the workflow.
func TestPatchChangesOnlyWhatItNames(t *testing.T) {
	rec := &recorder{}
	h := newAPIWith(t, rec)
	created := createForPatch(t, h, "patch-policy")
	rec.Calls()

	res := do(t, h, http.MethodPatch, "/v1/resources/patch-policy", `{"policy":{"timeout":"2m"}}`, "Content-Type", mergePatch, "If-Match", `"1"`)
	if res.Code != http.StatusOK {
		t.Fatalf("PATCH: %d %s", res.Code, res.Body)
	}
	got := decodeResource(t, res)
	if got.Generation != 2 || got.Policy["consistency"] != "transactional" || got.Policy["timeout"] != "2m0s" || got.Policy["maxParallel"] != 5.0 {
		t.Fatalf("after the patch: generation %d, policy %v", got.Generation, got.Policy)
	}
	if len(got.Overrides) != 1 || got.Scope["sites"] == nil || got.Manifest["data"] == nil {
		t.Fatalf("the patch lost what it did not name: %s", res.Body)
	}
	if etag := res.Header().Get("ETag"); etag != `"2"` {
		t.Fatalf("ETag %s", etag)
	}
	if calls := rec.Calls(); !slices.Equal(calls, []call{{Op: "Apply", ResourceID: created.ID, Generation: 2}}) {
		t.Fatalf("the workflow was told %+v, want Apply of generation 2", calls)
	}

	// The same patch again changes nothing: no new generation, nothing told.
	res = do(t, h, http.MethodPatch, "/v1/resources/"+created.ID, `{"policy":{"timeout":"2m"}}`, "Content-Type", mergePatch)
	if got := decodeResource(t, res); res.Code != http.StatusOK || got.Generation != 2 {
		t.Fatalf("repeated PATCH: %d %s", res.Code, res.Body)
	}
	if calls := rec.Calls(); len(calls) != 0 {
		t.Fatalf("a patch that changed nothing told the workflow %+v", calls)
	}

	// application/json is taken as a merge patch too.
	res = do(t, h, http.MethodPatch, "/v1/resources/patch-policy", `{"scope":{"sites":["paris","lyon"]}}`)
	if got := decodeResource(t, res); res.Code != http.StatusOK || got.Generation != 3 || got.Policy["consistency"] != "transactional" {
		t.Fatalf("PATCH as application/json: %d %s", res.Code, res.Body)
	}
}

// null removes a member, in the declaration and inside the manifest.
func TestPatchNullClears(t *testing.T) {
	h := newAPI(t)
	createForPatch(t, h, "patch-null")
	res := do(t, h, http.MethodPatch, "/v1/resources/patch-null",
		`{"overrides":null,"policy":{"maxParallel":null},"manifest":{"data":{"a":null}}}`, "Content-Type", mergePatch)
	if res.Code != http.StatusOK {
		t.Fatalf("PATCH: %d %s", res.Code, res.Body)
	}
	got := decodeResource(t, res)
	if len(got.Overrides) != 0 || got.Policy["maxParallel"] != nil || got.Policy["consistency"] != "transactional" {
		t.Fatalf("overrides %v, policy %v", got.Overrides, got.Policy)
	}
	if data := got.Manifest["data"].(map[string]any); data["a"] != nil || data["b"] != "2" {
		t.Fatalf("manifest data %v", data)
	}
	// A whole policy set to null goes back to the defaults.
	res = do(t, h, http.MethodPatch, "/v1/resources/patch-null", `{"policy":null}`, "Content-Type", mergePatch)
	if got := decodeResource(t, res); res.Code != http.StatusOK || got.Policy["consistency"] != "eventual" {
		t.Fatalf("policy null: %d %s", res.Code, res.Body)
	}
}

// If-Match is honoured as PUT honours it: a stale generation is a 412 that changes nothing.
func TestPatchWithStaleIfMatchIsRefused(t *testing.T) {
	rec := &recorder{}
	h := newAPIWith(t, rec)
	createForPatch(t, h, "patch-stale")
	if res := do(t, h, http.MethodPatch, "/v1/resources/patch-stale", `{"policy":{"timeout":"2m"}}`, "Content-Type", mergePatch, "If-Match", `"1"`); res.Code != http.StatusOK {
		t.Fatalf("first PATCH: %d %s", res.Code, res.Body)
	}
	rec.Calls()
	res := do(t, h, http.MethodPatch, "/v1/resources/patch-stale", `{"policy":{"timeout":"3m"}}`, "Content-Type", mergePatch, "If-Match", `"1"`)
	if res.Code != http.StatusPreconditionFailed || res.Header().Get("Content-Type") != "application/problem+json" {
		t.Fatalf("stale PATCH: %d %s", res.Code, res.Body)
	}
	if got := decodeResource(t, do(t, h, http.MethodGet, "/v1/resources/patch-stale", nil)); got.Generation != 2 || got.Policy["timeout"] != "2m0s" {
		t.Fatalf("a refused patch changed the resource: %+v", got)
	}
	if calls := rec.Calls(); len(calls) != 0 {
		t.Fatalf("a refused patch told the workflow %+v", calls)
	}
}

// A bad patch, or a bad If-Match on PATCH or PUT, is a problem+json naming the field, and changes nothing.
func TestBadPatchIsAProblemNamingTheField(t *testing.T) {
	h := newAPI(t)
	createForPatch(t, h, "patch-bad")
	cases := []struct {
		name, method, body string
		header             []string
		status             int
		field              string
	}{
		{"rename", "PATCH", `{"name":"other"}`, nil, 422, "name"},
		{"name removed", "PATCH", `{"name":null}`, nil, 422, "name"},
		{"driver changed", "PATCH", `{"driver":"openstack"}`, nil, 422, "driver"},
		{"unknown field", "PATCH", `{"bogus":1}`, nil, 422, "bogus"},
		{"read-only field", "PATCH", `{"generation":7}`, nil, 422, "generation"},
		{"bad duration", "PATCH", `{"policy":{"timeout":"soon"}}`, nil, 422, "policy.timeout"},
		{"wrong type", "PATCH", `{"policy":{"maxParallel":"many"}}`, nil, 422, "policy.maxParallel"},
		{"bad drift policy", "PATCH", `{"policy":{"drift":"fix"}}`, nil, 422, "policy.drift"},
		{"two scope forms", "PATCH", `{"scope":{"expression":"paris"}}`, nil, 422, "scope"},
		{"manifest removed", "PATCH", `{"manifest":null}`, nil, 422, "manifest"},
		{"unknown site", "PATCH", `{"scope":{"sites":["atlantis"]}}`, nil, 422, "scope.sites"},
		{"negative If-Match", "PATCH", `{"policy":{"timeout":"2m"}}`, []string{"If-Match", `"-1"`}, 422, "If-Match"},
		{"negative If-Match on PUT", "PUT", `{"policy":{"timeout":"2m"}}`, []string{"If-Match", `"-1"`, "Content-Type", "application/json"}, 422, "If-Match"},
		{"If-Match not a generation", "PATCH", `{"policy":{"timeout":"2m"}}`, []string{"If-Match", `"abc"`}, 422, "If-Match"},
		{"not an object", "PATCH", `[1]`, nil, 400, ""},
		{"malformed", "PATCH", `{"policy":`, nil, 400, ""},
		{"media type", "PATCH", `{"policy":{"timeout":"2m"}}`, []string{"Content-Type", "text/plain"}, 415, "Content-Type"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			header := append([]string{"Content-Type", mergePatch}, c.header...)
			rec := do(t, h, c.method, "/v1/resources/patch-bad", c.body, header...)
			if rec.Code != c.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, c.status, rec.Body)
			}
			var p api.Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Status != c.status || rec.Header().Get("Content-Type") != "application/problem+json" {
				t.Fatalf("not a problem document: %s", rec.Body)
			}
			if c.field != "" && (len(p.Errors) == 0 || p.Errors[0].Field != c.field) {
				t.Fatalf("errors = %+v, want field %s", p.Errors, c.field)
			}
		})
	}
	if got := decodeResource(t, do(t, h, http.MethodGet, "/v1/resources/patch-bad", nil)); got.Generation != 1 {
		t.Fatalf("a refused request changed the resource: generation %d", got.Generation)
	}
}

// A patch that leaves the declaration as it was is no new generation, even when merging rewrites
// the manifest's JSON (members in another order).
func TestPatchThatChangesNothingKeepsTheGeneration(t *testing.T) {
	rec := &recorder{}
	h := newAPIWith(t, rec)
	addSite(t, h, "paris")
	res := do(t, h, http.MethodPost, "/v1/resources", `{"name":"patch-noop","scope":{"sites":["paris"]},
		"manifest":{"metadata":{"name":"patch-noop"},"kind":"ConfigMap","apiVersion":"v1","data":{"z":"1","a":"2"}}}`)
	if res.Code != http.StatusCreated {
		t.Fatalf("POST: %d %s", res.Code, res.Body)
	}
	t.Cleanup(func() { do(t, h, http.MethodDelete, "/v1/resources/patch-noop", nil) })
	rec.Calls()
	res = do(t, h, http.MethodPatch, "/v1/resources/patch-noop", `{"manifest":{"data":{"a":"2"}}}`, "Content-Type", mergePatch)
	if got := decodeResource(t, res); res.Code != http.StatusOK || got.Generation != 1 {
		t.Fatalf("PATCH that changes nothing: %d %s", res.Code, res.Body)
	}
	if calls := rec.Calls(); len(calls) != 0 {
		t.Fatalf("a patch that changed nothing told the workflow %+v", calls)
	}
}

// The change and its Updated event are one: the event log holds it with the new generation.
func TestPatchWritesTheUpdatedEvent(t *testing.T) {
	h := newAPI(t)
	createForPatch(t, h, "patch-event")
	if res := do(t, h, http.MethodPatch, "/v1/resources/patch-event", `{"policy":{"timeout":"2m"}}`, "Content-Type", mergePatch); res.Code != http.StatusOK {
		t.Fatalf("PATCH: %d %s", res.Code, res.Body)
	}
	var evs struct {
		Items []struct {
			Type       string
			Generation int64
		}
	}
	res := do(t, h, http.MethodGet, "/v1/resources/patch-event/events", nil)
	if err := json.Unmarshal(res.Body.Bytes(), &evs); err != nil {
		t.Fatal(err)
	}
	if n := len(evs.Items); n != 2 || evs.Items[n-1].Type != "Updated" || evs.Items[n-1].Generation != 2 {
		t.Fatalf("events: %s", res.Body)
	}
}
