package kubernetes

import (
	"encoding/json"
	"errors"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/cheops-io/cheops"
)

var _ cheops.Prerequisites = (*Driver)(nil)

// Provides says what an object provides to others on its site: a Namespace its namespace, a
// CustomResourceDefinition the kind it serves.
func (d *Driver) Provides(manifest json.RawMessage) []cheops.Prerequisite {
	u, err := decode(manifest)
	if err != nil {
		return nil
	}
	gvk := u.GroupVersionKind()
	switch {
	case gvk.Group == "" && gvk.Kind == "Namespace":
		return []cheops.Prerequisite{{Kind: cheops.PrerequisiteNamespace, Name: u.GetName()}}
	case gvk.Group == "apiextensions.k8s.io" && gvk.Kind == "CustomResourceDefinition":
		group, _, _ := unstructured.NestedString(u.Object, "spec", "group")
		kind, _, _ := unstructured.NestedString(u.Object, "spec", "names", "kind")
		if group != "" && kind != "" {
			return []cheops.Prerequisite{{Kind: cheops.PrerequisiteKind, Name: group + "/" + kind}}
		}
	}
	return nil
}

// Needs says what an object needs on site t: its namespace, when it is namespaced (its own, or
// the site's default one), and its kind, when a CRD may serve it (a group with a dot that is not
// one of Kubernetes' own). Whether a kind is namespaced is known here without asking the site only
// for Kubernetes' own kinds: a custom kind with no namespace of its own is taken to need the site's
// default namespace, which costs it nothing unless a resource provides that namespace.
func (d *Driver) Needs(t cheops.Target, manifest json.RawMessage) []cheops.Prerequisite {
	u, err := decode(manifest)
	if err != nil {
		return nil
	}
	gvk := u.GroupVersionKind()
	var needs []cheops.Prerequisite
	if crdKind(gvk.GroupKind()) {
		needs = append(needs, cheops.Prerequisite{Kind: cheops.PrerequisiteKind, Name: gvk.Group + "/" + gvk.Kind})
	}
	if clusterScoped[gvk.GroupKind()] {
		return needs
	}
	ns := u.GetNamespace()
	if ns == "" {
		if c, err := d.client(t); err == nil {
			ns = c.namespace
		}
	}
	if ns != "" {
		needs = append(needs, cheops.Prerequisite{Kind: cheops.PrerequisiteNamespace, Name: ns})
	}
	return needs
}

// crdKind says whether a kind may be served by a CustomResourceDefinition: Kubernetes' own groups
// have no dot ("apps") or end in ".k8s.io" ("rbac.authorization.k8s.io"), though a CRD may use
// one of the latter too ("gateway.networking.k8s.io"), so only the groups built in are left out.
func crdKind(gk schema.GroupKind) bool {
	if !strings.Contains(gk.Group, ".") {
		return false
	}
	return !builtinGroups[gk.Group]
}

var builtinGroups = map[string]bool{
	"admissionregistration.k8s.io": true, "apiextensions.k8s.io": true, "apiregistration.k8s.io": true,
	"authentication.k8s.io": true, "authorization.k8s.io": true, "certificates.k8s.io": true,
	"coordination.k8s.io": true, "discovery.k8s.io": true, "events.k8s.io": true,
	"flowcontrol.apiserver.k8s.io": true, "internal.apiserver.k8s.io": true, "networking.k8s.io": true,
	"node.k8s.io": true, "rbac.authorization.k8s.io": true, "resource.k8s.io": true,
	"scheduling.k8s.io": true, "storage.k8s.io": true, "storagemigration.k8s.io": true,
}

// clusterScoped are Kubernetes' own kinds that live in no namespace.
var clusterScoped = map[schema.GroupKind]bool{
	{Kind: "Namespace"}: true, {Kind: "Node"}: true, {Kind: "PersistentVolume"}: true,
	{Kind: "ComponentStatus"}: true,
	{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}:                 true,
	{Group: "apiregistration.k8s.io", Kind: "APIService"}:                             true,
	{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole"}:                         true,
	{Group: "rbac.authorization.k8s.io", Kind: "ClusterRoleBinding"}:                  true,
	{Group: "storage.k8s.io", Kind: "StorageClass"}:                                   true,
	{Group: "storage.k8s.io", Kind: "CSIDriver"}:                                      true,
	{Group: "storage.k8s.io", Kind: "CSINode"}:                                        true,
	{Group: "storage.k8s.io", Kind: "VolumeAttachment"}:                               true,
	{Group: "scheduling.k8s.io", Kind: "PriorityClass"}:                               true,
	{Group: "node.k8s.io", Kind: "RuntimeClass"}:                                      true,
	{Group: "networking.k8s.io", Kind: "IngressClass"}:                                true,
	{Group: "certificates.k8s.io", Kind: "CertificateSigningRequest"}:                 true,
	{Group: "admissionregistration.k8s.io", Kind: "MutatingWebhookConfiguration"}:     true,
	{Group: "admissionregistration.k8s.io", Kind: "ValidatingWebhookConfiguration"}:   true,
	{Group: "admissionregistration.k8s.io", Kind: "ValidatingAdmissionPolicy"}:        true,
	{Group: "admissionregistration.k8s.io", Kind: "ValidatingAdmissionPolicyBinding"}: true,
	{Group: "flowcontrol.apiserver.k8s.io", Kind: "FlowSchema"}:                       true,
	{Group: "flowcontrol.apiserver.k8s.io", Kind: "PriorityLevelConfiguration"}:       true,
}

// missing returns the prerequisite whose absence made the site refuse an apply, if that is why:
// the kind is not served, or the namespace does not exist.
func missing(err error) (cheops.Prerequisite, bool) {
	var noKind *meta.NoKindMatchError
	if errors.As(err, &noKind) {
		return cheops.Prerequisite{Kind: cheops.PrerequisiteKind, Name: noKind.GroupKind.Group + "/" + noKind.GroupKind.Kind}, true
	}
	var status apierrors.APIStatus
	if apierrors.IsNotFound(err) && errors.As(err, &status) {
		if det := status.Status().Details; det != nil && det.Kind == "namespaces" && det.Name != "" {
			return cheops.Prerequisite{Kind: cheops.PrerequisiteNamespace, Name: det.Name}, true
		}
	}
	return cheops.Prerequisite{}, false
}
