package api_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/api"
)

// wantRoles is the role each route needs, written here apart from the code: a route added to the
// API without a line here fails TestEveryRouteNeedsItsRole.
var wantRoles = map[string]string{
	"POST /v1/sites":               "admin",
	"GET /v1/sites":                "viewer",
	"GET /v1/sites/:name":          "viewer",
	"PUT /v1/sites/:name":          "admin",
	"DELETE /v1/sites/:name":       "admin",
	"GET /v1/sites/:name/events":   "viewer",
	"POST /v1/resources":           "operator",
	"GET /v1/resources":            "viewer",
	"GET /v1/resources/:id":        "viewer",
	"POST /v1/resources/:id":       "operator",
	"PUT /v1/resources/:id":        "operator",
	"PATCH /v1/resources/:id":      "operator",
	"DELETE /v1/resources/:id":     "operator",
	"GET /v1/resources/:id/events": "viewer",
	"GET /metrics":                 "viewer",
	"GET /healthz":                 "",
	"GET /readyz":                  "",
	"GET /openapi.yaml":            "",
	// The status page: a browser without a login cookie is sent to the login form.
	"GET /ui":                      "viewer",
	"GET /ui/events":               "viewer",
	"GET /ui/resources/:id":        "viewer",
	"GET /ui/resources/:id/events": "viewer",
	"GET /ui/login":                "",
	"POST /ui/login":               "",
	"POST /ui/logout":              "",
	"GET /ui/static/ui.js":         "",
	"GET /ui/static/ui.css":        "",
}

// Every route × {no token, a bad token, viewer, operator, admin}: 401 without a valid token, 403
// below the route's role, through to the handler at or above it. The open routes need none.
func TestEveryRouteNeedsItsRole(t *testing.T) {
	h := newAPI(t)
	addSite(t, h, "paris")
	rank := map[string]int{"": 0, "viewer": 1, "operator": 2, "admin": 3}
	seen := 0
	for _, r := range h.Routes() {
		if strings.HasPrefix(r.Path, "/*") || r.Method == "echo_route_not_found" {
			continue
		}
		key := r.Method + " " + r.Path
		need, ok := wantRoles[key]
		if !ok {
			t.Errorf("route %s has no expected role in this test: add it, with the role it must need", key)
			continue
		}
		seen++
		path := strings.NewReplacer(":name", "paris", ":id", "no-such-resource").Replace(r.Path)
		if key == "POST /v1/resources/:id" {
			path = "/v1/resources/no-such-resource:pause"
		}
		for _, caller := range []struct{ name, header string }{
			{"", ""}, {"bogus", "Bearer not-a-token"}, {"basic", "Basic YWRtaW46YWRtaW4="},
			{"viewer", "Bearer viewer-token"}, {"operator", "Bearer operator-token"}, {"admin", "Bearer admin-token"},
		} {
			var rec *httptest.ResponseRecorder
			if key == "GET /ui/events" {
				rec = doFor(t, h, 200*time.Millisecond, path, "Authorization", caller.header) // a stream
			} else {
				rec = do(t, h, r.Method, path, "{}", "Authorization", caller.header)
			}
			role := caller.name
			if role == "bogus" || role == "basic" {
				role = ""
			}
			page := strings.HasPrefix(key, "GET /ui") && !strings.HasSuffix(key, "/events")
			switch {
			case need != "" && rank[role] == 0 && page && !strings.HasPrefix(caller.header, "Bearer "):
				if rec.Code != http.StatusSeeOther || rec.Header().Get("Location") != "/ui/login" {
					t.Errorf("%s as %q: %d %s; want a redirect to /ui/login", key, caller.name, rec.Code, rec.Body)
				}
			case need != "" && rank[role] == 0:
				if rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") == "" ||
					rec.Header().Get("Content-Type") != "application/problem+json" {
					t.Errorf("%s as %q: %d %s (WWW-Authenticate %q); want a 401 problem", key, caller.name, rec.Code, rec.Body, rec.Header().Get("WWW-Authenticate"))
				}
				if caller.name == "bogus" && !strings.Contains(rec.Body.String(), `"invalid token"`) {
					t.Errorf("%s with a bad token: %s; want only \"invalid token\"", key, rec.Body)
				}
			case rank[role] < rank[need]:
				if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "needs role "+need) {
					t.Errorf("%s as %s: %d %s; want a 403 naming role %s", key, caller.name, rec.Code, rec.Body, need)
				}
			case key == "POST /ui/login":
				// Open, and judges the token of its form (TestUILoginAndCookie), not this header.
			default:
				if rec.Code == http.StatusUnauthorized || rec.Code == http.StatusForbidden {
					t.Errorf("%s as %q: %d %s; want it let through", key, caller.name, rec.Code, rec.Body)
				}
			}
		}
	}
	if seen != len(wantRoles) {
		t.Errorf("%d routes checked, %d expected: a route of this test is no longer served", seen, len(wantRoles))
	}
	// The code's own table agrees, and so does the OpenAPI document's x-cheops-role.
	for key, role := range api.Roles() {
		if want := wantRoles[strings.NewReplacer("{name}", ":name", "{id}", ":id").Replace(key)]; string(role) != want {
			t.Errorf("api.Roles()[%s] = %s, want %s", key, role, want)
		}
	}
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := yaml.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	for path, ops := range doc.Paths {
		for method, raw := range ops {
			if method == "parameters" {
				continue
			}
			var op struct {
				Role string `json:"x-cheops-role"`
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatal(err)
			}
			key := strings.ToUpper(method) + " " + strings.NewReplacer("{name}", ":name", "{id}:{action}", ":id", "{id}", ":id").Replace(path)
			if op.Role != wantRoles[key] {
				t.Errorf("openapi.yaml %s %s: x-cheops-role %q, want %q", method, path, op.Role, wantRoles[key])
			}
		}
	}
}

