package cheops

import (
	"context"
	"encoding/json"
	"time"
)

// Labels and annotations cheops puts on every object it manages, so that an object on a site can be
// traced back to its global resource.
const (
	LabelResourceID      = "cheops.io/resource-id"
	AnnotationGeneration = "cheops.io/generation"
	AnnotationResource   = "cheops.io/resource-name"
	// AnnotationAdoptedFrom is set on an object cheops adopted (policy.conflict adopt), naming
	// its previous owner, so that an apply whose record was lost still knows it adopted it.
	AnnotationAdoptedFrom = "cheops.io/adopted-from"
	FieldManager          = "cheops"
)

// ApplyRequest is one generation of a resource to make true on one site.
type ApplyRequest struct {
	ResourceID   string
	ResourceName string
	Generation   int64
	Manifest     json.RawMessage
	// References maps the name of every cheops resource the manifest refers to (see Referrer) to
	// the local ID of that resource's replica on this site.
	References map[string]string
	// Adopt takes over an object of the replica's name that is someone else's (policy.conflict
	// adopt). Without it such an object fails the apply with a Permanent error naming its owner,
	// and is left untouched.
	Adopt bool
	// LocalID is the local object the replica recorded before this attempt, if any: the
	// replica's own, created or adopted.
	LocalID string
	// LocalAdopted says that the object of LocalID was adopted rather than created.
	LocalAdopted bool
	// UnrecordedSince, when set, is when an earlier attempt of this replica began that may have
	// made an object without recording it. A driver that cannot mark its objects (a keypair)
	// counts an unmarked object as its own only when the site made it since then; when unset,
	// no earlier attempt can have made one, and an unmarked object is someone else's.
	UnrecordedSince time.Time
}

// Reference is a field of a manifest that names another cheops resource, to be replaced on each site
// by the local ID of that resource's replica there.
type Reference struct {
	// Field is the manifest field's path ("manifest.spec.networks[0]").
	Field string
	// Resource is the name of the cheops resource referred to.
	Resource string
}

// Finder is implemented by drivers that can find, by the marks they put on objects, the object a
// resource's apply made on a site when its identity was never recorded: the worker died, or the
// activity timed out, between the create call and the record. Deleting or rolling back such a
// replica then removes that object instead of leaving it behind.
type Finder interface {
	Find(ctx context.Context, t Target, req FindRequest) (*Found, error)
}

// FindRequest names what a Finder looks for: the object an apply of the resource's manifest made.
type FindRequest struct {
	ResourceID string
	Manifest   json.RawMessage
	// UnrecordedSince is as in ApplyRequest: when the first attempt that may have made an object
	// without recording it began; unset, no attempt did.
	UnrecordedSince time.Time
}

// Found is an object a Finder found.
type Found struct {
	Object ObjectRef
	// Adopted is set when the object was someone else's and an apply adopted it.
	Adopted bool
}

// OwnedDeleter is implemented by drivers whose objects are named by their users, so the object of
// a recorded name may since have been replaced by someone else's: DeleteOwned deletes it only
// while it carries the resource's mark, and leaves any other object of that name. Removing a
// replica uses it instead of Delete when the driver has it.
type OwnedDeleter interface {
	DeleteOwned(ctx context.Context, t Target, ref ObjectRef, resourceID string) error
}

// Releaser is implemented by drivers whose adopted objects carry cheops' marks: Release removes
// them (and cheops' ownership of fields, where the site tracks it) and leaves the object on its
// site. For a driver without it, releasing an object is forgetting it.
type Releaser interface {
	Release(ctx context.Context, t Target, ref ObjectRef, resourceID string) error
}

// Referrer is implemented by drivers whose manifests may refer to other cheops resources. The
// activity applying a replica resolves each reference before calling Apply, and waits while the
// resource referred to is not Ready on the site.
type Referrer interface {
	References(manifest json.RawMessage) ([]Reference, error)
}

// Prerequisite is something an object needs on a site before the site takes it, which the object
// of another resource may provide there: a namespace, a kind (served by a CRD).
type Prerequisite struct {
	// Kind is PrerequisiteNamespace or PrerequisiteKind.
	Kind string
	// Name is the namespace's name, or the kind as "<group>/<Kind>" ("example.com/Widget").
	Name string
}

// Prerequisite kinds.
const (
	PrerequisiteNamespace = "namespace"
	PrerequisiteKind      = "kind"
)

// Key is the prerequisite as one string, "namespace/team-a" or "kind/example.com/Widget", as
// Resource.Provides holds it.
func (p Prerequisite) Key() string { return p.Kind + "/" + p.Name }

func (p Prerequisite) String() string { return p.Kind + " " + p.Name }

// Prerequisites is implemented by drivers whose objects may need on a site what the objects of
// other resources provide there. The activity applying a replica waits, before calling Apply, until
// the resources that provide what it needs are available on the site: a ConfigMap declared with its
// Namespace, a custom resource with its CRD, in any order.
type Prerequisites interface {
	// Provides says what an object of the manifest provides on each site it is on.
	Provides(manifest json.RawMessage) []Prerequisite
	// Needs says what an object of the manifest needs on the site t.
	Needs(t Target, manifest json.RawMessage) []Prerequisite
}

