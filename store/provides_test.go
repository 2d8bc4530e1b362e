package store_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/cheops-io/cheops"
)

// What a resource provides is indexed with it, changed with it and forgotten with it, so that a
// dependent finds its providers by one read; the API never shows it.
func TestProvidesIndex(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	providers := func(key string) []string {
		t.Helper()
		ids, err := s.Providers(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(ids)
		return ids
	}
	for _, id := range []string{"ns-1", "ns-2"} {
		if _, _, err := s.CreateResource(ctx, cheops.Resource{ID: id, Name: id, Driver: cheops.DriverKubernetes,
			Manifest: json.RawMessage(`{}`), Provides: []string{"namespace/team"}}); err != nil {
			t.Fatal(err)
		}
	}
	if got := providers("namespace/team"); !slices.Equal(got, []string{"ns-1", "ns-2"}) {
		t.Fatalf("providers of namespace/team: %v", got)
	}
	r, err := s.UpdateResource(ctx, "ns-1", func(r *cheops.Resource) (*cheops.Event, error) {
		r.Provides = []string{"namespace/other"}
		return nil, nil
	})
	if err != nil || !slices.Equal(r.Provides, []string{"namespace/other"}) {
		t.Fatalf("update: %+v, %v", r.Provides, err)
	}
	if got := providers("namespace/team"); !slices.Equal(got, []string{"ns-2"}) {
		t.Fatalf("providers of namespace/team after the update: %v", got)
	}
	// An update that does not touch it keeps it.
	if _, err := s.UpdateResource(ctx, "ns-1", func(r *cheops.Resource) (*cheops.Event, error) { r.Paused = true; return nil, nil }); err != nil {
		t.Fatal(err)
	}
	if got := providers("namespace/other"); !slices.Equal(got, []string{"ns-1"}) {
		t.Fatalf("providers of namespace/other: %v", got)
	}
	if got, _ := s.GetResource(ctx, "ns-1"); !slices.Equal(got.Provides, []string{"namespace/other"}) {
		t.Fatalf("stored provides: %v", got.Provides)
	}
	if err := s.DeleteResource(ctx, "ns-1"); err != nil {
		t.Fatal(err)
	}
	if got := providers("namespace/other"); len(got) != 0 {
		t.Fatalf("providers after the delete: %v", got)
	}
	if b, _ := json.Marshal(cheops.Resource{Provides: []string{"namespace/x"}}); strings.Contains(string(b), "provides") {
		t.Fatalf("Provides is shown: %s", b)
	}
}
