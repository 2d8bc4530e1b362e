package workflows

import (
	"context"
	"fmt"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"
)

// DefaultTaskQueue is the task queue cheops' workers poll.
const DefaultTaskQueue = "cheops"

// Client starts and steers resource workflows; the API and the worker's sweeper use it.
type Client struct {
	Temporal  client.Client
	TaskQueue string
}

func (c *Client) startOptions(resourceID string) client.StartWorkflowOptions {
	return client.StartWorkflowOptions{
		ID:                       WorkflowID(resourceID),
		TaskQueue:                c.TaskQueue,
		WorkflowIDReusePolicy:    enumspb.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
		WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING,
	}
}

// Ensure starts the resource's workflow unless it is already running; calling it again is harmless.
func (c *Client) Ensure(ctx context.Context, resourceID string) error {
	_, err := c.Temporal.ExecuteWorkflow(ctx, c.startOptions(resourceID), ResourceWorkflow, ResourceInput{ResourceID: resourceID})
	if err != nil {
		return fmt.Errorf("start workflow of resource %s: %w", resourceID, err)
	}
	return nil
}

// Apply tells the resource's workflow, starting it if needed, that generation is stored, and waits
// until the workflow has accepted it.
func (c *Client) Apply(ctx context.Context, resourceID string, generation int64) error {
	if err := c.Ensure(ctx, resourceID); err != nil {
		return err
	}
	h, err := c.Temporal.UpdateWorkflow(ctx, client.UpdateWorkflowOptions{
		WorkflowID:   WorkflowID(resourceID),
		UpdateName:   UpdateApply,
		Args:         []any{ApplyRequest{Generation: generation}},
		WaitForStage: client.WorkflowUpdateStageCompleted,
	})
	if err != nil {
		return fmt.Errorf("send generation %d to resource %s: %w", generation, resourceID, err)
	}
	return h.Get(ctx, nil)
}

// Delete tells the resource's workflow, starting it if needed, that a delete was accepted.
func (c *Client) Delete(ctx context.Context, resourceID string) error {
	_, err := c.Temporal.SignalWithStartWorkflow(ctx, WorkflowID(resourceID), SignalDelete, nil,
		c.startOptions(resourceID), ResourceWorkflow, ResourceInput{ResourceID: resourceID})
	if err != nil {
		return fmt.Errorf("signal delete to resource %s: %w", resourceID, err)
	}
	return nil
}

// Status queries the live status of the resource's workflow.
func (c *Client) Status(ctx context.Context, resourceID string) (Status, error) {
	var st Status
	v, err := c.Temporal.QueryWorkflow(ctx, WorkflowID(resourceID), "", QueryStatus)
	if err != nil {
		return st, err
	}
	return st, v.Get(&st)
}
