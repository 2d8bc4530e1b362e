package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"

	"github.com/cheops-io/cheops"
)

var _ cheops.DriftWatcher = (*Driver)(nil)

// driftWatches are the watches WatchDrift keeps: one metadata-only informer per cluster and kind,
// listing and watching only the objects that carry cheops' resource-ID label, in every namespace,
// so that a thousand sites that are namespaces of one cluster cost one watch, not a thousand. A
// cluster whose credentials may not list a kind in every namespace is watched per namespace in
// use instead (see namespacedOnly). Each keeps, per object, only what drift needs: its identity,
// cheops' label and generation annotation, and its managed fields.
type driftWatches struct {
	mu        sync.Mutex
	informers map[driftKey]*driftInformer
	// namespacedOnly says, by cluster and kind, whether the cluster refused to list the kind in
	// every namespace (true) or allowed it (false); a kind not yet asked about is absent.
	namespacedOnly map[driftKey]bool
}

// driftRequestTimeout bounds each single request of the drift watches' own (not the watches): the
// metadata client they share has no overall timeout, and a site that stops answering must not hold
// the drift monitor.
const driftRequestTimeout = 30 * time.Second

// driftKey names one watch: a cluster (clusterFingerprint), a kind and a namespace ("" for a
// cluster-scoped kind, or for a namespaced kind watched in every namespace).
type driftKey struct {
	cluster   string
	gvr       schema.GroupVersionResource
	namespace string
}

// driftInformer is one watch, and the replicas whose objects it holds.
type driftInformer struct {
	informer cache.SharedIndexInformer
	stop     chan struct{}
	client   *clusterClient
	key      driftKey

	mu sync.Mutex
	// watchers are the replicas watching each object, by the object's cache key (namespace/name).
	watchers map[string][]driftWatcher
	report   func(cheops.Drift)
	// lastErr is the watch's last failure to list or watch, if any, for WatchDrift to return.
	lastErr error
}

// driftWatcher is a replica watching an object: several sites may reach one object.
type driftWatcher struct {
	site    string
	id      string
	ref     cheops.ObjectRef
	localID string
}

// WatchDrift sets the objects watched, on every Kubernetes site; see cheops.DriftWatcher. A site
// whose kind cannot be mapped, or whose client cannot be built, is left out and its error returned
// with the others; a watch that fails to list or watch retries by itself (client-go's backoff), and
// its failure is returned until it succeeds.
func (d *Driver) WatchDrift(ctx context.Context, watched []cheops.WatchedSite, report func(cheops.Drift)) error {
	want := map[driftKey]map[string][]driftWatcher{}
	clients := map[driftKey]*clusterClient{}
	// A kind's mapping is looked up once per cluster, not once per object.
	type mappingKey struct{ cluster, apiVersion, kind string }
	mappings := map[mappingKey]struct {
		gvr        schema.GroupVersionResource
		namespaced bool
		err        error
	}{}
	var errs []error
	for _, ws := range watched {
		if len(ws.Objects) == 0 {
			continue
		}
		c, err := d.client(ws.Target)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, o := range ws.Objects {
			mk := mappingKey{c.clusterClient.fingerprint, o.Object.APIVersion, o.Object.Kind}
			m, ok := mappings[mk]
			if !ok {
				m.gvr, m.namespaced, m.err = c.mapping(o.Object)
				mappings[mk] = m
			}
			gvr, namespaced, err := m.gvr, m.namespaced, m.err
			if err != nil {
				errs = append(errs, fmt.Errorf("site %s: watch %s %s: %w", ws.Target.Site.Name, o.Object.Kind, o.Object.Name, err))
				continue
			}
			k := driftKey{cluster: c.clusterClient.fingerprint, gvr: gvr}
			name := o.Object.Name
			if namespaced {
				ns := o.Object.Namespace
				if ns == "" {
					ns = c.namespace
				}
				if d.drift.perNamespace(ctx, c.clusterClient, k) {
					k.namespace = ns
				}
				name = ns + "/" + name
			}
			if want[k] == nil {
				want[k] = map[string][]driftWatcher{}
			}
			want[k][name] = append(want[k][name], driftWatcher{site: ws.Target.Site.Name, id: o.ResourceID, ref: o.Object, localID: o.LocalID})
			clients[k] = c.clusterClient
		}
	}

	d.drift.mu.Lock()
	if d.drift.informers == nil {
		d.drift.informers = map[driftKey]*driftInformer{}
	}
	for k, inf := range d.drift.informers {
		if _, ok := want[k]; !ok || inf.client != clients[k] {
			close(inf.stop)
			delete(d.drift.informers, k)
		}
	}
	var synced []*driftInformer
	for k, watchers := range want {
		inf, ok := d.drift.informers[k]
		if !ok {
			inf = d.drift.start(clients[k], k)
			d.drift.informers[k] = inf
		}
		inf.mu.Lock()
		inf.watchers, inf.report = watchers, report
		if inf.lastErr != nil {
			errs = append(errs, inf.lastErr)
		}
		inf.mu.Unlock()
		if ok && inf.informer.HasSynced() {
			synced = append(synced, inf)
		}
	}
	d.drift.mu.Unlock()

	// An object that a watch in sync does not hold was deleted while no event could say so (the
	// watch was being re-established), or is about to appear (an apply just recorded it): the
	// site, read directly, tells which.
	for _, inf := range synced {
		errs = append(errs, inf.findMissing(ctx))
	}
	return errors.Join(errs...)
}

