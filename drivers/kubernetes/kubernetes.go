// Package kubernetes is the cheops driver for Kubernetes sites: any kind, CRDs included, applied with
// server-side apply under field manager "cheops". It caches one client set per site and classifies
// every error it returns. It knows nothing of Temporal, etcd or HTTP.
package kubernetes

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/drivers/hostfile"
)

// Driver implements cheops.Driver for Kubernetes.
type Driver struct {
	// Timeout bounds each request to a site (default 30s).
	Timeout time.Duration
	// AllowExec lets kubeconfigs use exec and auth-provider plugins, which run programs on this
	// host. Off by default: whoever may add a site could otherwise run anything here.
	AllowExec bool
	// FilesDir is the only folder of this host whose files a site may name (kubeconfigPath).
	// Empty, the default: no host file may be named.
	FilesDir string

	mu      sync.Mutex
	clients map[string]*siteClient
	// clusters are the clients of each cluster the sites reach, by clusterFingerprint: sites that
	// are namespaces of one cluster share its connection and its discovery, read once.
	clusters map[string]*clusterClient
	// drift is the watches of WatchDrift.
	drift driftWatches
}

// New returns a driver with an empty client cache.
func New() *Driver {
	return &Driver{Timeout: 30 * time.Second, clients: map[string]*siteClient{}, clusters: map[string]*clusterClient{}}
}

var (
	_ cheops.Driver       = (*Driver)(nil)
	_ cheops.Finder       = (*Driver)(nil)
	_ cheops.Releaser     = (*Driver)(nil)
	_ cheops.OwnedDeleter = (*Driver)(nil)
)

// clusterClient talks to one cluster: its dynamic client and its discovery, cached.
type clusterClient struct {
	fingerprint string
	dynamic     dynamic.Interface
	// metadata reads and watches objects' metadata only, for the drift watches.
	metadata  metadata.Interface
	discovery discovery.CachedDiscoveryInterface
	mapper    *restmapper.DeferredDiscoveryRESTMapper
}

// siteClient is a site's view of its cluster: the cluster's clients and the site's namespace.
type siteClient struct {
	settings siteSettings
	*clusterClient
	namespace string
}

// client returns the cached clients of a site, rebuilding them when its settings changed. Sites
// whose kubeconfig and context are the same share one clusterClient; a cluster no site uses any
// more is dropped.
func (d *Driver) client(t cheops.Target) (*siteClient, error) {
	fp := settingsOf(t)
	d.mu.Lock()
	defer d.mu.Unlock()
	if c, ok := d.clients[t.Site.Name]; ok && c.settings == fp {
		return c, nil
	}
	cfg, ns, err := d.restConfig(t)
	if err != nil {
		return nil, cheops.Classify(cheops.Permanent, fmt.Errorf("site %s: kubeconfig: %w", t.Site.Name, err))
	}
	cfp := clusterFingerprint(t)
	cc, ok := d.clusters[cfp]
	if !ok {
		// Watches last longer than any request: the metadata client has no overall timeout.
		mcfg := rest.CopyConfig(cfg)
		mcfg.QPS = -1
		mc, err := metadata.NewForConfig(mcfg)
		if err != nil {
			return nil, cheops.Classify(cheops.Permanent, fmt.Errorf("site %s: %w", t.Site.Name, err))
		}
		cfg.Timeout = d.Timeout
		// No client-side rate limit: the client is shared by every site of the cluster, the
		// workflow's policy.maxParallel bounds how many applies run at once, and the apiserver's
		// priority and fairness protects it.
		cfg.QPS = -1
		dc, err := discovery.NewDiscoveryClientForConfig(cfg)
		if err != nil {
			return nil, cheops.Classify(cheops.Permanent, fmt.Errorf("site %s: %w", t.Site.Name, err))
		}
		dyn, err := dynamic.NewForConfig(cfg)
		if err != nil {
			return nil, cheops.Classify(cheops.Permanent, fmt.Errorf("site %s: %w", t.Site.Name, err))
		}
		cached := memory.NewMemCacheClient(dc)
		cc = &clusterClient{fingerprint: cfp, dynamic: dyn, metadata: mc, discovery: cached, mapper: restmapper.NewDeferredDiscoveryRESTMapper(cached)}
		d.clusters[cfp] = cc
	}
	c := &siteClient{settings: fp, clusterClient: cc, namespace: ns}
	d.clients[t.Site.Name] = c
	d.dropUnusedClusters()
	return c, nil
}

