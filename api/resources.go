package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/overrides"
	"github.com/cheops-io/cheops/scope"
	"github.com/cheops-io/cheops/store"
)

// MaxDeclarationBytes bounds a resource's manifest and overrides as they are stored: compact JSON,
// HTML characters unescaped. The store writes them twice in one etcd transaction (the resource's
// record and its generation's spec), and etcd refuses a request over 1.5 MiB (its default
// --max-request-bytes): two copies of 512 KiB and the rest of the record stay well under that. A
// larger declaration is a 413 naming manifest, before anything is written.
const MaxDeclarationBytes = 512 << 10

// resourceRequest is the body of POST /v1/resources and PUT /v1/resources/{id}, and what a PATCH
// merges its patch onto. On PUT, a field left out keeps its value.
type resourceRequest struct {
	Name      string             `json:"name"`
	Driver    cheops.DriverName  `json:"driver"`
	Manifest  json.RawMessage    `json:"manifest"`
	Scope     *cheops.Scope      `json:"scope"`
	Overrides *[]cheops.Override `json:"overrides"`
	DependsOn *[]string          `json:"dependsOn"`
	Policy    *policyRequest     `json:"policy"`
}

// policyRequest is a policy as written by a user, durations as text ("90s"), so that a bad
// duration is reported with the field it is in.
type policyRequest struct {
	Consistency  cheops.Consistency     `json:"consistency"`
	MaxParallel  int                    `json:"maxParallel"`
	Timeout      string                 `json:"timeout"`
	RetryInitial string                 `json:"retryInitial"`
	RetryMax     string                 `json:"retryMax"`
	Readiness    cheops.ReadinessPolicy `json:"readiness"`
	ReadyTimeout string                 `json:"readyTimeout"`
	Conflict     cheops.ConflictPolicy  `json:"conflict"`
	Adopted      cheops.AdoptedDeletion `json:"adopted"`
	Rollout      *rolloutRequest        `json:"rollout"`
	Drift        cheops.DriftPolicy     `json:"drift"`
}

// rolloutRequest is a rollout as written by a user: a wave size as a number or text ("30%"), a
// soak as text, so that each is reported with its field.
type rolloutRequest struct {
	MaxUnavailable json.RawMessage `json:"maxUnavailable"`
	Groups         []string        `json:"groups"`
	Soak           string          `json:"soak"`
	MaxFailures    int             `json:"maxFailures"`
}

// rollout checks a rollout and returns it.
func (p rolloutRequest) rollout() (*cheops.Rollout, error) {
	ro := &cheops.Rollout{Groups: p.Groups, MaxFailures: p.MaxFailures}
	if len(p.MaxUnavailable) > 0 && string(p.MaxUnavailable) != "null" {
		if err := json.Unmarshal(p.MaxUnavailable, &ro.MaxUnavailable); err != nil {
			return nil, invalid("policy.rollout.maxUnavailable", `must be a number of sites (1 to 1000) or a percentage of them ("1%" to "100%")`)
		}
		w := ro.MaxUnavailable
		if w.Percent && (w.N < 1 || w.N > 100) || !w.Percent && (w.N < 0 || w.N > 1000) {
			return nil, invalid("policy.rollout.maxUnavailable", `must be a number of sites (1 to 1000) or a percentage of them ("1%" to "100%")`)
		}
	}
	for i, g := range p.Groups {
		if _, err := scope.ParseSelector(g); err != nil || strings.TrimSpace(g) == "" {
			return nil, invalid(fmt.Sprintf("policy.rollout.groups[%d]", i), "must be a label selector such as canary=true")
		}
	}
	if len(p.Groups) > 20 {
		return nil, invalid("policy.rollout.groups", "at most 20 groups")
	}
	if p.Soak != "" {
		d, err := time.ParseDuration(p.Soak)
		if err != nil || d < 0 || d > 24*time.Hour {
			return nil, invalid("policy.rollout.soak", `must be a duration from "0s" to "24h", such as "30s"`)
		}
		ro.Soak = cheops.Duration(d)
	}
	if p.MaxFailures < 0 || p.MaxFailures > 10000 {
		return nil, invalid("policy.rollout.maxFailures", "must be between 0 (never stop) and 10000")
	}
	return ro, nil
}

