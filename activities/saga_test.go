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

// A compensation wave brings each site back to the committed generation as CompensateReplica
// would: an untouched site keeps its object and only its record goes back; a site that took the new
// generation is applied the committed one again; a site the committed generation did not have
// loses the replica the new generation made. Running the wave again changes nothing.
func TestCompensateWaveBringsEachSiteBack(t *testing.T) {
	ctx := context.Background()
	s, d, a, env := waveFixture(t, "kept", "restored", "added")
	runWave(t, env, a, WaveInput{ResourceID: "r1", Generation: 1, Sites: []string{"kept", "restored"}, MaxParallel: 2, Attempt: 1})
	if _, err := env.ExecuteActivity(a.CommitGeneration, CommitInput{ResourceID: "r1", Generation: 1, Sites: []string{"kept", "restored"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateResource(ctx, "r1", func(r *cheops.Resource) (*cheops.Event, error) {
		r.Generation, r.Manifest = 2, json.RawMessage(`{"data":{"v":"2"}}`)
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	runWave(t, env, a, WaveInput{ResourceID: "r1", Generation: 2, Sites: []string{"restored", "added"}, MaxParallel: 2, Attempt: 1})
	d.applied = map[string]int{}

	in := CompensateWaveInput{ResourceID: "r1", Generation: 2, Sites: []string{"kept", "restored", "added"}, Untouched: []string{"kept"}, MaxParallel: 2, Attempt: 1}
	for run := 1; run <= 2; run++ {
		v, err := env.ExecuteActivity(a.CompensateWave, in)
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		var out CompensateWaveOutput
		if err := v.Get(&out); err != nil {
			t.Fatal(err)
		}
		for i, o := range out.Sites {
			if o.Site != in.Sites[i] || o.Class != "" {
				t.Fatalf("run %d: outcome %d = %+v, want %s brought back", run, i, o, in.Sites[i])
			}
		}
		kept, err := s.GetReplica(ctx, "r1", "kept")
		if err != nil || kept.State != cheops.ReplicaReady || kept.ObservedGeneration != 1 || kept.Message != "rollback of generation 2 to generation 1" {
			t.Fatalf("run %d: kept = %+v, %v; want Ready at generation 1 with the rollback's message", run, kept, err)
		}
		restored, err := s.GetReplica(ctx, "r1", "restored")
		if err != nil || restored.State != cheops.ReplicaReady || restored.ObservedGeneration != 1 {
			t.Fatalf("run %d: restored = %+v, %v; want Ready at generation 1", run, restored, err)
		}
		if _, err := s.GetReplica(ctx, "r1", "added"); err == nil {
			t.Fatalf("run %d: the replica generation 2 added is still recorded", run)
		}
		// The first run applies generation 1 again on the site that took generation 2, and only
		// there; the second applies nothing.
		if want := map[int]int{1: 1, 2: 0}[run]; d.applied["restored"] != want || d.applied["kept"] != 0 || d.applied["added"] != 0 {
			t.Fatalf("run %d: applied %v; want restored %d times, the others never", run, d.applied, want)
		}
		d.applied = map[string]int{}
	}
	evs, err := s.Events(ctx, "r1")
	if err != nil {
		t.Fatal(err)
	}
	rolledBack := map[string]int{}
	for _, ev := range evs {
		if ev.Type == cheops.EventRolledBack {
			rolledBack[ev.Site]++
		}
	}
	if rolledBack["kept"] != 1 || rolledBack["restored"] != 1 || rolledBack["added"] != 1 {
		t.Fatalf("RolledBack events per site = %v, want one each", rolledBack)
	}
}

// unreachableFinder is a site that refuses connections, Find included, and counts the calls.
type unreachableFinder struct {
	downDriver
	finds int
}

var _ cheops.Finder = (*unreachableFinder)(nil)

func (d *unreachableFinder) Find(context.Context, cheops.Target, cheops.FindRequest) (*cheops.Found, error) {
	d.finds++
	return nil, cheops.Classify(cheops.Unreachable, errors.New("dial tcp 127.0.0.1:1: connect: connection refused"))
}

// Rolling back a first generation on a site its apply never reached (unreachable, untouched) only
// forgets the replica: it does not look on the site for an unrecorded object, which would hold the
// rollback up until the site returns. A site whose outcome is unknown (touched) is looked at.
func TestCompensatingAnUntouchedSiteDoesNotReachIt(t *testing.T) {
	ctx := context.Background()
	s := etcdtest.Store(t)
	if _, err := s.CreateSite(ctx, cheops.Site{Name: "down", Driver: cheops.DriverKubernetes}, cheops.Credentials{}); err != nil {
		t.Fatal(err)
	}
	d := &unreachableFinder{}
	a := &Activities{Store: s, Drivers: map[cheops.DriverName]cheops.Driver{cheops.DriverKubernetes: d}}
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestActivityEnvironment()
	env.RegisterActivity(a)
	for _, c := range []struct {
		untouched []string
		class     cheops.ErrorClass
		finds     int
	}{{[]string{"down"}, "", 0}, {nil, cheops.Unreachable, 1}} {
		d.finds = 0
		id := fmt.Sprintf("r-%d", len(c.untouched))
		if _, _, err := s.CreateResource(ctx, cheops.Resource{ID: id, Name: id, Driver: cheops.DriverKubernetes, Generation: 1,
			Manifest: json.RawMessage(`{}`)}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.UpdateReplica(ctx, id, "down", func(rep *cheops.Replica) (*cheops.Event, error) {
			rep.State, rep.Message = cheops.ReplicaUnreachable, "connection refused"
			return nil, nil
		}); err != nil {
			t.Fatal(err)
		}
		v, err := env.ExecuteActivity(a.CompensateWave, CompensateWaveInput{ResourceID: id, Generation: 1, Sites: []string{"down"},
			Untouched: c.untouched, MaxParallel: 1, Attempt: 1})
		if err != nil {
			t.Fatal(err)
		}
		var out CompensateWaveOutput
		if err := v.Get(&out); err != nil {
			t.Fatal(err)
		}
		if out.Sites[0].Class != c.class || d.finds != c.finds {
			t.Fatalf("untouched %v: outcome %+v after %d finds; want class %q after %d", c.untouched, out.Sites[0], d.finds, c.class, c.finds)
		}
		_, err = s.GetReplica(ctx, id, "down")
		if gone := err != nil; gone != (c.class == "") {
			t.Fatalf("untouched %v: replica gone=%v, want %v", c.untouched, gone, c.class == "")
		}
	}
}

// A plan of a list of sites reads only those and the sites holding replicas, and plans as from
// every site: the listed site applied, the missing one reported, the one left removed.
func TestPlanOfAListOfSites(t *testing.T) {
	ctx := context.Background()
	s, _, a, env := waveFixture(t, "a", "b", "c")
	if _, err := s.UpdateResource(ctx, "r1", func(r *cheops.Resource) (*cheops.Event, error) {
		r.Scope = cheops.Scope{Sites: []string{"a", "ghost"}}
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.UpdateReplica(ctx, "r1", "c", func(rep *cheops.Replica) (*cheops.Event, error) {
		rep.State, rep.ObservedGeneration = cheops.ReplicaReady, 1
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	v, err := env.ExecuteActivity(a.PlanResource, PlanInput{ResourceID: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	var p cheops.Plan
	if err := v.Get(&p); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(p.Sites) != "[a]" || fmt.Sprint(p.Apply) != "[a]" || fmt.Sprint(p.Missing) != "[ghost]" || fmt.Sprint(p.Remove) != "[c]" {
		t.Fatalf("plan: sites %v, apply %v, missing %v, remove %v; want [a] [a] [ghost] [c]", p.Sites, p.Apply, p.Missing, p.Remove)
	}
}
