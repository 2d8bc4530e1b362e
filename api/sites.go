package api

import (
	"errors"
	"net/http"
	"slices"
	"strconv"

	"github.com/labstack/echo/v4"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/auth"
	"github.com/cheops-io/cheops/store"
)

// siteRequest is the body of POST and PUT /v1/sites. Credentials come in here and go no further
// than the store.
type siteRequest struct {
	Name       string             `json:"name"`
	Driver     cheops.DriverName  `json:"driver"`
	Labels     map[string]string  `json:"labels"`
	Kubernetes *kubernetesRequest `json:"kubernetes"`
	OpenStack  *openStackRequest  `json:"openstack"`
}

// openStackRequest is an OpenStack site's settings with its write-only secrets beside them.
type openStackRequest struct {
	cheops.OpenStackSite
	Password                    string `json:"password"`
	ApplicationCredentialSecret string `json:"applicationCredentialSecret"`
}

func (o *openStackRequest) hasSecret() bool {
	return o.Password != "" || o.ApplicationCredentialSecret != ""
}

type kubernetesRequest struct {
	Kubeconfig     string `json:"kubeconfig"`
	KubeconfigPath string `json:"kubeconfigPath"`
	Context        string `json:"context"`
	Namespace      string `json:"namespace"`
}

func (s *server) siteFromRequest(req siteRequest) (cheops.Site, cheops.Credentials, error) {
	site := cheops.Site{Name: req.Name, Driver: req.Driver, Labels: req.Labels}
	var cred cheops.Credentials
	if errs := validation.IsDNS1123Label(req.Name); len(errs) > 0 {
		return site, cred, invalid("name", errs[0])
	}
	if err := validateLabels(req.Labels); err != nil {
		return site, cred, err
	}
	if req.Driver == "" {
		return site, cred, invalid("driver", "is required (kubernetes or openstack)")
	}
	d, ok := s.Drivers[req.Driver]
	if !ok {
		return site, cred, invalid("driver", "unsupported driver "+strconv.Quote(string(req.Driver)))
	}
	if req.Driver == cheops.DriverKubernetes {
		if req.Kubernetes == nil {
			return site, cred, invalid("kubernetes", "is required for a kubernetes site")
		}
		site.Kubernetes = &cheops.KubernetesSite{KubeconfigPath: req.Kubernetes.KubeconfigPath,
			Context: req.Kubernetes.Context, Namespace: req.Kubernetes.Namespace}
		cred.Kubeconfig = req.Kubernetes.Kubeconfig
	}
	if req.Driver != cheops.DriverKubernetes && req.Kubernetes != nil {
		return site, cred, invalid("kubernetes", "is only for a kubernetes site")
	}
	if req.Driver == cheops.DriverOpenStack {
		if req.OpenStack == nil {
			return site, cred, invalid("openstack", "is required for an openstack site")
		}
		o := req.OpenStack.OpenStackSite
		site.OpenStack = &o
		cred.Password, cred.ApplicationCredentialSecret = req.OpenStack.Password, req.OpenStack.ApplicationCredentialSecret
	}
	if req.Driver != cheops.DriverOpenStack && req.OpenStack != nil {
		return site, cred, invalid("openstack", "is only for an openstack site")
	}
	if err := d.ValidateSite(site, cred); err != nil {
		return site, cred, fieldProblem(err, "")
	}
	return site, cred, nil
}

func validateLabels(l map[string]string) error {
	for k, v := range l {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return invalid("labels."+k, errs[0])
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			return invalid("labels."+k, errs[0])
		}
	}
	return nil
}

