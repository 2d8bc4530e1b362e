package api_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/api"
	"github.com/cheops-io/cheops/drivers/kubernetes"
	"github.com/cheops-io/cheops/drivers/openstack"
	"github.com/cheops-io/cheops/metrics"
)

// newAPIConfig is newAPIWith with the Config changed by edit.
func newAPIConfig(t *testing.T, o api.Orchestrator, edit func(*api.Config)) *echo.Echo {
	t.Helper()
	st := newStore(t)
	cfg := api.Config{
		Store:        st,
		Orchestrator: o,
		Metrics:      metrics.New(st),
		Drivers:      map[cheops.DriverName]cheops.Driver{cheops.DriverKubernetes: kubernetes.New(), cheops.DriverOpenStack: openstack.New()},
		Log:          slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Auth:         testTokens,
	}
	edit(&cfg)
	return api.New(cfg)
}

// sizedConfigMap is a ConfigMap manifest of exactly n bytes of compact JSON, its data value made
// of fill.
func sizedConfigMap(t *testing.T, name string, n int, fill string) json.RawMessage {
	t.Helper()
	m, _ := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": name}, "data": map[string]any{"k": ""}})
	pad := n - len(m)
	if pad < 0 || pad%len(fill) != 0 {
		t.Fatalf("cannot make %d bytes of %q", n, fill)
	}
	return json.RawMessage(strings.Replace(string(m), `"k":""`, `"k":"`+strings.Repeat(fill, pad/len(fill))+`"`, 1))
}

// A declaration the store cannot hold is a 413 naming the manifest before anything is written;
// one just under the bound is stored, by the real etcd, in one transaction with its spec.
func TestDeclarationSizeIsBoundedBeforeAnythingIsWritten(t *testing.T) {
	rec := &recorder{}
	h := newAPIConfig(t, rec, func(c *api.Config) { c.BodyLimit = 4 << 20 })
	addSite(t, h, "paris")
	body := func(name string, manifest json.RawMessage) string {
		b, _ := json.Marshal(map[string]any{"name": name, "manifest": manifest, "scope": map[string]any{"sites": []string{"paris"}}})
		return string(b)
	}
	// 130 KiB of "<" is stored unescaped: 130 KiB.
	angles := sizedConfigMap(t, "angles", 130<<10, "<")
	if res := do(t, h, http.MethodPost, "/v1/resources", body("angles", angles)); res.Code != http.StatusCreated {
		t.Fatalf("130 KiB of '<': %d %.300s", res.Code, res.Body)
	}
	under := sizedConfigMap(t, "under", api.MaxDeclarationBytes, "a")
	if res := do(t, h, http.MethodPost, "/v1/resources", body("under", under)); res.Code != http.StatusCreated {
		t.Fatalf("a manifest of %d bytes: %d %.300s", len(under), res.Code, res.Body)
	}
	if res := do(t, h, http.MethodGet, "/v1/resources/under", nil); res.Code != http.StatusOK || !strings.Contains(res.Body.String(), string(under)) {
		t.Fatalf("GET the largest manifest: %d", res.Code)
	}
	rec.Calls()
	for _, c := range []struct {
		name, method, path, body string
		header                   []string
	}{
		{"one byte over", "POST", "/v1/resources", body("over", sizedConfigMap(t, "over", api.MaxDeclarationBytes+1, "a")), nil},
		{"one override byte over", "PUT", "/v1/resources/under", `{"overrides":[{"site":"paris","patch":{}}]}`, nil},
		{"twice the bound", "POST", "/v1/resources", body("over", sizedConfigMap(t, "over", 2*api.MaxDeclarationBytes, "a")), nil},
		{"grown by a PUT", "PUT", "/v1/resources/angles", body("angles", sizedConfigMap(t, "angles", api.MaxDeclarationBytes+16, "<")), nil},
		{"grown by a PATCH", "PATCH", "/v1/resources/angles", `{"manifest":{"data":{"k":"` + strings.Repeat(">", api.MaxDeclarationBytes) + `"}}}`, []string{"Content-Type", "application/merge-patch+json"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := do(t, h, c.method, c.path, c.body, c.header...)
			var p api.Problem
			_ = json.Unmarshal(res.Body.Bytes(), &p)
			if res.Code != http.StatusRequestEntityTooLarge || len(p.Errors) == 0 || p.Errors[0].Field != "manifest" {
				t.Fatalf("status %d, want 413 naming manifest: %.300s", res.Code, res.Body)
			}
		})
	}
	for name, gen := range map[string]string{"under": `"generation":1`, "angles": `"generation":1`} {
		if res := do(t, h, http.MethodGet, "/v1/resources/"+name, nil); !strings.Contains(res.Body.String(), gen) {
			t.Errorf("a refused change reached %s: %.300s", name, res.Body)
		}
	}
	if res := do(t, h, http.MethodGet, "/v1/resources/over", nil); res.Code != http.StatusNotFound {
		t.Errorf("a refused declaration was stored: %d", res.Code)
	}
	if calls := rec.Calls(); len(calls) != 0 {
		t.Errorf("refused declarations told the workflows %+v", calls)
	}
	for _, name := range []string{"under", "angles"} {
		do(t, h, http.MethodDelete, "/v1/resources/"+name, nil)
	}
}
