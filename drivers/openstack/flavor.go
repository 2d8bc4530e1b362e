package openstack

import (
	"context"
	"net/http"
	"slices"

	"github.com/gophercloud/gophercloud/v2"
	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/flavors"

	"github.com/cheops-io/cheops"
)

// flavorSpec is a compute.flavor. Its OpenStack ID is the cheops resource ID, which marks it; the
// name is unique on the site. Sizes and visibility cannot change in place; the description, extra
// specs and the projects given access to a private flavor are converged.
type flavorSpec struct {
	Name        string            `json:"name"`
	VCPUs       int               `json:"vcpus"`
	RAM         int               `json:"ram"`
	Disk        int               `json:"disk"`
	Ephemeral   int               `json:"ephemeral,omitempty"`
	Swap        int               `json:"swap,omitempty"`
	Description string            `json:"description,omitempty"`
	ExtraSpecs  map[string]string `json:"extraSpecs,omitempty"`
	// Public defaults to true; a private flavor is usable by the Projects listed (IDs).
	Public   *bool    `json:"public,omitempty"`
	Projects []string `json:"projects,omitempty"`
}

func (s *flavorSpec) check() error {
	if err := required("spec.name", s.Name); err != nil {
		return err
	}
	switch {
	case s.VCPUs < 1:
		return &cheops.FieldError{Field: "spec.vcpus", Message: "must be at least 1"}
	case s.RAM < 1:
		return &cheops.FieldError{Field: "spec.ram", Message: "must be at least 1 (MiB)"}
	case s.Disk < 0:
		return &cheops.FieldError{Field: "spec.disk", Message: "must not be negative (GiB)"}
	case s.Ephemeral < 0 || s.Swap < 0:
		return &cheops.FieldError{Field: "spec.ephemeral", Message: "ephemeral and swap must not be negative"}
	case s.public() && len(s.Projects) > 0:
		return &cheops.FieldError{Field: "spec.projects", Message: "is only for a private flavor (public: false)"}
	}
	return nil
}

func (s *flavorSpec) public() bool { return s.Public == nil || *s.Public }

func (s *flavorSpec) references() []cheops.Reference { return nil }

func (s *flavorSpec) apply(ctx context.Context, c call, req cheops.ApplyRequest) (string, error) {
	f, err := flavors.Get(ctx, c.compute, req.ResourceID).Extract()
	if notFound(err) {
		disk, swap, eph, public := s.Disk, s.Swap, s.Ephemeral, s.public()
		f, err = flavors.Create(ctx, c.compute, flavors.CreateOpts{ID: req.ResourceID, Name: s.Name, VCPUs: s.VCPUs,
			RAM: s.RAM, Disk: &disk, Swap: &swap, Ephemeral: &eph, IsPublic: &public, Description: s.Description}).Extract()
		if gophercloud.ResponseCodeIs(err, http.StatusConflict) {
			// Either an earlier attempt made it (look again) or another flavor has the name.
			if f, err = flavors.Get(ctx, c.compute, req.ResourceID).Extract(); notFound(err) {
				return "", permanent("flavor name %s is taken on the site by a flavor cheops did not create; it is left alone (a flavor cannot be adopted: its ID is its cheops mark)", s.Name)
			}
		}
	}
	if err != nil {
		return "", err
	}
	switch {
	case f.Name != s.Name:
		return "", permanent("immutable field spec.name: flavors cannot be renamed (%s on the site)", f.Name)
	case f.VCPUs != s.VCPUs || f.RAM != s.RAM || f.Disk != s.Disk || f.Ephemeral != s.Ephemeral || f.Swap != s.Swap:
		return "", permanent("immutable fields spec.vcpus/ram/disk/ephemeral/swap: the flavor on the site is %d vCPUs, %d MiB, %d GiB; declare a new flavor instead", f.VCPUs, f.RAM, f.Disk)
	case f.IsPublic != s.public():
		return "", permanent("immutable field spec.public: the flavor on the site has public=%t", f.IsPublic)
	}
	if f.Description != s.Description {
		if _, err := flavors.Update(ctx, c.compute, f.ID, flavors.UpdateOpts{Description: s.Description}).Extract(); err != nil {
			return "", err
		}
	}
	if err := s.convergeExtraSpecs(ctx, c, f.ID); err != nil {
		return "", err
	}
	if !s.public() {
		if err := s.convergeAccess(ctx, c, f.ID); err != nil {
			return "", err
		}
	}
	return f.ID, nil
}

func (s *flavorSpec) convergeExtraSpecs(ctx context.Context, c call, id string) error {
	have, err := flavors.ListExtraSpecs(ctx, c.compute, id).Extract()
	if err != nil {
		return err
	}
	set := flavors.ExtraSpecsOpts{}
	for k, v := range s.ExtraSpecs {
		if have[k] != v {
			set[k] = v
		}
	}
	if len(set) > 0 {
		if _, err := flavors.CreateExtraSpecs(ctx, c.compute, id, set).Extract(); err != nil {
			return err
		}
	}
	for k := range have {
		if _, keep := s.ExtraSpecs[k]; !keep {
			if err := flavors.DeleteExtraSpec(ctx, c.compute, id, k).ExtractErr(); err != nil && !notFound(err) {
				return err
			}
		}
	}
	return nil
}

func (s *flavorSpec) convergeAccess(ctx context.Context, c call, id string) error {
	pages, err := flavors.ListAccesses(c.compute, id).AllPages(ctx)
	if err != nil {
		return err
	}
	have, err := flavors.ExtractAccesses(pages)
	if err != nil {
		return err
	}
	var projects []string
	for _, a := range have {
		projects = append(projects, a.TenantID)
		if !slices.Contains(s.Projects, a.TenantID) {
			if _, err := flavors.RemoveAccess(ctx, c.compute, id, flavors.RemoveAccessOpts{Tenant: a.TenantID}).Extract(); err != nil && !notFound(err) {
				return err
			}
		}
	}
	for _, p := range s.Projects {
		if !slices.Contains(projects, p) {
			if _, err := flavors.AddAccess(ctx, c.compute, id, flavors.AddAccessOpts{Tenant: p}).Extract(); err != nil &&
				!gophercloud.ResponseCodeIs(err, http.StatusConflict) {
				return err
			}
		}
	}
	return nil
}

func flavorExists(ctx context.Context, c call, id string) (bool, error) {
	_, err := flavors.Get(ctx, c.compute, id).Extract()
	if notFound(err) {
		return false, nil
	}
	return err == nil, err
}

func flavorRemove(ctx context.Context, c call, id string) error {
	return flavors.Delete(ctx, c.compute, id).ExtractErr()
}

func flavorFind(ctx context.Context, c call, req cheops.FindRequest, _ spec) (string, error) {
	resourceID := req.ResourceID
	if ok, err := flavorExists(ctx, c, resourceID); !ok {
		return "", err
	}
	return resourceID, nil
}
