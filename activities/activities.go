// Package activities holds the durable steps of a replication. Each is idempotent and thin: it
// resolves a site's target from the store, calls the driver, and records the outcome in the store.
// Credentials are read here, inside the activity, so they never enter a workflow's input or history.
package activities

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.temporal.io/sdk/activity"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/overrides"
	"github.com/cheops-io/cheops/store"
)

// Activities carries the clients every activity needs, injected once at worker start.
type Activities struct {
	Store   *store.Store
	Drivers map[cheops.DriverName]cheops.Driver
	// Log, when set, receives a line per wave and per site that failed in it (see logWave).
	Log *slog.Logger
}

// ApplyInput names one replica to converge.
type ApplyInput struct {
	ResourceID string
	Site       string
	Generation int64
	// Force applies even when the record says the site already has this generation, to repair drift.
	Force bool
}

// ApplyOutput reports the converged replica.
type ApplyOutput struct {
	LocalID    string
	Generation int64
	// Skipped is set when the resource is gone or being deleted.
	Skipped bool
	// Awaiting is set when the site took the generation and its status does not say Ready yet: the
	// replica is Applied, and AwaitReadiness waits for it.
	Awaiting bool `json:",omitempty"`
}

// ApplyReplica makes the resource's current generation true on one site and records the outcome.
// It applies what the store holds now, which is at least in.Generation: converging to the newest
// declaration is always right, and an older generation is never re-applied over a newer one.
func (a *Activities) ApplyReplica(ctx context.Context, in ApplyInput) (ApplyOutput, error) {
	r, ok, err := a.resource(ctx, in.ResourceID)
	if err != nil {
		return ApplyOutput{}, err
	}
	if !ok || r.Deletion != nil {
		return ApplyOutput{Skipped: true}, nil
	}
	return a.applyAndRecord(ctx, r, in.Site, cheops.EventApplied, "", in.Force)
}

// applyAndRecord is applySite for an activity that applies one site: the attempt is Temporal's,
// and a failure recorded on the replica is mapped to Temporal's retry behaviour.
func (a *Activities) applyAndRecord(ctx context.Context, r cheops.Resource, site string, evType cheops.EventType, message string, force bool) (ApplyOutput, error) {
	out, err := a.applySite(ctx, r, site, siteApply{event: evType, message: message, force: force, attempt: int(activity.GetInfo(ctx).Attempt)})
	var rec *recordedFailure
	if errors.As(err, &rec) {
		return out, asTemporalError(rec.err)
	}
	return out, err
}

// siteApply says how a site is applied and recorded, by applySite or by a wave.
type siteApply struct {
	// event is the type of the event recorded once the site is done.
	event cheops.EventType
	// message, when set, is kept on the Ready replica.
	message string
	// force applies even when the record says the site is already done.
	force bool
	// attempt is the number of this try, recorded as the replica's Attempts.
	attempt int
}

// applySite makes r's manifest at r's generation true on a site and records the replica. A failure
// to apply is recorded on the replica and returned as a *recordedFailure holding the classified
// error; any other error (a failure to record) is returned as it is. A wave takes the same steps
// (prepare, mark Applying, apply, record) for many sites at once, batching the records.
func (a *Activities) applySite(ctx context.Context, r cheops.Resource, site string, how siteApply) (ApplyOutput, error) {
	p, err := a.prepare(ctx, r, site, nil, newSharedReads(a))
	if err != nil {
		return ApplyOutput{}, a.recordFailure(ctx, r, site, how.attempt, err)
	}
	rep, err := a.Store.UpdateReplica(ctx, r.ID, site, p.markApplying(r, how))
	if err != nil {
		return ApplyOutput{}, err
	}
	if p.done(r, how, &rep) {
		return ApplyOutput{LocalID: rep.LocalID, Generation: r.Generation, Awaiting: rep.State == cheops.ReplicaApplied}, nil
	}
	res, err := a.apply(ctx, r, &p, rep.Object)
	if err != nil {
		return ApplyOutput{}, a.recordFailure(ctx, r, site, how.attempt, err)
	}
	_, err = a.Store.UpdateReplica(ctx, r.ID, site, p.recordApplied(r, how, res))
	if errors.Is(err, store.ErrNotFound) {
		return a.forgottenWhileApplied(ctx, r, site, res)
	}
	if err != nil {
		return ApplyOutput{}, err
	}
	return ApplyOutput{LocalID: res.LocalID, Generation: r.Generation, Awaiting: awaiting(r, res)}, nil
}

