package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"

	"github.com/cheops-io/cheops"
)

// Resource is a resource as the API shows it: the declaration, its state aggregated over the
// replicas, and per site the replica that backs it.
type Resource struct {
	cheops.Resource
	State    cheops.ResourceState `json:"state"`
	Replicas []cheops.Replica     `json:"replicas"`
}

// Replica returns the resource's replica on site, if it has one.
func (r Resource) Replica(site string) (cheops.Replica, bool) {
	for _, rep := range r.Replicas {
		if rep.Site == site {
			return rep, true
		}
	}
	return cheops.Replica{}, false
}

// LocalIDs maps each site to the local ID of the object backing the resource there ("" while
// none is recorded).
func (r Resource) LocalIDs() map[string]string {
	m := make(map[string]string, len(r.Replicas))
	for _, rep := range r.Replicas {
		m[rep.Site] = rep.LocalID
	}
	return m
}

// ReadyReplicas counts the replicas Ready at the resource's current generation, and not drifted.
func (r Resource) ReadyReplicas() int {
	n := 0
	for _, rep := range r.Replicas {
		if rep.State == cheops.ReplicaReady && rep.ObservedGeneration == r.Generation && !rep.Drifted {
			n++
		}
	}
	return n
}

// ResourceRequest declares a resource (CreateResource) or replaces parts of one (UpdateResource).
// Scope, Overrides, DependsOn and Policy left nil keep their values on UpdateResource; a Policy given there
// replaces the whole policy (use PatchResource to change one of its fields).
type ResourceRequest struct {
	// Name is a DNS label, unique among resources; it cannot change.
	Name string `json:"name,omitempty"`
	// Driver is "kubernetes" (the default) or "openstack"; it cannot change.
	Driver cheops.DriverName `json:"driver,omitempty"`
	// Manifest is a Kubernetes object, or an OpenStack one ({"type": …, "spec": …}).
	Manifest  json.RawMessage    `json:"manifest,omitempty"`
	Scope     *cheops.Scope      `json:"scope,omitempty"`
	Overrides *[]cheops.Override `json:"overrides,omitempty"`
	// DependsOn names the resources that must be available on a site before this one is applied
	// there; left nil it keeps its value on UpdateResource, and an empty list removes them all.
	DependsOn *[]string      `json:"dependsOn,omitempty"`
	Policy    *cheops.Policy `json:"policy,omitempty"`
}

// CreateOptions tune CreateResource.
type CreateOptions struct {
	// IdempotencyKey, when set, makes a retried create with the same key and request return the
	// resource the first one created, and start nothing new.
	IdempotencyKey string
}

// UpdateOptions tune UpdateResource and PatchResource.
type UpdateOptions struct {
	// IfGeneration, when not 0, makes the change apply only if the resource is still at that
	// generation (If-Match); otherwise the API answers with a 412 *Problem.
	IfGeneration int64
}

func (o UpdateOptions) header() http.Header {
	if o.IfGeneration == 0 {
		return nil
	}
	return http.Header{"If-Match": {strconv.Quote(strconv.FormatInt(o.IfGeneration, 10))}}
}

func resourcePath(idOrName string) string { return "/v1/resources/" + url.PathEscape(idOrName) }

// CreateResource declares a resource. When the answer is a success the resource is durably
// recorded and its replication will complete. A name in use is a 409 *Problem.
func (c *Client) CreateResource(ctx context.Context, req ResourceRequest, opts CreateOptions) (Resource, error) {
	var h http.Header
	if opts.IdempotencyKey != "" {
		h = http.Header{"Idempotency-Key": {opts.IdempotencyKey}}
	}
	var r Resource
	err := c.do(ctx, request{method: http.MethodPost, path: "/v1/resources", header: h, body: req, out: &r})
	return r, err
}

// GetResource returns a resource by its ID or its name.
func (c *Client) GetResource(ctx context.Context, idOrName string) (Resource, error) {
	var r Resource
	err := c.do(ctx, request{method: http.MethodGet, path: resourcePath(idOrName), out: &r})
	return r, err
}

// ListOptions filter and page ListResources. Zero fields do not filter.
type ListOptions struct {
	// State keeps the resources in that aggregated state.
	State cheops.ResourceState
	// Site keeps the resources with a replica on that site.
	Site string
	// NamePrefix keeps the resources whose name starts so.
	NamePrefix string
	// Limit is the page size, 1 to 1000 (the API's default is 100).
	Limit int
	// PageToken continues from a previous page's NextPageToken.
	PageToken string
}

