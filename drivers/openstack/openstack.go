// Package openstack is the cheops driver for OpenStack sites: keypairs, flavors, security groups,
// networks with their subnets, images and servers, through gophercloud. Every object it creates
// carries its cheops resource ID (a tag, a property or metadata, or the resource ID itself as a
// flavor's ID; a keypair is known by its unique name), and before creating anything it looks for
// such an object, so a retry after a crash adopts what an earlier attempt made instead of making a
// second one. It caches one authenticated provider client per site and classifies every error it
// returns. It knows nothing of Temporal, etcd or HTTP handlers.
package openstack

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack"
	"github.com/gophercloud/gophercloud/v2/openstack/config/clouds"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/drivers/hostfile"
)

// APIVersion marks the object references of OpenStack replicas.
const APIVersion = "openstack"

// computeMicroversion is the nova API version the driver speaks: 2.52 for server tags at creation,
// 2.55 for flavor descriptions.
const computeMicroversion = "2.55"

// Driver implements cheops.Driver for OpenStack.
type Driver struct {
	// Timeout bounds each HTTP request to a site (default 60s); waiting for a server or an image to
	// become ready is bounded by the caller's context instead.
	Timeout time.Duration
	// PollInterval is how often a server or image being built is looked at (default 1s).
	PollInterval time.Duration
	// ImageSources limits where image bytes are fetched from (by default: not from loopback or
	// link-local addresses).
	ImageSources ImageSources
	// FilesDir is the only folder of this host whose files a site may name (cloudsFile, caFile).
	// Empty, the default: no host file may be named.
	FilesDir string

	mu    sync.Mutex
	sites map[string]*site
	// fetch is built from ImageSources on first use.
	fetchOnce sync.Once
	fetch     *http.Client
}

// New returns a driver with an empty client cache.
func New() *Driver {
	return &Driver{Timeout: 60 * time.Second, PollInterval: time.Second, sites: map[string]*site{}}
}

var (
	_ cheops.Driver   = (*Driver)(nil)
	_ cheops.Referrer = (*Driver)(nil)
	_ cheops.Finder   = (*Driver)(nil)
)

// site holds the service clients of one site, sharing one provider client whose token is renewed
// by gophercloud when it expires (AllowReauth).
type site struct {
	fingerprint string
	compute     *gophercloud.ServiceClient
	network     *gophercloud.ServiceClient
	image       *gophercloud.ServiceClient
}

