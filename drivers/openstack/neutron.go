package openstack

import (
	"context"

	"github.com/gophercloud/gophercloud/v2/openstack/networking/v2/extensions/attributestags"
)

// Neutron in OpenStack Zed takes no tags in a create request, so the atomic mark of what cheops
// creates there is the description, "cheops:<resource ID>", set by the create call itself; the tag
// of the same text is added right after, for operators' filters.

// markTag adds the cheops tag to a neutron object (idempotent).
func markTag(ctx context.Context, c call, resourceType, id, resourceID string, tags []string) error {
	for _, t := range tags {
		if t == tag(resourceID) {
			return nil
		}
	}
	return attributestags.Add(ctx, c.network, resourceType, id, tag(resourceID)).ExtractErr()
}
