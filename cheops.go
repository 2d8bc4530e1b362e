// Package cheops holds the domain of the cheops orchestrator: sites, resources, replicas, their states,
// and the interfaces between layers (the driver contract and the error classes drivers report). It
// imports nothing else of this module, so every other package can depend on it and a reader learns the
// domain from this one place.
package cheops

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// DriverName names the kind of site a resource or a site belongs to.
type DriverName string

// The drivers cheops knows.
const (
	DriverKubernetes DriverName = "kubernetes"
	DriverOpenStack  DriverName = "openstack"
)

// SiteHealth is the outcome of the periodic probe of a site.
type SiteHealth string

// Site health states.
const (
	SiteUnknown     SiteHealth = "Unknown"
	SiteReady       SiteHealth = "Ready"
	SiteUnreachable SiteHealth = "Unreachable"
)

// Site is one target cluster or cloud. It carries no secret: credentials live apart, in Credentials,
// and are only ever read by the activities that talk to the site.
type Site struct {
	Name          string            `json:"name"`
	Driver        DriverName        `json:"driver"`
	Labels        map[string]string `json:"labels,omitempty"`
	Kubernetes    *KubernetesSite   `json:"kubernetes,omitempty"`
	OpenStack     *OpenStackSite    `json:"openstack,omitempty"`
	Health        SiteHealth        `json:"health"`
	HealthMessage string            `json:"healthMessage,omitempty"`
	// ProbeFailures counts the probes failed in a row; Health turns Unreachable at a threshold.
	ProbeFailures int        `json:"probeFailures,omitempty"`
	ProbedAt      *time.Time `json:"probedAt,omitempty"`
	// CreatedBy names who registered the site (a token's name).
	CreatedBy string `json:"createdBy,omitempty"`
	// HasCredentials tells whether write-only credentials are stored for the site.
	HasCredentials bool      `json:"hasCredentials"`
	CreatedAt      time.Time `json:"createdAt"`
	UpdatedAt      time.Time `json:"updatedAt"`
}

// KubernetesSite is the non-secret connection settings of a Kubernetes site.
type KubernetesSite struct {
	// KubeconfigPath is a kubeconfig file on the worker's host; the alternative is an inline kubeconfig
	// in Credentials.
	KubeconfigPath string `json:"kubeconfigPath,omitempty"`
	Context        string `json:"context,omitempty"`
	// Namespace is where namespaced objects without a namespace of their own are put.
	Namespace string `json:"namespace,omitempty"`
}

// OpenStackSite is the non-secret connection settings of an OpenStack site: one region of a cloud,
// one project in it. It authenticates with a user and password, with an application credential, or
// with a cloud of a clouds.yaml file on the worker's host; the secrets go in Credentials.
type OpenStackSite struct {
	// AuthURL is Keystone's v3 endpoint ("https://keystone.example:5000/v3").
	AuthURL string `json:"authURL,omitempty"`
	// Region is the region of the service endpoints to use ("RegionOne").
	Region string `json:"region,omitempty"`
	// ProjectID, or ProjectName in ProjectDomain (a domain name, default "Default"), is the project
	// the site's objects live in.
	ProjectID     string `json:"projectID,omitempty"`
	ProjectName   string `json:"projectName,omitempty"`
	ProjectDomain string `json:"projectDomain,omitempty"`
	// Username in UserDomain (a domain name, default "Default") authenticates with Credentials.Password.
	Username   string `json:"username,omitempty"`
	UserDomain string `json:"userDomain,omitempty"`
	// ApplicationCredentialID authenticates with Credentials.ApplicationCredentialSecret.
	ApplicationCredentialID string `json:"applicationCredentialID,omitempty"`
	// CloudsFile and Cloud name a cloud in a clouds.yaml file on the worker's host instead; Region,
	// when set, overrides the cloud's region.
	CloudsFile string `json:"cloudsFile,omitempty"`
	Cloud      string `json:"cloud,omitempty"`
	// CAFile is a PEM bundle on the worker's host to verify the endpoints with; Insecure skips
	// verification.
	CAFile   string `json:"caFile,omitempty"`
	Insecure bool   `json:"insecure,omitempty"`
}