func (p policyRequest) policy() (cheops.Policy, error) {
	pol := cheops.Policy{Consistency: p.Consistency, MaxParallel: p.MaxParallel, Readiness: p.Readiness, Conflict: p.Conflict, Adopted: p.Adopted, Drift: p.Drift}
	for _, f := range []struct {
		field string
		text  string
		into  *cheops.Duration
	}{{"policy.timeout", p.Timeout, &pol.Timeout}, {"policy.retryInitial", p.RetryInitial, &pol.RetryInitial}, {"policy.retryMax", p.RetryMax, &pol.RetryMax},
		{"policy.readyTimeout", p.ReadyTimeout, &pol.ReadyTimeout}} {
		if f.text == "" {
			continue
		}
		d, err := time.ParseDuration(f.text)
		if err != nil {
			return pol, invalid(f.field, `must be a duration such as "90s" or "5m"`)
		}
		if d < time.Second || d > 24*time.Hour {
			return pol, invalid(f.field, "must be between 1s and 24h")
		}
		*f.into = cheops.Duration(d)
	}
	if p.Rollout != nil {
		ro, err := p.Rollout.rollout()
		if err != nil {
			return pol, err
		}
		pol.Rollout = ro
	}
	return pol, nil
}

// sameIdentity refuses a request that would rename a resource or change its driver.
func (req resourceRequest) sameIdentity(cur cheops.Resource) error {
	if req.Name != cur.Name {
		return invalid("name", "cannot be changed")
	}
	if req.Driver != cur.Driver {
		return invalid("driver", "cannot be changed")
	}
	return nil
}

// declare makes r's declaration exactly what req says: a part req leaves out is cleared (and
// defaulted by validateResource).
func (req resourceRequest) declare(r *cheops.Resource) error {
	r.Manifest, r.Scope, r.Overrides, r.DependsOn, r.Policy = nil, cheops.Scope{}, nil, nil, cheops.Policy{}
	return req.apply(r)
}

// declaration is a resource's declaration written as a request body, the document a PATCH merges
// its patch onto.
func declaration(r cheops.Resource) ([]byte, error) {
	return json.Marshal(struct {
		Name      string            `json:"name"`
		Driver    cheops.DriverName `json:"driver"`
		Manifest  json.RawMessage   `json:"manifest"`
		Scope     cheops.Scope      `json:"scope"`
		Overrides []cheops.Override `json:"overrides,omitempty"`
		DependsOn []string          `json:"dependsOn,omitempty"`
		Policy    cheops.Policy     `json:"policy"`
	}{r.Name, r.Driver, r.Manifest, r.Scope, r.Overrides, r.DependsOn, r.Policy})
}

// apply copies the optional parts of a request onto r.
func (req resourceRequest) apply(r *cheops.Resource) error {
	if len(req.Manifest) > 0 {
		r.Manifest = req.Manifest
	}
	if req.Scope != nil {
		r.Scope = *req.Scope
	}
	if req.Overrides != nil {
		r.Overrides = *req.Overrides
	}
	if req.DependsOn != nil {
		r.DependsOn = *req.DependsOn
	}
	if req.Policy != nil {
		pol, err := req.Policy.policy()
		if err != nil {
			return err
		}
		r.Policy = pol
	}
	return nil
}

// resourceView is a resource as the API shows it: the declaration, its aggregated state, and per site
// the replica that backs it.
type resourceView struct {
	cheops.Resource
	State    cheops.ResourceState `json:"state"`
	Replicas []cheops.Replica     `json:"replicas"`
}

func (s *server) view(c echo.Context, r cheops.Resource) (resourceView, error) {
	return s.viewWith(c, r, nil)
}