// awaiting says whether a replica the site took must still wait for its status to say Ready.
func awaiting(r cheops.Resource, res cheops.ApplyResult) bool {
	return r.Policy.WithDefaults().Readiness == cheops.ReadyWhenStatus && res.Readiness != nil &&
		res.Readiness.State != cheops.ObjectReady
}

// prepared is a site made ready to apply: its target and driver, the manifest with the site's
// overrides, the local IDs its references resolve to on the site, and the digest of all that.
type prepared struct {
	site      string
	target    cheops.Target
	driver    cheops.Driver
	manifest  []byte
	overrides []string
	refs      map[string]string
	hash      string
	// before is the replica as it stood before this attempt marked it Applying.
	before cheops.Replica
}

// prepare works out what applying r on a site takes. Its error is the site's failure, to record.
// targets, when set, answers for the site's target from a read made for many sites (see
// store.Targets); otherwise the site is read alone. reads are the reads of r's dependencies that
// the sites of a wave share.
func (a *Activities) prepare(ctx context.Context, r cheops.Resource, site string, targets func(string) (cheops.Target, error), reads *sharedReads) (prepared, error) {
	p := prepared{site: site}
	var err error
	if targets != nil {
		p.target, err = targets(site)
		p.target, p.driver, err = a.driverFor(p.target, err, r.Driver, site)
	} else {
		p.target, p.driver, err = a.target(ctx, r.Driver, site)
	}
	if err == nil {
		p.manifest, p.overrides, err = overrides.Apply(r, p.target.Site)
	}
	if err == nil {
		ds := &dependencies{a: a, r: r, site: site, reads: reads}
		p.refs, err = ds.resolve(ctx, p.driver, p.target, p.manifest)
	}
	if err != nil {
		return p, err
	}
	// What a replica is made of includes the local IDs its references resolve to on the site.
	p.hash = digest(p.manifest)
	if len(p.refs) > 0 {
		b, _ := json.Marshal(p.refs)
		p.hash = digest(append(append([]byte{}, p.manifest...), b...))
	}
	return p, nil
}

// done says whether the replica already holds what p would apply at r's generation, so that
// applying it again can be skipped (unless forced): it is Ready, or Applied and waiting for its
// status to say Ready. A drifted replica is never done: its site no longer holds what the record
// says (see worker.DriftMonitor), and re-applying it is the repair.
func (p *prepared) done(r cheops.Resource, how siteApply, rep *cheops.Replica) bool {
	return !how.force && !rep.Drifted && (rep.State == cheops.ReplicaReady || rep.State == cheops.ReplicaApplied) &&
		rep.ObservedGeneration == r.Generation && rep.AppliedHash == p.hash
}

// markApplying is the update that records an attempt at the site before it is applied; a replica
// already done is left alone.
func (p *prepared) markApplying(r cheops.Resource, how siteApply) func(*cheops.Replica) (*cheops.Event, error) {
	return func(rep *cheops.Replica) (*cheops.Event, error) {
		p.before = *rep
		if p.done(r, how, rep) {
			return nil, store.ErrSkip
		}
		rep.State = cheops.ReplicaApplying
		rep.Attempts = how.attempt
		if rep.ApplyingSince == nil {
			// Recorded before the driver is called, so an object the driver makes is always
			// made after it (see cheops.ApplyRequest.UnrecordedSince).
			now := time.Now().UTC()
			rep.ApplyingSince = &now
		}
		return nil, nil
	}
}