// dropUnusedClusters forgets the clusters no site's client uses. Called with d.mu held.
func (d *Driver) dropUnusedClusters() {
	used := map[string]bool{}
	for _, c := range d.clients {
		used[c.clusterClient.fingerprint] = true
	}
	for fp := range d.clusters {
		if !used[fp] {
			delete(d.clusters, fp)
		}
	}
}

// clusterFingerprint identifies the cluster a site reaches and how: its kubeconfig (inline, or
// the host file's path) and context, but not its namespace.
func clusterFingerprint(t cheops.Target) string {
	var path, kctx string
	if ks := t.Site.Kubernetes; ks != nil {
		path, kctx = ks.KubeconfigPath, ks.Context
	}
	h := sha256.New()
	b, _ := json.Marshal([]any{path, kctx, t.Credentials.Kubeconfig})
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// siteSettings is what a site's client is built from; a client is rebuilt when they change.
// Compared as they are, not hashed: each apply looks its site's client up.
type siteSettings struct {
	kubernetes    cheops.KubernetesSite
	hasKubernetes bool
	kubeconfig    string
}

func settingsOf(t cheops.Target) siteSettings {
	s := siteSettings{kubeconfig: t.Credentials.Kubeconfig}
	if t.Site.Kubernetes != nil {
		s.kubernetes, s.hasKubernetes = *t.Site.Kubernetes, true
	}
	return s
}

// restConfig builds a site's client configuration. It checks the kubeconfig again at each use, so
// one stored before a check existed, or under other settings, cannot run a program or read a file.
func (d *Driver) restConfig(t cheops.Target) (*rest.Config, string, error) {
	ks := t.Site.Kubernetes
	if ks == nil {
		ks = &cheops.KubernetesSite{}
	}
	var loader clientcmd.ClientConfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: ks.Context}
	var doc []byte
	field := "kubernetes.kubeconfig"
	switch {
	case t.Credentials.Kubeconfig != "":
		doc = []byte(t.Credentials.Kubeconfig)
	case ks.KubeconfigPath != "":
		b, err := hostfile.Read(d.FilesDir, ks.KubeconfigPath)
		if err != nil {
			return nil, "", &cheops.FieldError{Field: "kubernetes.kubeconfigPath", Message: err.Error()}
		}
		doc, field = b, "kubernetes.kubeconfigPath"
	default:
		return nil, "", errors.New("neither an inline kubeconfig nor a kubeconfig path is set")
	}
	raw, err := clientcmd.Load(doc)
	if err != nil && field == "kubernetes.kubeconfigPath" {
		return nil, "", &cheops.FieldError{Field: field, Message: hostfile.ErrUnusable.Error()}
	}
	if err != nil {
		// The parser's message may quote the document; say only that it does not parse.
		return nil, "", &cheops.FieldError{Field: field, Message: "is not a valid kubeconfig document"}
	}
	if err := checkKubeconfig(raw, field, d.AllowExec); err != nil {
		return nil, "", err
	}
	loader = clientcmd.NewDefaultClientConfig(*raw, overrides)
	cfg, err := loader.ClientConfig()
	if err != nil {
		return nil, "", err
	}
	ns := ks.Namespace
	if ns == "" {
		if n, _, err := loader.Namespace(); err == nil && n != "" {
			ns = n
		} else {
			ns = "default"
		}
	}
	return cfg, ns, nil
}

// Validate checks that a manifest names apiVersion, kind and metadata.name.
func (d *Driver) Validate(manifest json.RawMessage) error {
	_, err := decode(manifest)
	return err
}

