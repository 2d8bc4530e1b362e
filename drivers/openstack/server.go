package openstack

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/flavors"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/keypairs"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/servers"
	"github.com/gophercloud/gophercloud/v2/openstack/image/v2/images"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"

	"github.com/cheops-io/cheops"
)

// serverSpec is a compute.server. Its flavor, image, networks, keypair and security groups may name
// other cheops resources, translated on each site to the local IDs of their replicas there. It is
// ready when ACTIVE; ERROR is a permanent failure carrying nova's fault. The name and metadata change
// in place; the rest would need a new server, so changing it is an immutable-field error.
type serverSpec struct {
	Name           string            `json:"name"`
	Flavor         Ref               `json:"flavor"`
	Image          Ref               `json:"image"`
	Networks       []Ref             `json:"networks,omitempty"`
	Keypair        *Ref              `json:"keypair,omitempty"`
	SecurityGroups []Ref             `json:"securityGroups,omitempty"`
	Metadata       map[string]string `json:"metadata,omitempty"`
	UserData       string            `json:"userData,omitempty"`
}

func (s *serverSpec) check() error {
	if err := required("spec.name", s.Name); err != nil {
		return err
	}
	if err := s.Flavor.check("spec.flavor"); err != nil {
		return err
	}
	if err := s.Image.check("spec.image"); err != nil {
		return err
	}
	for i := range s.Networks {
		if err := s.Networks[i].check(fmt.Sprintf("spec.networks[%d]", i)); err != nil {
			return err
		}
	}
	if s.Keypair != nil {
		if err := s.Keypair.check("spec.keypair"); err != nil {
			return err
		}
	}
	for i := range s.SecurityGroups {
		if err := s.SecurityGroups[i].check(fmt.Sprintf("spec.securityGroups[%d]", i)); err != nil {
			return err
		}
	}
	for k := range s.Metadata {
		if len(k) > 7 && k[:7] == "cheops_" {
			return &cheops.FieldError{Field: "spec.metadata." + k, Message: "the cheops_ prefix is reserved"}
		}
	}
	return nil
}

func (s *serverSpec) references() []cheops.Reference {
	out := s.Flavor.reference("spec.flavor", nil)
	out = s.Image.reference("spec.image", out)
	for i := range s.Networks {
		out = s.Networks[i].reference(fmt.Sprintf("spec.networks[%d]", i), out)
	}
	out = s.Keypair.reference("spec.keypair", out)
	for i := range s.SecurityGroups {
		out = s.SecurityGroups[i].reference(fmt.Sprintf("spec.securityGroups[%d]", i), out)
	}
	return out
}

// resolved is a server's spec on one site: every reference turned into a local ID.
type resolved struct {
	Flavor         string   `json:"flavor"`
	Image          string   `json:"image"`
	Networks       []string `json:"networks"`
	Keypair        string   `json:"keypair,omitempty"`
	SecurityGroups []string `json:"securityGroups,omitempty"`
	UserData       string   `json:"userData,omitempty"`
}

func (r resolved) digest() string {
	b, _ := json.Marshal(r)
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:16])
}

func (s *serverSpec) resolve(ctx context.Context, c call, req cheops.ApplyRequest) (resolved, error) {
	var r resolved
	var err error
	if r.Flavor, err = s.Flavor.localID(ctx, req, "spec.flavor", c.flavorByName); err != nil {
		return r, err
	}
	if r.Image, err = s.Image.localID(ctx, req, "spec.image", c.imageByName); err != nil {
		return r, err
	}
	for i := range s.Networks {
		id, err := s.Networks[i].localID(ctx, req, fmt.Sprintf("spec.networks[%d]", i), c.networkByName)
		if err != nil {
			return r, err
		}
		r.Networks = append(r.Networks, id)
	}
	if s.Keypair != nil {
		// A keypair's local ID is its name.
		byName := func(_ context.Context, name string) (string, error) { return name, nil }
		if r.Keypair, err = s.Keypair.localID(ctx, req, "spec.keypair", byName); err != nil {
			return r, err
		}
	}
	for i := range s.SecurityGroups {
		// Nova takes a security group's name or ID.
		byName := func(_ context.Context, name string) (string, error) { return name, nil }
		id, err := s.SecurityGroups[i].localID(ctx, req, fmt.Sprintf("spec.securityGroups[%d]", i), byName)
		if err != nil {
			return r, err
		}
		r.SecurityGroups = append(r.SecurityGroups, id)
	}
	r.UserData = s.UserData
	return r, nil
}

func (s *serverSpec) metadata(req cheops.ApplyRequest, digest string) map[string]string {
	m := map[string]string{metaResource: req.ResourceID, metaGeneration: strconv.FormatInt(req.Generation, 10), metaSpec: digest}
	for k, v := range s.Metadata {
		m[k] = v
	}
	return m
}