// mapping is the REST resource of an object's kind, and whether it is namespaced.
func (c *siteClient) mapping(ref cheops.ObjectRef) (schema.GroupVersionResource, bool, error) {
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return schema.GroupVersionResource{}, false, cheops.Classify(cheops.Permanent, err)
	}
	m, err := c.mapper.RESTMapping(schema.GroupKind{Group: gv.Group, Kind: ref.Kind}, gv.Version)
	if err != nil {
		return schema.GroupVersionResource{}, false, classify(err)
	}
	return m.Resource, m.Scope.Name() == meta.RESTScopeNameNamespace, nil
}

// perNamespace says whether a namespaced kind of a cluster is watched per namespace, asking the
// cluster the first time: a list in every namespace (of one object, by cheops' label) that is
// forbidden means the site's credentials reach only some namespaces. Another failure asks again
// next time, and watches per namespace meanwhile, as a site's namespace is what it may surely read.
func (w *driftWatches) perNamespace(ctx context.Context, c *clusterClient, k driftKey) bool {
	w.mu.Lock()
	only, known := w.namespacedOnly[k]
	w.mu.Unlock()
	if known {
		return only
	}
	// The metadata client has no overall timeout (its watches last): bound this one request.
	lctx, cancel := context.WithTimeout(ctx, driftRequestTimeout)
	defer cancel()
	_, err := c.metadata.Resource(k.gvr).List(lctx, metav1.ListOptions{LabelSelector: cheops.LabelResourceID, Limit: 1})
	switch {
	case err == nil:
		only = false
	case apierrors.IsForbidden(err):
		only = true
	default:
		return true
	}
	w.mu.Lock()
	if w.namespacedOnly == nil {
		w.namespacedOnly = map[driftKey]bool{}
	}
	w.namespacedOnly[k] = only
	w.mu.Unlock()
	return only
}

