package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.temporal.io/sdk/client"
	tlog "go.temporal.io/sdk/log"

	"github.com/cheops-io/cheops/worker"
	"github.com/cheops-io/cheops/workflows"
)

// temporalConfig is how to reach an external Temporal.
type temporalConfig struct {
	Address, Namespace, TaskQueue   string
	TLSCert, TLSKey, TLSCA, TLSName string
}

func (c *temporalConfig) register(fs *pflag.FlagSet) {
	fs.StringVar(&c.Address, "temporal-address", envOr("CHEOPS_TEMPORAL_ADDRESS", "127.0.0.1:7233"), "Temporal frontend host:port (CHEOPS_TEMPORAL_ADDRESS)")
	fs.StringVar(&c.Namespace, "temporal-namespace", envOr("CHEOPS_TEMPORAL_NAMESPACE", "default"), "Temporal namespace (CHEOPS_TEMPORAL_NAMESPACE)")
	fs.StringVar(&c.TaskQueue, "task-queue", envOr("CHEOPS_TASK_QUEUE", workflows.DefaultTaskQueue), "Temporal task queue of the workers (CHEOPS_TASK_QUEUE)")
	fs.StringVar(&c.TLSCert, "temporal-tls-cert", envOr("CHEOPS_TEMPORAL_TLS_CERT", ""), "client certificate for mTLS to Temporal (CHEOPS_TEMPORAL_TLS_CERT)")
	fs.StringVar(&c.TLSKey, "temporal-tls-key", envOr("CHEOPS_TEMPORAL_TLS_KEY", ""), "client key for mTLS to Temporal (CHEOPS_TEMPORAL_TLS_KEY)")
	fs.StringVar(&c.TLSCA, "temporal-tls-ca", envOr("CHEOPS_TEMPORAL_TLS_CA", ""), "CA bundle that signed Temporal's certificate; setting it enables TLS (CHEOPS_TEMPORAL_TLS_CA)")
	fs.StringVar(&c.TLSName, "temporal-tls-server-name", envOr("CHEOPS_TEMPORAL_TLS_SERVER_NAME", ""), "server name to verify in Temporal's certificate (CHEOPS_TEMPORAL_TLS_SERVER_NAME)")
}

func (c *temporalConfig) validate() error {
	if c.Address == "" || !strings.Contains(c.Address, ":") {
		return fmt.Errorf("--temporal-address: %q is not host:port", c.Address)
	}
	if c.Namespace == "" {
		return fmt.Errorf("--temporal-namespace is empty")
	}
	if c.TaskQueue == "" {
		return fmt.Errorf("--task-queue is empty")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return fmt.Errorf("--temporal-tls-cert and --temporal-tls-key go together")
	}
	return nil
}

func (c *temporalConfig) dial(log *slog.Logger) (client.Client, error) {
	opts := client.Options{HostPort: c.Address, Namespace: c.Namespace, Logger: tlog.NewStructuredLogger(sdkLogger(log)),
		MetricsHandler: sdkMetrics.Handler()}
	tc, err := tlsConfig("temporal", c.TLSCert, c.TLSKey, c.TLSCA, c.TLSName)
	if err != nil {
		return nil, err
	}
	opts.ConnectionOptions.TLS = tc
	cl, err := client.Dial(opts)
	if err != nil {
		return nil, fmt.Errorf("dial temporal at %s (--temporal-address): %w", c.Address, err)
	}
	return cl, nil
}

// sdkLogger keeps the SDK's routine chatter (worker started, polls) out of the log, and logs a
// failed activity attempt as a warning: Temporal retries it by its policy, and what the workflow
// makes of a failure for good is in the resource's events.
func sdkLogger(log *slog.Logger) *slog.Logger {
	return slog.New(levelFloor{retriedAsWarning{log.Handler()}, slog.LevelWarn})
}

// retriedAsWarning logs the SDK's "Activity error." records, ERROR in the SDK, at WARN.
type retriedAsWarning struct{ slog.Handler }

func (h retriedAsWarning) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelError && r.Message == "Activity error." {
		r.Level = slog.LevelWarn
	}
	return h.Handler.Handle(ctx, r)
}

func (h retriedAsWarning) WithAttrs(a []slog.Attr) slog.Handler {
	return retriedAsWarning{h.Handler.WithAttrs(a)}
}

func (h retriedAsWarning) WithGroup(name string) slog.Handler {
	return retriedAsWarning{h.Handler.WithGroup(name)}
}

// etcdConfig is how to reach an external etcd.
type etcdConfig struct {
	Endpoints              string
	Prefix                 string
	TLSCert, TLSKey, TLSCA string
}

