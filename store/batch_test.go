package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/store"
)

// Targets reads more sites than one etcd transaction may hold, and answers for each as Target does.
func TestTargetsReadManySitesAsTargetDoes(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	var names []string
	for i := range 120 {
		name := fmt.Sprintf("site-%03d", i)
		names = append(names, name)
		if _, err := s.CreateSite(ctx, cheops.Site{Name: name, Driver: cheops.DriverKubernetes},
			cheops.Credentials{Kubeconfig: "kubeconfig-" + name}); err != nil {
			t.Fatal(err)
		}
	}
	lookup, err := s.Targets(ctx, append(names, "ghost"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		got, err := lookup(name)
		want, werr := s.Target(ctx, name)
		if err != nil || werr != nil || got.Site.Name != want.Site.Name || got.Credentials != want.Credentials ||
			got.Credentials.Kubeconfig != "kubeconfig-"+name {
			t.Fatalf("%s: %+v, %v; Target says %+v, %v", name, got, err, want, werr)
		}
	}
	if _, err := lookup("ghost"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("ghost: %v, want ErrNotFound", err)
	}
}