// Credentials are the secret part of a site. They are write-only: never returned, logged, or put
// into a workflow's input or history.
type Credentials struct {
	// Kubeconfig is an inline kubeconfig document.
	Kubeconfig string `json:"kubeconfig,omitempty"`
	// Password is an OpenStack user's password.
	Password string `json:"password,omitempty"`
	// ApplicationCredentialSecret is the secret of an OpenStack application credential.
	ApplicationCredentialSecret string `json:"applicationCredentialSecret,omitempty"`
}

// Empty reports whether no credential is set.
func (c Credentials) Empty() bool {
	return c.Kubeconfig == "" && c.Password == "" && c.ApplicationCredentialSecret == ""
}

// Target is everything a driver needs to reach one site.
type Target struct {
	Site        Site
	Credentials Credentials
}

// Scope says where a resource must live: an explicit list of site names, a label selector, or a
// scope-lang expression (see package scope). Exactly one of the three is set.
type Scope struct {
	Sites    []string `json:"sites,omitempty"`
	Selector string   `json:"selector,omitempty"`
	// Expression is in scope-lang: "paris & berlin", "paris | berlin", "(paris | lyon) & region=de".
	Expression string `json:"expression,omitempty"`
}

// Equal reports whether two scopes select the same way.
func (s Scope) Equal(o Scope) bool {
	return slices.Equal(s.Sites, o.Sites) && s.Selector == o.Selector && s.Expression == o.Expression
}

// Override changes the manifest sent to some sites: Patch, a JSON merge patch (RFC 7386), is applied
// to the manifest on the site named by Site, or on every site whose labels match Selector.
type Override struct {
	Site     string          `json:"site,omitempty"`
	Selector string          `json:"selector,omitempty"`
	Patch    json.RawMessage `json:"patch"`
}

// Consistency is how a resource reacts when some sites cannot apply a generation.
type Consistency string

// Consistency modes.
const (
	Eventual      Consistency = "eventual"
	Transactional Consistency = "transactional"
)

// Policy steers how a resource is replicated.
type Policy struct {
	Consistency Consistency `json:"consistency,omitempty"`
	// MaxParallel bounds how many sites are applied at once (default DefaultMaxParallel).
	MaxParallel int `json:"maxParallel,omitempty"`
	// Timeout bounds, in transactional mode, how long a generation may take on a site before every
	// site is rolled back (default DefaultTimeout).
	Timeout Duration `json:"timeout,omitempty"`
	// RetryInitial and RetryMax shape, in eventual mode, the capped exponential backoff between
	// rounds that retry failed or unreachable sites (defaults DefaultRetryInitial, DefaultRetryMax).
	RetryInitial Duration `json:"retryInitial,omitempty"`
	RetryMax     Duration `json:"retryMax,omitempty"`
	// Readiness says when a replica is Ready: when its object's status says so (ReadyWhenStatus, the
	// default, for drivers that read status), or as soon as it is applied (ReadyWhenApplied).
	Readiness ReadinessPolicy `json:"readiness,omitempty"`
	// ReadyTimeout bounds how long an applied replica may take to become Ready (default
	// DefaultReadyTimeout); past it, the replica fails on its site (in transactional mode, the
	// generation is rolled back).
	ReadyTimeout Duration `json:"readyTimeout,omitempty"`
	// Conflict says what applying does when the site already holds an object of the replica's
	// name that cheops did not make for this resource (default ConflictAbort).
	Conflict ConflictPolicy `json:"conflict,omitempty"`
	// Adopted says what deleting the resource (or rolling back its first generation) does to an
	// object a replica adopted rather than created (default AdoptedRelease).
	Adopted AdoptedDeletion `json:"adopted,omitempty"`
	// Rollout, when set, applies a generation progressively: wave after wave of sites, with a
	// soak time between, stopping when too many sites fail.
	Rollout *Rollout `json:"rollout,omitempty"`
	// Drift says what becomes of a replica whose object on its site was deleted or changed by
	// someone else: re-applied (DriftCorrect, the default) or only reported (DriftReport).
	Drift DriftPolicy `json:"drift,omitempty"`
}