func (c *etcdConfig) register(fs *pflag.FlagSet) {
	fs.StringVar(&c.Endpoints, "etcd-endpoints", envOr("CHEOPS_ETCD_ENDPOINTS", "http://127.0.0.1:2379"), "comma-separated etcd client URLs (CHEOPS_ETCD_ENDPOINTS)")
	fs.StringVar(&c.Prefix, "etcd-prefix", envOr("CHEOPS_ETCD_PREFIX", "/cheops"), "key prefix of cheops' data in etcd (CHEOPS_ETCD_PREFIX)")
	fs.StringVar(&c.TLSCert, "etcd-tls-cert", envOr("CHEOPS_ETCD_TLS_CERT", ""), "client certificate for etcd (CHEOPS_ETCD_TLS_CERT)")
	fs.StringVar(&c.TLSKey, "etcd-tls-key", envOr("CHEOPS_ETCD_TLS_KEY", ""), "client key for etcd (CHEOPS_ETCD_TLS_KEY)")
	fs.StringVar(&c.TLSCA, "etcd-tls-ca", envOr("CHEOPS_ETCD_TLS_CA", ""), "CA bundle that signed etcd's certificate (CHEOPS_ETCD_TLS_CA)")
}

func (c *etcdConfig) validate() error {
	if strings.TrimSpace(c.Endpoints) == "" {
		return fmt.Errorf("--etcd-endpoints is empty")
	}
	for _, e := range strings.Split(c.Endpoints, ",") {
		if !strings.HasPrefix(e, "http://") && !strings.HasPrefix(e, "https://") {
			return fmt.Errorf("--etcd-endpoints: %q is not an http:// or https:// URL", e)
		}
	}
	if !strings.HasPrefix(c.Prefix, "/") {
		return fmt.Errorf("--etcd-prefix: %q must start with /", c.Prefix)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return fmt.Errorf("--etcd-tls-cert and --etcd-tls-key go together")
	}
	return nil
}

func (c *etcdConfig) dial() (*clientv3.Client, error) {
	tc, err := tlsConfig("etcd", c.TLSCert, c.TLSKey, c.TLSCA, "")
	if err != nil {
		return nil, err
	}
	cl, err := clientv3.New(clientv3.Config{Endpoints: strings.Split(c.Endpoints, ","), DialTimeout: 5 * time.Second, TLS: tc})
	if err != nil {
		return nil, fmt.Errorf("dial etcd at %s (--etcd-endpoints): %w", c.Endpoints, err)
	}
	return cl, nil
}

// tlsConfig builds a client TLS configuration; nil when no TLS setting is given.
func tlsConfig(what, cert, key, ca, serverName string) (*tls.Config, error) {
	if cert == "" && ca == "" && serverName == "" {
		return nil, nil
	}
	cfg := &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("--%s-tls-cert/--%s-tls-key: %w", what, what, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("--%s-tls-ca: %w", what, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--%s-tls-ca: %s holds no PEM certificate", what, ca)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// workerConfig is the settings of a worker, in `cheops worker` and `cheops dev`.
type workerConfig struct {
	SweepInterval time.Duration
	Health        worker.HealthConfig
	// DriftInterval is how often the drift monitor reads again the objects to watch and observes
	// the objects of sites that cannot be watched (OpenStack); 0 turns drift detection off.
	DriftInterval time.Duration
}

func (c *workerConfig) register(fs *pflag.FlagSet) {
	fs.DurationVar(&c.SweepInterval, "sweep-interval", envDuration("CHEOPS_SWEEP_INTERVAL", 30*time.Second), "how often to make sure every resource has a workflow (CHEOPS_SWEEP_INTERVAL)")
	fs.DurationVar(&c.Health.Interval, "probe-interval", envDuration("CHEOPS_PROBE_INTERVAL", 10*time.Second), "how often each site's health is probed; the sites are spread over the interval (CHEOPS_PROBE_INTERVAL)")
	fs.IntVar(&c.Health.Failures, "probe-failures", envInt("CHEOPS_PROBE_FAILURES", 3), "probes failed in a row before a site is Unreachable; one success makes it Ready (CHEOPS_PROBE_FAILURES)")
	fs.DurationVar(&c.Health.Timeout, "probe-timeout", envDuration("CHEOPS_PROBE_TIMEOUT", 5*time.Second), "how long one probe may take (CHEOPS_PROBE_TIMEOUT)")
	fs.DurationVar(&c.DriftInterval, "drift-interval", envDuration("CHEOPS_DRIFT_INTERVAL", 30*time.Second), "how often objects on sites that cannot be watched (OpenStack) are observed for drift, and Kubernetes watches are checked for objects they missed; 0 turns drift detection off (CHEOPS_DRIFT_INTERVAL)")
}

func (c *workerConfig) validate() error {
	var errs []error
	if c.SweepInterval <= 0 {
		errs = append(errs, fmt.Errorf("--sweep-interval: must be positive, not %s", c.SweepInterval))
	}
	if c.Health.Interval <= 0 {
		errs = append(errs, fmt.Errorf("--probe-interval: must be positive, not %s", c.Health.Interval))
	}
	if c.Health.Failures < 1 {
		errs = append(errs, fmt.Errorf("--probe-failures: must be at least 1, not %d", c.Health.Failures))
	}
	if c.Health.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("--probe-timeout: must be positive, not %s", c.Health.Timeout))
	}
	if c.DriftInterval < 0 {
		errs = append(errs, fmt.Errorf("--drift-interval: must be positive (or 0: off), not %s", c.DriftInterval))
	}
	return errors.Join(errs...)
}

func envDuration(key string, def time.Duration) time.Duration {
	if v, ok := os.LookupEnv(key); ok {
		if d, err := time.ParseDuration(v); err == nil {
			return d
		}
	}
	return def
}
