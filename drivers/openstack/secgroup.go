package openstack

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/groups"
	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/security/rules"

	"github.com/cheops-io/cheops"
)

// securityGroupSpec is a network.security_group with its rules. The rules listed are the whole set:
// on every apply, missing rules are added and others deleted (including the egress rules neutron
// adds to a new group, unless declared).
type securityGroupSpec struct {
	Name  string             `json:"name"`
	Rules []securityRuleSpec `json:"rules,omitempty"`
}

type securityRuleSpec struct {
	Direction      string `json:"direction"`
	EtherType      string `json:"ethertype,omitempty"`
	Protocol       string `json:"protocol,omitempty"`
	PortRangeMin   int    `json:"portRangeMin,omitempty"`
	PortRangeMax   int    `json:"portRangeMax,omitempty"`
	RemoteIPPrefix string `json:"remoteIPPrefix,omitempty"`
}

func (r securityRuleSpec) etherType() string {
	if r.EtherType == "" {
		if strings.Contains(r.RemoteIPPrefix, ":") {
			return "IPv6"
		}
		return "IPv4"
	}
	return r.EtherType
}

// key is a rule's identity for convergence.
func (r securityRuleSpec) key() string {
	return fmt.Sprintf("%s/%s/%s/%d-%d/%s", r.Direction, r.etherType(), strings.ToLower(r.Protocol), r.PortRangeMin, r.PortRangeMax, r.RemoteIPPrefix)
}

func (s *securityGroupSpec) check() error {
	if err := required("spec.name", s.Name); err != nil {
		return err
	}
	for i, r := range s.Rules {
		f := fmt.Sprintf("spec.rules[%d]", i)
		switch {
		case r.Direction != "ingress" && r.Direction != "egress":
			return &cheops.FieldError{Field: f + ".direction", Message: "must be ingress or egress"}
		case r.EtherType != "" && r.EtherType != "IPv4" && r.EtherType != "IPv6":
			return &cheops.FieldError{Field: f + ".ethertype", Message: "must be IPv4 or IPv6"}
		case r.PortRangeMin < 0 || r.PortRangeMax > 65535 || r.PortRangeMin > r.PortRangeMax && r.PortRangeMax != 0:
			return &cheops.FieldError{Field: f + ".portRangeMin", Message: "ports must be 0–65535 with portRangeMin ≤ portRangeMax"}
		case (r.PortRangeMin != 0 || r.PortRangeMax != 0) && r.Protocol == "":
			return &cheops.FieldError{Field: f + ".protocol", Message: "is required with a port range"}
		}
	}
	return nil
}

func (s *securityGroupSpec) references() []cheops.Reference { return nil }

func (s *securityGroupSpec) apply(ctx context.Context, c call, req cheops.ApplyRequest) (string, error) {
	g, err := findSecurityGroup(ctx, c, req.ResourceID)
	if err != nil {
		return "", err
	}
	if g == nil {
		g, err = groups.Create(ctx, c.network, groups.CreateOpts{Name: s.Name, Description: tag(req.ResourceID)}).Extract()
		if err != nil {
			return "", err
		}
	}
	if err := markTag(ctx, c, "security-groups", g.ID, req.ResourceID, g.Tags); err != nil {
		return "", err
	}
	if g.Name != s.Name {
		if _, err := groups.Update(ctx, c.network, g.ID, groups.UpdateOpts{Name: s.Name}).Extract(); err != nil {
			return "", err
		}
	}
	return g.ID, s.convergeRules(ctx, c, g.ID)
}

func (s *securityGroupSpec) convergeRules(ctx context.Context, c call, id string) error {
	pages, err := rules.List(c.network, rules.ListOpts{SecGroupID: id}).AllPages(ctx)
	if err != nil {
		return err
	}
	have, err := rules.ExtractRules(pages)
	if err != nil {
		return err
	}
	var want []string
	for _, r := range s.Rules {
		want = append(want, r.key())
	}
	var present []string
	for _, h := range have {
		k := securityRuleSpec{Direction: h.Direction, EtherType: h.EtherType, Protocol: h.Protocol,
			PortRangeMin: h.PortRangeMin, PortRangeMax: h.PortRangeMax, RemoteIPPrefix: h.RemoteIPPrefix}.key()
		if h.RemoteGroupID != "" || !slices.Contains(want, k) || slices.Contains(present, k) {
			if err := rules.Delete(ctx, c.network, h.ID).ExtractErr(); err != nil && !notFound(err) {
				return err
			}
			continue
		}
		present = append(present, k)
	}
	for _, r := range s.Rules {
		if slices.Contains(present, r.key()) {
			continue
		}
		_, err := rules.Create(ctx, c.network, rules.CreateOpts{SecGroupID: id, Direction: rules.RuleDirection(r.Direction),
			EtherType: rules.RuleEtherType(r.etherType()), Protocol: rules.RuleProtocol(r.Protocol),
			PortRangeMin: r.PortRangeMin, PortRangeMax: r.PortRangeMax, RemoteIPPrefix: r.RemoteIPPrefix}).Extract()
		if err != nil {
			return err
		}
		present = append(present, r.key())
	}
	return nil
}

func findSecurityGroup(ctx context.Context, c call, resourceID string) (*groups.SecGroup, error) {
	pages, err := groups.List(c.network, groups.ListOpts{Description: tag(resourceID)}).AllPages(ctx)
	if err != nil {
		return nil, err
	}
	all, err := groups.ExtractGroups(pages)
	if err != nil || len(all) == 0 {
		return nil, err
	}
	return &all[0], nil
}

func securityGroupExists(ctx context.Context, c call, id string) (bool, error) {
	_, err := groups.Get(ctx, c.network, id).Extract()
	if notFound(err) {
		return false, nil
	}
	return err == nil, err
}

func securityGroupRemove(ctx context.Context, c call, id string) error {
	return groups.Delete(ctx, c.network, id).ExtractErr()
}

func securityGroupFind(ctx context.Context, c call, req cheops.FindRequest, _ spec) (string, error) {
	resourceID := req.ResourceID
	g, err := findSecurityGroup(ctx, c, resourceID)
	if g == nil {
		return "", err
	}
	return g.ID, nil
}