// A token bound to a site selector places resources only on the sites it matches, now and later,
// and sees only those sites and the resources placed within them.
func TestSiteBoundToken(t *testing.T) {
	h := newAPI(t)
	addSite(t, h, "paris") // region=eu
	if rec := do(t, h, http.MethodPost, "/v1/sites", map[string]any{"name": "ny", "driver": "kubernetes",
		"labels": map[string]string{"region": "us"}, "kubernetes": map[string]any{"kubeconfig": kubeconfig}}); rec.Code != http.StatusCreated && rec.Code != http.StatusConflict {
		t.Fatalf("add ny: %d %s", rec.Code, rec.Body)
	}
	eu := []string{"Authorization", "Bearer eu-operator-token"}
	post := func(name string, scope map[string]any, who []string) (int, cheops.Resource, string) {
		rec := do(t, h, http.MethodPost, "/v1/resources", map[string]any{"name": name, "manifest": cm(name), "scope": scope}, who...)
		var r cheops.Resource
		_ = json.Unmarshal(rec.Body.Bytes(), &r)
		return rec.Code, r, rec.Body.String()
	}
	if code, _, body := post("bound-two", map[string]any{"sites": []string{"paris", "ny"}}, eu); code != http.StatusForbidden || !strings.Contains(body, "reaches site ny") {
		t.Fatalf("eu token placing on ny: %d %s; want a 403 naming ny", code, body)
	}
	if code, _, body := post("bound-any", map[string]any{"expression": "paris | ny"}, eu); code != http.StatusForbidden || !strings.Contains(body, "ny") {
		t.Fatalf("eu token with a failover to ny: %d %s; want a 403 naming ny", code, body)
	}
	code, r, body := post("bound-eu", map[string]any{"selector": "region"}, eu)
	if code == http.StatusForbidden {
		// A selector that matches ny too is refused as well.
		code, r, body = post("bound-eu", map[string]any{"selector": "region=eu"}, eu)
	}
	if code != http.StatusCreated || r.Within != "region=eu" || r.CreatedBy != "eu-operator" {
		t.Fatalf("eu token placing on region=eu: %d %s; want 201 within region=eu, created by eu-operator", code, body)
	}
	if code, _, body := post("admin-us", map[string]any{"sites": []string{"ny"}}, nil); code != http.StatusCreated {
		t.Fatalf("admin placing on ny: %d %s", code, body)
	}
	if rec := do(t, h, http.MethodGet, "/v1/resources/admin-us", nil, eu...); rec.Code != http.StatusNotFound {
		t.Errorf("eu token reading a resource on ny: %d; want 404", rec.Code)
	}
	if rec := do(t, h, http.MethodDelete, "/v1/resources/admin-us", nil, eu...); rec.Code != http.StatusNotFound {
		t.Errorf("eu token deleting a resource on ny: %d; want 404", rec.Code)
	}
	rec := do(t, h, http.MethodGet, "/v1/resources", nil, eu...)
	if strings.Contains(rec.Body.String(), "admin-us") || !strings.Contains(rec.Body.String(), "bound-eu") {
		t.Errorf("eu token's list: %s; want bound-eu and not admin-us", rec.Body)
	}
	rec = do(t, h, http.MethodGet, "/v1/sites", nil, eu...)
	if strings.Contains(rec.Body.String(), `"ny"`) || !strings.Contains(rec.Body.String(), `"paris"`) {
		t.Errorf("eu token's site list: %s; want paris only", rec.Body)
	}
	if rec := do(t, h, http.MethodGet, "/v1/sites/ny", nil, eu...); rec.Code != http.StatusNotFound {
		t.Errorf("eu token reading site ny: %d; want 404", rec.Code)
	}
	euAdmin := []string{"Authorization", "Bearer eu-admin-token"}
	if rec := do(t, h, http.MethodPost, "/v1/sites", map[string]any{"name": "la", "driver": "kubernetes",
		"labels": map[string]string{"region": "us"}, "kubernetes": map[string]any{"kubeconfig": kubeconfig}}, euAdmin...); rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), `"labels"`) {
		t.Errorf("eu admin adding a us site: %d %s; want a 403 naming labels", rec.Code, rec.Body)
	}
	if rec := do(t, h, http.MethodDelete, "/v1/sites/ny?force=true", nil, euAdmin...); rec.Code != http.StatusNotFound {
		t.Errorf("eu admin deleting site ny: %d %s; want 404", rec.Code, rec.Body)
	}
}

