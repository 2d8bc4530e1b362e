package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
	clientv3 "go.etcd.io/etcd/client/v3"
	"sigs.k8s.io/yaml"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/api"
	"github.com/cheops-io/cheops/auth"
	"github.com/cheops-io/cheops/devstack/etcdembed"
	"github.com/cheops-io/cheops/drivers/kubernetes"
	"github.com/cheops-io/cheops/drivers/openstack"
	"github.com/cheops-io/cheops/metrics"
	"github.com/cheops-io/cheops/store"
)

// The handlers run against a real etcd. They tell the resource workflows of changes through a
// recording Orchestrator; one test (temporal_test.go) runs them on a real Temporal server and worker.
var (
	etcdEndpoint string
	logs         syncBuffer
)

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "cheops-api-")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	e, err := etcdembed.Start(etcdembed.Options{Dir: dir, ClientAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:0"})
	if err != nil {
		panic(err)
	}
	defer e.Close()
	etcdEndpoint = e.Endpoint
	defer stopTemporal()
	return m.Run()
}

const storePrefix = "/api-test"

// newStore returns a store over the shared etcd.
func newStore(t *testing.T) *store.Store {
	t.Helper()
	ec, err := clientv3.New(clientv3.Config{Endpoints: []string{etcdEndpoint}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ec.Close() })
	return store.New(ec, storePrefix)
}

// newAPI returns the API over the shared etcd with a recording Orchestrator, and a log captured in logs.
func newAPI(t *testing.T) *echo.Echo {
	t.Helper()
	return newAPIWith(t, &recorder{})
}

// newAPIWith returns the API over the shared etcd, telling o of every change.
func newAPIWith(t *testing.T, o api.Orchestrator) *echo.Echo {
	t.Helper()
	st := newStore(t)
	return api.New(api.Config{
		Store:        st,
		Orchestrator: o,
		Metrics:      metrics.New(st),
		Drivers:      map[cheops.DriverName]cheops.Driver{cheops.DriverKubernetes: kubernetes.New(), cheops.DriverOpenStack: openstack.New()},
		Log:          slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		BodyLimit:    64 << 10,
		Auth:         testTokens,
	})
}

// The tests' tokens, one per role, and an operator bound to the sites labelled region=eu. Requests
// carry the admin's unless a test says otherwise.
var testTokens = func() *auth.TokenFile {
	var b strings.Builder
	b.WriteString("tokens:\n")
	for _, t := range []struct{ name, role, sites string }{
		{"admin", "admin", ""}, {"operator", "operator", ""}, {"viewer", "viewer", ""},
		{"eu-operator", "operator", "region=eu"}, {"eu-admin", "admin", "region=eu"},
	} {
		fmt.Fprintf(&b, "- {name: %s, role: %s, sha256: %s, sites: %q}\n", t.name, t.role, auth.Hash(t.name+"-token"), t.sites)
	}
	path := filepath.Join(os.TempDir(), fmt.Sprintf("cheops-api-tokens-%d.yaml", os.Getpid()))
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		panic(err)
	}
	f, err := auth.LoadTokenFile(path)
	if err != nil {
		panic(err)
	}
	_ = os.Remove(path) // read once; the tokens stay in force while the file is gone
	return f
}()

func do(t *testing.T, h http.Handler, method, path string, body any, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		data, _ := json.Marshal(b)
		r = bytes.NewReader(data)
	}
	req := httptest.NewRequest(method, path, r)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer admin-token")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	checkResponse(t, req, rec)
	return rec
}

const secret = "s3cr3t-t0ken-never-shown"

// kubeconfig points at a port where nothing listens, so the site is unreachable.
var kubeconfig = `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: ` + secret + `}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`

