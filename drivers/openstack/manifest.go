package openstack

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/cheops-io/cheops"
)

// Manifest is an OpenStack resource as declared: a type and its spec.
type Manifest struct {
	Type string          `json:"type"`
	Spec json.RawMessage `json:"spec"`
}

// The resource types the driver knows.
const (
	TypeKeypair       = "compute.keypair"
	TypeFlavor        = "compute.flavor"
	TypeSecurityGroup = "network.security_group"
	TypeNetwork       = "network.network"
	TypeImage         = "image.image"
	TypeServer        = "compute.server"
)

// spec is the declared shape of one type.
type spec interface {
	// check validates the spec; field paths are relative to the manifest ("spec.name").
	check() error
	// references lists the fields naming other cheops resources.
	references() []cheops.Reference
	// apply makes the object true on the site and returns its local ID.
	apply(ctx context.Context, c call, req cheops.ApplyRequest) (string, error)
}

// adopter is a spec whose objects are known by a name unique on the site and carry no mark, so
// the object of its name may be someone else's (see cheops.ApplyRequest.Adopt). Its apply returns
// the previous owner of an object it adopted ("" when the object is the replica's own).
type adopter interface {
	applyAdopting(ctx context.Context, c call, req cheops.ApplyRequest) (id, owner string, err error)
}

// kind is what the driver does with an object of one type it knows only by its local ID, or finds
// by its mark ("" when there is none).
type kind struct {
	newSpec func() spec
	exists  func(ctx context.Context, c call, id string) (bool, error)
	remove  func(ctx context.Context, c call, id string) error
	find    func(ctx context.Context, c call, req cheops.FindRequest, sp spec) (string, error)
}

var kinds = map[string]kind{
	TypeKeypair:       {func() spec { return &keypairSpec{} }, keypairExists, keypairRemove, keypairFind},
	TypeFlavor:        {func() spec { return &flavorSpec{} }, flavorExists, flavorRemove, flavorFind},
	TypeSecurityGroup: {func() spec { return &securityGroupSpec{} }, securityGroupExists, securityGroupRemove, securityGroupFind},
	TypeNetwork:       {func() spec { return &networkSpec{} }, networkExists, networkRemove, networkFind},
	TypeImage:         {func() spec { return &imageSpec{} }, imageExists, imageRemove, imageFind},
	TypeServer:        {func() spec { return &serverSpec{} }, serverExists, serverRemove, serverFind},
}

func typeNames() string {
	names := make([]string, 0, len(kinds))
	for n := range kinds {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// decode reads a manifest strictly: an unknown field is an error naming it.
func decode(manifest json.RawMessage) (string, spec, error) {
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(manifest))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return "", nil, &cheops.FieldError{Field: "manifest", Message: "must be an object with type and spec: " + jsonMessage(err)}
	}
	k, ok := kinds[m.Type]
	if m.Type == "" {
		return "", nil, &cheops.FieldError{Field: "manifest.type", Message: "is required (" + typeNames() + ")"}
	}
	if !ok {
		return "", nil, &cheops.FieldError{Field: "manifest.type", Message: fmt.Sprintf("unknown type %q (known: %s)", m.Type, typeNames())}
	}
	if len(m.Spec) == 0 || string(m.Spec) == "null" {
		return "", nil, &cheops.FieldError{Field: "manifest.spec", Message: "is required"}
	}
	sp := k.newSpec()
	dec = json.NewDecoder(bytes.NewReader(m.Spec))
	dec.DisallowUnknownFields()
	if err := dec.Decode(sp); err != nil {
		return "", nil, &cheops.FieldError{Field: "manifest.spec", Message: jsonMessage(err)}
	}
	if err := sp.check(); err != nil {
		if fe, ok := err.(*cheops.FieldError); ok {
			return "", nil, &cheops.FieldError{Field: "manifest." + fe.Field, Message: fe.Message}
		}
		return "", nil, err
	}
	return m.Type, sp, nil
}

func jsonMessage(err error) string {
	return strings.TrimPrefix(err.Error(), "json: ")
}

func required(field, value string) error {
	if strings.TrimSpace(value) == "" {
		return &cheops.FieldError{Field: field, Message: "is required"}
	}
	return nil
}

// Ref names an object a spec depends on: another cheops resource (replaced on each site by the local
// ID of its replica there), or an existing object of the site by its ID or its name.
type Ref struct {
	Resource string `json:"resource,omitempty"`
	ID       string `json:"id,omitempty"`
	Name     string `json:"name,omitempty"`
}

func (r *Ref) check(field string) error {
	n := 0
	for _, v := range []string{r.Resource, r.ID, r.Name} {
		if v != "" {
			n++
		}
	}
	if n != 1 {
		return &cheops.FieldError{Field: field, Message: "must set exactly one of resource (a cheops resource), id or name"}
	}
	return nil
}

func (r *Ref) reference(field string, out []cheops.Reference) []cheops.Reference {
	if r != nil && r.Resource != "" {
		out = append(out, cheops.Reference{Field: "manifest." + field, Resource: r.Resource})
	}
	return out
}

// localID resolves a cheops-resource reference to the local ID the caller looked up for this site;
// other references are resolved by lookup, a function of the object type.
func (r *Ref) localID(ctx context.Context, req cheops.ApplyRequest, field string, lookup func(ctx context.Context, name string) (string, error)) (string, error) {
	switch {
	case r.Resource != "":
		id, ok := req.References[r.Resource]
		if !ok || id == "" {
			return "", permanent("%s: resource %s was not resolved on this site", field, r.Resource)
		}
		return id, nil
	case r.ID != "":
		return r.ID, nil
	default:
		id, err := lookup(ctx, r.Name)
		if err != nil {
			return "", err
		}
		return id, nil
	}
}

// Marks put on what cheops creates.
const (
	// tagPrefix + resource ID is the tag on networks, subnets, security groups, images and servers.
	tagPrefix = "cheops:"
	// metaResource and metaGeneration are server metadata and image properties.
	metaResource   = "cheops_resource_id"
	metaGeneration = "cheops_generation"
	// metaSpec holds a digest of a server's fields that cannot change in place.
	metaSpec = "cheops_spec"
)

func tag(resourceID string) string { return tagPrefix + resourceID }
