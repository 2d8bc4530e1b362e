package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
)

// fakeAPI holds one resource, "web", and changes it the way the API does: PUT replaces each of
// manifest, scope, overrides and policy that the body carries, whole; PATCH applies the body as a
// JSON merge patch (RFC 7386). It records every request that changes the resource.
type fakeAPI struct {
	mu         sync.Mutex
	decl       map[string]json.RawMessage // manifest, scope, policy as stored
	generation int64
	changes    []recordedRequest
}

type recordedRequest struct {
	Method, ContentType string
	// Precondition is If-Match on a change, Idempotency-Key on a create.
	Precondition string
	Body         []byte
}

func newFakeAPI(t *testing.T, stored string) (*fakeAPI, string) {
	t.Helper()
	f := &fakeAPI{generation: 4}
	if err := json.Unmarshal([]byte(stored), &f.decl); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Method == http.MethodPost && r.URL.Path == "/v1/resources" {
		body, _ := io.ReadAll(r.Body)
		f.changes = append(f.changes, recordedRequest{r.Method, r.Header.Get("Content-Type"), r.Header.Get("Idempotency-Key"), body})
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"id":"id-new","name":"fresh","generation":1,"state":"Pending","replicas":[]}`)
		return
	}
	if r.URL.Path != "/v1/resources/web" && r.URL.Path != "/v1/resources/id-web" {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"type":"about:blank","title":"Not Found","status":404,"detail":"resource does not exist"}`)
		return
	}
	body, _ := io.ReadAll(r.Body)
	switch r.Method {
	case http.MethodGet:
	case http.MethodPut, http.MethodPatch:
		f.changes = append(f.changes, recordedRequest{r.Method, r.Header.Get("Content-Type"), r.Header.Get("If-Match"), body})
		// As the API reads it: quoted or not, weak or not.
		if m := r.Header.Get("If-Match"); m != "" && strings.Trim(strings.TrimPrefix(m, "W/"), `"`) != strconv.FormatInt(f.generation, 10) {
			w.WriteHeader(http.StatusPreconditionFailed)
			return
		}
		cur, _ := json.Marshal(f.decl)
		var next []byte
		if r.Method == http.MethodPatch {
			var err error
			if next, err = jsonpatch.MergePatch(cur, body); err != nil {
				w.WriteHeader(http.StatusBadRequest)
				return
			}
		} else {
			var req map[string]json.RawMessage
			_ = json.Unmarshal(body, &req)
			merged := map[string]json.RawMessage{}
			_ = json.Unmarshal(cur, &merged)
			for _, k := range []string{"manifest", "scope", "overrides", "policy"} {
				if v, ok := req[k]; ok {
					merged[k] = v
				}
			}
			next, _ = json.Marshal(merged)
		}
		f.decl = nil
		_ = json.Unmarshal(next, &f.decl)
		f.generation++
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	view := map[string]any{"id": "id-web", "name": "web", "driver": "kubernetes", "generation": f.generation,
		"state": "Ready", "replicas": []any{}}
	for k, v := range f.decl {
		view[k] = v
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(view)
}

// policy returns the stored policy.
func (f *fakeAPI) policy(t *testing.T) map[string]any {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	var p map[string]any
	if err := json.Unmarshal(f.decl["policy"], &p); err != nil {
		t.Fatalf("stored policy %s: %v", f.decl["policy"], err)
	}
	return p
}

// runCLI runs the cheops command line in-process and returns its combined output.
func runCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	root := newRoot()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(args)
	err := root.Execute()
	return out.String(), err
}