// Rollout shapes a progressive rollout of each generation. Sites are ordered by Groups, then
// applied in waves of MaxUnavailable; after each wave (its sites applied and Ready) the rollout
// waits Soak, and it stops once MaxFailures sites failed: in eventual mode the resource is paused
// with the reason, and the sites of later waves are left as they are until it is resumed; in
// transactional mode the generation is rolled back.
type Rollout struct {
	// MaxUnavailable is how many sites a wave takes at most: a count, or a percentage of the sites
	// in scope ("30%", rounded up). Zero: each group is one wave.
	MaxUnavailable WaveSize `json:"maxUnavailable,omitzero"`
	// Groups are label selectors: the sites the first matches go first, then those the second
	// matches, and so on; the sites none matches go last. Each group is split into waves.
	Groups []string `json:"groups,omitempty"`
	// Soak is how long the rollout waits after a wave before the next one.
	Soak Duration `json:"soak,omitempty"`
	// MaxFailures stops the rollout once that many sites failed in it (0: never stop).
	MaxFailures int `json:"maxFailures,omitempty"`
}

// WaveSize is a number of sites, or a percentage of the sites in scope. In JSON it is a number
// (3) or a string ("3", "30%").
type WaveSize struct {
	N       int
	Percent bool
}

// Of is the wave size for a scope of n sites: at least one.
func (w WaveSize) Of(n int) int {
	if w.Percent {
		return max(1, (n*w.N+99)/100)
	}
	return max(1, w.N)
}

// IsZero reports whether no size is set.
func (w WaveSize) IsZero() bool { return w.N == 0 }

// MarshalJSON writes a count as a number and a percentage as "N%".
func (w WaveSize) MarshalJSON() ([]byte, error) {
	if w.Percent {
		return json.Marshal(fmt.Sprintf("%d%%", w.N))
	}
	return json.Marshal(w.N)
}

// UnmarshalJSON reads 3, "3" or "30%".
func (w *WaveSize) UnmarshalJSON(b []byte) error {
	var n int
	if err := json.Unmarshal(b, &n); err == nil {
		*w = WaveSize{N: n}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a wave size is a number of sites or a percentage such as \"30%%\"")
	}
	text, percent := strings.CutSuffix(s, "%")
	v, err := strconv.Atoi(text)
	if err != nil {
		return fmt.Errorf("a wave size is a number of sites or a percentage such as \"30%%\", not %q", s)
	}
	*w = WaveSize{N: v, Percent: percent}
	return nil
}

// DriftPolicy says what cheops does when a replica's object drifts from what it applied.
type DriftPolicy string

// Drift policies.
const (
	// DriftCorrect: the replica is reported drifted and re-applied at once.
	DriftCorrect DriftPolicy = "correct"
	// DriftReport: the replica is reported drifted and left as it is, until a new generation or a
	// resync applies it again.
	DriftReport DriftPolicy = "report"
)

// ReadinessPolicy says when an applied replica counts as Ready.
type ReadinessPolicy string

// Readiness policies.
const (
	// ReadyWhenStatus: Ready once the object's status on the site says so (a Deployment Available,
	// a Job complete, a CRD Established); until then the replica is Applied.
	ReadyWhenStatus ReadinessPolicy = "status"
	// ReadyWhenApplied: Ready as soon as the site took the object.
	ReadyWhenApplied ReadinessPolicy = "applied"
)

// ConflictPolicy is what applying a replica does with an object of its name that is someone else's.
type ConflictPolicy string