// viewWith is view given the health of every site (read once for a list), or nil to read the
// health of the replicas' sites. A replica on an unreachable site shows Unknown (see SeenWith).
func (s *server) viewWith(c echo.Context, r cheops.Resource, health map[string]cheops.SiteHealth) (resourceView, error) {
	ctx := c.Request().Context()
	reps, err := s.Store.ListReplicas(ctx, r.ID)
	if err != nil {
		return resourceView{}, err
	}
	if health == nil && len(reps) > 0 {
		names := make([]string, len(reps))
		for i, rep := range reps {
			names[i] = rep.Site
		}
		sites, err := s.Store.SitesNamed(ctx, names)
		if err != nil {
			return resourceView{}, err
		}
		health = healthOf(sites)
	}
	reps = cheops.SeenWith(reps, health)
	return resourceView{Resource: r, State: cheops.Aggregate(r, reps), Replicas: reps}, nil
}

// healthOf maps each site to its probed health.
func healthOf(sites []cheops.Site) map[string]cheops.SiteHealth {
	health := make(map[string]cheops.SiteHealth, len(sites))
	for _, site := range sites {
		health[site.Name] = site.Health
	}
	return health
}

func (s *server) validateResource(c echo.Context, r *cheops.Resource) error {
	if errs := validation.IsDNS1123Label(r.Name); len(errs) > 0 {
		return invalid("name", errs[0])
	}
	if r.Driver == "" {
		r.Driver = cheops.DriverKubernetes
	}
	d, ok := s.Drivers[r.Driver]
	if !ok {
		return invalid("driver", "unsupported driver "+strconv.Quote(string(r.Driver)))
	}
	if len(r.Manifest) == 0 || string(r.Manifest) == "null" {
		return invalid("manifest", "is required")
	}
	if err := d.Validate(r.Manifest); err != nil {
		return fieldProblem(err, "")
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, r.Manifest); err != nil {
		return invalid("manifest", "is not valid JSON")
	}
	r.Manifest = unescapeHTML(compact.Bytes())
	// Only the sites the declaration names, for a caller bound to no sites: a selector is then
	// checked for its syntax alone, so listing every site (1,000 decoded at each POST) buys nothing.
	// A bound caller's placement is checked against every site its scope reaches.
	var sites []cheops.Site
	var err error
	if identity(c).Bound() {
		sites, err = s.Store.ListSites(c.Request().Context())
	} else {
		sites, err = s.Store.SitesNamed(c.Request().Context(), namedSites(*r))
	}
	if err != nil {
		return err
	}
	if err := validateScope(r.Scope, sites, r.Driver); err != nil {
		return err
	}
	if err := validateOverrides(r, d, sites); err != nil {
		return err
	}
	if err := s.validateDependencies(c.Request().Context(), r, d); err != nil {
		return err
	}
	if n := declarationSize(*r); n > MaxDeclarationBytes {
		return problemAt(http.StatusRequestEntityTooLarge, "manifest",
			fmt.Sprintf("the manifest and overrides take %d bytes; at most %d fit the store", n, MaxDeclarationBytes))
	}
	switch r.Policy.Consistency {
	case "":
		r.Policy.Consistency = cheops.Eventual
	case cheops.Eventual, cheops.Transactional:
	default:
		return invalid("policy.consistency", "must be eventual or transactional")
	}
	if r.Policy.MaxParallel < 0 || r.Policy.MaxParallel > 1000 {
		return invalid("policy.maxParallel", "must be between 0 (default) and 1000")
	}
	if r.Policy.RetryInitial > 0 && r.Policy.RetryMax > 0 && r.Policy.RetryInitial > r.Policy.RetryMax {
		return invalid("policy.retryInitial", "must not exceed policy.retryMax")
	}
	switch r.Policy.Readiness {
	case "", cheops.ReadyWhenStatus, cheops.ReadyWhenApplied:
	default:
		return invalid("policy.readiness", "must be status (Ready when the object's status says so) or applied (Ready once applied)")
	}
	switch r.Policy.Conflict {
	case "", cheops.ConflictAbort, cheops.ConflictAdopt:
	default:
		return invalid("policy.conflict", "must be abort (fail a site that holds someone else's object of that name) or adopt (take it over)")
	}
	switch r.Policy.Adopted {
	case "", cheops.AdoptedRelease, cheops.AdoptedDelete:
	default:
		return invalid("policy.adopted", "must be release (leave an adopted object on its site when the resource is deleted) or delete")
	}
	switch r.Policy.Drift {
	case "", cheops.DriftCorrect, cheops.DriftReport:
	default:
		return invalid("policy.drift", "must be correct (a replica changed or deleted on its site is re-applied) or report (it is only reported)")
	}
	// A caller bound to some sites places only there, now and later.
	id := identity(c)
	if id.Bound() {
		r.Within = id.Sites
	}
	return mayPlace(id, *r, sites)
}

