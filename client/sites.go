package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/cheops-io/cheops"
)

// SiteRequest is the body of CreateSite and UpdateSite: a site's settings with its write-only
// credentials. The API never returns the credentials; it answers with a cheops.Site.
type SiteRequest struct {
	// Name is a DNS label; on UpdateSite it may be left empty (the name in the path counts).
	Name string `json:"name,omitempty"`
	// Driver is required on CreateSite; on UpdateSite it may be left empty and cannot change.
	Driver     cheops.DriverName   `json:"driver,omitempty"`
	Labels     map[string]string   `json:"labels,omitempty"`
	Kubernetes *KubernetesSettings `json:"kubernetes,omitempty"`
	OpenStack  *OpenStackSettings  `json:"openstack,omitempty"`
}

// KubernetesSettings is how to reach a Kubernetes site: an inline kubeconfig (stored write-only)
// or the path of one on the worker's host.
type KubernetesSettings struct {
	// Kubeconfig is a kubeconfig document. On UpdateSite, leaving it and KubeconfigPath empty keeps
	// the stored credentials.
	Kubeconfig     string `json:"kubeconfig,omitempty"`
	KubeconfigPath string `json:"kubeconfigPath,omitempty"`
	// Context is the kubeconfig context to use (default: its current context).
	Context string `json:"context,omitempty"`
	// Namespace is where namespaced objects that name none are put.
	Namespace string `json:"namespace,omitempty"`
}

// OpenStackSettings is how to reach an OpenStack site, with the write-only secret of the way it
// authenticates. On UpdateSite, sending no secret (and no clouds file) keeps the stored ones.
type OpenStackSettings struct {
	cheops.OpenStackSite
	// Password goes with OpenStackSite.Username.
	Password string `json:"password,omitempty"`
	// ApplicationCredentialSecret goes with OpenStackSite.ApplicationCredentialID.
	ApplicationCredentialSecret string `json:"applicationCredentialSecret,omitempty"`
}

func sitePath(name string) string { return "/v1/sites/" + url.PathEscape(name) }

// CreateSite registers a site. A site of that name already registered is a 409 *Problem.
func (c *Client) CreateSite(ctx context.Context, req SiteRequest) (cheops.Site, error) {
	var s cheops.Site
	err := c.do(ctx, request{method: http.MethodPost, path: "/v1/sites", body: req, out: &s})
	return s, err
}

// ListSites returns every site, sorted by name.
func (c *Client) ListSites(ctx context.Context) ([]cheops.Site, error) {
	var out struct {
		Items []cheops.Site `json:"items"`
	}
	err := c.do(ctx, request{method: http.MethodGet, path: "/v1/sites", out: &out})
	return out.Items, err
}

// GetSite returns a site (never its credentials), with its health.
func (c *Client) GetSite(ctx context.Context, name string) (cheops.Site, error) {
	var s cheops.Site
	err := c.do(ctx, request{method: http.MethodGet, path: sitePath(name), out: &s})
	return s, err
}

// UpdateSite replaces a site's labels and settings. Credentials are replaced when req carries new
// ones and kept otherwise. A site cannot be renamed or change driver.
func (c *Client) UpdateSite(ctx context.Context, name string, req SiteRequest) (cheops.Site, error) {
	var s cheops.Site
	err := c.do(ctx, request{method: http.MethodPut, path: sitePath(name), body: req, out: &s})
	return s, err
}

// DeleteSite removes a site. While resources have replicas there it is refused (a 409 *Problem)
// unless force is set, which forgets those replicas without deleting them from the site.
func (c *Client) DeleteSite(ctx context.Context, name string, force bool) error {
	var q url.Values
	if force {
		q = url.Values{"force": {"true"}}
	}
	return c.do(ctx, request{method: http.MethodDelete, path: sitePath(name), query: q})
}

// SiteEvents returns a site's event log, oldest first: who registered, changed and removed it, and
// its health changes. It is kept after the site is removed.
func (c *Client) SiteEvents(ctx context.Context, name string) ([]cheops.Event, error) {
	var out struct {
		Items []cheops.Event `json:"items"`
	}
	err := c.do(ctx, request{method: http.MethodGet, path: sitePath(name) + "/events", out: &out})
	return out.Items, err
}
