package worker

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/store"
	"github.com/cheops-io/cheops/workflows"
)

// DriftMonitor finds replicas whose object on their site is no longer what cheops applied, records
// them drifted with a Drift event, and wakes their resource's workflow, which re-applies them
// under policy.drift correct. Kubernetes sites are watched (see cheops.DriftWatcher): an object
// deleted or edited by hand is seen within a second. Sites of drivers that cannot watch are
// observed once every Interval: an object gone is drifted.
//
// It writes replicas itself, as the prober writes sites, through the store's compare-and-swap: a
// drift is recorded only on a replica still Ready or Applied at its resource's generation, with
// the local ID of the object that drifted, so that it cannot overwrite an apply that ran meanwhile.
type DriftMonitor struct {
	Store     *store.Store
	Drivers   map[cheops.DriverName]cheops.Driver
	Workflows *workflows.Client
	// Interval is how often the sites of drivers that cannot watch are observed, and the watches
	// checked for objects they missed.
	Interval time.Duration
	Log      *slog.Logger
}

const (
	// driftResyncMin is the least time between two updates of the watches that a change of the
	// view asks for: a watch of a kind newly in use starts within about this long. An update that
	// took long (many replicas) spaces them more: at least driftResyncShare times its duration,
	// so that a rollout changing replicas all the time does not keep it busy.
	driftResyncMin   = time.Second
	driftResyncShare = 4
	// observeParallel bounds the observes at once, over all sites.
	observeParallel = 8
	// observeTimeout bounds one observe.
	observeTimeout = 30 * time.Second
	// driftRecorders is how many drifts are recorded at once.
	driftRecorders = 4
)

// Run watches and observes until ctx ends, then stops every watch.
func (m *DriftMonitor) Run(ctx context.Context) {
	reports := make(chan cheops.Drift, 256)
	report := func(d cheops.Drift) {
		select {
		case reports <- d:
		case <-ctx.Done():
		}
	}
	var recorders sync.WaitGroup
	for range driftRecorders {
		recorders.Go(func() {
			for {
				select {
				case d := <-reports:
					if err := m.Record(ctx, d); err != nil && ctx.Err() == nil {
						m.Log.Warn("record drift", "resource", d.ResourceID, "site", d.Site, "error", err)
					}
				case <-ctx.Done():
					return
				}
			}
		})
	}
	defer func() {
		for _, d := range m.Drivers {
			if w, ok := d.(cheops.DriftWatcher); ok {
				_ = w.WatchDrift(context.Background(), nil, report)
			}
		}
		recorders.Wait()
	}()

	var view *store.DriftView
	for {
		var err error
		if view, err = m.Store.FollowForDrift(ctx); err == nil {
			break
		}
		m.Log.Warn("read the store for drift", "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(m.Interval):
		}
	}
	tick := time.NewTicker(m.Interval)
	defer tick.Stop()
	var lastErr string
	for observe := true; ; {
		began := time.Now()
		err := m.sync(ctx, view, observe, report)
		took := time.Since(began)
		if err != nil && ctx.Err() == nil && err.Error() != lastErr {
			// Said once, not at every resync while a site stays unreachable.
			m.Log.Warn("watch for drift", "error", err)
		}
		if err != nil {
			lastErr = err.Error()
		} else {
			lastErr = ""
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			observe = true
		case <-view.Changed():
			observe = false
			select {
			case <-ctx.Done():
				return
			case <-time.After(max(driftResyncMin, driftResyncShare*took)):
			}
		}
	}
}

// watchable says whether a replica's object is one cheops can tell drifted: the replica is Ready
// or Applied at its resource's current generation, with the object it made.
func watchable(r cheops.Resource, rep cheops.Replica) bool {
	return r.Deletion == nil && (rep.State == cheops.ReplicaReady || rep.State == cheops.ReplicaApplied) &&
		rep.ObservedGeneration == r.Generation && rep.Object != nil && rep.LocalID != ""
}