// apply applies p on its site. When the manifest now names another object than the one recorded
// (prev), that one is removed as a deletion would (deleted, or released if it was adopted): it is
// no longer ours to keep.
func (a *Activities) apply(ctx context.Context, r cheops.Resource, p *prepared, prev *cheops.ObjectRef) (cheops.ApplyResult, error) {
	var res cheops.ApplyResult
	req := cheops.ApplyRequest{ResourceID: r.ID, ResourceName: r.Name, Generation: r.Generation, Manifest: p.manifest, References: p.refs,
		Adopt: r.Policy.WithDefaults().Conflict == cheops.ConflictAdopt, LocalID: p.before.LocalID, LocalAdopted: p.before.Adopted}
	if p.before.ApplyingSince != nil {
		// Only an earlier attempt can have made an object this one does not know of; this
		// attempt looks before it creates.
		req.UnrecordedSince = *p.before.ApplyingSince
	}
	err := heartbeating(ctx, func(ctx context.Context) error {
		var err error
		res, err = p.driver.Apply(ctx, p.target, req)
		return err
	})
	err = a.missingWait(ctx, r, p.site, err)
	if err == nil && prev != nil && *prev != res.Object {
		err = heartbeating(ctx, func(ctx context.Context) error {
			return removeObject(ctx, p.driver, p.target, r, *prev, p.before.Adopted)
		})
	}
	return res, err
}

// removeObject removes a replica's object from its site: deletes it, unless the replica adopted
// it and the policy says to release it; then it removes cheops' marks (see cheops.Releaser) and
// leaves it.
func removeObject(ctx context.Context, d cheops.Driver, t cheops.Target, r cheops.Resource, ref cheops.ObjectRef, adopted bool) error {
	if releases(r, adopted) {
		if rel, ok := d.(cheops.Releaser); ok {
			return rel.Release(ctx, t, ref, r.ID)
		}
		return nil
	}
	if od, ok := d.(cheops.OwnedDeleter); ok {
		return od.DeleteOwned(ctx, t, ref, r.ID)
	}
	return d.Delete(ctx, t, ref)
}

// releases says whether removing a replica's object releases it rather than deleting it.
func releases(r cheops.Resource, adopted bool) bool {
	return adopted && r.Policy.WithDefaults().Adopted == cheops.AdoptedRelease
}

// recordApplied is the update that records the site applied, with what was applied, and the event
// of how.event: Ready, or Applied when its status does not say Ready yet (see awaiting).
func (p *prepared) recordApplied(r cheops.Resource, how siteApply, res cheops.ApplyResult) func(*cheops.Replica) (*cheops.Event, error) {
	return func(rep *cheops.Replica) (*cheops.Event, error) {
		rep.State = cheops.ReplicaReady
		// The replica stays adopted while it holds the object it adopted.
		rep.Adopted = res.Adopted || (rep.Adopted && rep.Object != nil && *rep.Object == res.Object)
		rep.LocalID, rep.Object, rep.Overrides = res.LocalID, &res.Object, p.overrides
		rep.ObservedGeneration, rep.AppliedHash, rep.Message, rep.FailedGeneration = r.Generation, p.hash, how.message, 0
		now := time.Now().UTC()
		rep.AppliedAt, rep.ApplyingSince = &now, nil
		msg := "local ID " + res.LocalID
		if rep.Drifted {
			// What the site holds is what was just applied: the drift is repaired.
			msg = "repaired drift (" + rep.DriftMessage + "); " + msg
			rep.Drifted, rep.DriftMessage = false, ""
		}
		if how.message != "" {
			msg = how.message + "; " + msg
		}
		ev := &cheops.Event{Type: how.event, Site: p.site, Generation: r.Generation, Message: msg}
		if res.Adopted {
			ev.Type = cheops.EventAdopted
			ev.Message = fmt.Sprintf("adopted %s from %s (policy.conflict adopt); %s", objectName(res.Object), res.PreviousOwner, msg)
		}
		if awaiting(r, res) {
			rep.State = cheops.ReplicaApplied
			rep.Message = joinMessage(how.message, "waiting for its status to say Ready: "+res.Readiness.Message)
			ev.Message += "; waiting for its status to say Ready"
		}
		return ev, nil
	}
}

// joinMessage joins two messages with "; ", either of which may be empty.
func joinMessage(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}

