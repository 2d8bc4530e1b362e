package e2e

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	historypb "go.temporal.io/api/history/v1"
	sdkclient "go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/client"
	"github.com/cheops-io/cheops/workflows"
)

// Real histories replay against the current workflow code: an eventual resource created, updated
// and deleted on two sites, and a transactional one whose second generation site-2 rejects, rolled
// back (site-1 put back, site-2's record restored) then deleted. With CHEOPS_RECORD_HISTORY=<name>
// they are also written to workflows/testdata as history-<name>-eventual.json and
// history-<name>-transactional.json, where the unit replay test keeps checking them, so a
// non-deterministic change to the workflow fails `go test ./workflows`.
func TestRecordedHistoryReplays(t *testing.T) {
	r := create(t, "history", configMap("history", "a"), "site-1", "site-2")
	waitReady(t, r.ID, 1)
	if code, out := call(http.MethodPut, "/v1/resources/"+r.ID, map[string]any{"manifest": configMap("history", "b")}, nil); code != http.StatusOK {
		t.Fatalf("update: %d %s", code, out)
	}
	waitReady(t, r.ID, 2)
	call(http.MethodDelete, "/v1/resources/"+r.ID, nil, nil)
	waitGone(t, r.ID)
	recordAndReplay(t, r.ID, "eventual")

	policy := &cheops.Policy{Consistency: cheops.Transactional, Timeout: cheops.Duration(20 * time.Second)}
	tx := post(t, client.ResourceRequest{Name: "history-tx", Manifest: raw(configMap("history-tx", "a")), Scope: onSites("site-1", "site-2"), Policy: policy})
	waitReady(t, tx.ID, 1)
	overrides := []cheops.Override{{Site: "site-2", Patch: raw(map[string]any{"metadata": map[string]any{"namespace": "history-nowhere"}})}}
	put(t, tx.ID, client.ResourceRequest{Manifest: raw(configMap("history-tx", "b")), Scope: onSites("site-1", "site-2"), Policy: policy,
		Overrides: &overrides})
	waitFor(t, tx.ID, 2*time.Minute, "RolledBack", func(r resource, _ int) bool { return r.State == "RolledBack" })
	remove(t, tx.ID)
	recordAndReplay(t, tx.ID, "transactional")
}

// recordAndReplay reads the history of the resource's workflow, writes it (to workflows/testdata
// when CHEOPS_RECORD_HISTORY names the recording) and replays it against the current code.
func recordAndReplay(t *testing.T, resourceID, kind string) {
	t.Helper()
	c, err := sdkclient.Dial(sdkclient.Options{HostPort: env.cheops.TemporalAddr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	var hist historypb.History
	iter := c.GetWorkflowHistory(ctx, workflows.WorkflowID(resourceID), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
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
	if name := os.Getenv("CHEOPS_RECORD_HISTORY"); name != "" {
		path = filepath.Join("..", "..", "workflows", "testdata", "history-"+name+"-"+kind+".json")
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	rep := worker.NewWorkflowReplayer()
	rep.RegisterWorkflow(workflows.ResourceWorkflow)
	if err := rep.ReplayWorkflowHistoryFromJSONFile(nil, path); err != nil {
		t.Fatalf("replay of a fresh %s history: %v", kind, err)
	}
}
