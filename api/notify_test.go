package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
)

// A change is stored before the workflow is told of it: when the orchestrator cannot be reached,
// POST, PUT, PATCH and DELETE still succeed (the worker's sweeper and the workflow's periodic
// re-plan pick the change up), each message was tried with the right generation, and the failure is
// logged.
func TestChangesSucceedWhenTheWorkflowCannotBeTold(t *testing.T) {
	rec := &recorder{fail: errors.New("orchestrator down for the test")}
	h := newAPIWith(t, rec)
	addSite(t, h, "paris")
	res := do(t, h, http.MethodPost, "/v1/resources", map[string]any{"name": "notify", "manifest": cm("notify"), "scope": map[string]any{"sites": []string{"paris"}}})
	if res.Code != http.StatusCreated {
		t.Fatalf("POST: %d %s", res.Code, res.Body)
	}
	var r struct{ ID string }
	_ = json.Unmarshal(res.Body.Bytes(), &r)
	if res := do(t, h, http.MethodPut, "/v1/resources/notify", map[string]any{"policy": map[string]any{"timeout": "1m"}}, "If-Match", `"1"`); res.Code != http.StatusOK {
		t.Fatalf("PUT: %d %s", res.Code, res.Body)
	}
	if res := do(t, h, http.MethodPatch, "/v1/resources/notify", `{"policy":{"timeout":"2m"}}`, "Content-Type", mergePatch, "If-Match", `"2"`); res.Code != http.StatusOK {
		t.Fatalf("PATCH: %d %s", res.Code, res.Body)
	}
	if res := do(t, h, http.MethodDelete, "/v1/resources/notify", nil); res.Code != http.StatusAccepted {
		t.Fatalf("DELETE: %d %s", res.Code, res.Body)
	}
	want := []call{{Op: "Ensure", ResourceID: r.ID}, {Op: "Apply", ResourceID: r.ID, Generation: 2},
		{Op: "Apply", ResourceID: r.ID, Generation: 3}, {Op: "Delete", ResourceID: r.ID}}
	if calls := rec.Calls(); !slices.Equal(calls, want) {
		t.Fatalf("the workflow was told %+v, want %+v", calls, want)
	}
	if !strings.Contains(logs.String(), "orchestrator down for the test") {
		t.Fatal("the failure to tell the workflow is not logged")
	}
}

// An action is a signal of the resource's workflow, by ID or name; an action on a resource being
// deleted is a 409 and sends nothing.
func TestActionsSignalTheWorkflow(t *testing.T) {
	rec := &recorder{}
	h := newAPIWith(t, rec)
	addSite(t, h, "paris")
	res := do(t, h, http.MethodPost, "/v1/resources", map[string]any{"name": "steer", "manifest": cm("steer"), "scope": map[string]any{"sites": []string{"paris"}}})
	if res.Code != http.StatusCreated {
		t.Fatalf("POST: %d %s", res.Code, res.Body)
	}
	var r struct{ ID string }
	_ = json.Unmarshal(res.Body.Bytes(), &r)
	rec.Calls()
	for _, path := range []string{"/v1/resources/steer:pause", "/v1/resources/" + r.ID + ":resume"} {
		if res := do(t, h, http.MethodPost, path, nil); res.Code != http.StatusAccepted {
			t.Fatalf("POST %s: %d %s", path, res.Code, res.Body)
		}
	}
	want := []call{{Op: "Signal", ResourceID: r.ID, Signal: "pause"}, {Op: "Signal", ResourceID: r.ID, Signal: "resume"}}
	if calls := rec.Calls(); !slices.Equal(calls, want) {
		t.Fatalf("the workflow was told %+v, want %+v", calls, want)
	}
	if res := do(t, h, http.MethodPost, "/v1/resources/steer", nil); res.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST without an action: %d %s", res.Code, res.Body)
	}
	if res := do(t, h, http.MethodDelete, "/v1/resources/steer", nil); res.Code != http.StatusAccepted {
		t.Fatalf("DELETE: %d %s", res.Code, res.Body)
	}
	rec.Calls()
	if res := do(t, h, http.MethodPost, "/v1/resources/steer:retry", nil); res.Code != http.StatusConflict {
		t.Fatalf("action while deleting: %d %s", res.Code, res.Body)
	}
	if calls := rec.Calls(); len(calls) != 0 {
		t.Fatalf("a refused action told the workflow %+v", calls)
	}
}

// A client that goes away once its change is stored does not keep the workflow from being told:
// the message is sent under a context of its own, not the request's (a PUT whose client left used
// to reach its workflow only at the next periodic re-plan, five minutes later).
func TestAClientGoingAwayDoesNotKeepTheWorkflowUninformed(t *testing.T) {
	rec := &recorder{}
	h := newAPIWith(t, rec)
	addSite(t, h, "paris")
	send := func(method, path string, body any) int {
		t.Helper()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		rec.before = cancel // the client hangs up while the API tells the workflow
		defer func() { rec.before = nil }()
		data, _ := json.Marshal(body)
		req := httptest.NewRequestWithContext(ctx, method, path, bytes.NewReader(data))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer admin-token")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code
	}
	send(http.MethodPost, "/v1/resources", map[string]any{"name": "gone", "manifest": cm("gone"), "scope": map[string]any{"sites": []string{"paris"}}})
	send(http.MethodPut, "/v1/resources/gone", map[string]any{"policy": map[string]any{"timeout": "1m"}})
	send(http.MethodPost, "/v1/resources/gone:pause", nil)
	send(http.MethodDelete, "/v1/resources/gone", nil)
	calls := rec.Calls()
	var ops []string
	for _, c := range calls {
		ops = append(ops, c.Op)
		if c.Canceled {
			t.Errorf("%s was sent under the request's context, which had ended", c.Op)
		}
	}
	if want := []string{"Ensure", "Apply", "Signal", "Delete"}; !slices.Equal(ops, want) {
		t.Fatalf("the workflow was told %v, want %v", ops, want)
	}
}
