package api_test

import (
	"context"
	"sync"
)

// recorder is the Orchestrator of the unit tests: it records what the API told the resource
// workflows, so a test can check that a change reached them, with which generation. fail, when
// set, is returned by every call.
type recorder struct {
	mu    sync.Mutex
	calls []call
	fail  error
	// before, when set, runs at the start of every call: a test's way to act while the API is
	// telling a workflow (its client going away, say).
	before func()
}

// call is one message to a resource's workflow.
type call struct {
	Op         string // Ensure, Apply, Delete or Signal
	ResourceID string
	Generation int64  // of an Apply
	Signal     string // of a Signal
	// Canceled is set when the context the call was given had ended (after before ran): the
	// message would not have reached Temporal.
	Canceled bool
}

func (r *recorder) record(ctx context.Context, c call) error {
	if r.before != nil {
		r.before()
	}
	c.Canceled = ctx.Err() != nil
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, c)
	return r.fail
}

func (r *recorder) Ensure(ctx context.Context, id string) error {
	return r.record(ctx, call{Op: "Ensure", ResourceID: id})
}

func (r *recorder) Apply(ctx context.Context, id string, gen int64) error {
	return r.record(ctx, call{Op: "Apply", ResourceID: id, Generation: gen})
}

func (r *recorder) Delete(ctx context.Context, id string) error {
	return r.record(ctx, call{Op: "Delete", ResourceID: id})
}

func (r *recorder) Signal(ctx context.Context, id, name string) error {
	return r.record(ctx, call{Op: "Signal", ResourceID: id, Signal: name})
}

// Calls returns the calls recorded so far and forgets them.
func (r *recorder) Calls() []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.calls
	r.calls = nil
	return c
}