func addSite(t *testing.T, h http.Handler, name string) {
	t.Helper()
	rec := do(t, h, http.MethodPost, "/v1/sites", map[string]any{"name": name, "driver": "kubernetes",
		"labels": map[string]string{"region": "eu"}, "kubernetes": map[string]any{"kubeconfig": kubeconfig}})
	if rec.Code != http.StatusCreated && rec.Code != http.StatusConflict {
		t.Fatalf("add site %s: %d %s", name, rec.Code, rec.Body)
	}
}

func cm(name string) map[string]any {
	return map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": name}}
}

// Every bad request is a problem+json document naming the field at fault, and writes nothing.
func TestBadInputIsAProblemNamingTheField(t *testing.T) {
	rec := &recorder{}
	h := newAPIWith(t, rec)
	addSite(t, h, "paris")
	big := `{"name":"x","manifest":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"data":{"k":"` + strings.Repeat("a", 70<<10) + `"}}}`
	cases := []struct {
		name, method, path string
		body               any
		status             int
		field              string
	}{
		{"unknown field", "POST", "/v1/sites", `{"name":"a","driver":"kubernetes","bogus":1}`, 422, "bogus"},
		{"bad site name", "POST", "/v1/sites", map[string]any{"name": "Not_A_Label", "driver": "kubernetes"}, 422, "name"},
		{"unsupported driver", "POST", "/v1/sites", map[string]any{"name": "a", "driver": "vmware"}, 422, "driver"},
		{"no kubeconfig", "POST", "/v1/sites", map[string]any{"name": "a", "driver": "kubernetes", "kubernetes": map[string]any{}}, 422, "kubernetes.kubeconfig"},
		{"broken kubeconfig", "POST", "/v1/sites", map[string]any{"name": "a", "driver": "kubernetes", "kubernetes": map[string]any{"kubeconfig": "{" + secret}}, 422, "kubernetes.kubeconfig"},
		{"openstack without settings", "POST", "/v1/sites", map[string]any{"name": "a", "driver": "openstack"}, 422, "openstack"},
		{"openstack without password", "POST", "/v1/sites", map[string]any{"name": "a", "driver": "openstack", "openstack": map[string]any{"authURL": "http://k/v3", "region": "R", "username": "u", "projectName": "p"}}, 422, "openstack.password"},
		{"kubernetes settings on openstack", "POST", "/v1/sites", map[string]any{"name": "a", "driver": "openstack", "kubernetes": map[string]any{}}, 422, "kubernetes"},
		{"openstack unknown type", "POST", "/v1/resources", map[string]any{"name": "x", "driver": "openstack", "manifest": map[string]any{"type": "compute.volume", "spec": map[string]any{}}, "scope": map[string]any{"sites": []string{"paris"}}}, 422, "manifest.type"},
		{"openstack bad ref", "POST", "/v1/resources", map[string]any{"name": "x", "driver": "openstack", "manifest": map[string]any{"type": "compute.server", "spec": map[string]any{"name": "s", "flavor": map[string]any{}, "image": map[string]any{"id": "i"}}}, "scope": map[string]any{"sites": []string{"paris"}}}, 422, "manifest.spec.flavor"},
		{"bad label", "POST", "/v1/sites", map[string]any{"name": "a", "driver": "kubernetes", "labels": map[string]string{"region": "not valid!"}}, 422, "labels.region"},
		{"wrong type", "POST", "/v1/resources", `{"name": 3}`, 422, "name"},
		{"malformed JSON", "POST", "/v1/resources", `{"name": `, 400, ""},
		{"empty body", "POST", "/v1/resources", ``, 400, ""},
		{"no kind", "POST", "/v1/resources", map[string]any{"name": "x", "manifest": map[string]any{"apiVersion": "v1", "metadata": map[string]any{"name": "x"}}, "scope": map[string]any{"sites": []string{"paris"}}}, 422, "manifest.kind"},
		{"no metadata.name", "POST", "/v1/resources", map[string]any{"name": "x", "manifest": map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{}}, "scope": map[string]any{"sites": []string{"paris"}}}, 422, "manifest.metadata.name"},
		{"no scope", "POST", "/v1/resources", map[string]any{"name": "x", "manifest": cm("x")}, 422, "scope"},
		{"unknown sites", "POST", "/v1/resources", map[string]any{"name": "x", "manifest": cm("x"), "scope": map[string]any{"sites": []string{"paris", "atlantis", "mu"}}}, 422, "scope.sites"},
		{"bad selector", "POST", "/v1/resources", map[string]any{"name": "x", "manifest": cm("x"), "scope": map[string]any{"selector": "region in (eu"}}, 422, "scope.selector"},
		{"bad consistency", "POST", "/v1/resources", map[string]any{"name": "x", "manifest": cm("x"), "scope": map[string]any{"sites": []string{"paris"}}, "policy": map[string]any{"consistency": "sometimes"}}, 422, "policy.consistency"},
		{"two scope forms", "POST", "/v1/resources", map[string]any{"name": "x", "manifest": cm("x"), "scope": map[string]any{"sites": []string{"paris"}, "expression": "paris"}}, 422, "scope"},
		{"scope-lang syntax", "POST", "/v1/resources", map[string]any{"name": "x", "manifest": cm("x"), "scope": map[string]any{"expression": "(paris | "}}, 422, "scope.expression"},
		{"scope-lang unknown site", "POST", "/v1/resources", map[string]any{"name": "x", "manifest": cm("x"), "scope": map[string]any{"expression": "paris | atlantis"}}, 422, "scope.expression"},
		{"bad conflict policy", "POST", "/v1/resources", map[string]any{"name": "x", "manifest": cm("x"), "scope": map[string]any{"sites": []string{"paris"}}, "policy": map[string]any{"conflict": "overwrite"}}, 422, "policy.conflict"},
		{"bad adopted policy", "POST", "/v1/resources", map[string]any{"name": "x", "manifest": cm("x"), "scope": map[string]any{"sites": []string{"paris"}}, "policy": map[string]any{"conflict": "adopt", "adopted": "orphan"}}, 422, "policy.adopted"},
		{"bad drift policy", "POST", "/v1/resources", map[string]any{"name": "x", "manifest": cm("x"), "scope": map[string]any{"sites": []string{"paris"}}, "policy": map[string]any{"drift": "ignore"}}, 422, "policy.drift"},
		{"bad timeout", "POST", "/v1/resources", map[string]any{"name": "x", "manifest": cm("x"), "scope": map[string]any{"sites": []string{"paris"}}, "policy": map[string]any{"timeout": "soon"}}, 422, "policy.timeout"},
		{"backoff inverted", "POST", "/v1/resources", map[string]any{"name": "x", "manifest": cm("x"), "scope": map[string]any{"sites": []string{"paris"}}, "policy": map[string]any{"retryInitial": "1m", "retryMax": "10s"}}, 422, "policy.retryInitial"},
		{"rollout wave size", "POST", "/v1/resources", map[string]any{"name": "x", "manifest": cm("x"), "scope": map[string]any{"sites": []string{"paris"}}, "policy": map[string]any{"rollout": map[string]any{"maxUnavailable": "lots"}}}, 422, "policy.rollout.maxUnavailable"},
		{"rollout percent", "POST", "/v1/resources", map[string]any{"name": "x", "manifest": cm("x"), "scope": map[string]any{"sites": []string{"paris"}}, "policy": map[string]any{"rollout": map[string]any{"maxUnavailable": "150%"}}}, 422, "policy.rollout.maxUnavailable"},
		{"rollout group", "POST", "/v1/resources", map[string]any{"name": "x", "manifest": cm("x"), "scope": map[string]any{"sites": []string{"paris"}}, "policy": map[string]any{"rollout": map[string]any{"groups": []string{"canary=true", "!!"}}}}, 422, "policy.rollout.groups[1]"},
		{"rollout soak", "POST", "/v1/resources", map[string]any{"name": "x", "manifest": cm("x"), "scope": map[string]any{"sites": []string{"paris"}}, "policy": map[string]any{"rollout": map[string]any{"soak": "soon"}}}, 422, "policy.rollout.soak"},
		{"rollout failures", "POST", "/v1/resources", map[string]any{"name": "x", "manifest": cm("x"), "scope": map[string]any{"sites": []string{"paris"}}, "policy": map[string]any{"rollout": map[string]any{"maxFailures": -1}}}, 422, "policy.rollout.maxFailures"},
		{"override without target", "POST", "/v1/resources", map[string]any{"name": "x", "manifest": cm("x"), "scope": map[string]any{"sites": []string{"paris"}}, "overrides": []any{map[string]any{"patch": map[string]any{}}}}, 422, "overrides[0]"},
		{"override not a patch", "POST", "/v1/resources", map[string]any{"name": "x", "manifest": cm("x"), "scope": map[string]any{"sites": []string{"paris"}}, "overrides": []any{map[string]any{"site": "paris", "patch": []int{1}}}}, 422, "overrides[0].patch"},
		{"override breaks manifest", "POST", "/v1/resources", map[string]any{"name": "x", "manifest": cm("x"), "scope": map[string]any{"sites": []string{"paris"}}, "overrides": []any{map[string]any{"site": "paris", "patch": map[string]any{"kind": nil}}}}, 422, "overrides[0].patch"},
		{"unknown action", "POST", "/v1/resources/x:explode", nil, 422, "action"},
		{"too large", "POST", "/v1/resources", big, 413, ""},
		{"bad limit", "GET", "/v1/resources?limit=0", nil, 422, "limit"},
		{"missing resource", "GET", "/v1/resources/no-such-thing", nil, 404, ""},
		{"missing site", "DELETE", "/v1/sites/nowhere", nil, 404, ""},
		{"unknown route", "GET", "/v2/nothing", nil, 404, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rec := do(t, h, c.method, c.path, c.body)
			if rec.Code != c.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, c.status, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
				t.Fatalf("Content-Type %q", ct)
			}
			var p api.Problem
			if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Status != c.status || p.Detail == "" {
				t.Fatalf("not a problem document: %s", rec.Body)
			}
			if c.field != "" && (len(p.Errors) == 0 || p.Errors[0].Field != c.field) {
				t.Fatalf("errors = %+v, want field %s", p.Errors, c.field)
			}
			if strings.Contains(rec.Body.String(), secret) {
				t.Fatalf("the response echoes a credential: %s", rec.Body)
			}
		})
	}
	res := do(t, h, http.MethodPost, "/v1/resources", map[string]any{"name": "x", "manifest": cm("x"), "scope": map[string]any{"sites": []string{"paris", "atlantis", "mu"}}})
	if !strings.Contains(res.Body.String(), "atlantis, mu") {
		t.Errorf("unknown sites not listed: %s", res.Body)
	}
	if res := do(t, h, http.MethodGet, "/v1/resources?namePrefix=x", nil); !strings.Contains(res.Body.String(), `"items":[]`) {
		t.Errorf("a rejected request left a resource behind: %s", res.Body)
	}
	if calls := rec.Calls(); len(calls) != 0 {
		t.Errorf("rejected requests told the workflows %+v", calls)
	}
}

