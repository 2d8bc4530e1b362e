package workflows

import (
	"path/filepath"
	"testing"

	"go.temporal.io/sdk/worker"
)

// testdata/*.json are real histories recorded by the end-to-end test TestRecordedHistoryReplays:
// resource_history.json before waves (one activity per site), history-waves-*.json with waves
// (eventual: apply and delete waves; transactional: a saga applied and compensated in waves), and
// history-deps-dependencies.json, whose replica waited for its dependsOn past a round (the
// "dependencies" version).
// Replaying them against today's code catches a change that would break running workflows. Record
// new ones deliberately (CHEOPS_RECORD_HISTORY=<name> make e2e) and keep the old: workflows that
// started under older code still run.
func TestReplayRecordedHistory(t *testing.T) {
	files, err := filepath.Glob("testdata/*.json")
	if err != nil || len(files) < 3 {
		t.Fatalf("recorded histories %v, %v; want at least the three in testdata", files, err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			rep := worker.NewWorkflowReplayer()
			rep.RegisterWorkflow(ResourceWorkflow)
			if err := rep.ReplayWorkflowHistoryFromJSONFile(nil, f); err != nil {
				t.Fatal(err)
			}
		})
	}
}
