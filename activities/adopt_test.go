package activities

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"go.temporal.io/sdk/testsuite"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/internal/etcdtest"
)

// adoptingDriver stands in for a site that holds someone else's object of the replica's name: its
// first apply adopts it when asked to, or fails. It records what each apply was told, and what was
// deleted or released.
type adoptingDriver struct {
	downDriver
	failFirst bool
	reqs      []cheops.ApplyRequest
	deleted   []cheops.ObjectRef
	released  []cheops.ObjectRef
}

var _ cheops.Releaser = (*adoptingDriver)(nil)

var adoptedRef = cheops.ObjectRef{APIVersion: "v1", Kind: "ConfigMap", Namespace: "default", Name: "web"}

func (d *adoptingDriver) Apply(_ context.Context, _ cheops.Target, req cheops.ApplyRequest) (cheops.ApplyResult, error) {
	d.reqs = append(d.reqs, req)
	if d.failFirst && len(d.reqs) == 1 {
		return cheops.ApplyResult{}, errors.New("connection reset")
	}
	if !req.Adopt {
		return cheops.ApplyResult{}, cheops.Classify(cheops.Permanent, errors.New("ConfigMap default/web already exists (field managers kubectl-client-side-apply)"))
	}
	return cheops.ApplyResult{LocalID: "uid-1", Object: adoptedRef, Adopted: len(d.reqs) == 1 || d.failFirst && len(d.reqs) == 2,
		PreviousOwner: "field managers kubectl-client-side-apply"}, nil
}
func (d *adoptingDriver) Delete(_ context.Context, _ cheops.Target, ref cheops.ObjectRef) error {
	d.deleted = append(d.deleted, ref)
	return nil
}
func (d *adoptingDriver) Release(_ context.Context, _ cheops.Target, ref cheops.ObjectRef, _ string) error {
	d.released = append(d.released, ref)
	return nil
}

// An adopted replica records that it adopted, with an Adopted event naming the previous owner; it
// stays adopted over later applies, and a delete releases it (policy.adopted release, the default)
// or deletes it (delete). Under abort, the replica fails and nothing is removed from the site.
func TestAdoptedReplicaIsReleasedOrDeletedAsThePolicySays(t *testing.T) {
	ctx := context.Background()
	s := etcdtest.Store(t)
	if _, err := s.CreateSite(ctx, cheops.Site{Name: "k", Driver: cheops.DriverKubernetes}, cheops.Credentials{}); err != nil {
		t.Fatal(err)
	}
	var suite testsuite.WorkflowTestSuite
	for _, c := range []struct {
		id              string
		policy          cheops.Policy
		released, delet int
	}{
		{"abort", cheops.Policy{}, 0, 0},
		{"release", cheops.Policy{Conflict: cheops.ConflictAdopt}, 1, 0},
		{"delete", cheops.Policy{Conflict: cheops.ConflictAdopt, Adopted: cheops.AdoptedDelete}, 0, 1},
	} {
		d := &adoptingDriver{}
		a := &Activities{Store: s, Drivers: map[cheops.DriverName]cheops.Driver{cheops.DriverKubernetes: d}}
		env := suite.NewTestActivityEnvironment()
		env.RegisterActivity(a)
		if _, _, err := s.CreateResource(ctx, cheops.Resource{ID: c.id, Name: c.id, Driver: cheops.DriverKubernetes, Generation: 1,
			Manifest: json.RawMessage(`{}`), Policy: c.policy}); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			_, err := env.ExecuteActivity(a.ApplyReplica, ApplyInput{ResourceID: c.id, Site: "k", Generation: 1, Force: true})
			if (err != nil) != (c.id == "abort") {
				t.Fatalf("%s: apply: %v", c.id, err)
			}
		}
		rep, err := s.GetReplica(ctx, c.id, "k")
		if err != nil {
			t.Fatal(err)
		}
		evs, _ := s.Events(ctx, c.id)
		var adopted []cheops.Event
		for _, ev := range evs {
			if ev.Type == cheops.EventAdopted {
				adopted = append(adopted, ev)
			}
		}
		if c.id == "abort" {
			if rep.State != cheops.ReplicaFailed || rep.Adopted || !strings.Contains(rep.Message, "kubectl-client-side-apply") || len(adopted) != 0 || rep.ApplyingSince != nil {
				t.Errorf("abort: replica %+v, Adopted events %v; want Failed naming the manager, not adopted, no unrecorded attempt left", rep, adopted)
			}
		} else if rep.State != cheops.ReplicaReady || !rep.Adopted || len(adopted) != 1 || adopted[0].Site != "k" ||
			!strings.Contains(adopted[0].Message, "kubectl-client-side-apply") || rep.ApplyingSince != nil {
			t.Errorf("%s: replica %+v, Adopted events %v; want Ready, adopted after two applies, one event naming the owner", c.id, rep, adopted)
		}
		if _, err := env.ExecuteActivity(a.DeleteReplica, DeleteInput{ResourceID: c.id, Site: "k"}); err != nil {
			t.Fatal(err)
		}
		if len(d.released) != c.released || len(d.deleted) != c.delet {
			t.Errorf("%s: released %v, deleted %v; want %d released, %d deleted", c.id, d.released, d.deleted, c.released, c.delet)
		}
		evs, _ = s.Events(ctx, c.id)
		if last := evs[len(evs)-1]; c.id == "release" && last.Type != cheops.EventReleased {
			t.Errorf("release: last event %+v, want Released", last)
		}
	}
}

// An apply is told when an earlier attempt of the replica began that may have made an object
// without recording it: never on the first attempt (it looks before it creates), the first
// attempt's start on the next, and the local ID recorded once one is.
func TestApplyIsToldWhenAnUnrecordedAttemptBegan(t *testing.T) {
	ctx := context.Background()
	s := etcdtest.Store(t)
	if _, err := s.CreateSite(ctx, cheops.Site{Name: "k", Driver: cheops.DriverKubernetes}, cheops.Credentials{}); err != nil {
		t.Fatal(err)
	}
	d := &adoptingDriver{failFirst: true}
	a := &Activities{Store: s, Drivers: map[cheops.DriverName]cheops.Driver{cheops.DriverKubernetes: d}}
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	if _, _, err := s.CreateResource(ctx, cheops.Resource{ID: "r", Name: "r", Driver: cheops.DriverKubernetes, Generation: 1,
		Manifest: json.RawMessage(`{}`), Policy: cheops.Policy{Conflict: cheops.ConflictAdopt}}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.ExecuteActivity(a.ApplyReplica, ApplyInput{ResourceID: "r", Site: "k", Generation: 1}); err == nil {
		t.Fatal("the first apply succeeded; the driver fails it")
	}
	first, err := s.GetReplica(ctx, "r", "k")
	if err != nil || first.ApplyingSince == nil {
		t.Fatalf("after a failed attempt: %+v, %v; want applyingSince recorded", first, err)
	}
	for range 2 {
		if _, err := env.ExecuteActivity(a.ApplyReplica, ApplyInput{ResourceID: "r", Site: "k", Generation: 1, Force: true}); err != nil {
			t.Fatal(err)
		}
	}
	if len(d.reqs) != 3 || !d.reqs[0].UnrecordedSince.IsZero() || !d.reqs[1].UnrecordedSince.Equal(*first.ApplyingSince) ||
		d.reqs[1].LocalID != "" || !d.reqs[2].UnrecordedSince.IsZero() || d.reqs[2].LocalID != "uid-1" || !d.reqs[0].Adopt {
		t.Errorf("requests %+v; want no time, then the first attempt's, then none with the local ID, all adopting", d.reqs)
	}
}