func (s *serverSpec) apply(ctx context.Context, c call, req cheops.ApplyRequest) (string, error) {
	r, err := s.resolve(ctx, c, req)
	if err != nil {
		return "", err
	}
	digest := r.digest()
	srv, err := findServer(ctx, c, req.ResourceID)
	if err != nil {
		return "", err
	}
	if srv != nil && srv.Status == "ERROR" {
		// An earlier attempt failed on the site: an explicit retry, or a new generation, makes a
		// new server rather than reporting the old failure again.
		if err := serverRemove(ctx, c, srv.ID); err != nil && !notFound(err) {
			return "", err
		}
		srv = nil
	}
	if srv == nil {
		opts := servers.CreateOpts{Name: s.Name, FlavorRef: r.Flavor, ImageRef: r.Image, SecurityGroups: r.SecurityGroups,
			Metadata: s.metadata(req, digest), Tags: []string{tag(req.ResourceID)}, UserData: []byte(r.UserData)}
		if len(r.Networks) == 0 {
			opts.Networks = "none"
		} else {
			var nets []servers.Network
			for _, id := range r.Networks {
				nets = append(nets, servers.Network{UUID: id})
			}
			opts.Networks = nets
		}
		var builder servers.CreateOptsBuilder = opts
		if r.Keypair != "" {
			builder = keypairs.CreateOptsExt{CreateOptsBuilder: opts, KeyName: r.Keypair}
		}
		if srv, err = servers.Create(ctx, c.compute, builder, nil).Extract(); err != nil {
			return "", err
		}
	} else if srv.Metadata[metaSpec] != digest {
		return "", permanent("immutable fields spec.flavor/image/networks/keypair/securityGroups/userData: server %s on the site was made from other values; a server cannot change them in place", srv.ID)
	}
	id := srv.ID
	if err := c.wait(ctx, "server "+id+" to become ACTIVE", func() (bool, error) {
		if srv, err = servers.Get(ctx, c.compute, id).Extract(); err != nil {
			return false, err
		}
		switch srv.Status {
		case "ACTIVE":
			return true, nil
		case "ERROR":
			return false, permanent("server %s is in ERROR: %s", id, faultMessage(srv))
		}
		return false, nil
	}); err != nil {
		return "", err
	}
	if srv.Name != s.Name {
		if _, err := servers.Update(ctx, c.compute, id, servers.UpdateOpts{Name: s.Name}).Extract(); err != nil {
			return "", err
		}
	}
	want := s.metadata(req, digest)
	if !sameMap(srv.Metadata, want) {
		if _, err := servers.ResetMetadata(ctx, c.compute, id, servers.MetadataOpts(want)).Extract(); err != nil {
			return "", err
		}
	}
	return id, nil
}

func faultMessage(srv *servers.Server) string {
	if srv.Fault.Message == "" {
		return "nova gave no fault message"
	}
	return srv.Fault.Message
}

func sameMap(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func findServer(ctx context.Context, c call, resourceID string) (*servers.Server, error) {
	pages, err := servers.List(c.compute, servers.ListOpts{Tags: tag(resourceID)}).AllPages(ctx)
	if err != nil {
		return nil, err
	}
	all, err := servers.ExtractServers(pages)
	if err != nil {
		return nil, err
	}
	for i := range all {
		if all[i].Status != "DELETED" && all[i].Status != "SOFT_DELETED" {
			return &all[i], nil
		}
	}
	return nil, nil
}

func (c call) flavorByName(ctx context.Context, name string) (string, error) {
	pages, err := flavors.ListDetail(c.compute, flavors.ListOpts{AccessType: flavors.AllAccess}).AllPages(ctx)
	if err != nil {
		return "", err
	}
	all, err := flavors.ExtractFlavors(pages)
	if err != nil {
		return "", err
	}
	for _, f := range all {
		if f.Name == name {
			return f.ID, nil
		}
	}
	return "", permanent("spec.flavor: no flavor named %s on the site", name)
}

func (c call) imageByName(ctx context.Context, name string) (string, error) {
	pages, err := images.List(c.image, images.ListOpts{Name: name}).AllPages(ctx)
	if err != nil {
		return "", err
	}
	all, err := images.ExtractImages(pages)
	if err != nil {
		return "", err
	}
	if len(all) != 1 {
		return "", permanent("spec.image: %d images named %s on the site; need exactly one (or use id)", len(all), name)
	}
	return all[0].ID, nil
}

func (c call) networkByName(ctx context.Context, name string) (string, error) {
	pages, err := networks.List(c.network, networks.ListOpts{Name: name}).AllPages(ctx)
	if err != nil {
		return "", err
	}
	all, err := networks.ExtractNetworks(pages)
	if err != nil {
		return "", err
	}
	if len(all) != 1 {
		return "", permanent("spec.networks: %d networks named %s on the site; need exactly one (or use id)", len(all), name)
	}
	return all[0].ID, nil
}

func serverExists(ctx context.Context, c call, id string) (bool, error) {
	srv, err := servers.Get(ctx, c.compute, id).Extract()
	if notFound(err) {
		return false, nil
	}
	return err == nil && srv.Status != "DELETED", err
}

// serverRemove deletes a server and waits until nova no longer lists it, so that what it used (its
// network's ports, its security groups) can go right after.
func serverRemove(ctx context.Context, c call, id string) error {
	if err := servers.Delete(ctx, c.compute, id).ExtractErr(); err != nil {
		return err
	}
	return c.wait(ctx, "server "+id+" to be deleted", func() (bool, error) {
		srv, err := servers.Get(ctx, c.compute, id).Extract()
		if notFound(err) {
			return true, nil
		}
		return err == nil && srv.Status == "DELETED", err
	})
}

func serverFind(ctx context.Context, c call, req cheops.FindRequest, _ spec) (string, error) {
	resourceID := req.ResourceID
	srv, err := findServer(ctx, c, resourceID)
	if srv == nil {
		return "", err
	}
	return srv.ID, nil
}