// MissingError is a site's refusal of an object because a prerequisite is missing there: the
// namespace does not exist, the kind is not served. Drivers classify it Permanent; the activity
// makes it a wait (Waiting) when a resource that provides it is not yet available on the site.
type MissingError struct {
	Missing Prerequisite
	Err     error
}

func (e *MissingError) Error() string { return e.Err.Error() }
func (e *MissingError) Unwrap() error { return e.Err }

// StatusReader is implemented by drivers that can tell whether an applied object has become what
// it declares, from the status the site reports for it: a Deployment Available, a Job complete, a
// CRD Established. A replica of a driver without it is ready once applied.
type StatusReader interface {
	Readiness(ctx context.Context, t Target, ref ObjectRef) (Readiness, error)
}

// Readiness is what an applied object's status says of it.
type Readiness struct {
	State ReadinessState
	// Message is the site's own explanation, e.g. "Deployment is available. Replicas: 3".
	Message string
}

// ReadinessState is the state of an applied object on its site.
type ReadinessState string

// Readiness states, as kstatus computes them for Kubernetes objects.
const (
	// ObjectReady: the object is what it declares (kstatus Current).
	ObjectReady ReadinessState = "Ready"
	// ObjectProgressing: the site is still working on it (kstatus InProgress).
	ObjectProgressing ReadinessState = "Progressing"
	// ObjectFailed: the site says it will not get there without a change (kstatus Failed).
	ObjectFailed ReadinessState = "Failed"
	// ObjectMissing: the object is not on the site.
	ObjectMissing ReadinessState = "Missing"
	// ObjectTerminating: the object is being deleted.
	ObjectTerminating ReadinessState = "Terminating"
	// ObjectUnknown: its status says nothing that can be relied on.
	ObjectUnknown ReadinessState = "Unknown"
)

// ApplyResult says which local object now backs the replica.
type ApplyResult struct {
	LocalID string
	Object  ObjectRef
	// Readiness, from a driver that reads status (see StatusReader), is what the object's status
	// said in the site's answer to the apply; nil means Ready.
	Readiness *Readiness
	// Adopted is set when the object was someone else's and the apply took it over (see
	// ApplyRequest.Adopt); PreviousOwner then names who had it ("field managers
	// kubectl-client-side-apply", "user 5e0c…").
	Adopted       bool
	PreviousOwner string
}

// Observation is what a driver sees of a replica's local object.
type Observation struct {
	Exists  bool
	LocalID string
	// Generation is the cheops generation recorded on the object.
	Generation int64
}

// Driver talks to one kind of site. Implementations cache their clients per site, classify every
// error they return (see Classify), and know nothing of Temporal or etcd.
type Driver interface {
	// Validate checks a manifest before it is accepted, without contacting any site. Failures are
	// *FieldError naming the field under "manifest".
	Validate(manifest json.RawMessage) error
	// ValidateSite checks a site's settings and credentials before they are stored, without
	// contacting the site. Failures are *FieldError naming the field of the site request.
	ValidateSite(site Site, cred Credentials) error
	// Apply creates or updates the replica; applying the same request twice is a no-op.
	Apply(ctx context.Context, t Target, req ApplyRequest) (ApplyResult, error)
	// Observe reads the local object back.
	Observe(ctx context.Context, t Target, ref ObjectRef) (Observation, error)
	// Delete removes the local object; an object already gone is success.
	Delete(ctx context.Context, t Target, ref ObjectRef) error
	// Probe checks that the site answers.
	Probe(ctx context.Context, t Target) error
}

// DriftWatcher is implemented by drivers that can watch the objects cheops manages on their sites
// and report at once when one drifts: it is deleted, or another field manager takes over fields
// cheops applied. Sites of other drivers are looked at by Observe, periodically.
type DriftWatcher interface {
	// WatchDrift makes watched the whole set of objects to watch, on every site of the driver: it
	// starts a watch of each kind in use on each site (sites that are namespaces of one cluster
	// share their connection), stops the watches nothing uses any more, and reports to report,
	// from then on, each drift of an object in the set. An object in the set that a watch already
	// running does not hold is reported deleted, once the site confirms it is gone. Calling it
	// again with the same set changes nothing; with none, it stops every watch. report must not
	// block for long: it is called from the watches' own goroutines.
	WatchDrift(ctx context.Context, watched []WatchedSite, report func(Drift)) error
}

// WatchedSite is a site and the objects cheops manages there that a DriftWatcher watches.
type WatchedSite struct {
	Target  Target
	Objects []WatchedObject
}

// WatchedObject is one replica's object, as its replica records it.
type WatchedObject struct {
	ResourceID string
	Object     ObjectRef
	LocalID    string
}

// Drift is what a driver saw of a watched object that is no longer what cheops applied.
type Drift struct {
	Site       string
	ResourceID string
	Object     ObjectRef
	// LocalID is the identity of the object that drifted: a replica that records another one
	// (cheops made it anew meanwhile) has not drifted.
	LocalID string
	// Generation is the cheops generation recorded on the object, 0 when unknown.
	Generation int64
	Deleted    bool
	// Message says what changed, in a few words: "deleted on the site", or which fields another
	// manager changed.
	Message string
}
