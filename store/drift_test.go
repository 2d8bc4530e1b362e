package store_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/cheops-io/cheops"
)

// AllReplicas reads every resource's replicas at once, each with its resource's ID; WatchReplicas
// tells of a replica's change.
func TestAllReplicasAndTheirWatch(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := newStore(t)
	changed := s.WatchReplicas(ctx)
	for _, id := range []string{"r1", "r2"} {
		if _, _, err := s.CreateResource(ctx, cheops.Resource{ID: id, Name: id, Driver: cheops.DriverKubernetes, Generation: 1, Manifest: json.RawMessage(`{}`)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range [][2]string{{"r1", "a"}, {"r1", "b"}, {"r2", "a"}} {
		if _, err := s.UpdateReplica(ctx, w[0], w[1], func(rep *cheops.Replica) (*cheops.Event, error) { return nil, nil }); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-changed:
	case <-time.After(5 * time.Second):
		t.Fatal("no word of the replicas written")
	}
	reps, err := s.AllReplicas(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, rep := range reps {
		got = append(got, rep.ResourceID+"/"+rep.Site)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"r1/a", "r1/b", "r2/a"}) {
		t.Fatalf("AllReplicas: %v", got)
	}
}
