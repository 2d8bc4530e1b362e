package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/internal/etcdtest"
	"github.com/cheops-io/cheops/store"
)

// flakyDriver answers probes with whatever err holds; the store under test is a real etcd.
type flakyDriver struct{ err error }

func (d *flakyDriver) Validate(json.RawMessage) error                     { return nil }
func (d *flakyDriver) ValidateSite(cheops.Site, cheops.Credentials) error { return nil }
func (d *flakyDriver) Apply(context.Context, cheops.Target, cheops.ApplyRequest) (cheops.ApplyResult, error) {
	return cheops.ApplyResult{}, nil
}
func (d *flakyDriver) Observe(context.Context, cheops.Target, cheops.ObjectRef) (cheops.Observation, error) {
	return cheops.Observation{}, nil
}
func (d *flakyDriver) Delete(context.Context, cheops.Target, cheops.ObjectRef) error { return nil }
func (d *flakyDriver) Probe(context.Context, cheops.Target) error                    { return d.err }

// edgeFixture is a store with one site, edge, and a prober whose driver answers as d.err says:
// Unreachable after 3 failures in a row.
func edgeFixture(t *testing.T) (*store.Store, *flakyDriver, *Prober) {
	t.Helper()
	s := etcdtest.Store(t)
	if _, err := s.CreateSite(context.Background(), cheops.Site{Name: "edge", Driver: cheops.DriverKubernetes}, cheops.Credentials{}); err != nil {
		t.Fatal(err)
	}
	d := &flakyDriver{}
	p := &Prober{Store: s, Drivers: map[cheops.DriverName]cheops.Driver{cheops.DriverKubernetes: d},
		Config: HealthConfig{Interval: time.Second, Failures: 3, Timeout: time.Second}, Log: slog.Default()}
	return s, d, p
}

// Health turns Unreachable only after Failures probes fail in a row, and Ready after one success.
func TestProbeHysteresis(t *testing.T) {
	ctx := context.Background()
	s, d, p := edgeFixture(t)
	health := func() cheops.SiteHealth {
		site, err := s.GetSite(ctx, "edge")
		if err != nil {
			t.Fatal(err)
		}
		return site.Health
	}
	steps := []struct {
		err  error
		want cheops.SiteHealth
	}{
		{nil, cheops.SiteReady},
		{errors.New("connection refused"), cheops.SiteReady},
		{errors.New("connection refused"), cheops.SiteReady},
		{errors.New("connection refused"), cheops.SiteUnreachable},
		{errors.New("connection refused"), cheops.SiteUnreachable},
		{nil, cheops.SiteReady},
		{errors.New("connection refused"), cheops.SiteReady},
	}
	for i, step := range steps {
		d.err = step.err
		if err := p.ProbeOnce(ctx); err != nil {
			t.Fatal(err)
		}
		if got := health(); got != step.want {
			t.Fatalf("after probe %d (%v): %s, want %s", i+1, step.err, got, step.want)
		}
	}
}

// A probe that finds a site as recorded writes nothing (at 1,000 sites a write per probe would be
// 100 etcd writes a second); one that changes anything writes it.
func TestProbeWritesOnlyChanges(t *testing.T) {
	ctx := context.Background()
	s, d, p := edgeFixture(t)
	probe := func(err error) cheops.Site {
		t.Helper()
		d.err = err
		if err := p.ProbeOnce(ctx); err != nil {
			t.Fatal(err)
		}
		site, err := s.GetSite(ctx, "edge")
		if err != nil {
			t.Fatal(err)
		}
		return site
	}
	first := probe(nil)
	if first.Health != cheops.SiteReady || first.ProbedAt == nil {
		t.Fatalf("after the first probe: %s, probedAt %v", first.Health, first.ProbedAt)
	}
	if again := probe(nil); !again.UpdatedAt.Equal(first.UpdatedAt) || !again.ProbedAt.Equal(*first.ProbedAt) {
		t.Fatalf("an unchanged probe rewrote the site: updatedAt %s → %s", first.UpdatedAt, again.UpdatedAt)
	}
	failed := probe(errors.New("connection refused"))
	if failed.ProbeFailures != 1 || !failed.ProbedAt.After(*first.ProbedAt) {
		t.Fatalf("a failed probe was not recorded: failures %d, probedAt %v", failed.ProbeFailures, failed.ProbedAt)
	}
}

// countingDriver counts probes per site, and the most under way at once.
type countingDriver struct {
	flakyDriver
	mu           sync.Mutex
	probes       map[string]int
	now, maxSeen int
}

