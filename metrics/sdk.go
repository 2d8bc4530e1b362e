package metrics

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.temporal.io/sdk/client"
)

// sdkBuckets are the buckets of the SDK's timers, in seconds: 1 ms … 1 min.
var sdkBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// SDK receives the Temporal SDK's metrics (client.Options.MetricsHandler) and serves them as a
// Prometheus collector: counters as counters, gauges as gauges, timers as histograms in seconds.
// The SDK gives a metric tags that vary (a worker's task queue, an activity's type, an
// operation); a Prometheus metric family needs one set of label names, so each family carries the
// union of the tags it was given, a tag a series was not given being empty, which Prometheus reads
// as absent. Register it once in a registry; hand it to every Temporal client of the process.
type SDK struct {
	mu       sync.Mutex
	families map[string]*sdkFamily
}

// NewSDK returns an empty SDK collector.
func NewSDK() *SDK { return &SDK{families: map[string]*sdkFamily{}} }

// sdkFamily is one metric name and its series, by their tags.
type sdkFamily struct {
	kind   prometheus.ValueType // CounterValue, GaugeValue, or UntypedValue for a histogram
	keys   map[string]bool      // every tag name a series of the family was given
	series map[string]*sdkSeries
}

type sdkSeries struct {
	tags    map[string]string
	value   float64            // a counter's sum, a gauge's last value
	count   uint64             // a histogram's sample count
	sum     float64            // a histogram's sum of samples, in seconds
	buckets map[float64]uint64 // a histogram's cumulative counts, by upper bound
}

// Handler returns the SDK's view of the collector: a client.MetricsHandler with no tags.
func (s *SDK) Handler() client.MetricsHandler { return sdkHandler{s: s} }

func (s *SDK) series(name string, kind prometheus.ValueType, tags map[string]string) *sdkSeries {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := s.families[name]
	if f == nil {
		f = &sdkFamily{kind: kind, keys: map[string]bool{}, series: map[string]*sdkSeries{}}
		s.families[name] = f
	}
	keys := slices.Sorted(maps.Keys(tags))
	var id strings.Builder
	for _, k := range keys {
		f.keys[k] = true
		id.WriteString(k + "\x00" + tags[k] + "\x00")
	}
	se := f.series[id.String()]
	if se == nil {
		se = &sdkSeries{tags: maps.Clone(tags)}
		if kind == prometheus.UntypedValue {
			se.buckets = map[float64]uint64{}
		}
		f.series[id.String()] = se
	}
	return se
}

// Describe sends nothing: the families are only known as the SDK uses them (an unchecked
// collector).
func (s *SDK) Describe(chan<- *prometheus.Desc) {}

// Collect sends every series of every family, each with all its family's label names.
func (s *SDK) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, f := range s.families {
		labels := slices.Sorted(maps.Keys(f.keys))
		desc := prometheus.NewDesc(name, "Temporal SDK metric "+name+" (see Temporal's SDK metrics reference).", labels, nil)
		for _, se := range f.series {
			values := make([]string, len(labels))
			for i, l := range labels {
				values[i] = se.tags[l]
			}
			var m prometheus.Metric
			var err error
			if f.kind == prometheus.UntypedValue {
				m, err = prometheus.NewConstHistogram(desc, se.count, se.sum, maps.Clone(se.buckets), values...)
			} else {
				m, err = prometheus.NewConstMetric(desc, f.kind, se.value, values...)
			}
			if err == nil {
				ch <- m
			}
		}
	}
}

// sdkHandler is the collector with a set of tags, as the SDK's WithTags makes them.
type sdkHandler struct {
	s    *SDK
	tags map[string]string
}

func (h sdkHandler) WithTags(tags map[string]string) client.MetricsHandler {
	merged := maps.Clone(h.tags)
	if merged == nil {
		merged = map[string]string{}
	}
	maps.Copy(merged, tags)
	return sdkHandler{s: h.s, tags: merged}
}

func (h sdkHandler) Counter(name string) client.MetricsCounter {
	se := h.s.series(name, prometheus.CounterValue, h.tags)
	return counterFunc(func(d int64) {
		h.s.mu.Lock()
		se.value += float64(d)
		h.s.mu.Unlock()
	})
}

func (h sdkHandler) Gauge(name string) client.MetricsGauge {
	se := h.s.series(name, prometheus.GaugeValue, h.tags)
	return gaugeFunc(func(v float64) {
		h.s.mu.Lock()
		se.value = v
		h.s.mu.Unlock()
	})
}

func (h sdkHandler) Timer(name string) client.MetricsTimer {
	se := h.s.series(name, prometheus.UntypedValue, h.tags)
	return timerFunc(func(d time.Duration) {
		v := d.Seconds()
		h.s.mu.Lock()
		se.count++
		se.sum += v
		for _, b := range sdkBuckets {
			if v <= b {
				se.buckets[b]++
			}
		}
		h.s.mu.Unlock()
	})
}

type (
	counterFunc func(int64)
	gaugeFunc   func(float64)
	timerFunc   func(time.Duration)
)

func (f counterFunc) Inc(d int64)          { f(d) }
func (f gaugeFunc) Update(v float64)       { f(v) }
func (f timerFunc) Record(d time.Duration) { f(d) }