// Every change records who asked for it in the resource's events.
func TestEventsNameTheActor(t *testing.T) {
	h := newAPI(t)
	addSite(t, h, "paris")
	op := []string{"Authorization", "Bearer operator-token"}
	if rec := do(t, h, http.MethodPost, "/v1/resources", map[string]any{"name": "audited", "manifest": cm("audited"), "scope": map[string]any{"sites": []string{"paris"}}}, op...); rec.Code != http.StatusCreated {
		t.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	if rec := do(t, h, http.MethodPost, "/v1/resources/audited:pause", nil); rec.Code != http.StatusAccepted {
		t.Fatalf("pause: %d %s", rec.Code, rec.Body)
	}
	if rec := do(t, h, http.MethodPatch, "/v1/resources/audited", map[string]any{"policy": map[string]any{"maxParallel": 3}}, op...); rec.Code != http.StatusOK {
		t.Fatalf("patch: %d %s", rec.Code, rec.Body)
	}
	if rec := do(t, h, http.MethodDelete, "/v1/resources/audited", nil, op...); rec.Code != http.StatusAccepted {
		t.Fatalf("delete: %d %s", rec.Code, rec.Body)
	}
	rec := do(t, h, http.MethodGet, "/v1/resources/audited/events", nil, "Authorization", "Bearer viewer-token")
	var evs struct{ Items []cheops.Event }
	if err := json.Unmarshal(rec.Body.Bytes(), &evs); err != nil {
		t.Fatal(err)
	}
	want := map[cheops.EventType]string{cheops.EventCreated: "operator", cheops.EventActionRequested: "admin", cheops.EventUpdated: "operator", cheops.EventDeleteRequested: "operator"}
	for _, ev := range evs.Items {
		if a, ok := want[ev.Type]; ok {
			if ev.Actor != a {
				t.Errorf("%s event by %q, want %q", ev.Type, ev.Actor, a)
			}
			delete(want, ev.Type)
		}
	}
	if len(want) > 0 {
		t.Errorf("events missing: %v in %s", want, rec.Body)
	}
	if !strings.Contains(logs.String(), "actor=operator") {
		t.Error("the log has no line naming the actor of a change")
	}
}

// A site's log says who registered, changed and removed it, and outlives it.
func TestSiteEventsNameTheActor(t *testing.T) {
	h := newAPI(t)
	if rec := do(t, h, http.MethodPost, "/v1/sites", map[string]any{"name": "audit-site", "driver": "kubernetes",
		"kubernetes": map[string]any{"kubeconfig": kubeconfig}}); rec.Code != http.StatusCreated {
		t.Fatalf("add: %d %s", rec.Code, rec.Body)
	}
	if rec := do(t, h, http.MethodPut, "/v1/sites/audit-site", map[string]any{"labels": map[string]string{"tier": "lab"},
		"kubernetes": map[string]any{"kubeconfig": kubeconfig}}, "Authorization", "Bearer eu-admin-token"); rec.Code != http.StatusNotFound {
		t.Fatalf("a region=eu admin changing a site outside it: %d %s; want 404", rec.Code, rec.Body)
	}
	if rec := do(t, h, http.MethodPut, "/v1/sites/audit-site", map[string]any{"labels": map[string]string{"tier": "lab"},
		"kubernetes": map[string]any{"kubeconfig": kubeconfig}}); rec.Code != http.StatusOK {
		t.Fatalf("put: %d %s", rec.Code, rec.Body)
	}
	if rec := do(t, h, http.MethodDelete, "/v1/sites/audit-site", nil); rec.Code != http.StatusNoContent {
		t.Fatalf("delete: %d %s", rec.Code, rec.Body)
	}
	rec := do(t, h, http.MethodGet, "/v1/sites/audit-site/events", nil, "Authorization", "Bearer viewer-token")
	var evs struct{ Items []cheops.Event }
	if err := json.Unmarshal(rec.Body.Bytes(), &evs); err != nil || rec.Code != http.StatusOK {
		t.Fatalf("events: %d %s", rec.Code, rec.Body)
	}
	var got []string
	for _, ev := range evs.Items {
		got = append(got, string(ev.Type)+" by "+ev.Actor)
	}
	if strings.Join(got, ", ") != "SiteCreated by admin, SiteUpdated by admin, SiteDeleted by admin" {
		t.Errorf("site events: %s", strings.Join(got, ", "))
	}
	if rec := do(t, h, http.MethodGet, "/v1/sites/never-was/events", nil); rec.Code != http.StatusNotFound {
		t.Errorf("events of a site that never was: %d", rec.Code)
	}
}
