package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v4"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/store"
)

// resourceRequest is the body of POST /v1/resources and PUT /v1/resources/{id}. On PUT, a field
// left out keeps its value.
type resourceRequest struct {
	Name     string            `json:"name"`
	Driver   cheops.DriverName `json:"driver"`
	Manifest json.RawMessage   `json:"manifest"`
	Scope    *cheops.Scope     `json:"scope"`
	Policy   *cheops.Policy    `json:"policy"`
}

// resourceView is a resource as the API shows it: the declaration, its aggregated state, and per site
// the replica that backs it.
type resourceView struct {
	cheops.Resource
	State    cheops.ResourceState `json:"state"`
	Replicas []cheops.Replica     `json:"replicas"`
}

func (s *server) view(c echo.Context, r cheops.Resource) (resourceView, error) {
	reps, err := s.Store.ListReplicas(c.Request().Context(), r.ID)
	if err != nil {
		return resourceView{}, err
	}
	return resourceView{Resource: r, State: cheops.Aggregate(r, reps), Replicas: reps}, nil
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
	r.Manifest = compact.Bytes()
	if err := s.validateScope(c, r.Scope); err != nil {
		return err
	}
	switch r.Policy.Consistency {
	case "":
		r.Policy.Consistency = cheops.Eventual
	case cheops.Eventual:
	case cheops.Transactional:
		return invalid("policy.consistency", "transactional mode is not available yet; use eventual")
	default:
		return invalid("policy.consistency", "must be eventual or transactional")
	}
	if r.Policy.MaxParallel < 0 || r.Policy.MaxParallel > 1000 {
		return invalid("policy.maxParallel", "must be between 0 (default) and 1000")
	}
	return nil
}

func (s *server) validateScope(c echo.Context, sc cheops.Scope) error {
	if len(sc.Sites) == 0 && sc.Selector == "" {
		return invalid("scope", "name sites or a selector")
	}
	if len(sc.Sites) > 0 && sc.Selector != "" {
		return invalid("scope", "give either sites or a selector, not both")
	}
	if sc.Selector != "" {
		if _, err := labels.Parse(sc.Selector); err != nil {
			return invalid("scope.selector", err.Error())
		}
		return nil
	}
	sites, err := s.Store.ListSites(c.Request().Context())
	if err != nil {
		return err
	}
	known := map[string]bool{}
	for _, st := range sites {
		known[st.Name] = true
	}
	var unknown []string
	for i, name := range sc.Sites {
		if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
			return invalid(fmt.Sprintf("scope.sites[%d]", i), errs[0])
		}
		if !known[name] {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		return invalid("scope.sites", "unknown sites: "+strings.Join(unknown, ", "))
	}
	return nil
}

func (s *server) createResource(c echo.Context) error {
	var req resourceRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	r := cheops.Resource{ID: uuid.NewString(), Name: req.Name, Driver: req.Driver, Manifest: req.Manifest,
		IdempotencyKey: c.Request().Header.Get("Idempotency-Key")}
	if req.Scope != nil {
		r.Scope = *req.Scope
	}
	if req.Policy != nil {
		r.Policy = *req.Policy
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
		return problem(http.StatusConflict, "a resource named "+r.Name+" already exists")
	}
	if err != nil {
		return err
	}
	if !created {
		if stored.Name != r.Name || !bytes.Equal(stored.Manifest, r.Manifest) {
			return invalid("Idempotency-Key", "was already used for a different request")
		}
		c.Response().Header().Set("Idempotent-Replayed", "true")
	} else if err := s.Store.AppendEvent(ctx, stored.ID, cheops.Event{Type: "Created", Generation: 1}); err != nil {
		s.Log.Warn("record event", "resource", stored.ID, "error", err)
	}
	// The resource is durably recorded: if the workflow cannot be started now, the worker's
	// sweeper starts it, so the answer is still a success.
	if err := s.Orchestrator.Ensure(ctx, stored.ID); err != nil {
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

// lookup finds a resource by ID, or by name when the parameter is not a UUID.
func (s *server) lookup(c echo.Context) (cheops.Resource, error) {
	ctx := c.Request().Context()
	id := c.Param("id")
	if _, err := uuid.Parse(id); err != nil {
		if id, err = s.Store.ResourceIDByName(ctx, id); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return cheops.Resource{}, problem(http.StatusNotFound, "resource "+c.Param("id")+" does not exist")
			}
			return cheops.Resource{}, err
		}
	}
	r, err := s.Store.GetResource(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return r, problem(http.StatusNotFound, "resource "+c.Param("id")+" does not exist")
	}
	return r, err
}

