package worker

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/store"
	"github.com/cheops-io/cheops/workflows"
)

// HealthConfig sets the periodic probe of sites.
type HealthConfig struct {
	// Interval between two probes of a site.
	Interval time.Duration
	// Failures is how many probes in a row must fail before a site is Unreachable; one success
	// makes it Ready again.
	Failures int
	// Timeout bounds one probe.
	Timeout time.Duration
}

// Prober probes every site, records its health in the store and tells the workflows of the
// resources on a site when its health changes, so they retry at once instead of waiting out a backoff.
type Prober struct {
	Store     *store.Store
	Drivers   map[cheops.DriverName]cheops.Driver
	Workflows *workflows.Client
	Config    HealthConfig
	Log       *slog.Logger
}

// ProbedAtRefresh is how stale a site's recorded probedAt may grow while its probes change nothing:
// a probe that finds the site as it was recorded writes nothing unless the record is older.
const ProbedAtRefresh = time.Minute

// NewSiteCheck is how often the prober looks for sites never probed (just added), so a new site's
// health is known within about a second rather than after a whole Config.Interval. It is also the
// tick the periodic probes are spread over: each site has its own slot in the interval.
const NewSiteCheck = time.Second

// ProbeParallel bounds how many sites are probed at once.
const ProbeParallel = 32

// Run probes every site once every Config.Interval, and a new site within NewSiteCheck, until ctx
// ends. The sites are spread over the interval by name, one slot per NewSiteCheck, rather than all
// probed at once: 1,000 sites probed together every 10 s were a burst of 1,000 requests that slowed
// every apply under way on the same clusters.
func (p *Prober) Run(ctx context.Context) {
	tick := time.NewTicker(NewSiteCheck)
	defer tick.Stop()
	for n := 0; ; n++ {
		if err := p.probeDue(ctx, n); err != nil && ctx.Err() == nil {
			p.Log.Warn("probe sites", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// slots is how many ticks of NewSiteCheck an interval spreads its probes over.
func (p *Prober) slots() int { return max(int(p.Config.Interval/NewSiteCheck), 1) }

// probeDue probes, at tick n, the sites never probed and those whose slot n is.
func (p *Prober) probeDue(ctx context.Context, n int) error {
	slots := p.slots()
	return p.probeSites(ctx, func(s cheops.Site) bool { return s.ProbedAt == nil || slotOf(s.Name, slots) == n%slots })
}

// slotOf is a site's slot among slots, from its name, so that it keeps it between ticks and leaders.
func slotOf(name string, slots int) int {
	h := fnv.New32a()
	h.Write([]byte(name))
	return int(h.Sum32() % uint32(slots))
}

// ProbeOnce probes every site once, at most ProbeParallel at a time.
func (p *Prober) ProbeOnce(ctx context.Context) error {
	return p.probeSites(ctx, func(cheops.Site) bool { return true })
}

// probeSites probes the sites due says are due, at most ProbeParallel at a time.
func (p *Prober) probeSites(ctx context.Context, due func(cheops.Site) bool) error {
	sites, err := p.Store.ListSites(ctx)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	slots := make(chan struct{}, ProbeParallel)
	errs := make([]error, len(sites))
	for i, site := range sites {
		if !due(site) {
			continue
		}
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			errs[i] = p.probe(ctx, site.Name)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (p *Prober) probe(ctx context.Context, name string) error {
	t, err := p.Store.Target(ctx, name)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	d, ok := p.Drivers[t.Site.Driver]
	if !ok {
		return nil
	}
	pctx, cancel := context.WithTimeout(ctx, p.Config.Timeout)
	probeErr := d.Probe(pctx, t)
	cancel()
	if ctx.Err() != nil {
		return nil
	}
	var before cheops.SiteHealth
	site, err := p.Store.UpdateSite(ctx, name, nil, func(s *cheops.Site) (*cheops.Event, error) {
		before = s.Health
		was := *s
		now := time.Now().UTC()
		if probeErr == nil {
			s.Health, s.HealthMessage, s.ProbeFailures = cheops.SiteReady, "", 0
		} else {
			s.ProbeFailures++
			if s.ProbeFailures >= p.Config.Failures {
				s.Health = cheops.SiteUnreachable
				s.HealthMessage = fmt.Sprintf("%d probes failed in a row; last: %s", s.ProbeFailures, healthText(probeErr))
			}
		}
		unchanged := s.Health == was.Health && s.HealthMessage == was.HealthMessage && s.ProbeFailures == was.ProbeFailures
		if unchanged && was.ProbedAt != nil && now.Sub(*was.ProbedAt) < ProbedAtRefresh {
			// Nothing to record: a write per site per probe would cost etcd more than the probe.
			return nil, store.ErrSkip
		}
		s.ProbedAt = &now
		if s.Health == before {
			return nil, nil
		}
		msg := string(before) + " → " + string(s.Health)
		if s.HealthMessage != "" {
			msg += ": " + s.HealthMessage
		}
		return &cheops.Event{Type: cheops.EventHealthChanged, Message: msg}, nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil || site.Health == before {
		return err
	}
	p.Log.Info("site health changed", "site", name, "from", before, "to", site.Health, "reason", site.HealthMessage, "detail", probeDetail(probeErr))
	ids, err := p.Store.SiteResources(ctx, name)
	if err != nil {
		return err
	}
	change := workflows.SiteHealthChange{Site: name, Health: site.Health}
	for _, id := range ids {
		if err := p.Workflows.SiteHealthChanged(ctx, id, change); err != nil {
			return fmt.Errorf("tell resource %s that site %s is %s: %w", id, name, site.Health, err)
		}
	}
	return nil
}

// healthText is what a site's health says of a failed probe: cheops' own words (where it failed
// and what kind of failure it was, or which setting is at fault), never what the endpoint
// answered, which the drivers keep out of ProbeError's text. Anything else is only named by its
// class; the worker's log has it.
func healthText(err error) string {
	var pe *cheops.ProbeError
	var fe *cheops.FieldError
	if errors.As(err, &pe) || errors.As(err, &fe) {
		return err.Error()
	}
	return string(cheops.ClassOf(err)) + ": the probe failed; the worker's log has the detail"
}

// probeDetail is what the operator's log says of a failed probe: the underlying error a
// ProbeError keeps out of the health message.
func probeDetail(err error) string {
	var pe *cheops.ProbeError
	if errors.As(err, &pe) && pe.Err != nil {
		return pe.Err.Error()
	}
	if err == nil {
		return ""
	}
	return err.Error()
}