// Conflict policies.
const (
	// ConflictAbort fails the replica, naming the object's owner, and leaves the object alone.
	ConflictAbort ConflictPolicy = "abort"
	// ConflictAdopt takes the object over: it is applied as if cheops had made it, the replica
	// records that it was adopted, and an Adopted event names its previous owner.
	ConflictAdopt ConflictPolicy = "adopt"
)

// AdoptedDeletion is what removing a replica does to the object it adopted.
type AdoptedDeletion string

// Adopted-object deletion policies.
const (
	// AdoptedRelease removes cheops' marks from the object and leaves it on its site: it was
	// someone's before cheops took it, and is theirs again.
	AdoptedRelease AdoptedDeletion = "release"
	// AdoptedDelete deletes it like an object cheops created.
	AdoptedDelete AdoptedDeletion = "delete"
)

// Policy defaults, applied when a field is zero.
const (
	DefaultMaxParallel  = 20
	DefaultTimeout      = Duration(5 * time.Minute)
	DefaultRetryInitial = Duration(5 * time.Second)
	DefaultRetryMax     = Duration(5 * time.Minute)
	DefaultReadyTimeout = Duration(5 * time.Minute)
)

// WithDefaults returns the policy with every zero field set to its default.
func (p Policy) WithDefaults() Policy {
	if p.Consistency == "" {
		p.Consistency = Eventual
	}
	if p.MaxParallel <= 0 {
		p.MaxParallel = DefaultMaxParallel
	}
	if p.Timeout <= 0 {
		p.Timeout = DefaultTimeout
	}
	if p.RetryInitial <= 0 {
		p.RetryInitial = DefaultRetryInitial
	}
	if p.RetryMax <= 0 {
		p.RetryMax = DefaultRetryMax
	}
	if p.Readiness == "" {
		p.Readiness = ReadyWhenStatus
	}
	if p.ReadyTimeout <= 0 {
		p.ReadyTimeout = DefaultReadyTimeout
	}
	if p.Conflict == "" {
		p.Conflict = ConflictAbort
	}
	if p.Adopted == "" {
		p.Adopted = AdoptedRelease
	}
	if p.Drift == "" {
		p.Drift = DriftCorrect
	}
	return p
}

// Duration is a time.Duration written in JSON as Go duration text ("30s", "5m").
type Duration time.Duration

// MarshalJSON writes the duration as text.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads duration text such as "90s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a duration is a string such as \"30s\"")
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Resource is what a user declares once: a template and where it must live.
type Resource struct {
	ID       string          `json:"id"`
	Name     string          `json:"name"`
	Driver   DriverName      `json:"driver"`
	Manifest json.RawMessage `json:"manifest"`
	Scope    Scope           `json:"scope"`
	// Overrides adapt the manifest per site, in order.
	Overrides []Override `json:"overrides,omitempty"`
	// DependsOn names the resources that must be available on a site (see Available) before this
	// one is applied there. A resource also waits for those its manifest refers to (see Referrer)
	// and for those that provide what its objects need on the site (see Prerequisites).
	DependsOn []string `json:"dependsOn,omitempty"`
	Policy    Policy   `json:"policy"`
	// Generation increases with every change of manifest, scope or policy.
	Generation int64 `json:"generation"`
	// GenerationAt is when the current generation was declared (stored).
	GenerationAt time.Time `json:"generationAt,omitzero"`
	CreatedAt    time.Time `json:"createdAt"`
	UpdatedAt    time.Time `json:"updatedAt"`
	// Deletion is set once a delete was accepted; the resource's workflow then removes the replicas
	// and forgets the resource.
	Deletion *Deletion `json:"deletion,omitempty"`
	// Paused is set while an operator has paused the resource, or a rollout stopped: nothing is
	// applied until resumed.
	Paused bool `json:"paused,omitempty"`
	// PauseReason says why a rollout stopped and paused the resource; empty for an operator's pause.
	PauseReason string `json:"pauseReason,omitempty"`
	// Rollback is set when a transactional generation was rolled back.
	Rollback *Rollback `json:"rollback,omitempty"`
	// CreatedBy names who declared the resource (a token's name).
	CreatedBy string `json:"createdBy,omitempty"`
	// Provides is what the resource's objects provide on their sites for the objects of others (a
	// namespace, a kind; see Prerequisites), as keys ("namespace/team-a"). The API computes it from
	// the declaration and the store indexes it, so that a dependent finds its provider by one read.
	Provides []string `json:"-"`
	// Within, when set, is a label selector the resource is only ever placed within: the site
	// selector of the token that declared it. Sites outside it are never selected.
	Within string `json:"within,omitempty"`
	// IdempotencyKey is the key of the POST that created the resource, if any.
	IdempotencyKey string `json:"-"`
}

