// Package worker builds the Temporal worker that runs cheops' workflows and activities, and the
// sweeper that makes sure every stored resource has a running workflow.
package worker

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/interceptor"
	sdkworker "go.temporal.io/sdk/worker"

	"github.com/cheops-io/cheops/activities"
	"github.com/cheops-io/cheops/metrics"
	"github.com/cheops-io/cheops/store"
	"github.com/cheops-io/cheops/workflows"
)

// New returns a worker on taskQueue with the resource workflow and every activity registered. With
// m, it counts the activities' failed attempts there.
func New(c client.Client, taskQueue string, acts *activities.Activities, m *metrics.Metrics) sdkworker.Worker {
	var opts sdkworker.Options
	if m != nil {
		opts.Interceptors = []interceptor.WorkerInterceptor{&failureCounter{m: m}}
	}
	w := sdkworker.New(c, taskQueue, opts)
	w.RegisterWorkflow(workflows.ResourceWorkflow)
	w.RegisterActivity(acts)
	return w
}

// Sweep ensures, now and then every interval until ctx ends, that each stored resource has a running
// workflow. It closes the one gap the API cannot: a process dying after a resource was recorded
// in etcd but before its workflow was started.
func Sweep(ctx context.Context, s *store.Store, wc *workflows.Client, interval time.Duration, log *slog.Logger) {
	for {
		if _, err := SweepOnce(ctx, s, wc); err != nil && ctx.Err() == nil {
			log.Warn("sweep resources", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

// SweepOnce starts the workflow of every stored resource that Temporal does not list as running,
// and returns how many it started (or found started meanwhile). It asks Temporal for the running
// workflows in pages rather than once per resource: at 10,000 resources and one sweep every 30 s,
// a call per resource would be 333 calls a second. When the listing fails, every resource is
// ensured, as before, and the listing's error is returned with the others.
func SweepOnce(ctx context.Context, s *store.Store, wc *workflows.Client) (int, error) {
	rs, err := s.ListResources(ctx)
	if err != nil {
		return 0, err
	}
	running, listErr := wc.Running(ctx)
	ensured := 0
	for _, r := range rs {
		if running[r.ID] {
			continue
		}
		if err := wc.Ensure(ctx, r.ID); err != nil {
			return ensured, errors.Join(listErr, err)
		}
		ensured++
	}
	return ensured, listErr
}