func (s *server) createSite(c echo.Context) error {
	var req siteRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	site, cred, err := s.siteFromRequest(req)
	if err != nil {
		return err
	}
	if err := mayManage(identity(c), site); err != nil {
		return err
	}
	site.CreatedBy = actor(c)
	site, err = s.Store.CreateSite(c.Request().Context(), site, cred)
	if errors.Is(err, store.ErrExists) {
		return problemAt(http.StatusConflict, "name", "site "+req.Name+" already exists")
	}
	if err != nil {
		return err
	}
	c.Response().Header().Set(echo.HeaderLocation, "/v1/sites/"+site.Name)
	return c.JSON(http.StatusCreated, site)
}

func (s *server) listSites(c echo.Context) error {
	sites, err := s.Store.ListSites(c.Request().Context())
	if err != nil {
		return err
	}
	id := identity(c)
	sites = slices.DeleteFunc(sites, func(st cheops.Site) bool { return !id.MaySee(st.Labels) })
	return c.JSON(http.StatusOK, map[string]any{"items": sites})
}

func (s *server) getSite(c echo.Context) error {
	site, err := s.lookupSite(c, c.Param("name"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, site)
}

// lookupSite reads a site; one outside a bound caller's sites does not exist for it.
func (s *server) lookupSite(c echo.Context, name string) (cheops.Site, error) {
	site, err := s.Store.GetSite(c.Request().Context(), name)
	if errors.Is(err, store.ErrNotFound) || err == nil && !identity(c).MaySee(site.Labels) {
		return cheops.Site{}, problemAt(http.StatusNotFound, "name", "site "+name+" does not exist")
	}
	return site, err
}

// mayManage checks that a caller bound to some sites only writes sites it matches.
func mayManage(id auth.Identity, site cheops.Site) error {
	if id.MaySee(site.Labels) {
		return nil
	}
	p := problem(http.StatusForbidden, "token "+id.Name+" may only manage sites matching "+id.Sites)
	p.Errors = []FieldProblem{{Field: "labels", Message: "do not match " + id.Sites}}
	return p
}

// putSite replaces a site's labels and settings. Credentials are replaced when the body carries
// new ones and kept otherwise, since they cannot be read back to be re-sent.
func (s *server) putSite(c echo.Context) error {
	var req siteRequest
	if err := decode(c, &req); err != nil {
		return err
	}
	name := c.Param("name")
	if req.Name == "" {
		req.Name = name
	}
	if req.Name != name {
		return invalid("name", "does not match the site in the path ("+name+"); sites cannot be renamed")
	}
	ctx := c.Request().Context()
	cur, err := s.lookupSite(c, name)
	if err != nil {
		return err
	}
	if req.Driver == "" {
		req.Driver = cur.Driver
	}
	if req.Driver != cur.Driver {
		return invalid("driver", "cannot change from "+string(cur.Driver))
	}
	var newCred *cheops.Credentials
	keep := (req.Kubernetes != nil && req.Kubernetes.Kubeconfig == "" && req.Kubernetes.KubeconfigPath == "") ||
		(req.OpenStack != nil && !req.OpenStack.hasSecret() && req.OpenStack.CloudsFile == "")
	if keep {
		// Keep the stored credentials: validate as if they were sent again.
		old, err := s.Store.SiteCredentials(ctx, name)
		if err != nil {
			return err
		}
		if req.Kubernetes != nil {
			req.Kubernetes.Kubeconfig = old.Kubeconfig
		}
		if req.OpenStack != nil {
			req.OpenStack.Password, req.OpenStack.ApplicationCredentialSecret = old.Password, old.ApplicationCredentialSecret
		}
	} else {
		newCred = &cheops.Credentials{}
	}
	site, cred, err := s.siteFromRequest(req)
	if err != nil {
		return err
	}
	if err := mayManage(identity(c), site); err != nil {
		return err
	}
	if keep {
		if err := secretStays(cur, site, cred); err != nil {
			return err
		}
	}
	if newCred != nil {
		*newCred = cred
	}
	updated, err := s.Store.UpdateSite(ctx, name, newCred, func(cur *cheops.Site) (*cheops.Event, error) {
		cur.Labels, cur.Kubernetes, cur.OpenStack = site.Labels, site.Kubernetes, site.OpenStack
		msg := "settings replaced; credentials kept"
		if newCred != nil {
			msg = "settings and credentials replaced"
		}
		return &cheops.Event{Type: cheops.EventSiteUpdated, Actor: actor(c), Message: msg}, nil
	})
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, updated)
}