func (s *server) getResource(c echo.Context) error {
	r, err := s.lookup(c)
	if err != nil {
		return err
	}
	v, err := s.view(c, r)
	if err != nil {
		return err
	}
	c.Response().Header().Set("ETag", etag(r.Generation))
	return c.JSON(http.StatusOK, v)
}

func etag(gen int64) string { return strconv.Quote(strconv.FormatInt(gen, 10)) }

func (s *server) putResource(c echo.Context) error {
	var req resourceRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	cur, err := s.lookup(c)
	if err != nil {
		return err
	}
	var want int64 = -1
	if m := c.Request().Header.Get("If-Match"); m != "" {
		g, err := strconv.ParseInt(strings.Trim(strings.TrimPrefix(m, "W/"), `"`), 10, 64)
		if err != nil {
			return invalid("If-Match", "must be a resource generation")
		}
		want = g
	}
	if req.Name != "" && req.Name != cur.Name {
		return invalid("name", "cannot be changed")
	}
	if req.Driver != "" && req.Driver != cur.Driver {
		return invalid("driver", "cannot be changed")
	}
	next := cur
	if len(req.Manifest) > 0 {
		next.Manifest = req.Manifest
	}
	if req.Scope != nil {
		next.Scope = *req.Scope
	}
	if req.Policy != nil {
		next.Policy = *req.Policy
	}
	if err := s.validateResource(c, &next); err != nil {
		return err
	}
	ctx := c.Request().Context()
	changed := false
	updated, err := s.Store.UpdateResource(ctx, cur.ID, func(r *cheops.Resource) error {
		if want >= 0 && r.Generation != want {
			return problem(http.StatusPreconditionFailed, fmt.Sprintf("generation is %d, not %d", r.Generation, want))
		}
		if r.Deletion != nil {
			return problem(http.StatusConflict, "the resource is being deleted")
		}
		changed = !bytes.Equal(r.Manifest, next.Manifest) || !slices.Equal(r.Scope.Sites, next.Scope.Sites) ||
			r.Scope.Selector != next.Scope.Selector || r.Policy != next.Policy
		if !changed {
			return nil
		}
		r.Manifest, r.Scope, r.Policy = next.Manifest, next.Scope, next.Policy
		r.Generation++
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return problem(http.StatusNotFound, "resource "+c.Param("id")+" does not exist")
	}
	if err != nil {
		return err
	}
	if changed {
		if err := s.Store.AppendEvent(ctx, updated.ID, cheops.Event{Type: "Updated", Generation: updated.Generation}); err != nil {
			s.Log.Warn("record event", "resource", updated.ID, "error", err)
		}
		// Stored is what counts; a workflow that misses this message finds the generation at its
		// next periodic re-plan.
		if err := s.Orchestrator.Apply(ctx, updated.ID, updated.Generation); err != nil {
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
	updated, err := s.Store.UpdateResource(ctx, cur.ID, func(r *cheops.Resource) error {
		if r.Deletion == nil {
			r.Deletion = &cheops.Deletion{RequestedAt: time.Now().UTC(), Orphan: orphan}
		}
		return nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return problem(http.StatusNotFound, "resource "+c.Param("id")+" does not exist")
	}
	if err != nil {
		return err
	}
	if err := s.Store.AppendEvent(ctx, cur.ID, cheops.Event{Type: "DeleteRequested", Message: "orphan=" + strconv.FormatBool(updated.Deletion.Orphan)}); err != nil {
		s.Log.Warn("record event", "resource", cur.ID, "error", err)
	}
	if err := s.Orchestrator.Delete(ctx, cur.ID); err != nil {
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
	items := []resourceView{}
	next := ""
	for _, r := range all {
		if r.Name <= after || !strings.HasPrefix(r.Name, prefix) {
			continue
		}
		v, err := s.view(c, r)
		if err != nil {
			return err
		}
		if state != "" && v.State != state {
			continue
		}
		if site != "" && !slices.ContainsFunc(v.Replicas, func(rep cheops.Replica) bool { return rep.Site == site }) {
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
