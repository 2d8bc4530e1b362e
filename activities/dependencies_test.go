package activities

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/store"
)

// needyDriver is a siteDriver whose objects need what their manifest's "needs" says on each site
// (a prerequisite key), and provide what "provides" says; a site refuses an object whose
// "refusedFor" prerequisite it lacks, as an apiserver refuses an unknown kind.
type needyDriver struct{ siteDriver }

type needyManifest struct {
	Needs      []string `json:"needs"`
	Provides   []string `json:"provides"`
	RefusedFor string   `json:"refusedFor"`
}

func prerequisite(key string) cheops.Prerequisite {
	kind, name, _ := strings.Cut(key, "/")
	return cheops.Prerequisite{Kind: kind, Name: name}
}

func (d *needyDriver) Needs(_ cheops.Target, m json.RawMessage) []cheops.Prerequisite {
	var nm needyManifest
	_ = json.Unmarshal(m, &nm)
	var out []cheops.Prerequisite
	for _, k := range nm.Needs {
		out = append(out, prerequisite(k))
	}
	return out
}

func (d *needyDriver) Provides(m json.RawMessage) []cheops.Prerequisite {
	var nm needyManifest
	_ = json.Unmarshal(m, &nm)
	var out []cheops.Prerequisite
	for _, k := range nm.Provides {
		out = append(out, prerequisite(k))
	}
	return out
}

func (d *needyDriver) Apply(ctx context.Context, t cheops.Target, req cheops.ApplyRequest) (cheops.ApplyResult, error) {
	var nm needyManifest
	_ = json.Unmarshal(req.Manifest, &nm)
	if nm.RefusedFor != "" {
		p := prerequisite(nm.RefusedFor)
		return cheops.ApplyResult{}, cheops.Classify(cheops.Permanent, &cheops.MissingError{Missing: p, Err: errors.New("no matches for " + p.String())})
	}
	return d.siteDriver.Apply(ctx, t, req)
}

// dependencyFixture is a wave fixture on site s1 whose driver is a needyDriver.
func dependencyFixture(t *testing.T) (*store.Store, *needyDriver, *Activities, func(r cheops.Resource) SiteOutcome) {
	t.Helper()
	s, _, a, env := waveFixture(t, "s1", "s2")
	d := &needyDriver{siteDriver{applied: map[string]int{}}}
	a.Drivers[cheops.DriverKubernetes] = d
	apply := func(r cheops.Resource) SiteOutcome {
		t.Helper()
		return runWave(t, env, a, WaveInput{ResourceID: r.ID, Generation: r.Generation, Sites: []string{"s1"}, MaxParallel: 1, Attempt: 1})["s1"]
	}
	return s, d, a, apply
}