func (o ListOptions) query() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"state": string(o.State), "site": o.Site, "namePrefix": o.NamePrefix, "pageToken": o.PageToken} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if o.Limit != 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	return q
}

// ResourcePage is one page of ListResources, sorted by name.
type ResourcePage struct {
	Items []Resource `json:"items"`
	// NextPageToken continues the listing (ListOptions.PageToken); "" on the last page.
	NextPageToken string `json:"nextPageToken"`
}

// ListResources returns one page of the resources that match opts.
func (c *Client) ListResources(ctx context.Context, opts ListOptions) (ResourcePage, error) {
	var p ResourcePage
	err := c.do(ctx, request{method: http.MethodGet, path: "/v1/resources", query: opts.query(), out: &p})
	return p, err
}

// ListAllResources follows the pages of ListResources from opts.PageToken to the last one and
// returns every resource that matches opts.
func (c *Client) ListAllResources(ctx context.Context, opts ListOptions) ([]Resource, error) {
	var all []Resource
	for {
		p, err := c.ListResources(ctx, opts)
		if err != nil {
			return all, err
		}
		all = append(all, p.Items...)
		if p.NextPageToken == "" {
			return all, nil
		}
		opts.PageToken = p.NextPageToken
	}
}

// UpdateResource changes a resource's manifest, scope, overrides or policy: what req sets replaces
// the stored value and what it leaves nil is kept. A change starts a new generation.
func (c *Client) UpdateResource(ctx context.Context, idOrName string, req ResourceRequest, opts UpdateOptions) (Resource, error) {
	var r Resource
	err := c.do(ctx, request{method: http.MethodPut, path: resourcePath(idOrName), header: opts.header(), body: req, out: &r})
	return r, err
}

// PatchResource changes parts of a resource with a JSON merge patch (RFC 7386): what patch leaves
// out keeps its value, down to single policy fields. A change starts a new generation.
func (c *Client) PatchResource(ctx context.Context, idOrName string, patch ResourcePatch, opts UpdateOptions) (Resource, error) {
	var r Resource
	err := c.do(ctx, request{method: http.MethodPatch, path: resourcePath(idOrName), header: opts.header(),
		body: patch, contentType: "application/merge-patch+json", out: &r})
	return r, err
}

// DeleteResource asks for a resource to be deleted from every site, or, with orphan, only forgotten
// (its replicas stay on their sites). It returns the resource as it stands, state Deleting; the
// deletion itself goes on in the background until GetResource answers 404.
func (c *Client) DeleteResource(ctx context.Context, idOrName string, orphan bool) (Resource, error) {
	var q url.Values
	if orphan {
		q = url.Values{"orphan": {"true"}}
	}
	var r Resource
	err := c.do(ctx, request{method: http.MethodDelete, path: resourcePath(idOrName), query: q, out: &r})
	return r, err
}

// Action is an operator control of a resource, sent to its workflow as a signal.
type Action string

// The actions of POST /v1/resources/{id}:{action}.
const (
	// Pause stops applying anything until Resume.
	Pause Action = "pause"
	// Resume applies what changed while paused.
	Resume Action = "resume"
	// Retry retries failed replicas now, including ones a site rejected, and a rolled-back
	// generation.
	Retry Action = "retry"
	// Resync re-applies every replica, converged or not.
	Resync Action = "resync"
)

// Act sends an action to a resource's workflow and returns the resource as it stands; the action
// takes effect shortly after. A resource being deleted answers with a 409 *Problem.
func (c *Client) Act(ctx context.Context, idOrName string, a Action) (Resource, error) {
	var r Resource
	err := c.do(ctx, request{method: http.MethodPost, path: resourcePath(idOrName) + ":" + string(a), out: &r})
	return r, err
}

// Events returns a resource's event log, oldest first.
func (c *Client) Events(ctx context.Context, idOrName string) ([]cheops.Event, error) {
	var out struct {
		Items []cheops.Event `json:"items"`
	}
	err := c.do(ctx, request{method: http.MethodGet, path: resourcePath(idOrName) + "/events", out: &out})
	return out.Items, err
}