// secretStays refuses to keep a site's stored secret (cred) when the new settings would send it
// somewhere else than the old ones did, or trust that endpoint differently: a caller could
// otherwise point a site at their own endpoint and have the worker deliver a secret that the API
// never shows. Sending the secret again is proof enough that the caller has it.
func secretStays(old, next cheops.Site, cred cheops.Credentials) error {
	if next.Kubernetes != nil {
		var o cheops.KubernetesSite
		if old.Kubernetes != nil {
			o = *old.Kubernetes
		}
		for _, f := range []struct{ name, old, new string }{
			{"kubeconfigPath", o.KubeconfigPath, next.Kubernetes.KubeconfigPath},
			{"context", o.Context, next.Kubernetes.Context},
		} {
			if f.old != f.new {
				return invalid("kubernetes.kubeconfig", "must be sent again to change kubernetes."+f.name+
					": the stored one is only used the way it was first sent")
			}
		}
	}
	if next.OpenStack != nil {
		var o cheops.OpenStackSite
		if old.OpenStack != nil {
			o = *old.OpenStack
		}
		n := *next.OpenStack
		field := "openstack.password"
		if cred.ApplicationCredentialSecret != "" {
			field = "openstack.applicationCredentialSecret"
		}
		for _, f := range []struct{ name, old, new string }{
			{"authURL", o.AuthURL, n.AuthURL},
			{"cloudsFile", o.CloudsFile, n.CloudsFile},
			{"cloud", o.Cloud, n.Cloud},
			{"username", o.Username, n.Username},
			{"userDomain", o.UserDomain, n.UserDomain},
			{"applicationCredentialID", o.ApplicationCredentialID, n.ApplicationCredentialID},
			{"caFile", o.CAFile, n.CAFile},
			{"insecure", strconv.FormatBool(o.Insecure), strconv.FormatBool(n.Insecure)},
		} {
			if f.old != f.new {
				return invalid(field, "must be sent again to change openstack."+f.name+
					": the stored one is only sent where it was first sent")
			}
		}
	}
	return nil
}

func (s *server) deleteSite(c echo.Context) error {
	force, err := boolParam(c, "force")
	if err != nil {
		return err
	}
	if _, err := s.lookupSite(c, c.Param("name")); err != nil {
		return err
	}
	err = s.Store.DeleteSite(c.Request().Context(), c.Param("name"), force, actor(c))
	switch {
	case errors.Is(err, store.ErrNotFound):
		return problemAt(http.StatusNotFound, "name", "site "+c.Param("name")+" does not exist")
	case errors.Is(err, store.ErrConflict):
		return problemAt(http.StatusConflict, "force", err.Error()+"; delete those resources first, or pass force=true to forget their replicas there")
	case err != nil:
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func boolParam(c echo.Context, name string) (bool, error) {
	v := c.QueryParam(name)
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, invalid(name, "must be true or false")
	}
	return b, nil
}

func (s *server) siteEvents(c echo.Context) error {
	name := c.Param("name")
	if _, err := s.lookupSite(c, name); err != nil {
		// A removed site's log is still there, for whoever may see every site.
		if p, ok := err.(*Problem); !ok || p.Status != http.StatusNotFound || identity(c).Bound() {
			return err
		}
	}
	evs, err := s.Store.SiteEvents(c.Request().Context(), name)
	if err != nil {
		return err
	}
	if len(evs) == 0 {
		return problemAt(http.StatusNotFound, "name", "site "+name+" does not exist and never did")
	}
	return c.JSON(http.StatusOK, map[string]any{"items": evs})
}