// objectName names a local object for a message: "ConfigMap default/web", "compute.keypair ops".
func objectName(ref cheops.ObjectRef) string {
	name := ref.Name
	if ref.Namespace != "" {
		name = ref.Namespace + "/" + name
	}
	return ref.Kind + " " + name
}

// forgottenWhileApplied handles an apply whose Ready record was refused because the resource was
// forgotten while it ran: the object it just made must not outlive the resource.
func (a *Activities) forgottenWhileApplied(ctx context.Context, r cheops.Resource, site string, res cheops.ApplyResult) (ApplyOutput, error) {
	return ApplyOutput{Skipped: true}, a.removeOnSite(ctx, r, site, res.Object, res.Adopted)
}

// recordedFailure is a failed apply whose failure is recorded on its replica.
type recordedFailure struct{ err error }

func (f *recordedFailure) Error() string { return f.err.Error() }
func (f *recordedFailure) Unwrap() error { return f.err }

// recordFailure records a failed apply on the replica, by its class, and returns it as a
// *recordedFailure; when it cannot be recorded, it returns both errors joined, unrecorded.
func (a *Activities) recordFailure(ctx context.Context, r cheops.Resource, site string, attempt int, err error) error {
	_, rerr := a.Store.UpdateReplica(ctx, r.ID, site, failureRecord(r, site, attempt, err))
	return recorded(err, rerr)
}

// recorded is a failed apply err once the attempt to record it returned rerr: a *recordedFailure,
// or, when it could not be recorded, both errors joined. A resource forgotten meanwhile has no
// replica left to record anything on, which is as good as recorded.
func recorded(err, rerr error) error {
	if rerr != nil && !errors.Is(rerr, store.ErrNotFound) {
		return errors.Join(err, rerr)
	}
	return &recordedFailure{err}
}

// failureRecord is the update that records a failed apply on the replica, by its class.
func failureRecord(r cheops.Resource, site string, attempt int, err error) func(*cheops.Replica) (*cheops.Event, error) {
	class := cheops.ClassOf(err)
	state := cheops.ReplicaApplying
	switch class {
	case cheops.Permanent:
		state = cheops.ReplicaFailed
	case cheops.Unreachable:
		state = cheops.ReplicaUnreachable
	case cheops.Waiting:
		state = cheops.ReplicaWaiting
	}
	return func(rep *cheops.Replica) (*cheops.Event, error) {
		// The same failure again is counted in Attempts, not logged again: a site down for a
		// day must not grow the event log by thousands of identical lines. (Each attempt marks
		// the replica Applying first, so the last failure is known by its message.)
		repeated := rep.Message == err.Error()
		rep.State, rep.Message, rep.Attempts = state, err.Error(), attempt
		if state == cheops.ReplicaFailed {
			rep.FailedGeneration = r.Generation
			// The site refused what it was asked, having made nothing unmarked: an object of the
			// replica's name is not an unrecorded attempt's (a keypair found someone else's
			// fails so, and must never be taken for cheops' by a later look-up).
			rep.ApplyingSince = nil
		}
		if repeated {
			return nil, nil
		}
		return &cheops.Event{Type: cheops.EventApplyFailed, Site: site, Generation: r.Generation,
			Message: fmt.Sprintf("attempt %d: %v", attempt, err)}, nil
	}
}

// resource reads a resource for an activity. ok is false when the resource is already forgotten:
// for every activity, that leaves nothing to do.
func (a *Activities) resource(ctx context.Context, id string) (r cheops.Resource, ok bool, err error) {
	r, err = a.Store.GetResource(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return r, false, nil
	}
	return r, err == nil, err
}

func (a *Activities) target(ctx context.Context, driver cheops.DriverName, siteName string) (cheops.Target, cheops.Driver, error) {
	t, err := a.Store.Target(ctx, siteName)
	return a.driverFor(t, err, driver, siteName)
}

