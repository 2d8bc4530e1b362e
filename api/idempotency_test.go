package api_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/cheops-io/cheops/api"
)

// An Idempotency-Key stands for one whole request: a retry that differs in anything the user
// declared is refused with a 422 naming the key, and a retry that only spells out the defaults is
// the same request.
func TestIdempotencyKeyComparesTheWholeRequest(t *testing.T) {
	rec := &recorder{}
	h := newAPIWith(t, rec)
	addSite(t, h, "paris")
	addSite(t, h, "lyon")
	body := func(change func(map[string]any)) map[string]any {
		b := map[string]any{"name": "idem-whole", "manifest": cm("idem-whole"), "scope": map[string]any{"sites": []string{"paris"}}}
		if change != nil {
			change(b)
		}
		return b
	}
	first := do(t, h, http.MethodPost, "/v1/resources", body(nil), "Idempotency-Key", "whole-1")
	if first.Code != http.StatusCreated {
		t.Fatalf("POST: %d %s", first.Code, first.Body)
	}
	var created struct{ ID string }
	_ = json.Unmarshal(first.Body.Bytes(), &created)

	for _, c := range []struct {
		name   string
		change func(map[string]any)
	}{
		{"scope", func(b map[string]any) { b["scope"] = map[string]any{"sites": []string{"paris", "lyon"}} }},
		{"scope form", func(b map[string]any) { b["scope"] = map[string]any{"expression": "paris"} }},
		{"policy consistency", func(b map[string]any) { b["policy"] = map[string]any{"consistency": "transactional"} }},
		{"policy timeout", func(b map[string]any) { b["policy"] = map[string]any{"timeout": "2m"} }},
		{"overrides", func(b map[string]any) {
			b["overrides"] = []any{map[string]any{"site": "paris", "patch": map[string]any{"data": map[string]any{"k": "v"}}}}
		}},
		{"manifest", func(b map[string]any) {
			b["manifest"] = map[string]any{"apiVersion": "v1", "kind": "Secret", "metadata": map[string]any{"name": "idem-whole"}}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := do(t, h, http.MethodPost, "/v1/resources", body(c.change), "Idempotency-Key", "whole-1")
			if res.Code != http.StatusUnprocessableEntity {
				t.Fatalf("status %d, want 422: %s", res.Code, res.Body)
			}
			var p api.Problem
			if err := json.Unmarshal(res.Body.Bytes(), &p); err != nil || len(p.Errors) == 0 || p.Errors[0].Field != "Idempotency-Key" {
				t.Fatalf("not a problem naming Idempotency-Key: %s", res.Body)
			}
			if res.Header().Get("Idempotent-Replayed") != "" {
				t.Fatal("a refused request says it was replayed")
			}
		})
	}

	if calls := rec.Calls(); !slices.Equal(calls, []call{{Op: "Ensure", ResourceID: created.ID}}) {
		t.Fatalf("the workflows were told %+v; only the first POST starts one", calls)
	}

	// The same request with its defaults spelled out and its manifest spaced differently is a replay.
	same := `{"name": "idem-whole", "driver": "kubernetes",
		"manifest": {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "idem-whole"}},
		"scope": {"sites": ["paris"]}, "policy": {"consistency": "eventual"}}`
	res := do(t, h, http.MethodPost, "/v1/resources", same, "Idempotency-Key", "whole-1")
	var replayed struct {
		ID         string
		Generation int64
	}
	_ = json.Unmarshal(res.Body.Bytes(), &replayed)
	if res.Code != http.StatusCreated || replayed.ID != created.ID || res.Header().Get("Idempotent-Replayed") != "true" || replayed.Generation != 1 {
		t.Fatalf("replay: %d replayed=%q %s", res.Code, res.Header().Get("Idempotent-Replayed"), res.Body)
	}
	if rec := do(t, h, http.MethodDelete, "/v1/resources/idem-whole", nil); rec.Code != http.StatusAccepted {
		t.Fatalf("delete: %d %s", rec.Code, rec.Body)
	}
}
