package main

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/cheops-io/cheops/workflows"
)

// connect opens the clients the benchmark counts writes with: etcd's revision and Temporal's
// workflow histories.
func (b *bench) connect() error {
	var err error
	if b.etcd, err = clientv3.New(b.stack.etcd); err != nil {
		return fmt.Errorf("etcd: %w", err)
	}
	opts := b.stack.temporal
	opts.Logger = quietLogger{}
	if b.temporal, err = client.Dial(opts); err != nil {
		return fmt.Errorf("temporal: %w", err)
	}
	return nil
}

func (b *bench) close() {
	if b.etcd != nil {
		b.etcd.Close()
	}
	if b.temporal != nil {
		b.temporal.Close()
	}
}

// etcdRevision is etcd's store revision, which every write transaction moves by exactly one.
func (b *bench) etcdRevision(ctx context.Context) (int64, error) {
	resp, err := b.etcd.Get(ctx, "/bench-revision-probe")
	if err != nil {
		return 0, err
	}
	return resp.Header.Revision, nil
}

// historyEvents counts the events in the history of the resource's workflow, which must be
// running. The benchmark's resources are young: a workflow that already continued as new is
// refused rather than half counted.
func (b *bench) historyEvents(ctx context.Context, resourceID string) (int, error) {
	// A workflow that is not running has failed: its history would count a failure, not a generation.
	desc, err := b.temporal.DescribeWorkflowExecution(ctx, workflows.WorkflowID(resourceID), "")
	if err != nil {
		return 0, err
	}
	if st := desc.GetWorkflowExecutionInfo().GetStatus(); st != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		return 0, fmt.Errorf("the workflow of resource %s is %s, not running", resourceID, st)
	}
	it := b.temporal.GetWorkflowHistory(ctx, workflows.WorkflowID(resourceID), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	n := 0
	for it.HasNext() {
		ev, err := it.Next()
		if err != nil {
			return n, err
		}
		if a := ev.GetWorkflowExecutionStartedEventAttributes(); a != nil && a.GetContinuedExecutionRunId() != "" {
			return 0, fmt.Errorf("the workflow of resource %s continued as new: its history is not counted whole", resourceID)
		}
		n++
	}
	return n, nil
}

// quietLogger drops the Temporal client's own log lines, which would interleave with the tables.
type quietLogger struct{}

func (quietLogger) Debug(string, ...any) {}
func (quietLogger) Info(string, ...any)  {}
func (quietLogger) Warn(string, ...any)  {}
func (quietLogger) Error(string, ...any) {}
