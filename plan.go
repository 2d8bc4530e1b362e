package cheops

import (
	"slices"
	"time"
)

// PlanInput is what a plan is decided from: the resource as declared, its replicas as recorded, and
// where its scope places it now.
type PlanInput struct {
	Resource Resource
	Replicas []Replica
	// Sites are the sites the scope selects, sorted; Missing the names it uses that do not exist
	// (see scope.Resolve).
	Sites   []string
	Missing []string
	// Health is the probed health of each known site.
	Health map[string]SiteHealth
	// Retry includes replicas that failed permanently on the current generation, and a rolled-back
	// transactional generation.
	Retry bool
	// Resync re-applies every replica in scope, converged or not.
	Resync bool
}

// Plan is the level-triggered comparison of what is declared with what is recorded: what a
// resource's workflow must do next.
type Plan struct {
	// Exists is false once the resource is forgotten.
	Exists       bool
	Name         string
	Generation   int64
	Consistency  Consistency
	Deleting     bool
	Orphan       bool
	Paused       bool
	MaxParallel  int
	Timeout      time.Duration
	RetryInitial time.Duration
	RetryMax     time.Duration
	// ReadyTimeout bounds the wait for an applied replica's status to say Ready.
	ReadyTimeout time.Duration
	// Waves, for a progressive rollout (policy.rollout), are the sites of Apply in the order and
	// waves they are applied in; empty, Apply is applied at once. Soak is the wait after a wave,
	// MaxFailures the failed sites that stop the rollout (0: never).
	Waves       [][]string    `json:",omitempty"`
	Soak        time.Duration `json:",omitempty"`
	MaxFailures int           `json:",omitempty"`
	// RolledBack is set when the current transactional generation was rolled back.
	RolledBack bool
	// Unfinished, with RolledBack, lists the sites of a rollback that was recorded as started but not
	// as done (its workflow was ended by hand midway), with the reasons recorded then.
	Unfinished      []string
	RollbackReasons map[string]string
	// Resync asks the apply to run even on replicas recorded as converged.
	Resync bool
	// Sites are the sites in scope, sorted.
	Sites []string
	// Apply are the sites in scope whose replica is not Ready at Generation, or drifted (under
	// policy.drift correct).
	Apply []string
	// Parked are sites in scope the health probe finds unreachable; eventual mode waits for them to
	// come back instead of calling them.
	Parked []string
	// Rejected are sites that rejected this generation (a permanent failure); they are retried only
	// when asked, or on a new generation.
	Rejected []string
	// Remove are the sites holding a replica that must go (out of scope, or all of them when deleting).
	Remove []string
	// Missing are sites the scope names that do not exist.
	Missing []string

	// Owed are the sites of Apply with no replica recorded yet, or a Ready one of an older
	// generation: they are recorded as Pending, so every site in scope shows from the start.
	// Newly parked are the sites of Parked not yet recorded as Unreachable. Both are for the
	// planning step to record; they stay out of the workflow's history.
	Owed        []string `json:"-"`
	NewlyParked []string `json:"-"`
}

// PlanReplicas decides what a resource's workflow must do next. It is pure: the caller loads the
// facts, and records what the plan says to record (Owed, NewlyParked).
func PlanReplicas(in PlanInput) Plan {
	r := in.Resource
	pol := r.Policy.WithDefaults()
	p := Plan{Exists: true, Name: r.Name, Generation: r.Generation, Consistency: pol.Consistency,
		Paused: r.Paused, MaxParallel: pol.MaxParallel, Timeout: time.Duration(pol.Timeout),
		RetryInitial: time.Duration(pol.RetryInitial), RetryMax: time.Duration(pol.RetryMax),
		ReadyTimeout: time.Duration(pol.ReadyTimeout), RolledBack: r.RolledBack(), Resync: in.Resync}
	if r.Deletion != nil {
		p.Deleting, p.Orphan = true, r.Deletion.Orphan
		for _, rep := range in.Replicas {
			p.Remove = append(p.Remove, rep.Site)
		}
		return p
	}
	p.Sites, p.Missing = in.Sites, in.Missing
	if p.RolledBack && !in.Retry {
		// A rolled-back generation stays rolled back until a new one is declared or a retry is asked.
		if !r.Rollback.Done {
			for _, rep := range in.Replicas {
				p.Unfinished = append(p.Unfinished, rep.Site)
			}
			p.RollbackReasons = r.Rollback.Reasons
		}
		return p
	}
	byName := map[string]Replica{}
	for _, rep := range in.Replicas {
		byName[rep.Site] = rep
		if !slices.Contains(p.Sites, rep.Site) {
			p.Remove = append(p.Remove, rep.Site)
		}
	}
	for _, site := range p.Sites {
		rep, ok := byName[site]
		// A drifted replica is re-applied under policy.drift correct; under report it is left as
		// it is until a new generation or a resync applies it anyway.
		converged := ok && rep.State == ReplicaReady && rep.ObservedGeneration == r.Generation &&
			!(rep.Drifted && pol.Drift == DriftCorrect)
		switch {
		case converged && !in.Resync:
			continue
		case ok && rep.State == ReplicaFailed && rep.FailedGeneration == r.Generation && !in.Retry && !in.Resync:
			p.Rejected = append(p.Rejected, site)
			continue
		case p.Consistency == Eventual && in.Health[site] == SiteUnreachable:
			p.Parked = append(p.Parked, site)
			if !ok || rep.State != ReplicaUnreachable {
				p.NewlyParked = append(p.NewlyParked, site)
			}
			continue
		}
		p.Apply = append(p.Apply, site)
		if !ok || rep.State == ReplicaReady {
			p.Owed = append(p.Owed, site)
		}
	}
	return p
}

// Held returns the sites where a replica holds, or may hold, an object: the scope resolution keeps
// a replica that failed over where it is (see scope.Evaluate).
func Held(replicas []Replica) map[string]bool {
	held := map[string]bool{}
	for _, rep := range replicas {
		held[rep.Site] = rep.Object != nil || rep.State == ReplicaReady
	}
	return held
}