// unescapeHTML writes the \u003c, \u003e and \u0026 escapes of a JSON document as the characters
// they stand for. Go's encoder escapes these three by default, so a client written in Go sends
// every "<" of a manifest as six bytes; stored that way, a manifest of them took six times its size
// in etcd.
func unescapeHTML(doc []byte) []byte {
	if !bytes.Contains(doc, []byte(`\u00`)) {
		return doc
	}
	out := make([]byte, 0, len(doc))
	inString := false
	for i := 0; i < len(doc); i++ {
		c := doc[i]
		switch {
		case c == '"':
			inString = !inString
		case c == '\\' && inString && i+1 < len(doc):
			if i+5 < len(doc) && doc[i+1] == 'u' {
				switch strings.ToLower(string(doc[i+2 : i+6])) {
				case "003c":
					out, i = append(out, '<'), i+5
					continue
				case "003e":
					out, i = append(out, '>'), i+5
					continue
				case "0026":
					out, i = append(out, '&'), i+5
					continue
				}
			}
			out, i = append(out, c, doc[i+1]), i+1 // any other escape, kept whole
			continue
		}
		out = append(out, c)
	}
	return out
}

// declarationSize is how many bytes r's manifest and overrides take in the store.
func declarationSize(r cheops.Resource) int {
	if len(r.Overrides) == 0 {
		return len(r.Manifest)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // as the store writes them
	if err := enc.Encode(r.Overrides); err != nil {
		return len(r.Manifest) + MaxDeclarationBytes // unreachable: overrides are plain data
	}
	return len(r.Manifest) + len(bytes.TrimSpace(b.Bytes()))
}

// validateOverrides checks each override's target and patch, and that the manifest it produces is
// still valid for the driver.
func validateOverrides(r *cheops.Resource, d cheops.Driver, sites []cheops.Site) error {
	known := map[string]bool{}
	for _, st := range sites {
		known[st.Name] = st.Driver == r.Driver
	}
	for i, o := range r.Overrides {
		field := fmt.Sprintf("overrides[%d]", i)
		switch {
		case (o.Site == "") == (o.Selector == ""):
			return invalid(field, "name either a site or a selector")
		case o.Site != "" && !known[o.Site]:
			return invalid(field+".site", "unknown site "+o.Site)
		case o.Selector != "":
			if _, err := scope.ParseSelector(o.Selector); err != nil {
				return invalid(field+".selector", err.Error())
			}
		}
		var patch map[string]any
		if len(o.Patch) == 0 || json.Unmarshal(o.Patch, &patch) != nil {
			return invalid(field+".patch", "must be a JSON object (a JSON merge patch, RFC 7386)")
		}
		var compact bytes.Buffer
		_ = json.Compact(&compact, o.Patch)
		r.Overrides[i].Patch = unescapeHTML(compact.Bytes())
		patched, _, err := overrides.Apply(cheops.Resource{Manifest: r.Manifest, Overrides: r.Overrides[i : i+1]}, cheops.Site{Name: o.Site})
		if err == nil && o.Selector == "" {
			err = d.Validate(patched)
		}
		if err != nil {
			return invalid(field+".patch", "gives an invalid manifest: "+err.Error())
		}
	}
	return nil
}

func validateScope(sc cheops.Scope, sites []cheops.Site, driver cheops.DriverName) error {
	if err := scope.Check(sc, sites, driver); err != nil {
		return fieldProblem(err, "")
	}
	return nil
}

func (s *server) createResource(c echo.Context) error {
	var req resourceRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	r := cheops.Resource{ID: uuid.NewString(), Name: req.Name, Driver: req.Driver, CreatedBy: actor(c),
		IdempotencyKey: c.Request().Header.Get("Idempotency-Key")}
	if err := req.apply(&r); err != nil {
		return err
	}
	if len(r.IdempotencyKey) > 255 {
		return invalid("Idempotency-Key", "must be at most 255 characters")
	}
	if err := s.validateResource(c, &r); err != nil {
		return err
	}
	ctx := c.Request().Context()
	stored, created, err := s.Store.CreateResource(ctx, r)
	if errors.Is(err, store.ErrExists) {
		return problemAt(http.StatusConflict, "name", "a resource named "+r.Name+" already exists")
	}
	if err != nil {
		return err
	}
	if !created {
		// Both sides are normalised by validateResource, so a retry that only spells out a
		// default or spaces its JSON differently is the same request.
		if stored.Name != r.Name || stored.Driver != r.Driver || !sameDeclaration(stored, r) {
			return invalid("Idempotency-Key", "was already used for a different request")
		}
		c.Response().Header().Set("Idempotent-Replayed", "true")
	}
	// The resource is durably recorded: if the workflow cannot be started now, the worker's
	// sweeper starts it, so the answer is still a success.
	nctx, cancel := notifyContext(ctx)
	defer cancel()
	if err := s.Orchestrator.Ensure(nctx, stored.ID); err != nil {
		s.Log.Warn("start workflow; the sweeper will retry", "resource", stored.ID, "error", err)
	}
	v, err := s.view(c, stored)
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderLocation, "/v1/resources/"+stored.ID)
	c.Response().Header().Set("ETag", etag(stored.Generation))
	return c.JSON(http.StatusCreated, v)
}

