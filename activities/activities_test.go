package activities

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"go.temporal.io/sdk/testsuite"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/internal/etcdtest"
)

// downDriver stands in for a site that refuses connections; the store is a real etcd.
type downDriver struct{ calls int }

func (d *downDriver) Validate(json.RawMessage) error                     { return nil }
func (d *downDriver) ValidateSite(cheops.Site, cheops.Credentials) error { return nil }
func (d *downDriver) Apply(context.Context, cheops.Target, cheops.ApplyRequest) (cheops.ApplyResult, error) {
	d.calls++
	return cheops.ApplyResult{}, cheops.Classify(cheops.Unreachable, errors.New("dial tcp 127.0.0.1:1: connection refused"))
}
func (d *downDriver) Observe(context.Context, cheops.Target, cheops.ObjectRef) (cheops.Observation, error) {
	return cheops.Observation{}, nil
}
func (d *downDriver) Delete(context.Context, cheops.Target, cheops.ObjectRef) error { return nil }
func (d *downDriver) Probe(context.Context, cheops.Target) error                    { return nil }

// Repeated identical failures mark the replica Unreachable once and log one event, not one per attempt.
func TestRepeatedFailureIsLoggedOnce(t *testing.T) {
	ctx := context.Background()
	s := etcdtest.Store(t)
	if _, err := s.CreateSite(ctx, cheops.Site{Name: "down", Driver: cheops.DriverKubernetes}, cheops.Credentials{}); err != nil {
		t.Fatal(err)
	}
	r, _, err := s.CreateResource(ctx, cheops.Resource{ID: "r1", Name: "cm", Driver: cheops.DriverKubernetes, Manifest: json.RawMessage(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	d := &downDriver{}
	a := &Activities{Store: s, Drivers: map[cheops.DriverName]cheops.Driver{cheops.DriverKubernetes: d}}
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	for range 5 {
		if _, err := env.ExecuteActivity(a.ApplyReplica, ApplyInput{ResourceID: r.ID, Site: "down", Generation: 1}); err == nil {
			t.Fatal("apply on a down site succeeded")
		}
	}
	rep, err := s.GetReplica(ctx, r.ID, "down")
	if err != nil || rep.State != cheops.ReplicaUnreachable || rep.Message == "" {
		t.Fatalf("replica = %+v, %v; want Unreachable with the reason", rep, err)
	}
	evs, err := s.Events(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.calls != 5 || len(evs) != 1 || evs[0].Type != "ApplyFailed" {
		t.Fatalf("%d calls, events %+v; want 5 calls and one ApplyFailed event", d.calls, evs)
	}
}
