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
