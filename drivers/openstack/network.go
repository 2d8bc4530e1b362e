package openstack

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/networks"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/subnets"

	"github.com/cheops-io/cheops"
)

// networkSpec is a network.network with its subnets, each known by its name. Subnets not declared
// are deleted; a declared subnet's CIDR and IP version cannot change in place.
type networkSpec struct {
	Name         string       `json:"name"`
	AdminStateUp *bool        `json:"adminStateUp,omitempty"`
	Subnets      []subnetSpec `json:"subnets,omitempty"`
}

type subnetSpec struct {
	Name           string   `json:"name"`
	CIDR           string   `json:"cidr"`
	GatewayIP      string   `json:"gatewayIP,omitempty"`
	EnableDHCP     *bool    `json:"enableDHCP,omitempty"`
	DNSNameservers []string `json:"dnsNameservers,omitempty"`
}

func (s *networkSpec) check() error {
	if err := required("spec.name", s.Name); err != nil {
		return err
	}
	var names []string
	for i, sn := range s.Subnets {
		f := fmt.Sprintf("spec.subnets[%d]", i)
		if err := required(f+".name", sn.Name); err != nil {
			return err
		}
		if slices.Contains(names, sn.Name) {
			return &cheops.FieldError{Field: f + ".name", Message: "is not unique among the network's subnets"}
		}
		names = append(names, sn.Name)
		p, err := netip.ParsePrefix(sn.CIDR)
		if err != nil || p.Masked() != p {
			return &cheops.FieldError{Field: f + ".cidr", Message: "must be a network in CIDR notation (10.0.0.0/24)"}
		}
		if sn.GatewayIP != "" {
			if a, err := netip.ParseAddr(sn.GatewayIP); err != nil || !p.Contains(a) {
				return &cheops.FieldError{Field: f + ".gatewayIP", Message: "must be an address in " + sn.CIDR}
			}
		}
	}
	return nil
}

func (sn subnetSpec) ipVersion() gophercloud.IPVersion {
	if p, err := netip.ParsePrefix(sn.CIDR); err == nil && p.Addr().Is6() {
		return gophercloud.IPv6
	}
	return gophercloud.IPv4
}

func (s *networkSpec) references() []cheops.Reference { return nil }

func (s *networkSpec) apply(ctx context.Context, c call, req cheops.ApplyRequest) (string, error) {
	n, err := findNetwork(ctx, c, req.ResourceID)
	if err != nil {
		return "", err
	}
	if n == nil {
		n, err = networks.Create(ctx, c.network, networks.CreateOpts{Name: s.Name, Description: tag(req.ResourceID),
			AdminStateUp: s.AdminStateUp}).Extract()
		if err != nil {
			return "", err
		}
	}
	if err := markTag(ctx, c, "networks", n.ID, req.ResourceID, n.Tags); err != nil {
		return "", err
	}
	up := s.AdminStateUp == nil || *s.AdminStateUp
	if n.Name != s.Name || n.AdminStateUp != up {
		if _, err := networks.Update(ctx, c.network, n.ID, networks.UpdateOpts{Name: &s.Name, AdminStateUp: &up}).Extract(); err != nil {
			return "", err
		}
	}
	return n.ID, s.convergeSubnets(ctx, c, n.ID, req.ResourceID)
}

func (s *networkSpec) convergeSubnets(ctx context.Context, c call, networkID, resourceID string) error {
	pages, err := subnets.List(c.network, subnets.ListOpts{NetworkID: networkID}).AllPages(ctx)
	if err != nil {
		return err
	}
	have, err := subnets.ExtractSubnets(pages)
	if err != nil {
		return err
	}
	byName := map[string]subnets.Subnet{}
	for _, h := range have {
		if !slices.ContainsFunc(s.Subnets, func(sn subnetSpec) bool { return sn.Name == h.Name }) {
			if err := subnets.Delete(ctx, c.network, h.ID).ExtractErr(); err != nil && !notFound(err) {
				return err
			}
			continue
		}
		byName[h.Name] = h
	}
	for i, sn := range s.Subnets {
		h, ok := byName[sn.Name]
		if !ok {
			opts := subnets.CreateOpts{NetworkID: networkID, Name: sn.Name, CIDR: sn.CIDR, IPVersion: sn.ipVersion(),
				Description: tag(resourceID), EnableDHCP: sn.EnableDHCP, DNSNameservers: sn.DNSNameservers}
			if sn.GatewayIP != "" {
				opts.GatewayIP = &sn.GatewayIP
			}
			created, err := subnets.Create(ctx, c.network, opts).Extract()
			if err != nil {
				return err
			}
			h = *created
		} else if h.CIDR != sn.CIDR {
			return permanent("immutable field spec.subnets[%d].cidr: subnet %s is %s on the site; declare a subnet with another name instead", i, sn.Name, h.CIDR)
		}
		if err := markTag(ctx, c, "subnets", h.ID, resourceID, h.Tags); err != nil {
			return err
		}
		var upd subnets.UpdateOpts
		changed := false
		if sn.GatewayIP != "" && h.GatewayIP != sn.GatewayIP {
			upd.GatewayIP, changed = &sn.GatewayIP, true
		}
		if sn.EnableDHCP != nil && h.EnableDHCP != *sn.EnableDHCP {
			upd.EnableDHCP, changed = sn.EnableDHCP, true
		}
		if !slices.Equal(h.DNSNameservers, sn.DNSNameservers) && (len(h.DNSNameservers) > 0 || len(sn.DNSNameservers) > 0) {
			dns := append([]string{}, sn.DNSNameservers...)
			upd.DNSNameservers, changed = &dns, true
		}
		if changed {
			if _, err := subnets.Update(ctx, c.network, h.ID, upd).Extract(); err != nil {
				return err
			}
		}
	}
	return nil
}

func networkExists(ctx context.Context, c call, id string) (bool, error) {
	_, err := networks.Get(ctx, c.network, id).Extract()
	if notFound(err) {
		return false, nil
	}
	return err == nil, err
}

func networkRemove(ctx context.Context, c call, id string) error {
	return networks.Delete(ctx, c.network, id).ExtractErr()
}

func findNetwork(ctx context.Context, c call, resourceID string) (*networks.Network, error) {
	pages, err := networks.List(c.network, networks.ListOpts{Description: tag(resourceID)}).AllPages(ctx)
	if err != nil {
		return nil, err
	}
	found, err := networks.ExtractNetworks(pages)
	if err != nil || len(found) == 0 {
		return nil, err
	}
	return &found[0], nil
}

func networkFind(ctx context.Context, c call, req cheops.FindRequest, _ spec) (string, error) {
	resourceID := req.ResourceID
	n, err := findNetwork(ctx, c, resourceID)
	if n == nil {
		return "", err
	}
	return n.ID, nil
}
