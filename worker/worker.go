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

	"github.com/cheops-io/cheops"
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
//
// The first sweep also wakes the running workflows of resources with a change that may not have
// reached them (see SweepOnce): a process that died after recording a delete or an update in etcd,
// before telling the workflow, would otherwise leave it waiting for its next resync (5 minutes).
func Sweep(ctx context.Context, s *store.Store, wc *workflows.Client, interval time.Duration, log *slog.Logger) {
	for first := true; ; first = false {
		if _, err := SweepOnce(ctx, s, wc, first); err != nil && ctx.Err() == nil {
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
//
// With wake, the workflow of each resource whose delete was accepted, or whose generation was
// declared, less than a resync interval ago is also signalled to re-plan at once: a signal the API
// could not send (its process died first) is then not waited for until the workflow's resync. A
// re-plan with nothing new to do applies nothing.
func SweepOnce(ctx context.Context, s *store.Store, wc *workflows.Client, wake bool) (int, error) {
	rs, err := s.ListResources(ctx)
	if err != nil {
		return 0, err
	}
	running, listErr := wc.Running(ctx)
	ensured := 0
	for _, r := range rs {
		if running[r.ID] {
			if wake && recentlyChanged(r, time.Now()) {
				if err := wc.Signal(ctx, r.ID, workflows.SignalReconcile); err != nil {
					return ensured, errors.Join(listErr, err)
				}
			}
			continue
		}
		if err := wc.Ensure(ctx, r.ID); err != nil {
			return ensured, errors.Join(listErr, err)
		}
		ensured++
	}
	return ensured, listErr
}

// recentlyChanged says whether a resource's delete or current generation is recent enough that its
// workflow may not have been told yet, and would not re-plan by itself before a resync.
func recentlyChanged(r cheops.Resource, now time.Time) bool {
	if r.Deletion != nil {
		return now.Sub(r.Deletion.RequestedAt) < workflows.ResyncInterval
	}
	return !r.GenerationAt.IsZero() && now.Sub(r.GenerationAt) < workflows.ResyncInterval
}
