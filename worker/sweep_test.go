package worker

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/devstack"
	"github.com/cheops-io/cheops/internal/etcdtest"
	"github.com/cheops-io/cheops/workflows"
)

// The sweep starts the workflow of each resource Temporal does not list as running, and only
// those: against a real Temporal server, a resource whose workflow runs is left alone, the others
// are started, and a second sweep starts nothing.
func TestSweepStartsOnlyMissingWorkflows(t *testing.T) {
	if testing.Short() {
		t.Skip("needs a real Temporal server (-short)")
	}
	ts, err := devstack.StartTemporal(devstack.TemporalOptions{UIPort: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer ts.Stop()
	c, err := client.Dial(client.Options{HostPort: ts.Address})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// No worker polls this task queue: the workflows stay running, their first task pending.
	wc := &workflows.Client{Temporal: c, TaskQueue: "sweep-test"}
	ctx := context.Background()
	s := etcdtest.Store(t)
	for _, id := range []string{"r1", "r2", "r3"} {
		if _, _, err := s.CreateResource(ctx, cheops.Resource{ID: id, Name: id, Driver: cheops.DriverKubernetes, Generation: 1,
			Manifest: json.RawMessage(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := wc.Ensure(ctx, "r1"); err != nil {
		t.Fatal(err)
	}
	waitRunning(t, wc, "r1")
	if n, err := SweepOnce(ctx, s, wc, false); err != nil || n != 2 {
		t.Fatalf("first sweep started %d workflows, %v; want r2 and r3 only", n, err)
	}
	waitRunning(t, wc, "r1", "r2", "r3")
	if n, err := SweepOnce(ctx, s, wc, false); err != nil || n != 0 {
		t.Fatalf("second sweep started %d workflows, %v; want none", n, err)
	}
	if reconciles(t, c, "r1")+reconciles(t, c, "r2") != 0 {
		t.Fatal("a sweep without wake signalled a workflow")
	}

	// A delete recorded but never told to r2's workflow (its API died first), and r3 declared long
	// ago: a waking sweep signals r2's workflow to re-plan, and only it.
	if _, err := s.UpdateResource(ctx, "r2", func(r *cheops.Resource) (*cheops.Event, error) {
		r.Deletion = &cheops.Deletion{RequestedAt: time.Now()}
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateResource(ctx, "r3", func(r *cheops.Resource) (*cheops.Event, error) {
		r.GenerationAt = time.Now().Add(-time.Hour)
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := SweepOnce(ctx, s, wc, true); err != nil {
		t.Fatal(err)
	}
	if n := reconciles(t, c, "r2"); n != 1 {
		t.Fatalf("r2's workflow got %d reconcile signals; want 1", n)
	}
	if n := reconciles(t, c, "r3"); n != 0 {
		t.Fatalf("r3's workflow got %d reconcile signals; want none (its generation is old)", n)
	}
}

// reconciles counts the reconcile signals in a resource workflow's history.
func reconciles(t *testing.T, c client.Client, id string) int {
	t.Helper()
	it := c.GetWorkflowHistory(context.Background(), workflows.WorkflowID(id), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	n := 0
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		if a := ev.GetWorkflowExecutionSignaledEventAttributes(); a != nil && a.GetSignalName() == workflows.SignalReconcile {
			n++
		}
	}
	return n
}

// waitRunning waits until Temporal's visibility lists the resources' workflows as running.
func waitRunning(t *testing.T, wc *workflows.Client, ids ...string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		running, err := wc.Running(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		all := true
		for _, id := range ids {
			all = all && running[id]
		}
		if all {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("running %v after 30 s; want %v", running, ids)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