func decode(manifest json.RawMessage) (*unstructured.Unstructured, error) {
	var m map[string]any
	if err := json.Unmarshal(manifest, &m); err != nil || m == nil {
		return nil, &cheops.FieldError{Field: "manifest", Message: "must be a JSON object"}
	}
	u := &unstructured.Unstructured{Object: m}
	if v, ok := m["apiVersion"].(string); !ok || v == "" {
		return nil, &cheops.FieldError{Field: "manifest.apiVersion", Message: "is required"}
	}
	if _, err := schema.ParseGroupVersion(u.GetAPIVersion()); err != nil {
		return nil, &cheops.FieldError{Field: "manifest.apiVersion", Message: err.Error()}
	}
	if v, ok := m["kind"].(string); !ok || v == "" {
		return nil, &cheops.FieldError{Field: "manifest.kind", Message: "is required"}
	}
	md, ok := m["metadata"].(map[string]any)
	if !ok {
		return nil, &cheops.FieldError{Field: "manifest.metadata", Message: "is required"}
	}
	name, _ := md["name"].(string)
	if name == "" {
		return nil, &cheops.FieldError{Field: "manifest.metadata.name", Message: "is required"}
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return nil, &cheops.FieldError{Field: "manifest.metadata.name", Message: errs[0]}
	}
	if ns, _ := md["namespace"].(string); ns != "" {
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return nil, &cheops.FieldError{Field: "manifest.metadata.namespace", Message: errs[0]}
		}
	}
	return u, nil
}

// ValidateSite checks that exactly one kubeconfig source is set, that an inline one parses and
// neither runs a program nor names a host file (see checkKubeconfig), and that a kubeconfig path
// is under the folder the operator allows.
func (d *Driver) ValidateSite(site cheops.Site, cred cheops.Credentials) error {
	ks := site.Kubernetes
	if ks == nil {
		ks = &cheops.KubernetesSite{}
	}
	switch {
	case cred.Kubeconfig == "" && ks.KubeconfigPath == "":
		return &cheops.FieldError{Field: "kubernetes.kubeconfig", Message: "a kubeconfig (inline) or a kubeconfigPath is required"}
	case cred.Kubeconfig != "" && ks.KubeconfigPath != "":
		return &cheops.FieldError{Field: "kubernetes.kubeconfigPath", Message: "give either kubeconfig or kubeconfigPath, not both"}
	case ks.KubeconfigPath != "":
		if err := hostfile.Check(d.FilesDir, ks.KubeconfigPath); err != nil {
			return &cheops.FieldError{Field: "kubernetes.kubeconfigPath", Message: err.Error()}
		}
	case cred.Kubeconfig != "":
		raw, err := clientcmd.Load([]byte(cred.Kubeconfig))
		if err != nil {
			// The parser's message may quote the document; say only that it does not parse.
			return &cheops.FieldError{Field: "kubernetes.kubeconfig", Message: "is not a valid kubeconfig document"}
		}
		if err := checkKubeconfig(raw, "kubernetes.kubeconfig", d.AllowExec); err != nil {
			return err
		}
		if ks.Context != "" {
			if _, ok := raw.Contexts[ks.Context]; !ok {
				return &cheops.FieldError{Field: "kubernetes.context", Message: fmt.Sprintf("context %q is not in the kubeconfig", ks.Context)}
			}
		} else if raw.CurrentContext == "" {
			return &cheops.FieldError{Field: "kubernetes.context", Message: "the kubeconfig has no current-context; name one"}
		}
	}
	if ks.Namespace != "" {
		if errs := validation.IsDNS1123Label(ks.Namespace); len(errs) > 0 {
			return &cheops.FieldError{Field: "kubernetes.namespace", Message: errs[0]}
		}
	}
	return nil
}

// resource maps an object to its REST resource and fills in the site's namespace for namespaced kinds.
func (c *siteClient) resource(u *unstructured.Unstructured) (dynamic.ResourceInterface, error) {
	gvk := u.GroupVersionKind()
	m, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) {
		// The kind may be new on the site (a CRD just installed): refresh discovery once.
		c.mapper.Reset()
		m, err = c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}
	if err != nil {
		return nil, classify(fmt.Errorf("map %s: %w", gvk, err))
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		if u.GetNamespace() == "" {
			u.SetNamespace(c.namespace)
		}
		return c.dynamic.Resource(m.Resource).Namespace(u.GetNamespace()), nil
	}
	u.SetNamespace("")
	return c.dynamic.Resource(m.Resource), nil
}