func declare(t *testing.T, s *store.Store, r cheops.Resource) cheops.Resource {
	t.Helper()
	r.Driver, r.Generation = cheops.DriverKubernetes, 1
	if r.Scope.Sites == nil {
		r.Scope = cheops.Scope{Sites: []string{"s1"}}
	}
	if r.Manifest == nil {
		r.Manifest = json.RawMessage(`{}`)
	}
	r, _, err := s.CreateResource(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func setReplica(t *testing.T, s *store.Store, id, site string, fn func(*cheops.Replica)) {
	t.Helper()
	if _, err := s.UpdateReplica(context.Background(), id, site, func(rep *cheops.Replica) (*cheops.Event, error) {
		fn(rep)
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
}

// An object that needs a namespace another resource provides waits (Waiting, with what for, and
// without calling the site) until that resource is Ready on the site, then is applied.
func TestApplyWaitsForWhatAProviderProvides(t *testing.T) {
	ctx := context.Background()
	s, d, _, apply := dependencyFixture(t)
	ns := declare(t, s, cheops.Resource{ID: "ns", Name: "team-ns", Provides: []string{"namespace/team"}})
	cm := declare(t, s, cheops.Resource{ID: "cm2", Name: "team-cm", Manifest: json.RawMessage(`{"needs":["namespace/team"]}`)})

	o := apply(cm)
	rep, _ := s.GetReplica(ctx, cm.ID, "s1")
	if o.Class != cheops.Waiting || rep.State != cheops.ReplicaWaiting || !strings.Contains(rep.Message, "resource team-ns") ||
		!strings.Contains(rep.Message, "namespace team") || d.applied["s1"] != 0 {
		t.Fatalf("outcome %+v, replica %s %q, %d applies; want Waiting for team-ns, the site not called", o, rep.State, rep.Message, d.applied["s1"])
	}
	// Applying on s1 is not enough: Ready is.
	setReplica(t, s, ns.ID, "s1", func(rep *cheops.Replica) { rep.State, rep.LocalID = cheops.ReplicaApplying, "" })
	if o := apply(cm); o.Class != cheops.Waiting || !strings.Contains(o.Message, "it is Applying") {
		t.Fatalf("provider Applying: %+v", o)
	}
	setReplica(t, s, ns.ID, "s1", func(rep *cheops.Replica) {
		rep.State, rep.LocalID, rep.ObservedGeneration = cheops.ReplicaReady, "uid-ns", 1
	})
	if o := apply(cm); o.Class != "" || o.LocalID != "uid-s1" {
		t.Fatalf("provider Ready: %+v", o)
	}
	// A provider placed elsewhere (not on s1) is none of s1's business.
	other := declare(t, s, cheops.Resource{ID: "cm3", Name: "team-cm-2", Manifest: json.RawMessage(`{"needs":["namespace/elsewhere"]}`)})
	declare(t, s, cheops.Resource{ID: "ns2", Name: "elsewhere-ns", Provides: []string{"namespace/elsewhere"}, Scope: cheops.Scope{Sites: []string{"s2"}}})
	if o := apply(other); o.Class != "" {
		t.Fatalf("provider out of scope: %+v", o)
	}
}

// A dependency whose latest generation failed on the site while an earlier one's object is there
// does not block its dependents; one that is not there yet is a wait; one whose scope leaves out
// the site never will be (Permanent); one that does not exist (deleted since) is a wait.
func TestApplyWaitsForDependsOn(t *testing.T) {
	s, d, _, apply := dependencyFixture(t)
	flavor := declare(t, s, cheops.Resource{ID: "flavor", Name: "flavor"})
	srv := declare(t, s, cheops.Resource{ID: "srv", Name: "srv", DependsOn: []string{"flavor"}})
	if o := apply(srv); o.Class != cheops.Waiting || !strings.Contains(o.Message, "dependsOn[0]: waiting for resource flavor to be Ready on site s1 (it is Pending)") {
		t.Fatalf("dependency with no replica: %+v", o)
	}
	setReplica(t, s, flavor.ID, "s1", func(rep *cheops.Replica) {
		rep.State, rep.LocalID, rep.ObservedGeneration, rep.FailedGeneration = cheops.ReplicaFailed, "uid-f", 1, 2
	})
	if o := apply(srv); o.Class != "" || d.applied["s1"] != 1 {
		t.Fatalf("dependency whose generation 2 was rejected over a Ready generation 1: %+v", o)
	}
	setReplica(t, s, flavor.ID, "s1", func(rep *cheops.Replica) {
		rep.State, rep.LocalID, rep.ObservedGeneration, rep.FailedGeneration = cheops.ReplicaFailed, "", 0, 1
	})
	srv2 := declare(t, s, cheops.Resource{ID: "srv2", Name: "srv2", DependsOn: []string{"flavor"}})
	if o := apply(srv2); o.Class != cheops.Waiting {
		t.Fatalf("dependency never applied on the site: %+v", o)
	}
	declare(t, s, cheops.Resource{ID: "far", Name: "far", Scope: cheops.Scope{Sites: []string{"s2"}}})
	srv3 := declare(t, s, cheops.Resource{ID: "srv3", Name: "srv3", DependsOn: []string{"far"}})
	if o := apply(srv3); o.Class != cheops.Permanent || !strings.Contains(o.Message, "not in its scope") {
		t.Fatalf("dependency out of the site's scope: %+v", o)
	}
	srv4 := declare(t, s, cheops.Resource{ID: "srv4", Name: "srv4", DependsOn: []string{"gone"}})
	if o := apply(srv4); o.Class != cheops.Waiting || !strings.Contains(o.Message, "does not exist") {
		t.Fatalf("dependency that does not exist: %+v", o)
	}
}

// A site's refusal for want of a namespace or a kind is a wait while a resource that provides it
// is not available on the site, and stays a rejection (Permanent) when none does.
func TestMissingPrerequisiteIsAWaitOnlyWhenProvided(t *testing.T) {
	s, _, _, apply := dependencyFixture(t)
	cr := declare(t, s, cheops.Resource{ID: "cr", Name: "cr", Manifest: json.RawMessage(`{"refusedFor":"kind/example.com/Gadget"}`)})
	if o := apply(cr); o.Class != cheops.Permanent {
		t.Fatalf("no provider: %+v", o)
	}
	crd := declare(t, s, cheops.Resource{ID: "crd", Name: "gadgets-crd", Provides: []string{"kind/example.com/Gadget"}})
	setReplica(t, s, crd.ID, "s1", func(rep *cheops.Replica) { rep.State = cheops.ReplicaApplied })
	o := apply(cr)
	rep, _ := s.GetReplica(context.Background(), cr.ID, "s1")
	if o.Class != cheops.Waiting || rep.State != cheops.ReplicaWaiting || !strings.Contains(o.Message, "gadgets-crd") || !strings.Contains(o.Message, "no matches for kind example.com/Gadget") {
		t.Fatalf("provider Applied: outcome %+v, replica %s", o, rep.State)
	}
}

// A resource stored before the index of what resources provide is indexed at its next plan, so
// that its dependents wait for it without it being declared again.
func TestPlanIndexesWhatAnOlderResourceProvides(t *testing.T) {
	ctx := context.Background()
	s, _, a, env := waveFixture(t, "s1")
	a.Drivers[cheops.DriverKubernetes] = &needyDriver{siteDriver{applied: map[string]int{}}}
	ns := declare(t, s, cheops.Resource{ID: "old-ns", Name: "old-ns", Manifest: json.RawMessage(`{"provides":["namespace/old"]}`)})
	if ids, _ := s.Providers(ctx, "namespace/old"); len(ids) != 0 {
		t.Fatalf("indexed before its plan: %v", ids)
	}
	if _, err := env.ExecuteActivity(a.PlanResource, PlanInput{ResourceID: ns.ID}); err != nil {
		t.Fatal(err)
	}
	if ids, _ := s.Providers(ctx, "namespace/old"); len(ids) != 1 || ids[0] != ns.ID {
		t.Fatalf("providers of namespace/old after the plan: %v", ids)
	}
	if r, _ := s.GetResource(ctx, ns.ID); r.Generation != 1 {
		t.Fatalf("indexing changed the generation: %d", r.Generation)
	}
}
