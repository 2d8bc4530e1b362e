package workflows

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/operatorservice/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/api/workflowservice/v1"
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

// Apply tells the resource's workflow, starting it if needed, that generation is stored. It returns
// once Temporal holds the message durably, without waiting for a worker to read it.
func (c *Client) Apply(ctx context.Context, resourceID string, generation int64) error {
	_, err := c.Temporal.SignalWithStartWorkflow(ctx, WorkflowID(resourceID), SignalApply, ApplyRequest{Generation: generation},
		c.startOptions(resourceID), ResourceWorkflow, ResourceInput{ResourceID: resourceID})
	if err != nil {
		return fmt.Errorf("send generation %d to resource %s: %w", generation, resourceID, err)
	}
	return nil
}

// Running returns the IDs of the resources whose workflow is running on the client's task queue,
// as Temporal's visibility store says: it may lag a workflow just started by a moment.
func (c *Client) Running(ctx context.Context) (map[string]bool, error) {
	running := map[string]bool{}
	query := fmt.Sprintf("WorkflowType = 'ResourceWorkflow' AND ExecutionStatus = 'Running' AND TaskQueue = '%s'", c.TaskQueue)
	var token []byte
	for {
		resp, err := c.Temporal.ListWorkflow(ctx, &workflowservice.ListWorkflowExecutionsRequest{Query: query, PageSize: 1000, NextPageToken: token})
		if err != nil {
			return nil, fmt.Errorf("list running resource workflows: %w", err)
		}
		for _, e := range resp.GetExecutions() {
			if id, ok := strings.CutPrefix(e.GetExecution().GetWorkflowId(), "resource-"); ok {
				running[id] = true
			}
		}
		if token = resp.GetNextPageToken(); len(token) == 0 {
			return running, nil
		}
	}
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

// Signal sends one of the operator signals (SignalPause, SignalResume, SignalRetry, SignalResync,
// SignalReconcile) to the resource's workflow, starting the workflow if needed.
func (c *Client) Signal(ctx context.Context, resourceID, name string) error {
	_, err := c.Temporal.SignalWithStartWorkflow(ctx, WorkflowID(resourceID), name, nil,
		c.startOptions(resourceID), ResourceWorkflow, ResourceInput{ResourceID: resourceID})
	if err != nil {
		return fmt.Errorf("signal %s to resource %s: %w", name, resourceID, err)
	}
	return nil
}

// SiteHealthChanged tells a running resource workflow that a site's health changed. A workflow that
// is not running needs no telling: it plans from the store when it starts.
func (c *Client) SiteHealthChanged(ctx context.Context, resourceID string, change SiteHealthChange) error {
	err := c.Temporal.SignalWorkflow(ctx, WorkflowID(resourceID), "", SignalSiteHealth, change)
	var notFound *serviceerror.NotFound
	if errors.As(err, &notFound) {
		return nil
	}
	return err
}

// EnsureSearchAttributes registers on the namespace the search attributes the workflows set, when
// missing. A workflow that sets an unregistered one fails its tasks, so a worker checks first.
func EnsureSearchAttributes(ctx context.Context, c client.Client, namespace string) error {
	resp, err := c.OperatorService().ListSearchAttributes(ctx, &operatorservice.ListSearchAttributesRequest{Namespace: namespace})
	if err != nil {
		return fmt.Errorf("list search attributes of namespace %s: %w", namespace, err)
	}
	missing := map[string]enumspb.IndexedValueType{}
	for name, typ := range SearchAttributes {
		if _, ok := resp.GetCustomAttributes()[name]; !ok {
			missing[name] = typ
		}
	}
	if len(missing) == 0 {
		return nil
	}
	_, err = c.OperatorService().AddSearchAttributes(ctx, &operatorservice.AddSearchAttributesRequest{Namespace: namespace, SearchAttributes: missing})
	if err != nil {
		var names []string
		for name := range missing {
			names = append(names, name)
		}
		slices.Sort(names)
		return fmt.Errorf("register search attributes %v on namespace %s (register them with `temporal operator search-attribute create`): %w", names, namespace, err)
	}
	return nil
}
