// Package metrics holds cheops' Prometheus metrics in a registry of its own (never the global
// default, so a test or a second server in one process counts apart). The API and the worker
// record into it; what the store already knows (replicas, site health) is read from etcd at scrape
// time rather than counted by hand, so every server reports the same truth and nothing drifts
// after a restart. It must not change what it observes.
package metrics

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.temporal.io/sdk/temporal"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/store"
)

// Metric names, documented in the README and in cheops --help.
const (
	HTTPRequestDuration = "cheops_http_request_duration_seconds"
	Replicas            = "cheops_replicas"
	SiteHealth          = "cheops_site_health"
	ActivityFailures    = "cheops_activity_failures_total"
	SiteFailures        = "cheops_site_failures_total"
	ReplicationLatency  = "cheops_replication_seconds"
	ScrapeErrors        = "cheops_metrics_store_errors_total"
)

// Metrics is one process's registry and the metrics it records.
type Metrics struct {
	reg         *prometheus.Registry
	httpLatency *prometheus.HistogramVec
	actFailures *prometheus.CounterVec
	siteFails   *prometheus.CounterVec
	replication *prometheus.HistogramVec
}

// New returns a registry with the Go runtime and process metrics. With a store, it also reports
// replicas by state and site health, read from the store at each scrape.
func New(st *store.Store) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		httpLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    HTTPRequestDuration,
			Help:    "Latency of the API's HTTP requests, by method, route template and status code.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method", "route", "code"}),
		actFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: ActivityFailures,
			Help: "Activity attempts that failed, by activity type and error class (Transient, Permanent, Unreachable, Canceled).",
		}, []string{"activity", "class"}),
		siteFails: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: SiteFailures,
			Help: "Sites that failed inside a wave (ApplyWave, DeleteWave, CompensateWave), by wave activity and error class (Transient, Permanent, Unreachable): outcomes of an activity that succeeded.",
		}, []string{"activity", "class"}),
	}
	m.replication = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    ReplicationLatency,
		Help:    "From a generation's declaration to a site's replica recorded Ready, by driver: one sample per site applied.",
		Buckets: prometheus.ExponentialBuckets(0.05, 2, 14), // 50 ms … 7 min
	}, []string{"driver"})
	m.reg.MustRegister(m.httpLatency, m.actFailures, m.siteFails, m.replication,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if st != nil {
		m.reg.MustRegister(newStoreCollector(st))
	}
	return m
}

// Registry is the registry behind Handler, for tests and for metrics registered elsewhere.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// ObserveRequest records one HTTP request. route must be the router's template ("/v1/sites/:name"),
// never the raw path, so the number of series stays bounded.
func (m *Metrics) ObserveRequest(method, route string, code int, d time.Duration) {
	m.httpLatency.WithLabelValues(method, route, strconv.Itoa(code)).Observe(d.Seconds())
}

// ActivityFailed records one failed activity attempt.
func (m *Metrics) ActivityFailed(activity string, err error) {
	m.actFailures.WithLabelValues(activity, ErrorClass(err)).Inc()
}

// ReplicaReady records how long after its generation was declared a site's replica was Ready.
func (m *Metrics) ReplicaReady(driver string, d time.Duration) {
	m.replication.WithLabelValues(driver).Observe(d.Seconds())
}

// SiteFailed records one site that failed inside a wave with the given class.
func (m *Metrics) SiteFailed(activity string, class cheops.ErrorClass) {
	switch class {
	case cheops.Transient, cheops.Permanent, cheops.Unreachable:
	default:
		class = "Other" // kept apart so the label stays bounded
	}
	m.siteFails.WithLabelValues(activity, string(class)).Inc()
}

// ErrorClass names the class of an activity's error: the type of the Temporal application error
// the activities map driver errors to (see activities.asTemporalError), the class of a
// cheops.ClassifiedError, or Canceled; anything else is Transient, as cheops.ClassOf says.
func ErrorClass(err error) string {
	if errors.Is(err, context.Canceled) || temporal.IsCanceledError(err) {
		return "Canceled"
	}
	var appErr *temporal.ApplicationError
	if errors.As(err, &appErr) {
		switch t := cheops.ErrorClass(appErr.Type()); t {
		case cheops.Transient, cheops.Permanent, cheops.Unreachable:
			return string(t)
		}
		return "Other" // a type outside the three classes; kept apart so the label stays bounded
	}
	return string(cheops.ClassOf(err))
}

// storeCollector reads replicas and sites from the store at each scrape.
type storeCollector struct {
	st       *store.Store
	replicas *prometheus.Desc
	health   *prometheus.Desc
	errs     prometheus.Counter
}

func newStoreCollector(st *store.Store) *storeCollector {
	return &storeCollector{
		st: st,
		replicas: prometheus.NewDesc(Replicas,
			"Replicas by site and state, as stored in etcd at scrape time.", []string{"site", "state"}, nil),
		health: prometheus.NewDesc(SiteHealth,
			"1 for the health each site is in (Unknown, Ready, Unreachable), 0 for the others, as stored at scrape time.", []string{"site", "state"}, nil),
		errs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: ScrapeErrors, Help: "Scrapes whose read of the store failed; their replica and site metrics are missing."}),
	}
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.replicas
	ch <- c.health
	c.errs.Describe(ch)
}

var (
	replicaStates = []cheops.ReplicaState{cheops.ReplicaPending, cheops.ReplicaApplying, cheops.ReplicaApplied, cheops.ReplicaReady,
		cheops.ReplicaFailed, cheops.ReplicaDeleting, cheops.ReplicaUnreachable, cheops.ReplicaWaiting}
	siteHealths = []cheops.SiteHealth{cheops.SiteUnknown, cheops.SiteReady, cheops.SiteUnreachable}
)

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	defer c.errs.Collect(ch)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sites, err := c.st.ListSites(ctx)
	if err != nil {
		c.errs.Inc()
		return
	}
	counts, err := c.st.CountReplicas(ctx)
	if err != nil {
		c.errs.Inc()
		return
	}
	// Every site reports every state, 0 included, so a state that empties is seen to fall to 0
	// rather than vanish; a replica on a site deleted since is still counted under its name.
	known := map[string]bool{}
	for _, s := range sites {
		known[s.Name] = true
		for _, h := range siteHealths {
			v := 0.0
			if s.Health == h || (s.Health == "" && h == cheops.SiteUnknown) {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(c.health, prometheus.GaugeValue, v, s.Name, string(h))
		}
		for _, st := range replicaStates {
			ch <- prometheus.MustNewConstMetric(c.replicas, prometheus.GaugeValue, float64(counts[s.Name][st]), s.Name, string(st))
		}
	}
	for site, byState := range counts {
		if known[site] {
			continue
		}
		for st, n := range byState {
			ch <- prometheus.MustNewConstMetric(c.replicas, prometheus.GaugeValue, float64(n), site, string(st))
		}
	}
}
