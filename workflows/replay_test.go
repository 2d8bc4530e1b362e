package workflows

import (
	"testing"

	"go.temporal.io/sdk/worker"
)

// testdata/resource_history.json is a real history (create, update, delete of a ConfigMap on two
// sites) recorded by the end-to-end test TestRecordedHistoryReplays. Replaying it against today's
// code catches a change that would break running workflows. Re-record it deliberately, with
// CHEOPS_UPDATE_TESTDATA=1, only for a change that is versioned or safe for running histories.
func TestReplayRecordedHistory(t *testing.T) {
	rep := worker.NewWorkflowReplayer()
	rep.RegisterWorkflow(ResourceWorkflow)
	if err := rep.ReplayWorkflowHistoryFromJSONFile(nil, "testdata/resource_history.json"); err != nil {
		t.Fatal(err)
	}
}