// Apply server-side-applies the manifest with cheops' label and generation annotation.
func (d *Driver) Apply(ctx context.Context, t cheops.Target, req cheops.ApplyRequest) (cheops.ApplyResult, error) {
	u, err := decode(req.Manifest)
	if err != nil {
		return cheops.ApplyResult{}, cheops.Classify(cheops.Permanent, err)
	}
	c, err := d.client(t)
	if err != nil {
		return cheops.ApplyResult{}, err
	}
	labels := u.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[cheops.LabelResourceID] = req.ResourceID
	u.SetLabels(labels)
	ann := u.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[cheops.AnnotationGeneration] = strconv.FormatInt(req.Generation, 10)
	if req.ResourceName != "" {
		ann[cheops.AnnotationResource] = req.ResourceName
	}
	ri, err := c.resource(u)
	if err != nil {
		return cheops.ApplyResult{}, err
	}
	if req.LocalID != "" && !req.LocalAdopted {
		// The object recorded is cheops' own: applied with its UID, the apply goes through only
		// if that object is still there (409 when none is, 422 when another stands under its
		// name), with no read before it. Anything else is looked at first, below.
		u.SetAnnotations(ann)
		u.SetUID(types.UID(req.LocalID))
		out, err := apply(ctx, ri, u)
		switch {
		case err == nil:
			return applied(u, out, cheops.ApplyResult{}), nil
		case !apierrors.IsConflict(err) && !apierrors.IsInvalid(err):
			return cheops.ApplyResult{}, classifyWrite(fmt.Errorf("apply %s %s on site %s: %w", u.GetKind(), u.GetName(), t.Site.Name, err))
		}
		u.SetUID("")
	}
	var res cheops.ApplyResult
	existing, err := ri.Get(ctx, u.GetName(), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return cheops.ApplyResult{}, classify(fmt.Errorf("get %s %s on site %s: %w", u.GetKind(), u.GetName(), t.Site.Name, err))
	case existing.GetLabels()[cheops.LabelResourceID] == req.ResourceID:
		// Ours: made by an earlier apply, or adopted by one, which the annotation keeps saying.
		if from, ok := existing.GetAnnotations()[cheops.AnnotationAdoptedFrom]; ok {
			ann[cheops.AnnotationAdoptedFrom] = from
			res.Adopted, res.PreviousOwner = true, from
		}
	default:
		owner := ownerOf(existing)
		other := existing.GetLabels()[cheops.LabelResourceID]
		switch {
		case other != "":
			// Two resources taking turns at one object would undo each other forever.
			return cheops.ApplyResult{}, cheops.Classify(cheops.Permanent, fmt.Errorf(
				"%s %s on site %s belongs to another cheops resource (%s); it is left alone, and cannot be adopted",
				u.GetKind(), nameOf(existing), t.Site.Name, owner))
		case !req.Adopt:
			return cheops.ApplyResult{}, cheops.Classify(cheops.Permanent, fmt.Errorf(
				"%s %s already exists on site %s and cheops did not create it (%s): policy.conflict abort leaves it alone; set policy.conflict adopt to take it over",
				u.GetKind(), nameOf(existing), t.Site.Name, owner))
		}
		ann[cheops.AnnotationAdoptedFrom] = owner
		res.Adopted, res.PreviousOwner = true, owner
	}
	u.SetAnnotations(ann)
	// (An object someone creates between the look above and this apply is taken too, as force
	// takes fields from other managers; the window is one round trip.)
	out, err := apply(ctx, ri, u)
	if err != nil {
		return cheops.ApplyResult{}, classifyWrite(fmt.Errorf("apply %s %s on site %s: %w", u.GetKind(), u.GetName(), t.Site.Name, err))
	}
	return applied(u, out, res), nil
}

// apply server-side-applies u as cheops' field manager. Force takes the fields over from other
// managers: needed for an object cheops adopts, and for one whose fields someone edited by hand
// (drift), which cheops puts back.
func apply(ctx context.Context, ri dynamic.ResourceInterface, u *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	body, err := json.Marshal(u.Object)
	if err != nil {
		return nil, cheops.Classify(cheops.Permanent, err)
	}
	force := true
	return ri.Patch(ctx, u.GetName(), types.ApplyPatchType, body, metav1.PatchOptions{FieldManager: cheops.FieldManager, Force: &force})
}