// Deletion records an accepted delete.
type Deletion struct {
	RequestedAt time.Time `json:"requestedAt"`
	// Orphan leaves the replicas on their sites and only forgets them.
	Orphan bool `json:"orphan"`
}

// Rollback records a transactional generation that could not be applied everywhere and was undone.
type Rollback struct {
	Generation int64 `json:"generation"`
	// Reasons says, per site, why the generation could not be applied there.
	Reasons map[string]string `json:"reasons"`
	// Done is set once every site is back to the previous generation.
	Done bool      `json:"done"`
	At   time.Time `json:"at"`
}

// RolledBack reports whether the resource's current generation was rolled back.
func (r Resource) RolledBack() bool {
	return r.Rollback != nil && r.Rollback.Generation == r.Generation
}

// Snapshot is a generation of a resource as it stood once applied on every site in scope, kept so a
// later transactional generation can be rolled back to it.
type Snapshot struct {
	Generation int64           `json:"generation"`
	Manifest   json.RawMessage `json:"manifest"`
	Overrides  []Override      `json:"overrides,omitempty"`
	// Sites held the snapshot's replicas.
	Sites []string `json:"sites"`
}

// ReplicaState is the state of one resource on one site.
type ReplicaState string

// Replica states.
const (
	ReplicaPending  ReplicaState = "Pending"
	ReplicaApplying ReplicaState = "Applying"
	// ReplicaApplied: the site took the generation, and its status does not say Ready yet.
	ReplicaApplied     ReplicaState = "Applied"
	ReplicaReady       ReplicaState = "Ready"
	ReplicaFailed      ReplicaState = "Failed"
	ReplicaDeleting    ReplicaState = "Deleting"
	ReplicaUnreachable ReplicaState = "Unreachable"
	// ReplicaWaiting: the replica waits for what it depends on to be available on its site (a
	// resource of dependsOn or referred to, a namespace or a kind another resource provides); the
	// message says what. It is not a failure: it is applied as soon as that is there.
	ReplicaWaiting ReplicaState = "Waiting"
	// ReplicaUnknown is never recorded: it is how a replica recorded Ready or Applied is shown
	// while its site is unreachable (see SeenWith), since nobody can tell how it is now.
	ReplicaUnknown ReplicaState = "Unknown"
)

// ObjectRef identifies the local object that backs a replica on its site.
type ObjectRef struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind,omitempty"`
	Namespace  string `json:"namespace,omitempty"`
	Name       string `json:"name,omitempty"`
}

