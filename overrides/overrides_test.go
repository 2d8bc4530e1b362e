package overrides

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/drivers/kubernetes"
)

func TestApplyMatchesBySiteOrSelectorInOrder(t *testing.T) {
	r := cheops.Resource{
		Manifest: json.RawMessage(`{"kind":"ConfigMap","data":{"a":"1","b":"2"}}`),
		Overrides: []cheops.Override{
			{Site: "paris", Patch: json.RawMessage(`{"data":{"a":"paris"}}`)},
			{Selector: "region=eu", Patch: json.RawMessage(`{"data":{"b":null,"c":"eu"}}`)},
			{Site: "berlin", Patch: json.RawMessage(`{"data":{"a":"berlin"}}`)},
		},
	}
	for _, tc := range []struct {
		site    cheops.Site
		want    string
		applied []string
	}{
		{cheops.Site{Name: "paris", Labels: map[string]string{"region": "eu"}}, `{"data":{"a":"paris","c":"eu"},"kind":"ConfigMap"}`, []string{"overrides[0]", "overrides[1]"}},
		{cheops.Site{Name: "berlin"}, `{"data":{"a":"berlin","b":"2"},"kind":"ConfigMap"}`, []string{"overrides[2]"}},
		{cheops.Site{Name: "lyon"}, `{"kind":"ConfigMap","data":{"a":"1","b":"2"}}`, nil},
	} {
		got, applied, err := Apply(r, tc.site)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != tc.want || !slices.Equal(applied, tc.applied) {
			t.Errorf("%s: %s %v, want %s %v", tc.site.Name, got, applied, tc.want, tc.applied)
		}
	}
}

func TestABadPatchIsPermanent(t *testing.T) {
	r := cheops.Resource{Manifest: json.RawMessage(`{}`), Overrides: []cheops.Override{{Site: "x", Patch: json.RawMessage(`{`)}}}
	if _, _, err := Apply(r, cheops.Site{Name: "x"}); cheops.ClassOf(err) != cheops.Permanent {
		t.Fatalf("err = %v, want a permanent error", err)
	}
}

// What a resource provides includes what its overrides make it provide, on a site or by selector.
func TestProvides(t *testing.T) {
	r := cheops.Resource{Manifest: json.RawMessage(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"team"}}`),
		Overrides: []cheops.Override{
			{Site: "paris", Patch: json.RawMessage(`{"metadata":{"name":"team-paris"}}`)},
			{Selector: "region=de", Patch: json.RawMessage(`{"metadata":{"name":"team-de"}}`)},
			{Site: "lyon", Patch: json.RawMessage(`{"metadata":{"labels":{"a":"b"}}}`)},
		}}
	got := Provides(kubernetes.New(), r)
	if want := []string{"namespace/team", "namespace/team-de", "namespace/team-paris"}; !slices.Equal(got, want) {
		t.Fatalf("provides %v, want %v", got, want)
	}
}
