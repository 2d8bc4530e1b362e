package cheops

import (
	"encoding/json"
	"testing"
)

func TestAggregate(t *testing.T) {
	rep := func(state ReplicaState, gen int64) Replica { return Replica{State: state, ObservedGeneration: gen} }
	r := Resource{Generation: 2}
	rolledBack := Resource{Generation: 2, Rollback: &Rollback{Generation: 2, Done: true}}
	stale := Resource{Generation: 3, Rollback: &Rollback{Generation: 2, Done: true}}
	for _, tc := range []struct {
		name string
		r    Resource
		reps []Replica
		want ResourceState
	}{
		{"no replicas yet", r, nil, ResourcePending},
		{"all ready", r, []Replica{rep(ReplicaReady, 2), rep(ReplicaReady, 2)}, ResourceReady},
		{"one behind", r, []Replica{rep(ReplicaReady, 2), rep(ReplicaReady, 1)}, ResourceProgressing},
		{"one rejected", r, []Replica{rep(ReplicaReady, 2), rep(ReplicaFailed, 1)}, ResourceDegraded},
		{"one unreachable", r, []Replica{rep(ReplicaReady, 2), rep(ReplicaUnreachable, 1)}, ResourceDegraded},
		{"only site unreachable", r, []Replica{rep(ReplicaUnreachable, 0)}, ResourceDegraded},
		{"one drifted", r, []Replica{rep(ReplicaReady, 2), {State: ReplicaReady, ObservedGeneration: 2, Drifted: true}}, ResourceDegraded},
		{"all rejected", r, []Replica{rep(ReplicaFailed, 0), rep(ReplicaFailed, 0)}, ResourceFailed},
		{"one waiting for its dependencies", r, []Replica{rep(ReplicaReady, 2), rep(ReplicaWaiting, 0)}, ResourceProgressing},
		{"all waiting for their dependencies", r, []Replica{rep(ReplicaWaiting, 0), rep(ReplicaWaiting, 1)}, ResourceProgressing},
		{"rolled back", rolledBack, []Replica{rep(ReplicaReady, 1)}, ResourceRolledBack},
		{"rollback of an older generation", stale, []Replica{rep(ReplicaReady, 3)}, ResourceReady},
		{"deleting", Resource{Generation: 1, Deletion: &Deletion{}}, []Replica{rep(ReplicaReady, 1)}, ResourceDeleting},
	} {
		if got := Aggregate(tc.r, tc.reps); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

// A replica recorded Ready or Applied on a site that is unreachable is shown Unknown, with what was
// last known, and the resource is Degraded; other states, and other sites, are shown as recorded.
func TestSeenWithUnreachableSites(t *testing.T) {
	r := Resource{Generation: 2}
	reps := []Replica{
		{Site: "up", State: ReplicaReady, ObservedGeneration: 2},
		{Site: "down", State: ReplicaReady, ObservedGeneration: 2},
		{Site: "down-applied", State: ReplicaApplied, ObservedGeneration: 2, Message: "waiting"},
		{Site: "down-failed", State: ReplicaFailed, ObservedGeneration: 1},
	}
	health := map[string]SiteHealth{"up": SiteReady, "down": SiteUnreachable, "down-applied": SiteUnreachable, "down-failed": SiteUnreachable}
	seen := SeenWith(reps, health)
	want := []ReplicaState{ReplicaReady, ReplicaUnknown, ReplicaUnknown, ReplicaFailed}
	for i, rep := range seen {
		if rep.State != want[i] {
			t.Errorf("%s is shown %s; want %s", rep.Site, rep.State, want[i])
		}
	}
	if seen[1].Message != "site unreachable; last known Ready at generation 2" || seen[2].Message != "site unreachable; last known Applied at generation 2: waiting" {
		t.Errorf("messages %q, %q", seen[1].Message, seen[2].Message)
	}
	if reps[1].State != ReplicaReady {
		t.Error("SeenWith changed the replicas it was given")
	}
	if got := Aggregate(r, seen[:2]); got != ResourceDegraded {
		t.Errorf("Ready and Unknown aggregate to %s; want Degraded", got)
	}
	if got := Aggregate(r, SeenWith(reps[:2], map[string]SiteHealth{})); got != ResourceReady {
		t.Errorf("both Ready with healthy sites aggregate to %s; want Ready", got)
	}
}

// A wave size is read from a number or a string, and a percentage is of the sites in scope, rounded
// up, never less than one site.
func TestWaveSize(t *testing.T) {
	for _, c := range []struct {
		json  string
		n, of int
		want  int
	}{{`3`, 3, 10, 3}, {`"3"`, 3, 10, 3}, {`"30%"`, 30, 10, 3}, {`"25%"`, 25, 10, 3}, {`"1%"`, 1, 10, 1}, {`0`, 0, 10, 1}} {
		var w WaveSize
		if err := json.Unmarshal([]byte(c.json), &w); err != nil {
			t.Fatalf("%s: %v", c.json, err)
		}
		if w.N != c.n || w.Of(c.of) != c.want {
			t.Errorf("%s: %+v, of %d sites %d; want N %d, %d", c.json, w, c.of, w.Of(c.of), c.n, c.want)
		}
		b, _ := json.Marshal(w)
		var again WaveSize
		if err := json.Unmarshal(b, &again); err != nil || again != w {
			t.Errorf("%s: written %s, read back %+v, %v", c.json, b, again, err)
		}
	}
	var w WaveSize
	if err := json.Unmarshal([]byte(`"lots"`), &w); err == nil {
		t.Error(`"lots" read as a wave size`)
	}
}

// A dependency's replica lets its dependents go ahead when its object is there and Ready, or when
// its latest generation failed while an applied one's object stays.
func TestReplicaAvailable(t *testing.T) {
	for _, tc := range []struct {
		name string
		rep  Replica
		want bool
	}{
		{"Ready", Replica{State: ReplicaReady, LocalID: "u", ObservedGeneration: 1}, true},
		{"Ready without a local ID", Replica{State: ReplicaReady}, false},
		{"Applied, status not Ready yet", Replica{State: ReplicaApplied, LocalID: "u", ObservedGeneration: 1}, false},
		{"generation 2 rejected over generation 1", Replica{State: ReplicaFailed, LocalID: "u", ObservedGeneration: 1, FailedGeneration: 2}, true},
		{"rejected, never applied", Replica{State: ReplicaFailed, FailedGeneration: 1}, false},
		{"Waiting", Replica{State: ReplicaWaiting}, false},
		{"Pending", Replica{State: ReplicaPending, LocalID: "u", ObservedGeneration: 1}, false},
		{"Applying", Replica{State: ReplicaApplying, LocalID: "u", ObservedGeneration: 1}, false},
	} {
		if got := tc.rep.Available(); got != tc.want {
			t.Errorf("%s: Available() = %v, want %v", tc.name, got, tc.want)
		}
	}
}