// sameDeclaration reports whether a and b declare the same manifest, scope, overrides and policy,
// both already normalised by validateResource.
func sameDeclaration(a, b cheops.Resource) bool {
	return bytes.Equal(a.Manifest, b.Manifest) && a.Scope.Equal(b.Scope) && a.Policy == b.Policy &&
		slices.Equal(a.DependsOn, b.DependsOn) &&
		slices.EqualFunc(a.Overrides, b.Overrides, func(x, y cheops.Override) bool {
			return x.Site == y.Site && x.Selector == y.Selector && bytes.Equal(x.Patch, y.Patch)
		})
}

// lookup finds a resource by ID, or by name when the parameter is not a UUID.
func (s *server) lookup(c echo.Context) (cheops.Resource, error) {
	return s.lookupID(c, c.Param("id"))
}

// lookupID finds a resource by its ID or its name.
func (s *server) lookupID(c echo.Context, id string) (cheops.Resource, error) {
	ctx := c.Request().Context()
	given := id
	if _, err := uuid.Parse(id); err != nil {
		if id, err = s.Store.ResourceIDByName(ctx, id); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return cheops.Resource{}, problemAt(http.StatusNotFound, "id", "resource "+given+" does not exist")
			}
			return cheops.Resource{}, err
		}
	}
	r, err := s.Store.GetResource(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return r, problemAt(http.StatusNotFound, "id", "resource "+given+" does not exist")
	}
	if err != nil {
		return r, err
	}
	// A resource placed outside a bound caller's sites does not exist for it.
	if ok, err := s.visible(c, r, nil); err != nil || !ok {
		if err == nil {
			err = problemAt(http.StatusNotFound, "id", "resource "+given+" does not exist")
		}
		return cheops.Resource{}, err
	}
	return r, nil
}

// visible reports whether the caller may see r (see maySee). sites, when nil, are read.
func (s *server) visible(c echo.Context, r cheops.Resource, sites []cheops.Site) (bool, error) {
	id := identity(c)
	if !id.Bound() {
		return true, nil
	}
	ctx := c.Request().Context()
	var err error
	if sites == nil {
		if sites, err = s.Store.ListSites(ctx); err != nil {
			return false, err
		}
	}
	reps, err := s.Store.ListReplicas(ctx, r.ID)
	if err != nil {
		return false, err
	}
	return maySee(id, r, reps, sites), nil
}