// sync hands the watchable replicas of the view to their driver's watch; with observe, it also
// observes those of drivers that cannot watch. Sites known unreachable are left alone.
func (m *DriftMonitor) sync(ctx context.Context, view *store.DriftView, observe bool, report func(cheops.Drift)) error {
	bySite := map[string][]cheops.WatchedObject{}
	view.Read(func(resources map[string]cheops.Resource, replicas map[string]map[string]cheops.Replica, sites map[string]cheops.Site) {
		for id, reps := range replicas {
			r, ok := resources[id]
			if !ok {
				continue
			}
			for name, rep := range reps {
				site, ok := sites[name]
				if ok && site.Driver == r.Driver && watchable(r, rep) && site.Health != cheops.SiteUnreachable && site.Health != "" {
					bySite[name] = append(bySite[name], cheops.WatchedObject{ResourceID: id, Object: *rep.Object, LocalID: rep.LocalID})
				}
			}
		}
	})
	watched := map[cheops.DriverName][]cheops.WatchedSite{}
	var observed []cheops.WatchedSite
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(bySite)) {
		t, err := view.Target(name)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		ws := cheops.WatchedSite{Target: t, Objects: bySite[name]}
		if _, ok := m.Drivers[t.Site.Driver].(cheops.DriftWatcher); ok {
			watched[t.Site.Driver] = append(watched[t.Site.Driver], ws)
		} else {
			observed = append(observed, ws)
		}
	}
	// Every watching driver is told its whole set, even an empty one, so that it stops what is
	// no longer needed.
	for name, d := range m.Drivers {
		if w, ok := d.(cheops.DriftWatcher); ok {
			errs = append(errs, w.WatchDrift(ctx, watched[name], report))
		}
	}
	if observe {
		errs = append(errs, m.observe(ctx, observed, report))
	}
	return errors.Join(errs...)
}

// observe reads back each object of sites whose driver cannot watch, at most observeParallel at
// once, and reports those gone.
func (m *DriftMonitor) observe(ctx context.Context, sites []cheops.WatchedSite, report func(cheops.Drift)) error {
	slots := make(chan struct{}, observeParallel)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for _, ws := range sites {
		d, ok := m.Drivers[ws.Target.Site.Driver]
		if !ok {
			continue
		}
		for _, o := range ws.Objects {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				wg.Wait()
				return ctx.Err()
			}
			wg.Go(func() {
				defer func() { <-slots }()
				octx, cancel := context.WithTimeout(ctx, observeTimeout)
				defer cancel()
				obs, err := d.Observe(octx, ws.Target, o.Object)
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
				if !obs.Exists {
					report(cheops.Drift{Site: ws.Target.Site.Name, ResourceID: o.ResourceID, Object: o.Object, LocalID: o.LocalID,
						Deleted: true, Message: "deleted on the site"})
				}
			})
		}
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Record records a drift on its replica, with a Drift event, unless the replica no longer is what
// the drift was seen on (see watchable; its local ID is another, or it is already drifted), and,
// under policy.drift correct, wakes the resource's workflow to re-apply it.
func (m *DriftMonitor) Record(ctx context.Context, d cheops.Drift) error {
	r, err := m.Store.GetResource(ctx, d.ResourceID)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	correct := r.Policy.WithDefaults().Drift == cheops.DriftCorrect
	var recorded bool
	_, err = m.Store.UpdateReplica(ctx, d.ResourceID, d.Site, func(rep *cheops.Replica) (*cheops.Event, error) {
		recorded = false
		if !watchable(r, *rep) || rep.Drifted || rep.LocalID != d.LocalID || (d.Generation != 0 && d.Generation != rep.ObservedGeneration) {
			return nil, store.ErrSkip
		}
		rep.Drifted, rep.DriftMessage = true, d.Message
		msg := d.Message + "; re-applying it (policy.drift correct)"
		if !correct {
			msg = d.Message + "; left as it is (policy.drift report)"
		}
		recorded = true
		return &cheops.Event{Type: cheops.EventDrift, Site: d.Site, Generation: rep.ObservedGeneration, Message: msg}, nil
	})
	if errors.Is(err, store.ErrNotFound) || (err == nil && !recorded) {
		return nil
	}
	if err != nil {
		return err
	}
	m.Log.Info("replica drifted", "resource", r.Name, "site", d.Site, "drift", d.Message, "policy", r.Policy.WithDefaults().Drift)
	if !correct {
		return nil
	}
	return m.Workflows.Signal(ctx, d.ResourceID, workflows.SignalReconcile)
}