// An OpenStack site's password is write-only too, and kept by a PUT that does not resend it.
func TestOpenStackPasswordIsWriteOnly(t *testing.T) {
	h := newAPI(t)
	rec := do(t, h, http.MethodPost, "/v1/sites", map[string]any{"name": "ostack", "driver": "openstack",
		"openstack": map[string]any{"authURL": "http://127.0.0.1:1/v3", "region": "RegionOne", "username": "u", "projectName": "p", "password": secret}})
	if rec.Code != 201 || strings.Contains(rec.Body.String(), secret) || !strings.Contains(rec.Body.String(), `"hasCredentials":true`) {
		t.Fatalf("POST: %d %s", rec.Code, rec.Body)
	}
	rec = do(t, h, http.MethodPut, "/v1/sites/ostack", map[string]any{"labels": map[string]string{"cloud": "x"},
		"openstack": map[string]any{"authURL": "http://127.0.0.1:1/v3", "region": "RegionTwo", "username": "u", "projectName": "p"}})
	if rec.Code != 200 || strings.Contains(rec.Body.String(), secret) || !strings.Contains(rec.Body.String(), `"region":"RegionTwo"`) {
		t.Fatalf("PUT keeping the password: %d %s", rec.Code, rec.Body)
	}
	for _, path := range []string{"/v1/sites", "/v1/sites/ostack"} {
		if rec := do(t, h, http.MethodGet, path, nil); strings.Contains(rec.Body.String(), secret) {
			t.Fatalf("GET %s shows the password", path)
		}
	}
	if strings.Contains(logs.String(), secret) {
		t.Fatal("the log holds the password")
	}
	if rec := do(t, h, http.MethodDelete, "/v1/sites/ostack", nil); rec.Code != 204 {
		t.Fatalf("delete: %d %s", rec.Code, rec.Body)
	}
}