// driverFor checks a site's target, as the store read it, and returns the driver for it.
func (a *Activities) driverFor(t cheops.Target, err error, driver cheops.DriverName, siteName string) (cheops.Target, cheops.Driver, error) {
	if errors.Is(err, store.ErrNotFound) {
		return t, nil, cheops.Classify(cheops.Permanent, fmt.Errorf("site %s does not exist", siteName))
	}
	if err != nil {
		return t, nil, err
	}
	if t.Site.Driver != driver {
		return t, nil, cheops.Classify(cheops.Permanent, fmt.Errorf("site %s is a %s site; the resource needs %s", siteName, t.Site.Driver, driver))
	}
	d, ok := a.Drivers[driver]
	if !ok {
		return t, nil, cheops.Classify(cheops.Permanent, fmt.Errorf("no %s driver in this worker", driver))
	}
	return t, d, nil
}

// heartbeating runs fn while heartbeating, so a worker that dies mid-call is noticed within the
// heartbeat timeout rather than the whole start-to-close timeout. Inside a wave the wave
// heartbeats, with its progress as details, which a heartbeat from here would overwrite.
func heartbeating(ctx context.Context, fn func(context.Context) error) error {
	done := make(chan struct{})
	defer close(done)
	if activity.IsActivity(ctx) && !inWave(ctx) {
		go func() {
			t := time.NewTicker(2 * time.Second)
			defer t.Stop()
			for {
				select {
				case <-done:
					return
				case <-t.C:
					activity.RecordHeartbeat(ctx)
				}
			}
		}()
	}
	return fn(ctx)
}