// Replica is one resource on one site.
type Replica struct {
	ResourceID string       `json:"-"`
	Site       string       `json:"site"`
	State      ReplicaState `json:"state"`
	// LocalID is the identity of the local object (a Kubernetes UID, an OpenStack ID).
	LocalID            string     `json:"localID,omitempty"`
	Object             *ObjectRef `json:"object,omitempty"`
	ObservedGeneration int64      `json:"observedGeneration"`
	// AppliedHash is a digest of what was last applied, so a replay of the same apply is a no-op.
	AppliedHash string `json:"appliedHash,omitempty"`
	// Overrides names the overrides applied to this site's manifest ("overrides[0]", …).
	Overrides []string `json:"overrides,omitempty"`
	Message   string   `json:"message,omitempty"`
	// FailedGeneration is the generation the site rejected, while State is Failed.
	FailedGeneration int64 `json:"failedGeneration,omitempty"`
	// AppliedAt is when the site took ObservedGeneration; its ReadyTimeout runs from then.
	AppliedAt *time.Time `json:"appliedAt,omitempty"`
	// Adopted is set when the local object was already on the site, someone else's, and cheops
	// took it over (policy.conflict adopt) rather than created it: removing the replica then does
	// what policy.adopted says.
	Adopted bool `json:"adopted,omitempty"`
	// ApplyingSince is when the first attempt not yet recorded as Ready began: only since then
	// can an apply of this replica have made an object it did not record (its worker died between
	// the create and the record). Cleared once the replica is Ready, or Failed (the site refused
	// what it was asked, having made nothing unmarked).
	ApplyingSince *time.Time `json:"applyingSince,omitempty"`
	// Drifted is set when the replica's object on its site no longer is what cheops applied (it
	// was deleted, or another manager changed fields cheops set); DriftMessage says what changed.
	// An apply of the replica clears both.
	Drifted      bool      `json:"drifted,omitempty"`
	DriftMessage string    `json:"driftMessage,omitempty"`
	Attempts     int       `json:"attempts"`
	CreatedAt    time.Time `json:"createdAt"`
	UpdatedAt    time.Time `json:"updatedAt"`
}

// Available reports whether the replica lets its dependents on its site go ahead: its object is
// there and Ready, or its latest generation failed there while an object of an applied generation
// stays (a rejected update of a dependency does not block what depends on it).
func (rep Replica) Available() bool {
	switch rep.State {
	case ReplicaReady:
		return rep.LocalID != ""
	case ReplicaFailed:
		return rep.LocalID != "" && rep.ObservedGeneration > 0
	}
	return false
}

// ResourceState is the state of a resource aggregated over its replicas.
type ResourceState string

// Resource states.
const (
	ResourcePending     ResourceState = "Pending"
	ResourceProgressing ResourceState = "Progressing"
	ResourceReady       ResourceState = "Ready"
	ResourceDegraded    ResourceState = "Degraded"
	ResourceRolledBack  ResourceState = "RolledBack"
	ResourceDeleting    ResourceState = "Deleting"
	ResourceFailed      ResourceState = "Failed"
)

// Aggregate derives a resource's state from its replicas. It is computed on read, never stored, so
// it cannot drift from the replicas it summarises.
func Aggregate(r Resource, replicas []Replica) ResourceState {
	if r.Deletion != nil {
		return ResourceDeleting
	}
	if r.RolledBack() && r.Rollback.Done {
		return ResourceRolledBack
	}
	if len(replicas) == 0 {
		return ResourcePending
	}
	var ready, failed, unreachable int
	for _, rep := range replicas {
		switch {
		case rep.Drifted && (rep.State == ReplicaReady || rep.State == ReplicaApplied):
			// Its site no longer holds what was applied: being repaired, or left as reported.
			unreachable++
		case rep.State == ReplicaReady && rep.ObservedGeneration == r.Generation:
			ready++
		case rep.State == ReplicaFailed:
			failed++
		case rep.State == ReplicaUnreachable || rep.State == ReplicaUnknown:
			unreachable++
		}
	}
	// Failed means no site can take this generation; a site that is only unreachable (or whose
	// replica drifted) may still converge, so it degrades the resource rather than failing it. A
	// replica Waiting for what it depends on is on its way: the resource is Progressing.
	switch {
	case ready == len(replicas):
		return ResourceReady
	case failed == len(replicas):
		return ResourceFailed
	case failed+unreachable > 0:
		return ResourceDegraded
	default:
		return ResourceProgressing
	}
}