// Actions an operator may ask of a resource with POST /v1/resources/{id}:{action}; each is a signal
// of the resource's workflow.
var actions = []string{"pause", "resume", "retry", "resync"}

// resourceAction handles POST /v1/resources/{id}:{action}.
func (s *server) resourceAction(c echo.Context) error {
	id, action, ok := strings.Cut(c.Param("id"), ":")
	if !ok {
		return problemAt(http.StatusMethodNotAllowed, "action", "POST a resource action: /v1/resources/{id}:pause, :resume, :retry or :resync")
	}
	if !slices.Contains(actions, action) {
		return invalid("action", fmt.Sprintf("unknown action %q; one of %s", action, strings.Join(actions, ", ")))
	}
	r, err := s.lookupID(c, id)
	if err != nil {
		return err
	}
	if r.Deletion != nil {
		return problemAt(http.StatusConflict, "id", "the resource is being deleted")
	}
	ctx := c.Request().Context()
	if err := s.Store.AppendEvent(ctx, r.ID, cheops.Event{Type: cheops.EventActionRequested, Message: action, Actor: actor(c)}); err != nil {
		return err
	}
	nctx, cancel := notifyContext(ctx)
	defer cancel()
	if action == "retry" && r.Paused && r.PauseReason != "" {
		// A rollout that stopped paused the resource: retrying its failed sites goes on with it.
		if err := s.Orchestrator.Signal(nctx, r.ID, "resume"); err != nil {
			return fmt.Errorf("resume resource %s: %w", r.ID, err)
		}
	}
	if err := s.Orchestrator.Signal(nctx, r.ID, action); err != nil {
		return fmt.Errorf("%s resource %s: %w", action, r.ID, err)
	}
	v, err := s.view(c, r)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, v)
}

func (s *server) getResource(c echo.Context) error {
	var watch bool
	switch c.QueryParam("watch") {
	case "", "false":
	case "true":
		watch = true
	default:
		return invalid("watch", "must be true or false")
	}
	r, err := s.lookup(c)
	if err != nil {
		return err
	}
	if watch {
		return s.watchResource(c, r)
	}
	v, err := s.view(c, r)
	if err != nil {
		return err
	}
	c.Response().Header().Set("ETag", etag(r.Generation))
	return c.JSON(http.StatusOK, v)
}

func etag(gen int64) string { return strconv.Quote(strconv.FormatInt(gen, 10)) }

// ifMatch returns the generation an If-Match header requires, or -1 when there is none.
func ifMatch(c echo.Context) (int64, error) {
	m := c.Request().Header.Get("If-Match")
	if m == "" {
		return -1, nil
	}
	g, err := strconv.ParseInt(strings.Trim(strings.TrimPrefix(m, "W/"), `"`), 10, 64)
	if err != nil || g < 1 {
		return 0, invalid("If-Match", "must be a resource generation (a positive number), as its ETag gives it")
	}
	return g, nil
}

func (s *server) putResource(c echo.Context) error {
	var req resourceRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	cur, err := s.lookup(c)
	if err != nil {
		return err
	}
	want, err := ifMatch(c)
	if err != nil {
		return err
	}
	// A field left out keeps its value.
	if req.Name == "" {
		req.Name = cur.Name
	}
	if req.Driver == "" {
		req.Driver = cur.Driver
	}
	if err := req.sameIdentity(cur); err != nil {
		return err
	}
	next := cur
	if err := req.apply(&next); err != nil {
		return err
	}
	return s.update(c, cur, want, next)
}

// Media types a PATCH body may have: a JSON merge patch (RFC 7386), or plain JSON taken as one.
var patchTypes = []string{"application/merge-patch+json", echo.MIMEApplicationJSON}