// start starts the watch k names. A watch in every namespace that the cluster then forbids (its
// credentials were narrowed) makes the kind watched per namespace from the next WatchDrift on.
func (w *driftWatches) start(c *clusterClient, k driftKey) *driftInformer {
	inf := &driftInformer{client: c, key: k, stop: make(chan struct{})}
	inf.informer = metadatainformer.NewFilteredMetadataInformer(c.metadata, k.gvr, k.namespace, 0, cache.Indexers{},
		func(o *metav1.ListOptions) { o.LabelSelector = cheops.LabelResourceID }).Informer()
	_ = inf.informer.SetTransform(trimForDrift)
	where := fmt.Sprintf("in %q", k.namespace)
	if k.namespace == "" {
		where = "in every namespace"
	}
	_ = inf.informer.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *cache.Reflector, err error) {
		inf.mu.Lock()
		inf.lastErr = fmt.Errorf("watch %s %s: %w", k.gvr, where, err)
		inf.mu.Unlock()
		if k.namespace == "" && apierrors.IsForbidden(err) {
			w.mu.Lock()
			if _, known := w.namespacedOnly[k]; known {
				w.namespacedOnly[k] = true
			}
			w.mu.Unlock()
		}
	})
	_, _ = inf.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { inf.clearErr() },
		UpdateFunc: inf.updated,
		DeleteFunc: inf.deleted,
	})
	go inf.informer.Run(inf.stop)
	return inf
}

func (inf *driftInformer) clearErr() {
	inf.mu.Lock()
	inf.lastErr = nil
	inf.mu.Unlock()
}

// trimForDrift keeps of an object only what drift detection reads, so that a watch of 1,000
// objects holds little: other annotations (a last-applied-configuration may be as large as the
// object), owner references and finalizers go.
func trimForDrift(obj any) (any, error) {
	m, ok := obj.(*metav1.PartialObjectMetadata)
	if !ok {
		return obj, nil
	}
	out := &metav1.PartialObjectMetadata{TypeMeta: m.TypeMeta, ObjectMeta: metav1.ObjectMeta{
		Name: m.Name, Namespace: m.Namespace, UID: m.UID, ResourceVersion: m.ResourceVersion,
		DeletionTimestamp: m.DeletionTimestamp,
		Labels:            map[string]string{cheops.LabelResourceID: m.Labels[cheops.LabelResourceID]},
	}}
	if g, ok := m.Annotations[cheops.AnnotationGeneration]; ok {
		out.Annotations = map[string]string{cheops.AnnotationGeneration: g}
	}
	for _, f := range m.ManagedFields {
		// Status is not what cheops applies: whoever writes it is no drift.
		if f.Subresource == "" {
			out.ManagedFields = append(out.ManagedFields, f)
		}
	}
	return out, nil
}

// updated reports the fields cheops applied that it no longer owns: server-side apply moves a
// field to whoever changes its value, and drops it from every manager when it is removed. An
// update that changes cheops' generation annotation is cheops' own apply of a new generation,
// which may drop fields on purpose.
func (inf *driftInformer) updated(oldObj, newObj any) {
	o, ok1 := oldObj.(*metav1.PartialObjectMetadata)
	n, ok2 := newObj.(*metav1.PartialObjectMetadata)
	if !ok1 || !ok2 || o.UID != n.UID || o.Annotations[cheops.AnnotationGeneration] != n.Annotations[cheops.AnnotationGeneration] {
		return
	}
	before, err1 := cheopsFields(o)
	after, err2 := cheopsFields(n)
	if err1 != nil || err2 != nil || before == nil {
		return
	}
	lost := before.Difference(after).Leaves()
	if lost.Empty() {
		return
	}
	inf.send(n, false, changeMessage(lost, n))
}

// deleted reports an object gone from the site.
func (inf *driftInformer) deleted(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	m, ok := obj.(*metav1.PartialObjectMetadata)
	if !ok {
		return
	}
	inf.send(m, true, "deleted on the site")
}

// send reports a drift of m to each replica watching it.
func (inf *driftInformer) send(m *metav1.PartialObjectMetadata, deleted bool, message string) {
	key := m.Name
	if m.Namespace != "" {
		key = m.Namespace + "/" + m.Name
	}
	gen, _ := strconv.ParseInt(m.Annotations[cheops.AnnotationGeneration], 10, 64)
	inf.mu.Lock()
	watchers, report := inf.watchers[key], inf.report
	inf.mu.Unlock()
	for _, w := range watchers {
		if w.id != m.Labels[cheops.LabelResourceID] {
			continue
		}
		report(cheops.Drift{Site: w.site, ResourceID: w.id, Object: w.ref, LocalID: string(m.UID), Generation: gen, Deleted: deleted, Message: message})
	}
}