func digest(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// MarkInput records that a replica gave up after its retries.
type MarkInput struct {
	ResourceID string
	Site       string
	Message    string
}

// MarkReplicaFailed records a replica whose apply gave up as Failed, unless it is already
// classified as Failed or Unreachable.
func (a *Activities) MarkReplicaFailed(ctx context.Context, in MarkInput) error {
	_, err := a.Store.UpdateReplica(ctx, in.ResourceID, in.Site, func(rep *cheops.Replica) (*cheops.Event, error) {
		if rep.State == cheops.ReplicaFailed || rep.State == cheops.ReplicaUnreachable {
			return nil, store.ErrSkip
		}
		rep.State, rep.Message = cheops.ReplicaFailed, in.Message
		return nil, nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// DeleteInput names one replica to remove.
type DeleteInput struct {
	ResourceID string
	Site       string
	// Orphan forgets the replica and leaves its object on the site.
	Orphan bool
}

// DeleteReplica removes a replica's object from its site (unless orphaned) and forgets the replica.
// A replica or object already gone is success.
func (a *Activities) DeleteReplica(ctx context.Context, in DeleteInput) error {
	r, ok, err := a.resource(ctx, in.ResourceID)
	if !ok || err != nil {
		return err
	}
	return asTemporalRemoval(a.removeReplica(ctx, r, in.Site, deletion(in.Site, in.Orphan)))
}

// deletion is how a replica leaves its site when it is deleted (or orphaned), alone or in a wave.
func deletion(site string, orphan bool) removal {
	ev := cheops.Event{Type: cheops.EventDeleted, Site: site}
	if orphan {
		ev.Type = cheops.EventOrphaned
	}
	return removal{orphan: orphan, event: ev}
}

// siteFailure is a failure of the site itself (finding or deleting its object), which keeps the
// driver's class; any other error of removeReplica is the store's.
type siteFailure struct{ err error }

func (f *siteFailure) Error() string { return f.err.Error() }
func (f *siteFailure) Unwrap() error { return f.err }

// asTemporalRemoval maps removeReplica's error for an activity that removes one replica: a site's
// failure by its class, a store error as it is.
func asTemporalRemoval(err error) error {
	var sf *siteFailure
	if errors.As(err, &sf) {
		return asTemporalError(sf.err)
	}
	return err
}

// removal says how a replica leaves its site.
type removal struct {
	// orphan forgets the replica and leaves its object on the site.
	orphan bool
	// message, when set, is shown on the replica while its object is deleted.
	message string
	// event records the replica's removal; its message is completed with what was removed.
	event cheops.Event
	// untouched says the site is known to hold nothing of the resource but what its replica
	// records (its apply was refused, or never reached it): no unrecorded object is looked for,
	// so an unreachable site does not hold the removal up.
	untouched bool
}

// removeReplica is the one way a replica leaves a site, for a delete and for a rollback alike: it
// finds an object an apply made without recording it (see cheops.Finder), marks the replica
// Deleting, deletes the object from the site, then forgets the replica and records the event in one
// transaction. Running it again after it finished changes nothing. A failure to find or delete the
// object is returned as a *siteFailure holding the classified error; any other error is the store's.
func (a *Activities) removeReplica(ctx context.Context, r cheops.Resource, site string, how removal) error {
	rep, err := a.Store.GetReplica(ctx, r.ID, site)
	if errors.Is(err, store.ErrNotFound) {
		return nil // never created, or already removed by an earlier run
	}
	if err != nil {
		return err
	}
	ev := how.event
	if !how.orphan && !how.untouched && rep.Object == nil {
		found, err := a.findUnrecorded(ctx, r, site, rep)
		if err != nil {
			return &siteFailure{err}
		}
		if found != nil {
			rep.Object, rep.Adopted = &found.Object, found.Adopted
		}
	}
	what := "nothing was on the site"
	if rep.Object != nil {
		what = "local ID " + rep.LocalID
		if rep.LocalID == "" {
			what = "an object whose creation was never recorded"
		}
	}
	if !how.orphan && rep.Object != nil && releases(r, rep.Adopted) {
		// Someone else's object before cheops adopted it: theirs again, left on the site.
		what = "released " + what + ", adopted, left on the site without cheops' marks (policy.adopted release)"
		if ev.Type == cheops.EventDeleted {
			ev.Type = cheops.EventReleased
		}
	}
	if !how.orphan && rep.Object != nil {
		if _, err := a.Store.UpdateReplica(ctx, r.ID, site, func(rep *cheops.Replica) (*cheops.Event, error) {
			rep.State = cheops.ReplicaDeleting
			if how.message != "" {
				rep.Message = how.message
			}
			return nil, nil
		}); err != nil {
			return err
		}
		if err := a.removeOnSite(ctx, r, site, *rep.Object, rep.Adopted); err != nil {
			return &siteFailure{err}
		}
	}
	if ev.Message == "" {
		ev.Message = what
	} else {
		ev.Message += "; " + what
	}
	return a.Store.DeleteReplica(ctx, r.ID, site, &ev)
}

// findUnrecorded looks on a site for an object of r that an apply made without recording it, when
// the driver can (see cheops.Finder). A site that no longer exists has nothing to find.
func (a *Activities) findUnrecorded(ctx context.Context, r cheops.Resource, site string, rep cheops.Replica) (*cheops.Found, error) {
	t, d, err := a.target(ctx, r.Driver, site)
	if err != nil {
		if _, serr := a.Store.GetSite(ctx, site); errors.Is(serr, store.ErrNotFound) {
			return nil, nil
		}
		return nil, err
	}
	f, ok := d.(cheops.Finder)
	if !ok {
		return nil, nil
	}
	req := cheops.FindRequest{ResourceID: r.ID, Manifest: r.Manifest}
	if rep.ApplyingSince != nil {
		req.UnrecordedSince = *rep.ApplyingSince
	}
	var found *cheops.Found
	err = heartbeating(ctx, func(ctx context.Context) error {
		var err error
		found, err = f.Find(ctx, t, req)
		return err
	})
	return found, err
}

// removeOnSite removes a replica's object from its site (see removeObject).
func (a *Activities) removeOnSite(ctx context.Context, r cheops.Resource, siteName string, ref cheops.ObjectRef, adopted bool) error {
	t, d, err := a.target(ctx, r.Driver, siteName)
	if err != nil {
		if _, serr := a.Store.GetSite(ctx, siteName); errors.Is(serr, store.ErrNotFound) {
			// The site was force-removed: there is nothing left to reach; forget the replica.
			return nil
		}
		return err
	}
	return heartbeating(ctx, func(ctx context.Context) error { return removeObject(ctx, d, t, r, ref, adopted) })
}

// ForgetResource removes a resource whose replicas are all gone from the store.
func (a *Activities) ForgetResource(ctx context.Context, resourceID string) error {
	return a.Store.DeleteResource(ctx, resourceID)
}
