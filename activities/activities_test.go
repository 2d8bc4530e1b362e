package activities

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	if d.calls != 5 || len(evs) != 2 || evs[0].Type != cheops.EventCreated || evs[1].Type != cheops.EventApplyFailed {
		t.Fatalf("%d calls, events %+v; want 5 calls and one ApplyFailed event", d.calls, evs)
	}
}

// lostDriver made an object on its site whose creation was never recorded; it can find it by mark.
type lostDriver struct {
	downDriver
	found   *cheops.ObjectRef
	deleted []cheops.ObjectRef
}

var _ cheops.Finder = (*lostDriver)(nil)

func (d *lostDriver) Find(context.Context, cheops.Target, cheops.FindRequest) (*cheops.Found, error) {
	if d.found == nil {
		return nil, nil
	}
	return &cheops.Found{Object: *d.found}, nil
}
func (d *lostDriver) Delete(_ context.Context, _ cheops.Target, ref cheops.ObjectRef) error {
	d.deleted = append(d.deleted, ref)
	return nil
}

// A replica whose object was made but never recorded (the worker died, or the activity timed out,
// between the create call and the record) is still removed from its site on delete (alone or in a
// wave) and on rollback (alone or in a wave).
func TestUnrecordedObjectIsFoundAndDeleted(t *testing.T) {
	ctx := context.Background()
	s := etcdtest.Store(t)
	if _, err := s.CreateSite(ctx, cheops.Site{Name: "cloud", Driver: cheops.DriverOpenStack}, cheops.Credentials{}); err != nil {
		t.Fatal(err)
	}
	lost := cheops.ObjectRef{APIVersion: "openstack", Kind: "compute.server", Name: "b3f1"}
	d := &lostDriver{found: &lost}
	a := &Activities{Store: s, Drivers: map[cheops.DriverName]cheops.Driver{cheops.DriverOpenStack: d}}
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	for i, run := range []func(id string) error{
		func(id string) error {
			_, err := env.ExecuteActivity(a.DeleteReplica, DeleteInput{ResourceID: id, Site: "cloud"})
			return err
		},
		func(id string) error {
			v, err := env.ExecuteActivity(a.DeleteWave, DeleteWaveInput{ResourceID: id, Sites: []string{"cloud"}, MaxParallel: 1})
			var out DeleteWaveOutput
			if err == nil {
				err = v.Get(&out)
			}
			if err == nil && out.Sites[0].Class != "" {
				err = errors.New(out.Sites[0].Message)
			}
			return err
		},
		func(id string) error {
			_, err := env.ExecuteActivity(a.CompensateReplica, CompensateInput{ResourceID: id, Site: "cloud", Generation: 1, Touched: true})
			return err
		},
		func(id string) error {
			v, err := env.ExecuteActivity(a.CompensateWave, CompensateWaveInput{ResourceID: id, Generation: 1, Sites: []string{"cloud"}, MaxParallel: 1})
			var out CompensateWaveOutput
			if err == nil {
				err = v.Get(&out)
			}
			if err == nil && out.Sites[0].Class != "" {
				err = errors.New(out.Sites[0].Message)
			}
			return err
		},
	} {
		id := fmt.Sprintf("r%d", i)
		if _, _, err := s.CreateResource(ctx, cheops.Resource{ID: id, Name: id, Driver: cheops.DriverOpenStack, Generation: 1,
			Manifest: json.RawMessage(`{"type":"compute.server","spec":{}}`)}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.UpdateReplica(ctx, id, "cloud", func(rep *cheops.Replica) (*cheops.Event, error) {
			rep.State = cheops.ReplicaApplying
			return nil, nil
		}); err != nil {
			t.Fatal(err)
		}
		d.deleted = nil
		if err := run(id); err != nil {
			t.Fatal(err)
		}
		if len(d.deleted) != 1 || d.deleted[0] != lost {
			t.Errorf("case %d: deleted %v, want the unrecorded %v", i, d.deleted, lost)
		}
		if _, err := s.GetReplica(ctx, id, "cloud"); err == nil {
			t.Errorf("case %d: the replica record is still there", i)
		}
	}
}