// findMissing reports deleted each watched object the watch does not hold, once the site, read
// directly, confirms it is gone.
func (inf *driftInformer) findMissing(ctx context.Context) error {
	inf.mu.Lock()
	watchers, report := maps.Clone(inf.watchers), inf.report
	inf.mu.Unlock()
	for _, key := range slices.Sorted(maps.Keys(watchers)) {
		if _, exists, _ := inf.informer.GetStore().GetByKey(key); exists {
			continue
		}
		ns, name, _ := strings.Cut(key, "/")
		if name == "" {
			ns, name = "", key
		}
		gctx, cancel := context.WithTimeout(ctx, driftRequestTimeout)
		var err error
		if ns != "" {
			_, err = inf.client.metadata.Resource(inf.key.gvr).Namespace(ns).Get(gctx, name, metav1.GetOptions{})
		} else {
			_, err = inf.client.metadata.Resource(inf.key.gvr).Get(gctx, name, metav1.GetOptions{})
		}
		cancel()
		if !apierrors.IsNotFound(err) {
			if err != nil {
				return classify(fmt.Errorf("get %s %s: %w", inf.key.gvr.Resource, key, err))
			}
			continue
		}
		for _, w := range watchers[key] {
			report(cheops.Drift{Site: w.site, ResourceID: w.id, Object: w.ref, LocalID: w.localID, Deleted: true, Message: "deleted on the site"})
		}
	}
	return nil
}

// cheopsFields are the fields cheops' server-side apply owns on an object; nil when it owns none.
func cheopsFields(m *metav1.PartialObjectMetadata) (*fieldpath.Set, error) {
	for _, f := range m.ManagedFields {
		if f.Manager == cheops.FieldManager && f.Operation == metav1.ManagedFieldsOperationApply && f.Subresource == "" && f.FieldsV1 != nil {
			s := &fieldpath.Set{}
			if err := s.FromJSON(strings.NewReader(string(f.FieldsV1.Raw))); err != nil {
				return nil, err
			}
			return s, nil
		}
	}
	return nil, nil
}

// changeMessage says which fields cheops lost and to whom: "data.color changed by field manager
// kubectl-edit (Update)", or "removed" when no manager owns them now.
func changeMessage(lost *fieldpath.Set, m *metav1.PartialObjectMetadata) string {
	var parts []string
	rest := lost
	for _, f := range m.ManagedFields {
		if f.Manager == cheops.FieldManager || f.FieldsV1 == nil {
			continue
		}
		s := &fieldpath.Set{}
		if err := s.FromJSON(strings.NewReader(string(f.FieldsV1.Raw))); err != nil {
			continue
		}
		taken := s.Intersection(rest)
		if taken.Empty() {
			continue
		}
		rest = rest.Difference(taken)
		parts = append(parts, fmt.Sprintf("%s changed by field manager %s (%s)", fieldList(taken), f.Manager, f.Operation))
	}
	if !rest.Empty() {
		parts = append(parts, fieldList(rest)+" removed by another field manager")
	}
	return strings.Join(parts, "; ")
}

// fieldList names up to 5 fields of s ("data.color, data.size and 3 more").
func fieldList(s *fieldpath.Set) string {
	var names []string
	s.Iterate(func(p fieldpath.Path) { names = append(names, strings.TrimPrefix(p.String(), ".")) })
	slices.Sort(names)
	const shown = 5
	if len(names) > shown {
		return strings.Join(names[:shown], ", ") + fmt.Sprintf(" and %d more", len(names)-shown)
	}
	return strings.Join(names, ", ")
}