// Credentials are write-only: no response and no log line carries them.
func TestCredentialsAreWriteOnly(t *testing.T) {
	h := newAPI(t)
	addSite(t, h, "berlin")
	for _, path := range []string{"/v1/sites", "/v1/sites/berlin"} {
		rec := do(t, h, http.MethodGet, path, nil)
		if rec.Code != 200 || strings.Contains(rec.Body.String(), secret) || strings.Contains(rec.Body.String(), "kubeconfig\"") {
			t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body)
		}
		if !strings.Contains(rec.Body.String(), `"hasCredentials":true`) {
			t.Fatalf("GET %s does not say credentials are set: %s", path, rec.Body)
		}
	}
	rec := do(t, h, http.MethodPut, "/v1/sites/berlin", map[string]any{"labels": map[string]string{"region": "de"}, "kubernetes": map[string]any{}})
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), `"region":"de"`) || !strings.Contains(rec.Body.String(), `"hasCredentials":true`) {
		t.Fatalf("PUT keeping credentials: %d %s", rec.Code, rec.Body)
	}
	if strings.Contains(logs.String(), secret) {
		t.Fatal("the log holds a credential")
	}
}

// Every route is in the OpenAPI document and every operation of the document is a route; the
// status page's (/ui: HTML for browsers, not part of the API) are not.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	h := newAPI(t)
	var doc struct {
		Paths map[string]map[string]any `json:"paths"`
	}
	if err := yaml.Unmarshal(api.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			if method != "parameters" {
				// Echo routes {id}:{action} as {id}, and the handler splits the two.
				path = strings.Replace(path, "{id}:{action}", "{id}", 1)
				documented[strings.ToUpper(method)+" "+path] = true
			}
		}
	}
	served := map[string]bool{}
	for _, r := range h.Routes() {
		path := r.Path
		if path == "/ui" || strings.HasPrefix(path, "/ui/") {
			continue
		}
		for _, seg := range strings.Split(path, "/") {
			if strings.HasPrefix(seg, ":") {
				path = strings.Replace(path, seg, "{"+seg[1:]+"}", 1)
			}
		}
		served[r.Method+" "+path] = true
	}
	var missing, extra []string
	for k := range served {
		if !documented[k] {
			missing = append(missing, k)
		}
	}
	for k := range documented {
		if !served[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing)+len(extra) > 0 {
		t.Fatalf("routes not documented: %v\ndocumented but not served: %v", missing, extra)
	}
	if rec := do(t, h, http.MethodGet, "/openapi.yaml", nil); rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), api.OpenAPI()) {
		t.Fatalf("GET /openapi.yaml: %d", rec.Code)
	}
	if rec := do(t, h, http.MethodGet, "/readyz", nil); rec.Code != 200 {
		t.Fatalf("readyz without a Ready check: %d %s", rec.Code, rec.Body)
	}
}