func (d *countingDriver) Probe(_ context.Context, t cheops.Target) error {
	d.mu.Lock()
	d.probes[t.Site.Name]++
	d.now++
	d.maxSeen = max(d.maxSeen, d.now)
	d.mu.Unlock()
	time.Sleep(time.Millisecond)
	d.mu.Lock()
	d.now--
	d.mu.Unlock()
	return nil
}

// Over one interval every site is probed once, the sites spread over its ticks rather than all at
// the first, and never more than ProbeParallel at once.
func TestProbesAreSpreadOverTheInterval(t *testing.T) {
	ctx := context.Background()
	s := etcdtest.Store(t)
	const n = 200
	for i := range n {
		if _, err := s.CreateSite(ctx, cheops.Site{Name: fmt.Sprintf("site-%03d", i), Driver: cheops.DriverKubernetes}, cheops.Credentials{}); err != nil {
			t.Fatal(err)
		}
	}
	d := &countingDriver{probes: map[string]int{}}
	p := &Prober{Store: s, Drivers: map[cheops.DriverName]cheops.Driver{cheops.DriverKubernetes: d},
		Config: HealthConfig{Interval: 10 * NewSiteCheck, Failures: 3, Timeout: time.Second}, Log: slog.Default()}
	// Tick 0 probes every site never probed: all of them, as when the sites were just added.
	if err := p.probeDue(ctx, 0); err != nil {
		t.Fatal(err)
	}
	if len(d.probes) != n || d.maxSeen > ProbeParallel {
		t.Fatalf("first tick: %d sites probed, %d at once; want all %d, at most %d at once", len(d.probes), d.maxSeen, n, ProbeParallel)
	}
	d.probes = map[string]int{}
	busiest := 0
	for tick := 1; tick <= 10; tick++ {
		before := 0
		for _, c := range d.probes {
			before += c
		}
		if err := p.probeDue(ctx, tick); err != nil {
			t.Fatal(err)
		}
		after := 0
		for _, c := range d.probes {
			after += c
		}
		busiest = max(busiest, after-before)
	}
	for i := range n {
		if c := d.probes[fmt.Sprintf("site-%03d", i)]; c != 1 {
			t.Fatalf("site-%03d probed %d times in one interval, want once", i, c)
		}
	}
	// 200 sites over 10 slots: about 20 a tick; hashing leaves some slots fuller than others.
	if busiest > n/2 {
		t.Fatalf("%d of %d sites probed in one tick: the probes are not spread", busiest, n)
	}
}

func TestHealthTextNeverQuotesAnAnswer(t *testing.T) {
	answer := errors.New("HTTP/1.1 200 OK top-secret-body")
	probe := cheops.Classify(cheops.Unreachable, &cheops.ProbeError{Stage: "site s: version", Kind: "connection refused", Err: answer})
	if got := healthText(probe); got != "Unreachable: site s: version: connection refused" {
		t.Errorf("healthText(ProbeError) = %q", got)
	}
	if got := healthText(cheops.Classify(cheops.Transient, answer)); strings.Contains(got, "top-secret") || !strings.Contains(got, "Transient") {
		t.Errorf("healthText(other) = %q; want its class and no quote", got)
	}
	if got := probeDetail(probe); got != answer.Error() {
		t.Errorf("probeDetail = %q, want the detail for the log", got)
	}
}

// A site added after the prober started is probed within about a second, not after a whole
// interval, and its change of health is in its event log.
func TestNewSiteIsProbedAtOnce(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s := etcdtest.Store(t)
	p := &Prober{Store: s, Drivers: map[cheops.DriverName]cheops.Driver{cheops.DriverKubernetes: &flakyDriver{}},
		Config: HealthConfig{Interval: time.Hour, Failures: 3, Timeout: time.Second}, Log: slog.Default()}
	go p.Run(ctx)
	time.Sleep(100 * time.Millisecond) // the first full round has run, on no site
	if _, err := s.CreateSite(ctx, cheops.Site{Name: "late", Driver: cheops.DriverKubernetes}, cheops.Credentials{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * NewSiteCheck)
	for {
		site, err := s.GetSite(ctx, "late")
		if err != nil {
			t.Fatal(err)
		}
		if site.Health == cheops.SiteReady && site.ProbedAt != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("site added after the prober started is %s after %s; want Ready within about %s", site.Health, 5*NewSiteCheck, NewSiteCheck)
		}
		time.Sleep(50 * time.Millisecond)
	}
	evs, err := s.SiteEvents(ctx, "late")
	if err != nil || len(evs) != 2 || evs[1].Type != cheops.EventHealthChanged || evs[1].Message != "Unknown → Ready" {
		t.Fatalf("site events %+v, %v; want SiteCreated then HealthChanged Unknown → Ready", evs, err)
	}
}