// client returns the cached clients of a site, authenticating when there are none or the site's
// settings or credentials changed. A failed authentication is not cached.
func (d *Driver) client(ctx context.Context, t cheops.Target) (*site, error) {
	fp := fingerprint(t)
	d.mu.Lock()
	if s, ok := d.sites[t.Site.Name]; ok && s.fingerprint == fp {
		d.mu.Unlock()
		return s, nil
	}
	d.mu.Unlock()
	// Authenticating may take longer than a caller's short deadline (a probe's): it goes on
	// regardless, bounded by the driver's own timeout, so the next call finds the client ready.
	done := make(chan struct{})
	var s *site
	var err error
	go func() {
		defer close(done)
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.Timeout)
		defer cancel()
		s, err = d.connect(cctx, t)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return nil, cheops.Classify(cheops.Unreachable, &cheops.ProbeError{Stage: "site " + t.Site.Name + ": authenticating with keystone", Kind: "timed out", Err: ctx.Err()})
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

func fingerprint(t cheops.Target) string {
	h := sha256.New()
	b, _ := json.Marshal([]any{t.Site.OpenStack, t.Credentials.Password, t.Credentials.ApplicationCredentialSecret})
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

func (d *Driver) connect(ctx context.Context, t cheops.Target) (*site, error) {
	opts, eo, tlsConf, err := d.authOptions(t)
	if err != nil {
		return nil, cheops.Classify(cheops.Permanent, fmt.Errorf("site %s: %w", t.Site.Name, err))
	}
	pc, err := openstack.NewClient(opts.IdentityEndpoint)
	if err != nil {
		return nil, cheops.Classify(cheops.Permanent, fmt.Errorf("site %s: auth URL: %w", t.Site.Name, err))
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.TLSClientConfig = tlsConf
	pc.HTTPClient = http.Client{Transport: transport, Timeout: d.Timeout}
	if err := openstack.Authenticate(ctx, pc, opts); err != nil {
		// Keystone's answer is not shown: the auth URL is the caller's choice, and any host could
		// be behind it.
		return nil, classify(&cheops.ProbeError{Stage: "site " + t.Site.Name + ": authenticating with keystone", Kind: answerKind(err, "not a Keystone v3 endpoint"), Err: err})
	}
	s := &site{fingerprint: fingerprint(t)}
	if s.compute, err = openstack.NewComputeV2(pc, eo); err == nil {
		s.compute.Microversion = computeMicroversion
		if s.network, err = openstack.NewNetworkV2(pc, eo); err == nil {
			s.image, err = openstack.NewImageV2(pc, eo)
		}
	}
	if err != nil {
		return nil, cheops.Classify(cheops.Permanent, fmt.Errorf("site %s: service catalog: %w", t.Site.Name, err))
	}
	d.mu.Lock()
	d.sites[t.Site.Name] = s
	d.mu.Unlock()
	return s, nil
}

// authOptions turns a site's settings and secrets into gophercloud's options. Host files are read
// through package hostfile; a file that cannot be used is named, never quoted.
func (d *Driver) authOptions(t cheops.Target) (gophercloud.AuthOptions, gophercloud.EndpointOpts, *tls.Config, error) {
	o := t.Site.OpenStack
	if o == nil {
		return gophercloud.AuthOptions{}, gophercloud.EndpointOpts{}, nil, errors.New("no openstack settings")
	}
	if o.CloudsFile != "" {
		doc, err := hostfile.Read(d.FilesDir, o.CloudsFile)
		if err != nil {
			return gophercloud.AuthOptions{}, gophercloud.EndpointOpts{}, nil, &cheops.FieldError{Field: "openstack.cloudsFile", Message: err.Error()}
		}
		parse := []clouds.ParseOption{clouds.WithCloudsYAML(bytes.NewReader(doc)), clouds.WithCloudName(o.Cloud)}
		if o.Region != "" {
			parse = append(parse, clouds.WithRegion(o.Region))
		}
		ao, eo, tlsConf, err := clouds.Parse(parse...)
		if err != nil {
			// The parser's message may quote the file.
			return ao, eo, nil, &cheops.FieldError{Field: "openstack.cloudsFile", Message: hostfile.ErrUnusable.Error() + ", with cloud " + o.Cloud}
		}
		ao.AllowReauth = true
		return ao, eo, tlsConf, nil
	}
	ao := gophercloud.AuthOptions{IdentityEndpoint: o.AuthURL, AllowReauth: true}
	if o.ApplicationCredentialID != "" {
		// An application credential is bound to its project: no scope may be given.
		ao.ApplicationCredentialID = o.ApplicationCredentialID
		ao.ApplicationCredentialSecret = t.Credentials.ApplicationCredentialSecret
	} else {
		ao.Username, ao.Password, ao.DomainName = o.Username, t.Credentials.Password, orDefault(o.UserDomain)
		ao.Scope = &gophercloud.AuthScope{ProjectID: o.ProjectID}
		if o.ProjectID == "" {
			ao.Scope = &gophercloud.AuthScope{ProjectName: o.ProjectName, DomainName: orDefault(o.ProjectDomain)}
		}
	}
	tlsConf, err := d.tlsConfig(o)
	return ao, gophercloud.EndpointOpts{Region: o.Region, Availability: gophercloud.AvailabilityPublic}, tlsConf, err
}

func orDefault(domain string) string {
	if domain == "" {
		return "Default"
	}
	return domain
}

func (d *Driver) tlsConfig(o *cheops.OpenStackSite) (*tls.Config, error) {
	if o.CAFile == "" && !o.Insecure {
		return nil, nil
	}
	c := &tls.Config{InsecureSkipVerify: o.Insecure} //nolint:gosec // the operator's explicit choice
	if o.CAFile != "" {
		pem, err := hostfile.Read(d.FilesDir, o.CAFile)
		c.RootCAs = x509.NewCertPool()
		if err != nil || !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, &cheops.FieldError{Field: "openstack.caFile", Message: hostfile.ErrUnusable.Error()}
		}
	}
	return c, nil
}

// ValidateSite checks an OpenStack site's settings without contacting it.
func (d *Driver) ValidateSite(s cheops.Site, cred cheops.Credentials) error {
	o := s.OpenStack
	if o == nil {
		return &cheops.FieldError{Field: "openstack", Message: "is required for an openstack site"}
	}
	if cred.Kubeconfig != "" {
		return &cheops.FieldError{Field: "openstack", Message: "a kubeconfig is not an OpenStack credential"}
	}
	if o.CloudsFile != "" || o.Cloud != "" {
		switch {
		case o.CloudsFile == "":
			return &cheops.FieldError{Field: "openstack.cloudsFile", Message: "is required with openstack.cloud"}
		case o.Cloud == "":
			return &cheops.FieldError{Field: "openstack.cloud", Message: "is required with openstack.cloudsFile"}
		case o.AuthURL != "" || o.Username != "" || o.ApplicationCredentialID != "" || !cred.Empty():
			return &cheops.FieldError{Field: "openstack.cloudsFile", Message: "takes the auth URL and credentials from the file; do not set them here too"}
		}
		if err := hostfile.Check(d.FilesDir, o.CloudsFile); err != nil {
			return &cheops.FieldError{Field: "openstack.cloudsFile", Message: err.Error()}
		}
		return nil
	}
	if o.AuthURL == "" {
		return &cheops.FieldError{Field: "openstack.authURL", Message: "is required (Keystone's v3 endpoint), unless cloudsFile and cloud are set"}
	}
	if !strings.HasPrefix(o.AuthURL, "http://") && !strings.HasPrefix(o.AuthURL, "https://") {
		return &cheops.FieldError{Field: "openstack.authURL", Message: "must be an http or https URL"}
	}
	if o.Region == "" {
		return &cheops.FieldError{Field: "openstack.region", Message: "is required"}
	}
	switch {
	case o.ApplicationCredentialID != "":
		if cred.ApplicationCredentialSecret == "" {
			return &cheops.FieldError{Field: "openstack.applicationCredentialSecret", Message: "is required with applicationCredentialID"}
		}
		if o.Username != "" || cred.Password != "" {
			return &cheops.FieldError{Field: "openstack.username", Message: "cannot be combined with an application credential"}
		}
	case o.Username != "":
		if cred.Password == "" {
			return &cheops.FieldError{Field: "openstack.password", Message: "is required with username"}
		}
		if o.ProjectID == "" && o.ProjectName == "" {
			return &cheops.FieldError{Field: "openstack.projectName", Message: "is required (or projectID) with username"}
		}
	default:
		return &cheops.FieldError{Field: "openstack.username", Message: "is required (or applicationCredentialID, or cloudsFile and cloud)"}
	}
	if o.CAFile != "" && o.Insecure {
		return &cheops.FieldError{Field: "openstack.insecure", Message: "cannot be combined with caFile"}
	}
	if o.CAFile != "" {
		if err := hostfile.Check(d.FilesDir, o.CAFile); err != nil {
			return &cheops.FieldError{Field: "openstack.caFile", Message: err.Error()}
		}
	}
	return nil
}

// Probe checks that Keystone (by the token the site's client holds, or gets) and the compute,
// network and image endpoints answer. It asks each endpoint for its version document, which needs
// neither a token nor a database, so frequent probes cost the site next to nothing.
func (d *Driver) Probe(ctx context.Context, t cheops.Target) error {
	s, err := d.client(ctx, t)
	if err != nil {
		return err
	}
	endpoints := map[string]*gophercloud.ServiceClient{"compute": s.compute, "network": s.network, "image": s.image}
	errs := make(chan error, len(endpoints))
	for service, sc := range endpoints {
		go func() { errs <- probeEndpoint(ctx, sc, service) }()
	}
	var first error
	for range endpoints {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

func probeEndpoint(ctx context.Context, sc *gophercloud.ServiceClient, service string) error {
	u, err := url.Parse(sc.Endpoint)
	if err != nil {
		return cheops.Classify(cheops.Permanent, fmt.Errorf("%s endpoint %q: %w", service, sc.Endpoint, err))
	}
	u.Path, u.RawQuery = "/", ""
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return cheops.Classify(cheops.Permanent, err)
	}
	resp, err := sc.HTTPClient.Do(req)
	if err != nil {
		return classify(&cheops.ProbeError{Stage: service + " endpoint", Kind: answerKind(err, "unexpected answer"), Err: err})
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode >= 500 {
		return cheops.Classify(cheops.Transient, &cheops.ProbeError{Stage: service + " endpoint", Kind: fmt.Sprintf("HTTP %d", resp.StatusCode)})
	}
	return nil
}

// answerKind says what kind of failure talking to an endpoint was, never what it answered:
// a transport failure, an HTTP status, or else what.
func answerKind(err error, what string) string {
	if kind := cheops.TransportFailure(err); kind != "" {
		return kind
	}
	var status interface{ GetStatusCode() int }
	if errors.As(err, &status) {
		return fmt.Sprintf("HTTP %d", status.GetStatusCode())
	}
	return what
}

// Validate checks a manifest: a known type and a spec that decodes into it and passes its checks.
func (d *Driver) Validate(manifest json.RawMessage) error {
	_, _, err := decode(manifest)
	return err
}

// References lists the fields of a manifest that name other cheops resources.
func (d *Driver) References(manifest json.RawMessage) ([]cheops.Reference, error) {
	_, sp, err := decode(manifest)
	if err != nil {
		return nil, err
	}
	return sp.references(), nil
}

// Apply creates or updates the replica and waits until it is ready (a server ACTIVE, an image
// active); applying the same request twice is a no-op.
func (d *Driver) Apply(ctx context.Context, t cheops.Target, req cheops.ApplyRequest) (cheops.ApplyResult, error) {
	typ, sp, err := decode(req.Manifest)
	if err != nil {
		return cheops.ApplyResult{}, cheops.Classify(cheops.Permanent, err)
	}
	s, err := d.client(ctx, t)
	if err != nil {
		return cheops.ApplyResult{}, err
	}
	var id, owner string
	if ad, ok := sp.(adopter); ok {
		id, owner, err = ad.applyAdopting(ctx, d.call(s), req)
	} else {
		id, err = sp.apply(ctx, d.call(s), req)
	}
	if err != nil {
		return cheops.ApplyResult{}, classify(err)
	}
	return cheops.ApplyResult{LocalID: id, Object: cheops.ObjectRef{APIVersion: APIVersion, Kind: typ, Name: id},
		Adopted: owner != "", PreviousOwner: owner}, nil
}

// Observe reads the local object back.
func (d *Driver) Observe(ctx context.Context, t cheops.Target, ref cheops.ObjectRef) (cheops.Observation, error) {
	k, ok := kinds[ref.Kind]
	if !ok {
		return cheops.Observation{}, permanent("unknown OpenStack type %q", ref.Kind)
	}
	s, err := d.client(ctx, t)
	if err != nil {
		return cheops.Observation{}, err
	}
	exists, err := k.exists(ctx, d.call(s), ref.Name)
	if err != nil {
		return cheops.Observation{}, classify(err)
	}
	return cheops.Observation{Exists: exists, LocalID: ref.Name}, nil
}

// Find looks on the site for the object an apply of the resource made, by its mark. An object it
// adopted is never found: adopting leaves no mark on it, so there is nothing to release.
func (d *Driver) Find(ctx context.Context, t cheops.Target, req cheops.FindRequest) (*cheops.Found, error) {
	typ, sp, err := decode(req.Manifest)
	if err != nil {
		return nil, nil // nothing of a manifest that never validated was made
	}
	s, err := d.client(ctx, t)
	if err != nil {
		return nil, err
	}
	id, err := kinds[typ].find(ctx, d.call(s), req, sp)
	if err != nil || id == "" {
		return nil, classify(err)
	}
	return &cheops.Found{Object: cheops.ObjectRef{APIVersion: APIVersion, Kind: typ, Name: id}}, nil
}

// Delete removes the local object and waits until it is gone; an object already gone is success.
// An object still in use (a network with ports, say) is a transient failure: what uses it is
// usually being deleted too.
func (d *Driver) Delete(ctx context.Context, t cheops.Target, ref cheops.ObjectRef) error {
	k, ok := kinds[ref.Kind]
	if !ok {
		return permanent("unknown OpenStack type %q", ref.Kind)
	}
	s, err := d.client(ctx, t)
	if err != nil {
		return err
	}
	err = k.remove(ctx, d.call(s), ref.Name)
	if notFound(err) {
		return nil
	}
	if gophercloud.ResponseCodeIs(err, http.StatusConflict) {
		return cheops.Classify(cheops.Transient, classify(err))
	}
	return classify(err)
}

// call is what a type's code needs: the site's clients and the driver's pacing.
type call struct {
	*site
	poll time.Duration
	// fetch fetches image bytes, only from the sources the operator allows.
	fetch *http.Client
}

func (d *Driver) call(s *site) call {
	d.fetchOnce.Do(func() { d.fetch = d.ImageSources.client() })
	return call{site: s, poll: d.PollInterval, fetch: d.fetch}
}

// wait polls check until it reports done, an error, or ctx ends.
func (c call) wait(ctx context.Context, what string, check func() (bool, error)) error {
	for {
		done, err := check()
		if err != nil || done {
			return err
		}
		select {
		case <-ctx.Done():
			return cheops.Classify(cheops.Transient, fmt.Errorf("%s: still not done: %w", what, ctx.Err()))
		case <-time.After(c.poll):
		}
	}
}
