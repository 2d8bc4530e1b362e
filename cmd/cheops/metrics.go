package main

import (
	"log/slog"
	"net"
	"net/http"
	"strings"

	"github.com/spf13/pflag"

	"github.com/cheops-io/cheops/api"
	"github.com/cheops-io/cheops/metrics"
)

// metricsHelp lists the metrics, for cheops --help; the README has the same table.
const metricsHelp = `Metrics (Prometheus text format; GET /metrics on the API with a viewer token, and on
'cheops worker --metrics-addr' without one):
  cheops_http_request_duration_seconds{method,route,code}  histogram of API requests; route is the template
  cheops_replicas{site,state}                               replicas by site and state, read from etcd (API)
  cheops_site_health{site,state}                            1 for the health a site is in, 0 otherwise (API)
  cheops_activity_failures_total{activity,class}            failed activity attempts by error class (worker)
  cheops_site_failures_total{activity,class}                sites that failed inside a wave, by error class (worker)
  cheops_replication_seconds{driver}                        histogram: generation declared → a site's replica Ready (worker)
  cheops_metrics_store_errors_total                         scrapes whose read of etcd failed (API)
plus the Go runtime's go_* and process_* metrics.`

// registerMetricsAddr adds --metrics-addr to a command's flags.
func registerMetricsAddr(fs *pflag.FlagSet, addr *string) {
	fs.StringVar(addr, "metrics-addr", envOr("CHEOPS_METRICS_ADDR", ""), "serve Prometheus metrics at /metrics on this address, without authentication; a bare port (9464 or :9464) listens on 127.0.0.1; off when empty (CHEOPS_METRICS_ADDR)")
}

// metricsListenAddr makes a bare port a loopback address: metrics are served without a token, so
// reaching them from elsewhere must be asked for by naming a host.
func metricsListenAddr(addr string) (string, error) {
	if !strings.Contains(addr, ":") {
		addr = ":" + addr
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	if host == "" {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

// serveMetrics serves m at /metrics, and nothing else, on addr until the process ends.
func serveMetrics(addr string, m *metrics.Metrics, log *slog.Logger) error {
	if addr == "" {
		return nil
	}
	addr, err := metricsListenAddr(addr)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	log.Info("metrics listening", "address", "http://"+ln.Addr().String()+"/metrics")
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: api.ReadHeaderTimeout, ReadTimeout: api.ReadTimeout, IdleTimeout: api.IdleTimeout}
	go func() { _ = srv.Serve(ln) }()
	return nil
}
