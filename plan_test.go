package cheops_test

import (
	"slices"
	"testing"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/scope"
)

// The planner's cases, each from a scope, the known sites and the recorded replicas, through
// scope.Resolve (as the planning activity does) and cheops.PlanReplicas.
func TestPlanReplicas(t *testing.T) {
	k8s := func(name string, health cheops.SiteHealth, labels map[string]string) cheops.Site {
		return cheops.Site{Name: name, Driver: cheops.DriverKubernetes, Health: health, Labels: labels}
	}
	ready := func(site string, gen int64) cheops.Replica {
		return cheops.Replica{Site: site, State: cheops.ReplicaReady, ObservedGeneration: gen, Object: &cheops.ObjectRef{Name: "x"}}
	}
	drifted := func(rep cheops.Replica) cheops.Replica {
		rep.Drifted, rep.DriftMessage = true, "deleted on the site"
		return rep
	}
	threeSites := []cheops.Site{k8s("a", cheops.SiteReady, nil), k8s("b", cheops.SiteReady, nil), k8s("c", cheops.SiteReady, nil)}
	names := func(n ...string) cheops.Scope { return cheops.Scope{Sites: n} }
	transactional := cheops.Policy{Consistency: cheops.Transactional}
	type want struct {
		sites, apply, owed, parked, newlyParked, rejected, remove, missing, unfinished []string
		deleting, orphan, paused, rolledBack                                           bool
	}
	cases := []struct {
		name     string
		res      cheops.Resource
		sites    []cheops.Site
		replicas []cheops.Replica
		retry    bool
		resync   bool
		want     want
	}{{
		name: "new resource: every site in scope is owed",
		res:  cheops.Resource{Generation: 1, Scope: names("a", "b")}, sites: threeSites,
		want: want{sites: []string{"a", "b"}, apply: []string{"a", "b"}, owed: []string{"a", "b"}},
	}, {
		name: "a site added to the scope",
		res:  cheops.Resource{Generation: 2, Scope: names("a", "b")}, sites: threeSites,
		replicas: []cheops.Replica{ready("a", 2)},
		want:     want{sites: []string{"a", "b"}, apply: []string{"b"}, owed: []string{"b"}},
	}, {
		name: "converged: nothing to do",
		res:  cheops.Resource{Generation: 2, Scope: names("a", "b")}, sites: threeSites,
		replicas: []cheops.Replica{ready("a", 2), ready("b", 2)},
		want:     want{sites: []string{"a", "b"}},
	}, {
		name: "a new generation: Ready replicas of the older one are owed again",
		res:  cheops.Resource{Generation: 3, Scope: names("a", "b")}, sites: threeSites,
		replicas: []cheops.Replica{ready("a", 2), {Site: "b", State: cheops.ReplicaApplying, ObservedGeneration: 2}},
		want:     want{sites: []string{"a", "b"}, apply: []string{"a", "b"}, owed: []string{"a"}},
	}, {
		name: "a replica waiting for its dependencies is applied again, neither owed nor rejected",
		res:  cheops.Resource{Generation: 1, Scope: names("a", "b")}, sites: threeSites,
		replicas: []cheops.Replica{ready("a", 1), {Site: "b", State: cheops.ReplicaWaiting}},
		want:     want{sites: []string{"a", "b"}, apply: []string{"b"}},
	}, {
		name: "a drifted replica is re-applied (policy.drift correct, the default)",
		res:  cheops.Resource{Generation: 2, Scope: names("a", "b")}, sites: threeSites,
		replicas: []cheops.Replica{ready("a", 2), drifted(ready("b", 2))},
		want:     want{sites: []string{"a", "b"}, apply: []string{"b"}, owed: []string{"b"}},
	}, {
		name: "a drifted replica is left as it is under policy.drift report",
		res:  cheops.Resource{Generation: 2, Scope: names("a", "b"), Policy: cheops.Policy{Drift: cheops.DriftReport}}, sites: threeSites,
		replicas: []cheops.Replica{ready("a", 2), drifted(ready("b", 2))},
		want:     want{sites: []string{"a", "b"}},
	}, {
		name: "a resync re-applies a drifted replica even under policy.drift report",
		res:  cheops.Resource{Generation: 2, Scope: names("a"), Policy: cheops.Policy{Drift: cheops.DriftReport}}, sites: threeSites,
		replicas: []cheops.Replica{drifted(ready("a", 2))}, resync: true,
		want: want{sites: []string{"a"}, apply: []string{"a"}, owed: []string{"a"}},
	}, {
		name: "a drifted replica on an unreachable site is parked",
		res:  cheops.Resource{Generation: 2, Scope: names("a")}, sites: []cheops.Site{k8s("a", cheops.SiteUnreachable, nil)},
		replicas: []cheops.Replica{drifted(ready("a", 2))},
		want:     want{sites: []string{"a"}, parked: []string{"a"}, newlyParked: []string{"a"}},
	}, {
		name: "resync re-applies converged replicas",
		res:  cheops.Resource{Generation: 2, Scope: names("a")}, sites: threeSites,
		replicas: []cheops.Replica{ready("a", 2)}, resync: true,
		want: want{sites: []string{"a"}, apply: []string{"a"}, owed: []string{"a"}},
	}, {
		name: "a site that left the scope has its replica removed",
		res:  cheops.Resource{Generation: 2, Scope: names("a")}, sites: threeSites,
		replicas: []cheops.Replica{ready("a", 2), ready("c", 1)},
		want:     want{sites: []string{"a"}, remove: []string{"c"}},
	}, {
		name: "a site the scope names does not exist",
		res:  cheops.Resource{Generation: 1, Scope: names("a", "zz")}, sites: threeSites,
		want: want{sites: []string{"a"}, apply: []string{"a"}, owed: []string{"a"}, missing: []string{"zz"}},
	}, {
		name: "a selector only selects sites of the resource's driver",
		res:  cheops.Resource{Generation: 1, Driver: cheops.DriverKubernetes, Scope: cheops.Scope{Selector: "region=eu"}},
		sites: []cheops.Site{k8s("a", cheops.SiteReady, map[string]string{"region": "eu"}), k8s("b", cheops.SiteReady, map[string]string{"region": "us"}),
			{Name: "os", Driver: cheops.DriverOpenStack, Labels: map[string]string{"region": "eu"}}},
		want: want{sites: []string{"a"}, apply: []string{"a"}, owed: []string{"a"}},
	}, {
		name: "a resource bound to some sites (declared by a bound token) is never placed outside them",
		res:  cheops.Resource{Generation: 1, Within: "region=eu", Scope: cheops.Scope{Selector: "tier=web"}},
		sites: []cheops.Site{k8s("a", cheops.SiteReady, map[string]string{"region": "eu", "tier": "web"}),
			k8s("b", cheops.SiteReady, map[string]string{"region": "us", "tier": "web"})},
		want: want{sites: []string{"a"}, apply: []string{"a"}, owed: []string{"a"}},
	}, {
		name:     "failover: the held alternative's site is unreachable, the next one takes over",
		res:      cheops.Resource{Generation: 1, Scope: cheops.Scope{Expression: "a | b"}},
		sites:    []cheops.Site{k8s("a", cheops.SiteUnreachable, nil), k8s("b", cheops.SiteReady, nil)},
		replicas: []cheops.Replica{ready("a", 1)},
		want:     want{sites: []string{"b"}, apply: []string{"b"}, owed: []string{"b"}, remove: []string{"a"}},
	}, {
		name:     "after a failover the replica stays where it went when the first site returns",
		res:      cheops.Resource{Generation: 1, Scope: cheops.Scope{Expression: "a | b"}},
		sites:    []cheops.Site{k8s("a", cheops.SiteReady, nil), k8s("b", cheops.SiteReady, nil)},
		replicas: []cheops.Replica{ready("b", 1)},
		want:     want{sites: []string{"b"}},
	}, {
		name:     "eventual: an unreachable site is parked, and recorded so once",
		res:      cheops.Resource{Generation: 1, Scope: names("a", "b", "c")},
		sites:    []cheops.Site{k8s("a", cheops.SiteReady, nil), k8s("b", cheops.SiteUnreachable, nil), k8s("c", cheops.SiteUnreachable, nil)},
		replicas: []cheops.Replica{{Site: "c", State: cheops.ReplicaUnreachable}},
		want:     want{sites: []string{"a", "b", "c"}, apply: []string{"a"}, owed: []string{"a"}, parked: []string{"b", "c"}, newlyParked: []string{"b"}},
	}, {
		name:  "transactional: an unreachable site is not parked but applied, so the saga decides",
		res:   cheops.Resource{Generation: 1, Scope: names("a", "b"), Policy: transactional},
		sites: []cheops.Site{k8s("a", cheops.SiteReady, nil), k8s("b", cheops.SiteUnreachable, nil)},
		want:  want{sites: []string{"a", "b"}, apply: []string{"a", "b"}, owed: []string{"a", "b"}},
	}, {
		name: "a site that rejected this generation is not retried",
		res:  cheops.Resource{Generation: 2, Scope: names("a", "b")}, sites: threeSites,
		replicas: []cheops.Replica{ready("a", 2), {Site: "b", State: cheops.ReplicaFailed, FailedGeneration: 2}},
		want:     want{sites: []string{"a", "b"}, rejected: []string{"b"}},
	}, {
		name: "a rejected site is retried when asked",
		res:  cheops.Resource{Generation: 2, Scope: names("a", "b")}, sites: threeSites,
		replicas: []cheops.Replica{ready("a", 2), {Site: "b", State: cheops.ReplicaFailed, FailedGeneration: 2}}, retry: true,
		want: want{sites: []string{"a", "b"}, apply: []string{"b"}},
	}, {
		name: "a site that rejected an older generation gets the new one",
		res:  cheops.Resource{Generation: 3, Scope: names("b")}, sites: threeSites,
		replicas: []cheops.Replica{{Site: "b", State: cheops.ReplicaFailed, FailedGeneration: 2}},
		want:     want{sites: []string{"b"}, apply: []string{"b"}},
	}, {
		name: "paused: the plan says so; what is owed is still planned",
		res:  cheops.Resource{Generation: 1, Scope: names("a"), Paused: true}, sites: threeSites,
		want: want{sites: []string{"a"}, apply: []string{"a"}, owed: []string{"a"}, paused: true},
	}, {
		name: "deleting: every replica is removed, in scope or not",
		res:  cheops.Resource{Generation: 2, Scope: names("a"), Deletion: &cheops.Deletion{}}, sites: threeSites,
		replicas: []cheops.Replica{ready("a", 2), ready("c", 1)},
		want:     want{deleting: true, remove: []string{"a", "c"}},
	}, {
		name: "deleting with orphan",
		res:  cheops.Resource{Generation: 1, Scope: names("a"), Deletion: &cheops.Deletion{Orphan: true}}, sites: threeSites,
		replicas: []cheops.Replica{ready("a", 1)},
		want:     want{deleting: true, orphan: true, remove: []string{"a"}},
	}, {
		name: "transactional, nothing committed yet: the first generation goes to every site",
		res:  cheops.Resource{Generation: 1, Scope: names("a", "b"), Policy: transactional}, sites: threeSites,
		want: want{sites: []string{"a", "b"}, apply: []string{"a", "b"}, owed: []string{"a", "b"}},
	}, {
		name: "transactional, rolled back to the committed generation: nothing is applied until retried",
		res: cheops.Resource{Generation: 2, Scope: names("a", "b"), Policy: transactional,
			Rollback: &cheops.Rollback{Generation: 2, Done: true, Reasons: map[string]string{"b": "rejected"}}},
		sites: threeSites, replicas: []cheops.Replica{ready("a", 1), ready("b", 1)},
		want: want{sites: []string{"a", "b"}, rolledBack: true},
	}, {
		name: "transactional, a rollback recorded as started but never finished is resumed",
		res: cheops.Resource{Generation: 2, Scope: names("a", "b"), Policy: transactional,
			Rollback: &cheops.Rollback{Generation: 2, Reasons: map[string]string{"b": "rejected"}}},
		sites: threeSites, replicas: []cheops.Replica{ready("a", 2), {Site: "b", State: cheops.ReplicaFailed, FailedGeneration: 2}},
		want: want{sites: []string{"a", "b"}, rolledBack: true, unfinished: []string{"a", "b"}},
	}, {
		name: "transactional, a rolled-back generation retried",
		res: cheops.Resource{Generation: 2, Scope: names("a", "b"), Policy: transactional,
			Rollback: &cheops.Rollback{Generation: 2, Done: true}},
		sites: threeSites, replicas: []cheops.Replica{ready("a", 1), ready("b", 1)}, retry: true,
		want: want{sites: []string{"a", "b"}, apply: []string{"a", "b"}, owed: []string{"a", "b"}, rolledBack: true},
	}, {
		name: "transactional, a rollback of an older generation does not hold back a new one",
		res: cheops.Resource{Generation: 3, Scope: names("a"), Policy: transactional,
			Rollback: &cheops.Rollback{Generation: 2, Done: true}},
		sites: threeSites, replicas: []cheops.Replica{ready("a", 1)},
		want: want{sites: []string{"a"}, apply: []string{"a"}, owed: []string{"a"}},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.res.ID, tc.res.Name = "id", "res"
			if tc.res.Driver == "" {
				tc.res.Driver = cheops.DriverKubernetes
			}
			in := cheops.PlanInput{Resource: tc.res, Replicas: tc.replicas, Retry: tc.retry, Resync: tc.resync,
				Health: map[string]cheops.SiteHealth{}}
			if tc.res.Deletion == nil {
				placed, err := scope.Resolve(tc.res.Scope, scope.Within(tc.res, tc.sites), tc.res.Driver, cheops.Held(tc.replicas))
				if err != nil {
					t.Fatal(err)
				}
				in.Sites, in.Missing = placed.Sites, placed.Missing
			}
			for _, s := range tc.sites {
				in.Health[s.Name] = s.Health
			}
			p := cheops.PlanReplicas(in)
			w := tc.want
			for _, f := range []struct {
				name      string
				got, want []string
			}{{"Sites", p.Sites, w.sites}, {"Apply", p.Apply, w.apply}, {"Owed", p.Owed, w.owed}, {"Parked", p.Parked, w.parked},
				{"NewlyParked", p.NewlyParked, w.newlyParked}, {"Rejected", p.Rejected, w.rejected}, {"Remove", p.Remove, w.remove},
				{"Missing", p.Missing, w.missing}, {"Unfinished", p.Unfinished, w.unfinished}} {
				if !slices.Equal(f.got, f.want) {
					t.Errorf("%s = %v, want %v", f.name, f.got, f.want)
				}
			}
			if !p.Exists || p.Deleting != w.deleting || p.Orphan != w.orphan || p.Paused != w.paused || p.RolledBack != w.rolledBack {
				t.Errorf("exists %v deleting %v orphan %v paused %v rolledBack %v; want true %v %v %v %v",
					p.Exists, p.Deleting, p.Orphan, p.Paused, p.RolledBack, w.deleting, w.orphan, w.paused, w.rolledBack)
			}
			if want := tc.res.Policy.WithDefaults(); p.Consistency != want.Consistency || p.MaxParallel != want.MaxParallel {
				t.Errorf("policy %s/%d, want %s/%d", p.Consistency, p.MaxParallel, want.Consistency, want.MaxParallel)
			}
		})
	}
}
