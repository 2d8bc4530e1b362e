package cheops

import "testing"

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
