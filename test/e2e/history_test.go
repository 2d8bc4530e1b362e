package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/cheops-io/cheops/workflows"
)

// A real history (create, update, delete on two sites) replays against the current workflow code.
// With CHEOPS_UPDATE_TESTDATA=1 it is also written to workflows/testdata, where the unit replay
// test keeps checking it, so a non-deterministic change to the workflow fails `go test ./workflows`.
func TestRecordedHistoryReplays(t *testing.T) {
	r := create(t, "history", configMap("history", "a"), "site-1", "site-2")
	waitReady(t, r.ID, 1)
	if code, out := call(http.MethodPut, "/v1/resources/"+r.ID, map[string]any{"manifest": configMap("history", "b")}, nil); code != http.StatusOK {
		t.Fatalf("update: %d %s", code, out)
	}
	waitReady(t, r.ID, 2)
	call(http.MethodDelete, "/v1/resources/"+r.ID, nil, nil)
	waitGone(t, r.ID)

	c, err := client.Dial(client.Options{HostPort: env.cheops.TemporalAddr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	var hist historypb.History
	iter := c.GetWorkflowHistory(ctx, workflows.WorkflowID(r.ID), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		hist.Events = append(hist.Events, ev)
	}
	data, err := protojson.Marshal(&hist)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "history.json")
	if os.Getenv("CHEOPS_UPDATE_TESTDATA") == "1" {
		path = filepath.Join("..", "..", "workflows", "testdata", "resource_history.json")
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	rep := worker.NewWorkflowReplayer()
	rep.RegisterWorkflow(workflows.ResourceWorkflow)
	if err := rep.ReplayWorkflowHistoryFromJSONFile(nil, path); err != nil {
		t.Fatalf("replay of a fresh history: %v", err)
	}
}