// applied completes res with what an apply answered. The site answers with the object as it now
// stands, status included: most objects (a ConfigMap, a Namespace) are Ready in that answer, with
// no read more.
func applied(u, out *unstructured.Unstructured, res cheops.ApplyResult) cheops.ApplyResult {
	rd := readinessOf(out)
	u.SetUID("")
	res.LocalID, res.Object, res.Readiness = string(out.GetUID()), refOf(u), &rd
	return res
}

// ownerOf names who has an object cheops did not make: its field managers, from
// metadata.managedFields, and the cheops resource whose label it carries, if any.
func ownerOf(u *unstructured.Unstructured) string {
	var managers []string
	for _, mf := range u.GetManagedFields() {
		if mf.Manager != "" && !slices.Contains(managers, mf.Manager) {
			managers = append(managers, mf.Manager)
		}
	}
	sort.Strings(managers)
	var parts []string
	if len(managers) > 0 {
		parts = append(parts, "field managers "+strings.Join(managers, ", "))
	} else {
		parts = append(parts, "no field manager recorded")
	}
	if id := u.GetLabels()[cheops.LabelResourceID]; id != "" {
		parts = append(parts, "cheops resource "+id)
	}
	return strings.Join(parts, "; ")
}

func nameOf(u *unstructured.Unstructured) string {
	if u.GetNamespace() != "" {
		return u.GetNamespace() + "/" + u.GetName()
	}
	return u.GetName()
}

// Release hands an adopted object back: it removes cheops' label and annotations and cheops' entry
// of metadata.managedFields, so the fields cheops took over stay as they are and belong to nobody
// until their owner applies them again, and leaves the object. An object gone, or not the
// resource's, is left as it is.
func (d *Driver) Release(ctx context.Context, t cheops.Target, ref cheops.ObjectRef, resourceID string) error {
	ri, u, err := d.owned(ctx, t, ref, resourceID)
	if u == nil || err != nil {
		return err
	}
	patch, err := json.Marshal(releasePatch(u))
	if err != nil {
		return cheops.Classify(cheops.Permanent, err)
	}
	_, err = ri.Patch(ctx, ref.Name, types.JSONPatchType, patch, metav1.PatchOptions{FieldManager: cheops.FieldManager})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		// A conflict (the object changed since it was read) is transient: the next try reads it again.
		return classify(fmt.Errorf("release %s %s on site %s: %w", ref.Kind, ref.Name, t.Site.Name, err))
	}
	return nil
}

// releasePatch is the JSON patch (RFC 6902) that removes cheops' marks and field ownership from an
// object, on the condition that it is still the version read.
func releasePatch(u *unstructured.Unstructured) []map[string]any {
	patch := []map[string]any{{"op": "test", "path": "/metadata/resourceVersion", "value": u.GetResourceVersion()}}
	patch = append(patch, map[string]any{"op": "remove", "path": "/metadata/labels/" + pointerEscape(cheops.LabelResourceID)})
	for _, a := range []string{cheops.AnnotationGeneration, cheops.AnnotationResource, cheops.AnnotationAdoptedFrom} {
		if _, ok := u.GetAnnotations()[a]; ok {
			patch = append(patch, map[string]any{"op": "remove", "path": "/metadata/annotations/" + pointerEscape(a)})
		}
	}
	var kept []metav1.ManagedFieldsEntry
	for _, mf := range u.GetManagedFields() {
		if mf.Manager != cheops.FieldManager {
			kept = append(kept, mf)
		}
	}
	if len(kept) < len(u.GetManagedFields()) {
		var value any = kept
		if len(kept) == 0 {
			// An empty list would leave managedFields as they are; one empty entry clears them.
			value = []map[string]any{{}}
		}
		patch = append(patch, map[string]any{"op": "replace", "path": "/metadata/managedFields", "value": value})
	}
	return patch
}

// pointerEscape escapes a map key for a JSON pointer (RFC 6901).
func pointerEscape(key string) string {
	return strings.ReplaceAll(strings.ReplaceAll(key, "~", "~0"), "/", "~1")
}

func refOf(u *unstructured.Unstructured) cheops.ObjectRef {
	return cheops.ObjectRef{APIVersion: u.GetAPIVersion(), Kind: u.GetKind(), Namespace: u.GetNamespace(), Name: u.GetName()}
}

