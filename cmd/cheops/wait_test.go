package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/client"
)

// delete --wait shows the resource Deleting and each replica leaving its site, then the end.
func TestDeleteWaitShowsEachStep(t *testing.T) {
	var polls atomic.Int32
	rep := func(site string, st cheops.ReplicaState) cheops.Replica {
		return cheops.Replica{Site: site, State: st, ObservedGeneration: 1}
	}
	steps := []client.Resource{
		{Resource: cheops.Resource{ID: "id", Name: "web"}, State: cheops.ResourceDeleting, Replicas: []cheops.Replica{rep("a", cheops.ReplicaReady), rep("b", cheops.ReplicaReady)}},
		{Resource: cheops.Resource{ID: "id", Name: "web"}, State: cheops.ResourceDeleting, Replicas: []cheops.Replica{rep("b", cheops.ReplicaDeleting)}},
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodDelete {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusAccepted)
			_ = json.NewEncoder(w).Encode(steps[0])
			return
		}
		n := int(polls.Add(1)) - 1
		if n >= len(steps) {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"type":"about:blank","title":"Not Found","status":404,"detail":"resource id does not exist"}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(steps[n])
	}))
	defer srv.Close()
	out, err := runCLI(t, "--server", srv.URL, "--token", "t", "delete", "web", "--wait")
	if err != nil {
		t.Fatalf("delete --wait: %v\n%s", err, out)
	}
	for _, want := range []string{"resource web: Deleting", "a                    removed", "Deleting  gen=1", "b                    removed", "resource web deleted"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