// patchResource handles PATCH /v1/resources/{id}: a JSON merge patch over the resource's
// declaration as PUT takes it. What the patch does not name keeps its value; null removes a member
// (a part of the declaration removed goes back to its default, or is refused when it is required).
func (s *server) patchResource(c echo.Context) error {
	if mt, _, err := mime.ParseMediaType(c.Request().Header.Get(echo.HeaderContentType)); err != nil || !slices.Contains(patchTypes, mt) {
		return problemAt(http.StatusUnsupportedMediaType, echo.HeaderContentType, "a PATCH takes a JSON merge patch: must be application/merge-patch+json or application/json")
	}
	var patch json.RawMessage
	if err := decodeJSON(c.Request().Body, &patch); err != nil {
		return err
	}
	if !bytes.HasPrefix(bytes.TrimSpace(patch), []byte("{")) {
		return problemAt(http.StatusBadRequest, "body", "a merge patch of a resource must be a JSON object")
	}
	cur, err := s.lookup(c)
	if err != nil {
		return err
	}
	want, err := ifMatch(c)
	if err != nil {
		return err
	}
	doc, err := declaration(cur)
	if err != nil {
		return err
	}
	merged, err := jsonpatch.MergePatch(doc, patch)
	if err != nil {
		return problemAt(http.StatusBadRequest, "body", "merge patch: "+err.Error())
	}
	var req resourceRequest
	if err := decodeJSON(bytes.NewReader(merged), &req); err != nil {
		return err
	}
	if err := req.sameIdentity(cur); err != nil {
		return err
	}
	next := cur
	if err := req.declare(&next); err != nil {
		return err
	}
	// Merging writes objects with sorted keys: an unchanged manifest keeps its bytes, so that it
	// is not taken for a change.
	if jsonpatch.Equal(next.Manifest, cur.Manifest) {
		next.Manifest = cur.Manifest
	}
	return s.update(c, cur, want, next)
}