func (c *siteClient) refResource(ref cheops.ObjectRef) (dynamic.ResourceInterface, error) {
	u := &unstructured.Unstructured{Object: map[string]any{}}
	u.SetAPIVersion(ref.APIVersion)
	u.SetKind(ref.Kind)
	u.SetNamespace(ref.Namespace)
	u.SetName(ref.Name)
	return c.resource(u)
}

// Observe reads the object back: whether it exists, its UID and the cheops generation on it.
func (d *Driver) Observe(ctx context.Context, t cheops.Target, ref cheops.ObjectRef) (cheops.Observation, error) {
	c, err := d.client(t)
	if err != nil {
		return cheops.Observation{}, err
	}
	ri, err := c.refResource(ref)
	if err != nil {
		return cheops.Observation{}, err
	}
	u, err := ri.Get(ctx, ref.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return cheops.Observation{}, nil
	}
	if err != nil {
		return cheops.Observation{}, classify(fmt.Errorf("get %s %s on site %s: %w", ref.Kind, ref.Name, t.Site.Name, err))
	}
	gen, _ := strconv.ParseInt(u.GetAnnotations()[cheops.AnnotationGeneration], 10, 64)
	return cheops.Observation{Exists: true, LocalID: string(u.GetUID()), Generation: gen}, nil
}

// Find returns the object the manifest names on the site when it carries the resource's label,
// whether or not the apply that made it was recorded (the worker died, or etcd failed, between
// the apply and the record); nil when there is none, or when the object of that name is not the
// resource's. Without it, deleting such a replica would leave its object behind.
func (d *Driver) Find(ctx context.Context, t cheops.Target, req cheops.FindRequest) (*cheops.Found, error) {
	u, err := decode(req.Manifest)
	if err != nil {
		return nil, cheops.Classify(cheops.Permanent, err)
	}
	c, err := d.client(t)
	if err != nil {
		return nil, err
	}
	ri, err := c.resource(u)
	if err != nil {
		if cheops.ClassOf(err) == cheops.Permanent {
			// The site does not serve the kind, so no apply made the object.
			return nil, nil
		}
		return nil, err
	}
	got, err := ri.Get(ctx, u.GetName(), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, classify(fmt.Errorf("get %s %s on site %s: %w", u.GetKind(), u.GetName(), t.Site.Name, err))
	}
	if got.GetLabels()[cheops.LabelResourceID] != req.ResourceID {
		return nil, nil
	}
	_, adopted := got.GetAnnotations()[cheops.AnnotationAdoptedFrom]
	return &cheops.Found{Object: refOf(u), Adopted: adopted}, nil
}

// Delete removes the object; NotFound (the object or its kind) is success.
func (d *Driver) Delete(ctx context.Context, t cheops.Target, ref cheops.ObjectRef) error {
	c, err := d.client(t)
	if err != nil {
		return err
	}
	ri, err := c.refResource(ref)
	if err != nil {
		if cheops.ClassOf(err) == cheops.Permanent {
			// The kind no longer exists on the site, so neither does the object.
			return nil
		}
		return err
	}
	policy := metav1.DeletePropagationBackground
	err = ri.Delete(ctx, ref.Name, metav1.DeleteOptions{PropagationPolicy: &policy})
	if err != nil && !apierrors.IsNotFound(err) {
		return classifyWrite(fmt.Errorf("delete %s %s on site %s: %w", ref.Kind, ref.Name, t.Site.Name, err))
	}
	return nil
}