// SeenWith returns the replicas as a reader should see them, given the health of their sites: a
// replica recorded Ready or Applied on a site that is unreachable is Unknown, with its last known
// state in its message, since nobody can say how it is now. The replicas given are not changed.
func SeenWith(replicas []Replica, health map[string]SiteHealth) []Replica {
	out := slices.Clone(replicas)
	for i, rep := range out {
		if health[rep.Site] != SiteUnreachable || (rep.State != ReplicaReady && rep.State != ReplicaApplied) {
			continue
		}
		last := fmt.Sprintf("site unreachable; last known %s at generation %d", rep.State, rep.ObservedGeneration)
		if rep.Message != "" {
			last += ": " + rep.Message
		}
		out[i].State, out[i].Message = ReplicaUnknown, last
	}
	return out
}

// EventType names what an event records.
type EventType string

// Event types. Events are written in the same etcd transaction as the change they describe.
const (
	// EventCreated: the resource was accepted (generation 1).
	EventCreated EventType = "Created"
	// EventUpdated: a new generation was declared.
	EventUpdated EventType = "Updated"
	// EventDeleteRequested: a delete was accepted; the message says whether replicas are orphaned.
	EventDeleteRequested EventType = "DeleteRequested"
	// EventApplied: a site took a generation; the message names the local ID.
	EventApplied EventType = "Applied"
	// EventApplyFailed: an attempt to apply a generation on a site failed (a repeated identical
	// failure is counted in the replica's attempts, not recorded again).
	EventApplyFailed EventType = "ApplyFailed"
	// EventAdopted: a site already held an object of the replica's name, someone else's, and
	// cheops took it over (policy.conflict adopt); the message names its previous owner and the
	// local ID. It stands for that apply's Applied event.
	EventAdopted EventType = "Adopted"
	// EventReleased: a replica's adopted object was handed back (policy.adopted release): cheops'
	// marks removed, the object left on its site, and the replica forgotten.
	EventReleased EventType = "Released"
	// EventParked: a site is unreachable; its replica waits for it to come back.
	EventParked EventType = "Parked"
	// EventDeleted: a replica's object was deleted from its site and the replica forgotten.
	EventDeleted EventType = "Deleted"
	// EventOrphaned: a replica was forgotten and its object left on the site.
	EventOrphaned EventType = "Orphaned"
	// EventRollbackStarted: a transactional generation is being rolled back; the message gives
	// each site's reason.
	EventRollbackStarted EventType = "RollbackStarted"
	// EventRolledBack: a site (or, without a site, every site) is back to the committed generation.
	EventRolledBack EventType = "RolledBack"
	// EventActionRequested: an operator asked for an action (the message names it: pause,
	// resume, retry, resync); the workflow then acts on it.
	EventActionRequested EventType = "ActionRequested"
	// EventSiteCreated, EventSiteUpdated and EventSiteDeleted record a site's changes, with
	// their actor, in the site's own event log.
	EventSiteCreated EventType = "SiteCreated"
	EventSiteUpdated EventType = "SiteUpdated"
	EventSiteDeleted EventType = "SiteDeleted"
	// EventHealthChanged: a site's probed health changed; the message says to what and why.
	EventHealthChanged EventType = "HealthChanged"
	// EventBecameReady: an applied replica's status now says it is Ready; EventNotReady: it did
	// not within the policy's readyTimeout, or its status says it failed (the message says which).
	EventBecameReady EventType = "BecameReady"
	EventNotReady    EventType = "NotReady"
	// EventDrift: a replica's object on its site was deleted, or changed by another manager; the
	// message says what changed, and whether it is re-applied (policy.drift).
	EventDrift EventType = "Drift"
	// EventPaused and EventResumed: an operator paused or resumed the resource.
	EventPaused  EventType = "Paused"
	EventResumed EventType = "Resumed"
)

// Event is one entry of a resource's append-only history.
type Event struct {
	Time       time.Time `json:"time"`
	Type       EventType `json:"type"`
	Site       string    `json:"site,omitempty"`
	Generation int64     `json:"generation,omitempty"`
	Message    string    `json:"message,omitempty"`
	// Actor names who asked for the change (a token's name); empty for what cheops did itself.
	Actor string `json:"actor,omitempty"`
}
