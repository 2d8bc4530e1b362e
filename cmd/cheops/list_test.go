package main

import (
	"testing"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/client"
)

// A rolled-back resource's replicas are Ready at the generation they were put back to: the list
// says so, rather than 0/3.
func TestReadyColumn(t *testing.T) {
	ready := func(site string, gen int64) cheops.Replica {
		return cheops.Replica{Site: site, State: cheops.ReplicaReady, ObservedGeneration: gen}
	}
	rolled := client.Resource{Resource: cheops.Resource{Generation: 2}, State: cheops.ResourceRolledBack,
		Replicas: []cheops.Replica{ready("a", 1), ready("b", 1), ready("c", 1)}}
	if got := readyColumn(rolled); got != "3/3 at generation 1" {
		t.Errorf("rolled back: %q", got)
	}
	progressing := client.Resource{Resource: cheops.Resource{Generation: 2}, State: cheops.ResourceProgressing,
		Replicas: []cheops.Replica{ready("a", 2), ready("b", 1)}}
	if got := readyColumn(progressing); got != "1/2" {
		t.Errorf("progressing: %q", got)
	}
}