// DeleteOwned deletes the object only while it carries the resource's label, with the UID read
// as a precondition: an object of that name someone made since cheops' was deleted is theirs,
// and is left. Gone (the object or its kind) is success.
func (d *Driver) DeleteOwned(ctx context.Context, t cheops.Target, ref cheops.ObjectRef, resourceID string) error {
	ri, u, err := d.owned(ctx, t, ref, resourceID)
	if u == nil || err != nil {
		return err
	}
	uid := u.GetUID()
	policy := metav1.DeletePropagationBackground
	err = ri.Delete(ctx, ref.Name, metav1.DeleteOptions{PropagationPolicy: &policy, Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) {
		// A failed precondition (replaced meanwhile) is a conflict: the next try looks again.
		return classifyWrite(fmt.Errorf("delete %s %s on site %s: %w", ref.Kind, ref.Name, t.Site.Name, err))
	}
	return nil
}

// owned reads the object ref names on the site, and returns it only while it carries the
// resource's label: nil, and no error, when it (or its kind) is gone or is someone else's now.
func (d *Driver) owned(ctx context.Context, t cheops.Target, ref cheops.ObjectRef, resourceID string) (dynamic.ResourceInterface, *unstructured.Unstructured, error) {
	c, err := d.client(t)
	if err != nil {
		return nil, nil, err
	}
	ri, err := c.refResource(ref)
	if err != nil {
		if cheops.ClassOf(err) == cheops.Permanent {
			return nil, nil, nil // the kind is gone from the site, and the object with it
		}
		return nil, nil, err
	}
	u, err := ri.Get(ctx, ref.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, classify(fmt.Errorf("get %s %s on site %s: %w", ref.Kind, ref.Name, t.Site.Name, err))
	}
	if u.GetLabels()[cheops.LabelResourceID] != resourceID {
		return nil, nil, nil
	}
	return ri, u, nil
}

// Probe asks the site for its version.
func (d *Driver) Probe(ctx context.Context, t cheops.Target) error {
	c, err := d.client(t)
	if err != nil {
		return err
	}
	v, err := c.discovery.ServerVersion()
	if err == nil && (v.Major == "" || v.GitVersion == "") {
		// Any HTTP server may answer /version with a JSON object; an apiserver names its version.
		err = errNotAPIServer
	}
	if err != nil {
		return cheops.Classify(classOf(err), &cheops.ProbeError{Stage: "site " + t.Site.Name + ": version", Kind: probeKind(err), Err: err})
	}
	return nil
}

var errNotAPIServer = errors.New("unexpected answer: not a Kubernetes API server")

// Readiness reads the object back and computes its status with kstatus, the rules kubectl and
// Flux use: a Deployment is Ready once Available with its new replicas, a Job once complete, a
// StatefulSet once rolled out, a CRD once Established, a custom resource by its Ready condition,
// and an object whose status has not caught up with its generation is Progressing.
func (d *Driver) Readiness(ctx context.Context, t cheops.Target, ref cheops.ObjectRef) (cheops.Readiness, error) {
	c, err := d.client(t)
	if err != nil {
		return cheops.Readiness{}, err
	}
	ri, err := c.refResource(ref)
	if err != nil {
		return cheops.Readiness{}, err
	}
	u, err := ri.Get(ctx, ref.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return cheops.Readiness{State: cheops.ObjectMissing, Message: fmt.Sprintf("%s %s is not on the site", ref.Kind, ref.Name)}, nil
	}
	if err != nil {
		return cheops.Readiness{}, classify(fmt.Errorf("get %s %s on site %s: %w", ref.Kind, ref.Name, t.Site.Name, err))
	}
	return readinessOf(u), nil
}

// readinessOf is kstatus' verdict on an object, in cheops' words.
func readinessOf(u *unstructured.Unstructured) cheops.Readiness {
	res, err := kstatus.Compute(u)
	if err != nil {
		return cheops.Readiness{State: cheops.ObjectUnknown, Message: "its status cannot be read: " + err.Error()}
	}
	state := map[kstatus.Status]cheops.ReadinessState{
		kstatus.CurrentStatus:     cheops.ObjectReady,
		kstatus.InProgressStatus:  cheops.ObjectProgressing,
		kstatus.FailedStatus:      cheops.ObjectFailed,
		kstatus.TerminatingStatus: cheops.ObjectTerminating,
		kstatus.NotFoundStatus:    cheops.ObjectMissing,
	}[res.Status]
	if state == "" {
		state = cheops.ObjectUnknown
	}
	return cheops.Readiness{State: state, Message: res.Message}
}

// probeKind says what kind of failure a probe met, never what the endpoint answered.
func probeKind(err error) string {
	if kind := cheops.TransportFailure(err); kind != "" {
		return kind
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) && status.Status().Code != 0 {
		return fmt.Sprintf("HTTP %d", status.Status().Code)
	}
	return errNotAPIServer.Error()
}