// update validates next, the whole new declaration of cur, and stores it as cur's next generation
// if it differs from what is stored, and the stored generation is want (any generation when want
// is negative). The Updated event is written in the same transaction; the workflow is then told.
func (s *server) update(c echo.Context, cur cheops.Resource, want int64, next cheops.Resource) error {
	if err := s.validateResource(c, &next); err != nil {
		return err
	}
	ctx := c.Request().Context()
	changed := false
	updated, err := s.Store.UpdateResource(ctx, cur.ID, func(r *cheops.Resource) (*cheops.Event, error) {
		// When etcd was unavailable under the write, the store reads again and calls this again: a
		// write of ours that went through is then stored already, which is success, not a stale
		// If-Match, and still to be told to the workflow (changed stays set).
		if changed && sameDeclaration(*r, next) {
			return nil, store.ErrSkip
		}
		if want >= 0 && r.Generation != want {
			return nil, problemAt(http.StatusPreconditionFailed, "If-Match", fmt.Sprintf("generation is %d, not %d", r.Generation, want))
		}
		if r.Deletion != nil {
			return nil, problemAt(http.StatusConflict, "id", "the resource is being deleted")
		}
		if sameDeclaration(*r, next) {
			return nil, store.ErrSkip
		}
		changed = true
		r.Manifest, r.Scope, r.Policy, r.Overrides, r.Within = next.Manifest, next.Scope, next.Policy, next.Overrides, next.Within
		r.DependsOn, r.Provides = next.DependsOn, next.Provides
		r.Generation++
		return &cheops.Event{Type: cheops.EventUpdated, Generation: r.Generation, Actor: actor(c)}, nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return problemAt(http.StatusNotFound, "id", "resource "+c.Param("id")+" does not exist")
	}
	if err != nil {
		return err
	}
	if changed {
		// Stored is what counts; a workflow that misses this message finds the generation at its
		// next periodic re-plan.
		nctx, cancel := notifyContext(ctx)
		defer cancel()
		if err := s.Orchestrator.Apply(nctx, updated.ID, updated.Generation); err != nil {
			s.Log.Warn("notify workflow of a new generation", "resource", updated.ID, "error", err)
		}
	}
	v, err := s.view(c, updated)
	if err != nil {
		return err
	}
	c.Response().Header().Set("ETag", etag(updated.Generation))
	return c.JSON(http.StatusOK, v)
}

func (s *server) deleteResource(c echo.Context) error {
	orphan, err := boolParam(c, "orphan")
	if err != nil {
		return err
	}
	cur, err := s.lookup(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	updated, err := s.Store.UpdateResource(ctx, cur.ID, func(r *cheops.Resource) (*cheops.Event, error) {
		if r.Deletion != nil {
			return nil, store.ErrSkip // accepted already: a repeated delete changes nothing
		}
		r.Deletion = &cheops.Deletion{RequestedAt: time.Now().UTC(), Orphan: orphan}
		return &cheops.Event{Type: cheops.EventDeleteRequested, Message: "orphan=" + strconv.FormatBool(orphan), Actor: actor(c)}, nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return problemAt(http.StatusNotFound, "id", "resource "+c.Param("id")+" does not exist")
	}
	if err != nil {
		return err
	}
	nctx, cancel := notifyContext(ctx)
	defer cancel()
	if err := s.Orchestrator.Delete(nctx, cur.ID); err != nil {
		s.Log.Warn("notify workflow of a delete", "resource", cur.ID, "error", err)
	}
	v, err := s.view(c, updated)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusAccepted, v)
}

type pageToken struct {
	After string `json:"after"`
}

func (s *server) listResources(c echo.Context) error {
	limit := 100
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return invalid("limit", "must be a number from 1 to 1000")
		}
		limit = n
	}
	var after string
	if t := c.QueryParam("pageToken"); t != "" {
		var pt pageToken
		b, err := base64.RawURLEncoding.DecodeString(t)
		if err != nil || json.Unmarshal(b, &pt) != nil {
			return invalid("pageToken", "is not a token this API returned")
		}
		after = pt.After
	}
	state := cheops.ResourceState(c.QueryParam("state"))
	site, prefix := c.QueryParam("site"), c.QueryParam("namePrefix")
	all, err := s.Store.ListResources(c.Request().Context())
	if err != nil {
		return err
	}
	// Every site is read once, for the health each replica is shown with, and for what a bound
	// caller may see.
	sites, err := s.Store.ListSites(c.Request().Context())
	if err != nil {
		return err
	}
	health := healthOf(sites)
	items := []resourceView{}
	next := ""
	for _, r := range all {
		if r.Name <= after || !strings.HasPrefix(r.Name, prefix) {
			continue
		}
		v, err := s.viewWith(c, r, health)
		if err != nil {
			return err
		}
		if state != "" && v.State != state {
			continue
		}
		if site != "" && !slices.ContainsFunc(v.Replicas, func(rep cheops.Replica) bool { return rep.Site == site }) {
			continue
		}
		if id := identity(c); id.Bound() && !maySee(id, r, v.Replicas, sites) {
			continue
		}
		if len(items) == limit {
			b, _ := json.Marshal(pageToken{After: items[len(items)-1].Name})
			next = base64.RawURLEncoding.EncodeToString(b)
			break
		}
		items = append(items, v)
	}
	return c.JSON(http.StatusOK, map[string]any{"items": items, "nextPageToken": next})
}

func (s *server) events(c echo.Context) error {
	r, err := s.lookup(c)
	if err != nil {
		return err
	}
	evs, err := s.Store.Events(c.Request().Context(), r.ID)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"items": evs})
}

// notifyTimeout bounds how long the API waits for Temporal to take a message to a workflow.
const notifyTimeout = 10 * time.Second

// notifyContext is the context a message to a workflow is sent under once its change is stored:
// it does not end with the request, so a client that goes away in between does not keep the
// message from the workflow, which would otherwise learn of the change only at its next periodic
// re-plan.
func notifyContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), notifyTimeout)
}

// namedSites are the sites a declaration names, by its scope's list or expression and by its
// overrides; a malformed expression names none (validateScope reports it).
func namedSites(r cheops.Resource) []string {
	names := slices.Clone(r.Scope.Sites)
	if r.Scope.Expression != "" {
		if x, err := scope.Parse(r.Scope.Expression); err == nil {
			names = append(names, scope.Names(x)...)
		}
	}
	for _, o := range r.Overrides {
		if o.Site != "" {
			names = append(names, o.Site)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}