func writeManifest(t *testing.T, text string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "web.yaml")
	if err := os.WriteFile(file, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

const storedWeb = `{"manifest":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"web"},"data":{"v":"1","gone":"x"}},
"scope":{"sites":["paris","berlin"]},"policy":{"consistency":"transactional","timeout":"5m0s","retryMax":"1m0s"}}`

// `cheops apply --policy-timeout 2m` on an existing transactional resource changes the timeout and
// nothing else of the policy: the flags not given keep their current values.
func TestApplyKeepsThePolicyFieldsNotGiven(t *testing.T) {
	api, url := newFakeAPI(t, storedWeb)
	file := writeManifest(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\ndata: {v: \"2\"}\n")
	out, err := runCLI(t, "--server", url, "apply", "-f", file, "--policy-timeout", "2m")
	if err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	if len(api.changes) != 1 {
		t.Fatalf("apply sent %d changes, want 1", len(api.changes))
	}
	sent := api.changes[0]
	var body struct {
		Policy map[string]any `json:"policy"`
	}
	if err := json.Unmarshal(sent.Body, &body); err != nil {
		t.Fatalf("%s body %s: %v", sent.Method, sent.Body, err)
	}
	if c, ok := body.Policy["consistency"]; ok && c != "transactional" {
		t.Errorf("apply --policy-timeout sent policy.consistency = %q in %s %s; a flag not given must not change it", c, sent.Method, sent.Body)
	}
	pol := api.policy(t)
	if pol["consistency"] != "transactional" || pol["retryMax"] != "1m0s" {
		t.Errorf("after apply --policy-timeout 2m the policy is %v; want consistency transactional and retryMax 1m0s kept", pol)
	}
	if d, _ := pol["timeout"].(string); d != "2m" && d != "2m0s" {
		t.Errorf("policy.timeout = %v after apply --policy-timeout 2m", pol["timeout"])
	}
	if sent.Method != http.MethodPatch || sent.ContentType != "application/merge-patch+json" || sent.Precondition != `"4"` {
		t.Errorf("apply sent %s (%s, If-Match %s); want a merge PATCH conditioned on the generation it read, \"4\"", sent.Method, sent.ContentType, sent.Precondition)
	}
	// The manifest is the file's: a key the file no longer has is gone.
	var m struct {
		Data map[string]string `json:"data"`
	}
	_ = json.Unmarshal(api.decl["manifest"], &m)
	if m.Data["v"] != "2" || len(m.Data) != 1 {
		t.Errorf("manifest data after apply = %v, want exactly the file's {v: 2}", m.Data)
	}
	if !strings.Contains(out, "generation 5") {
		t.Errorf("apply output does not give the new generation:\n%s", out)
	}
}

// With no scope or policy flag, apply changes only the manifest: scope and policy stay as they are.
func TestApplyWithoutFlagsChangesOnlyTheManifest(t *testing.T) {
	api, url := newFakeAPI(t, storedWeb)
	file := writeManifest(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\ndata: {v: \"3\"}\n")
	if out, err := runCLI(t, "--server", url, "apply", "-f", file); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	var body map[string]json.RawMessage
	_ = json.Unmarshal(api.changes[0].Body, &body)
	for _, k := range []string{"scope", "policy", "overrides", "name", "driver"} {
		if v, ok := body[k]; ok {
			t.Errorf("apply without flags sent %s: %s", k, v)
		}
	}
	if pol := api.policy(t); pol["consistency"] != "transactional" || pol["timeout"] != "5m0s" {
		t.Errorf("policy after a manifest-only apply = %v", pol)
	}
	var sc map[string]any
	_ = json.Unmarshal(api.decl["scope"], &sc)
	if len(sc) != 1 || sc["sites"] == nil {
		t.Errorf("scope after a manifest-only apply = %v", sc)
	}
}

// A scope flag replaces the scope whole: a selector replaces a list of sites, it does not join it.
func TestApplyScopeFlagReplacesTheScope(t *testing.T) {
	api, url := newFakeAPI(t, storedWeb)
	file := writeManifest(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\ndata: {v: \"1\"}\n")
	if out, err := runCLI(t, "--server", url, "apply", "-f", file, "--selector", "region=eu", "--consistency", "eventual"); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	var sc map[string]any
	_ = json.Unmarshal(api.decl["scope"], &sc)
	if len(sc) != 1 || sc["selector"] != "region=eu" {
		t.Errorf("scope after apply --selector = %v, want only the selector", sc)
	}
	if pol := api.policy(t); pol["consistency"] != "eventual" || pol["timeout"] != "5m0s" {
		t.Errorf("policy after apply --consistency eventual = %v, want eventual with the timeout kept", pol)
	}
}

// A new resource gets the policy fields whose flags are given, and an idempotency key.
func TestApplyCreatesWithThePolicyFlagsGiven(t *testing.T) {
	api, url := newFakeAPI(t, storedWeb)
	file := writeManifest(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fresh}\n")
	if out, err := runCLI(t, "--server", url, "apply", "-f", file, "--sites", "paris,berlin", "--policy-timeout", "2m"); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	if len(api.changes) != 1 || api.changes[0].Method != http.MethodPost {
		t.Fatalf("apply of a new resource sent %+v, want one POST", api.changes)
	}
	sent := api.changes[0]
	want := `{"name":"fresh","driver":"kubernetes","manifest":{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"fresh"}},"scope":{"sites":["paris","berlin"]},"policy":{"timeout":"2m0s"}}`
	if string(sent.Body) != want {
		t.Errorf("POST body =\n%s\nwant\n%s", sent.Body, want)
	}
	if sent.Precondition == "" {
		t.Error("POST without an Idempotency-Key")
	}
}

func TestApplyRefusesAnEmptyConsistency(t *testing.T) {
	api, url := newFakeAPI(t, storedWeb)
	file := writeManifest(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\n")
	out, err := runCLI(t, "--server", url, "apply", "-f", file, "--consistency", "")
	if err == nil || !strings.Contains(out, "--consistency") || len(api.changes) != 0 {
		t.Fatalf("apply --consistency '': %v, %d changes sent\n%s; want a usage error and nothing sent", err, len(api.changes), out)
	}
}

func TestApplyNeedsAName(t *testing.T) {
	api, url := newFakeAPI(t, storedWeb)
	file := writeManifest(t, "apiVersion: v1\nkind: ConfigMap\ndata: {v: \"1\"}\n")
	out, err := runCLI(t, "--server", url, "apply", "-f", file, "--sites", "paris")
	if err == nil || !strings.Contains(out, "--name") || len(api.changes) != 0 {
		t.Fatalf("apply of a manifest without a name: %v, %d changes sent\n%s; want a usage error naming --name", err, len(api.changes), out)
	}
}

// --conflict and --adopted set policy.conflict and policy.adopted, on a new resource and on an
// existing one (the rest of the policy kept); a value they do not know is a usage error.
func TestApplyConflictFlags(t *testing.T) {
	api, url := newFakeAPI(t, storedWeb)
	fresh := writeManifest(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fresh}\n")
	if out, err := runCLI(t, "--server", url, "apply", "-f", fresh, "--sites", "paris", "--conflict", "adopt", "--adopted", "delete"); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	if body := string(api.changes[0].Body); !strings.Contains(body, `"policy":{"conflict":"adopt","adopted":"delete"}`) {
		t.Errorf("POST body %s; want policy conflict adopt, adopted delete", body)
	}
	web := writeManifest(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\n")
	if out, err := runCLI(t, "--server", url, "apply", "-f", web, "--conflict", "adopt"); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	if pol := api.policy(t); pol["conflict"] != "adopt" || pol["consistency"] != "transactional" || pol["adopted"] != nil {
		t.Errorf("policy after apply --conflict adopt = %v; want conflict adopt, the rest kept", pol)
	}
	n := len(api.changes)
	for _, args := range [][]string{{"--conflict", "overwrite"}, {"--adopted", "orphan"}} {
		out, err := runCLI(t, append([]string{"--server", url, "apply", "-f", web}, args...)...)
		if err == nil || !strings.Contains(out, args[0]) || len(api.changes) != n {
			t.Errorf("apply %v: %v, %d changes sent\n%s; want a usage error naming the flag and nothing sent", args, err, len(api.changes)-n, out)
		}
	}
}
