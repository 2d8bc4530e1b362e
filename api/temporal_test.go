package api_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/sdk/client"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/activities"
	"github.com/cheops-io/cheops/devstack"
	"github.com/cheops-io/cheops/drivers/kubernetes"
	"github.com/cheops-io/cheops/drivers/openstack"
	"github.com/cheops-io/cheops/store"
	"github.com/cheops-io/cheops/worker"
	"github.com/cheops-io/cheops/workflows"
)

const taskQueue = "api-test"

// A real Temporal server and worker, started by the first test that asks for them and stopped by
// TestMain, so the tests that do not need them do not pay for them.
var integration struct {
	once     sync.Once
	temporal client.Client
	err      error
	stops    []func()
}

// realTemporal returns a client of a Temporal server whose worker runs the resource workflows over
// the tests' etcd. With -short the test is skipped.
func realTemporal(t *testing.T) client.Client {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a real Temporal server (-short)")
	}
	integration.once.Do(func() { integration.temporal, integration.err = startTemporal() })
	if integration.err != nil {
		t.Fatal(integration.err)
	}
	return integration.temporal
}

func startTemporal() (client.Client, error) {
	ts, err := devstack.StartTemporal(devstack.TemporalOptions{UIPort: -1})
	if err != nil {
		return nil, err
	}
	integration.stops = append(integration.stops, ts.Stop)
	c, err := client.Dial(client.Options{HostPort: ts.Address})
	if err != nil {
		return nil, err
	}
	integration.stops = append(integration.stops, c.Close)
	ec, err := clientv3.New(clientv3.Config{Endpoints: []string{etcdEndpoint}})
	if err != nil {
		return nil, err
	}
	integration.stops = append(integration.stops, func() { ec.Close() })
	w := worker.New(c, taskQueue, &activities.Activities{Store: store.New(ec, storePrefix),
		Drivers: map[cheops.DriverName]cheops.Driver{cheops.DriverKubernetes: kubernetes.New(), cheops.DriverOpenStack: openstack.New()}}, nil)
	if err := w.Start(); err != nil {
		return nil, err
	}
	integration.stops = append(integration.stops, w.Stop)
	return c, nil
}

// stopTemporal stops what startTemporal started, last first.
func stopTemporal() {
	for i := len(integration.stops) - 1; i >= 0; i-- {
		integration.stops[i]()
	}
}

// A retried POST with the same Idempotency-Key returns the same resource and starts no second
// workflow; the replication of an accepted resource runs on the real Temporal server.
func TestIdempotentCreateAndWorkflow(t *testing.T) {
	temporal := realTemporal(t)
	h := newAPIWith(t, &workflows.Client{Temporal: temporal, TaskQueue: taskQueue})
	addSite(t, h, "paris")
	body := map[string]any{"name": "idem", "manifest": cm("idem"), "scope": map[string]any{"sites": []string{"paris"}}}
	first := do(t, h, http.MethodPost, "/v1/resources", body, "Idempotency-Key", "k-1")
	second := do(t, h, http.MethodPost, "/v1/resources", body, "Idempotency-Key", "k-1")
	if first.Code != 201 || second.Code != 201 {
		t.Fatalf("POSTs: %d %s / %d %s", first.Code, first.Body, second.Code, second.Body)
	}
	var a, b struct{ ID string }
	_ = json.Unmarshal(first.Body.Bytes(), &a)
	_ = json.Unmarshal(second.Body.Bytes(), &b)
	if a.ID == "" || a.ID != b.ID || second.Header().Get("Idempotent-Replayed") != "true" {
		t.Fatalf("ids %q and %q; replayed=%q", a.ID, b.ID, second.Header().Get("Idempotent-Replayed"))
	}
	other := map[string]any{"name": "idem-2", "manifest": cm("idem-2"), "scope": map[string]any{"sites": []string{"paris"}}}
	if rec := do(t, h, http.MethodPost, "/v1/resources", other, "Idempotency-Key", "k-1"); rec.Code != 422 {
		t.Fatalf("key reused for another request: %d %s", rec.Code, rec.Body)
	}
	if rec := do(t, h, http.MethodPost, "/v1/resources", body); rec.Code != 409 {
		t.Fatalf("same name without key: %d %s", rec.Code, rec.Body)
	}
	ctx := context.Background()
	d, err := temporal.DescribeWorkflowExecution(ctx, workflows.WorkflowID(a.ID), "")
	if err != nil {
		t.Fatalf("workflow of the resource: %v", err)
	}
	if d.WorkflowExecutionInfo.Status != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
		t.Fatalf("workflow status %v", d.WorkflowExecutionInfo.Status)
	}
	// The site is unreachable: the replica says so, with the reason, rather than hanging.
	deadline := time.Now().Add(30 * time.Second)
	for {
		rec := do(t, h, http.MethodGet, "/v1/resources/idem", nil)
		if strings.Contains(rec.Body.String(), `"state":"Unreachable"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica never Unreachable: %s", rec.Body)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// Credentials never reach the workflow's history.
	iter := temporal.GetWorkflowHistory(ctx, workflows.WorkflowID(a.ID), "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for iter.HasNext() {
		ev, err := iter.Next()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(ev.String(), secret) {
			t.Fatalf("history event %d holds the site's credential", ev.EventId)
		}
	}
	if rec := do(t, h, http.MethodDelete, "/v1/resources/idem", nil); rec.Code != 202 {
		t.Fatalf("delete: %d %s", rec.Code, rec.Body)
	}
}
