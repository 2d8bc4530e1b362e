package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.temporal.io/sdk/client"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/activities"
	"github.com/cheops-io/cheops/api"
	"github.com/cheops-io/cheops/devstack"
	"github.com/cheops-io/cheops/devstack/etcdembed"
	"github.com/cheops-io/cheops/metrics"
	"github.com/cheops-io/cheops/seal"
	"github.com/cheops-io/cheops/store"
	"github.com/cheops-io/cheops/worker"
	"github.com/cheops-io/cheops/workflows"
)

// logConfig is how a long-running command logs.
type logConfig struct {
	Level, Format string
}

func (c *logConfig) register(fs *pflag.FlagSet) {
	fs.StringVar(&c.Level, "log-level", envOr("CHEOPS_LOG_LEVEL", "info"), "debug, info, warn or error (CHEOPS_LOG_LEVEL)")
	fs.StringVar(&c.Format, "log-format", envOr("CHEOPS_LOG_FORMAT", "text"), "text (key=value) or json, one object a line (CHEOPS_LOG_FORMAT)")
}

// temporalFormat is the embedded Temporal server's name for c.Format.
func (c logConfig) temporalFormat() string {
	if c.Format == "json" {
		return "json"
	}
	return "console"
}

// logger makes the logger c says, on standard error.
func (c logConfig) logger() (*slog.Logger, error) {
	return newLogger(os.Stderr, c.Level, c.Format)
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %q is not debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format: %q is not text or json", format)
}

// levelFloor drops records below a level, whatever the wrapped handler accepts.
type levelFloor struct {
	slog.Handler
	min slog.Level
}

func (h levelFloor) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h levelFloor) WithAttrs(a []slog.Attr) slog.Handler {
	return levelFloor{h.Handler.WithAttrs(a), h.min}
}

func (h levelFloor) WithGroup(name string) slog.Handler {
	return levelFloor{h.Handler.WithGroup(name), h.min}
}

// registerTemporalUI registers --temporal-ui-url, the Web UI the status page links workflows to.
func registerTemporalUI(fs *pflag.FlagSet, u *string, what string) {
	fs.StringVar(u, "temporal-ui-url", envOr("CHEOPS_TEMPORAL_UI_URL", ""), "base URL of the Temporal Web UI the status page (/ui) links each resource's workflow to, e.g. https://temporal.example:8233; "+what+" (CHEOPS_TEMPORAL_UI_URL)")
}

// uiConfig is what the status page links to: webUI, checked, in the namespace of the workflows.
func uiConfig(webUI, namespace string) (api.UIConfig, error) {
	if webUI != "" {
		if u, err := url.Parse(webUI); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return api.UIConfig{}, fmt.Errorf("--temporal-ui-url: %q is not an http:// or https:// URL", webUI)
		}
	}
	return api.UIConfig{TemporalWebUI: webUI, TemporalNamespace: namespace, WorkflowID: workflows.WorkflowID}, nil
}

// serveAPI runs the API on addr until ctx ends.
func serveAPI(ctx context.Context, listen listenConfig, s *store.Store, tc client.Client, taskQueue string, ui api.UIConfig, host hostConfig, authn api.Authenticator, m *metrics.Metrics, log *slog.Logger) error {
	e := api.New(api.Config{
		Store:        s,
		Metrics:      m,
		Orchestrator: &workflows.Client{Temporal: tc, TaskQueue: taskQueue},
		Drivers:      host.drivers(),
		Auth:         authn,
		UI:           ui,
		Ready: func(ctx context.Context) error {
			_, err := tc.CheckHealth(ctx, &client.CheckHealthRequest{})
			return err
		},
		Log: log,
	})
	tlsCfg, err := listen.tlsConfig()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen.Addr)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", listen.Addr, err)
	}
	scheme := "http://"
	if tlsCfg != nil {
		ln, scheme = tls.NewListener(ln, tlsCfg), "https://"
	} else {
		// net/http's own refusals as problem+json; under TLS net/http needs the *tls.Conn itself.
		ln = api.ProblemListener(ln)
	}
	log.Info("API listening", "address", scheme+ln.Addr().String(), "statusPage", scheme+ln.Addr().String()+"/ui",
		"clientCertificates", listen.ClientCA != "")
	srv := api.NewHTTPServer(e)
	srv.TLSConfig = tlsCfg
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return srv.Shutdown(sctx)
	}
}

// leaderTTL is how long a dead worker keeps leading the sweep, the prober and the drift monitor
// before another takes over.
const leaderTTL = 5 * time.Second

// workerID names this worker process in leader elections.
func workerID() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s/%d", host, os.Getpid())
}

// runWorker runs the Temporal worker, the resource sweeper, the site prober and the drift monitor
// until ctx ends.
func runWorker(ctx context.Context, tc client.Client, s *store.Store, tcfg temporalConfig, wcfg workerConfig, host hostConfig, m *metrics.Metrics, log *slog.Logger) error {
	if err := workflows.EnsureSearchAttributes(ctx, tc, tcfg.Namespace); err != nil {
		return err
	}
	drivers := host.drivers()
	w := worker.New(tc, tcfg.TaskQueue, &activities.Activities{Store: s, Drivers: drivers, Log: log}, m)
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	log.Info("worker polling", "taskQueue", tcfg.TaskQueue)
	wc := &workflows.Client{Temporal: tc, TaskQueue: tcfg.TaskQueue}
	// However many workers run, one sweeps, one probes and one watches for drift, so a site's failure threshold means the
	// same with one worker or five; a leader that dies hands over within about leaderTTL.
	id := workerID()
	var leaders sync.WaitGroup
	leaders.Go(func() {
		s.Lead(ctx, "sweep", id, leaderTTL, func(ctx context.Context) {
			log.Info("leading the resource sweep", "worker", id)
			worker.Sweep(ctx, s, wc, wcfg.SweepInterval, log)
		})
	})
	prober := &worker.Prober{Store: s, Drivers: drivers, Workflows: wc, Config: wcfg.Health, Log: log}
	leaders.Go(func() {
		s.Lead(ctx, "prober", id, leaderTTL, func(ctx context.Context) {
			log.Info("leading the site prober", "worker", id)
			prober.Run(ctx)
		})
	})
	// One worker watches the sites for drift: each object is watched once, however many workers run.
	if wcfg.DriftInterval > 0 {
		drift := &worker.DriftMonitor{Store: s, Drivers: drivers, Workflows: wc, Interval: wcfg.DriftInterval, Log: log}
		leaders.Go(func() {
			s.Lead(ctx, "drift", id, leaderTTL, func(ctx context.Context) {
				log.Info("leading the drift monitor", "worker", id)
				drift.Run(ctx)
			})
		})
	}
	<-ctx.Done()
	w.Stop()
	// The leaders resign through etcd: wait for them, so the caller closes etcd only after.
	leaders.Wait()
	return nil
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// ---- cheops dev ----

type devConfig struct {
	DataDir      string
	Listen       listenConfig
	TemporalPort int
	UIPort       int
	TemporalUI   string
	EtcdClient   string
	EtcdPeer     string
	Worker       bool
	WorkerConfig workerConfig
	Log          logConfig
	PprofAddr    string
	Host         hostConfig
	Seal         sealConfig
	Tokens       tokensConfig
	Demo         demoConfig
}

func newDevCmd() *cobra.Command {
	var c devConfig
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run everything in one process: embedded etcd, Temporal with its Web UI, the API and a worker",
		Long: `Run everything in one process: an embedded etcd, an embedded Temporal server (SQLite) with its
Web UI, the API and a worker. State lives under --data-dir and survives a restart: resources,
replicas and running workflows all come back.

--demo-sites N also runs N real kube-apiservers (paris, berlin, lyon; about 270 MB each) on the
embedded etcd, bound to 127.0.0.1, and registers them as sites; they stop with this process. Their
binary is built once by 'bash scripts/kube-tools.sh' ('make run' does); this command builds nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDev(c) },
	}
	fs := cmd.Flags()
	fs.StringVar(&c.DataDir, "data-dir", envOr("CHEOPS_DATA_DIR", ".cheops"), "folder of etcd's and Temporal's data (CHEOPS_DATA_DIR)")
	c.Listen.register(fs)
	fs.IntVar(&c.TemporalPort, "temporal-port", envInt("CHEOPS_TEMPORAL_PORT", 7233), "Temporal gRPC port on 127.0.0.1 (CHEOPS_TEMPORAL_PORT)")
	fs.IntVar(&c.UIPort, "ui-port", envInt("CHEOPS_UI_PORT", 8233), "Temporal Web UI port on 127.0.0.1; -1 disables it (CHEOPS_UI_PORT)")
	registerTemporalUI(fs, &c.TemporalUI, "default: the embedded one's, http://127.0.0.1:<ui-port>")
	fs.StringVar(&c.EtcdClient, "etcd-client-addr", envOr("CHEOPS_ETCD_CLIENT_ADDR", "127.0.0.1:2379"), "embedded etcd client address (CHEOPS_ETCD_CLIENT_ADDR)")
	fs.StringVar(&c.EtcdPeer, "etcd-peer-addr", envOr("CHEOPS_ETCD_PEER_ADDR", "127.0.0.1:2380"), "embedded etcd peer address (CHEOPS_ETCD_PEER_ADDR)")
	fs.BoolVar(&c.Worker, "worker", envOr("CHEOPS_DEV_WORKER", "true") == "true", "run a worker in this process (CHEOPS_DEV_WORKER); false leaves it to 'cheops worker'")
	c.WorkerConfig.register(fs)
	c.Host.register(fs)
	c.Seal.register(fs, "")
	c.Tokens.register(fs)
	c.Demo.register(fs)
	c.Log.register(fs)
	registerPprof(fs, &c.PprofAddr)
	return cmd
}

func envInt(key string, def int) int {
	if v, ok := os.LookupEnv(key); ok {
		if n, err := strconv.Atoi(v); err == nil {
			return n
		}
	}
	return def
}

func runDev(c devConfig) error {
	log, err := c.Log.logger()
	if err != nil {
		return err
	}
	if err := errors.Join(c.WorkerConfig.validate(), c.Host.validate(), c.Listen.validate(), c.Demo.validate()); err != nil {
		return err
	}
	if c.TemporalPort <= 0 || c.TemporalPort > 65535 {
		return fmt.Errorf("--temporal-port: %d is not a port", c.TemporalPort)
	}
	ui, err := uiConfig(c.TemporalUI, "default")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return fmt.Errorf("--data-dir: %w", err)
	}
	if c.Tokens.File == "" {
		// The dev server makes an admin token of its own, which the CLI finds (see clientFlags).
		c.Tokens.File = filepath.Join(c.DataDir, "tokens.yaml")
		created, err := ensureDevToken(c.Tokens.File, filepath.Join(c.DataDir, devTokenFile))
		if err != nil {
			return err
		}
		if created {
			tokenPath := filepath.Join(c.DataDir, devTokenFile)
			log.Info("made an admin token for this dev server; the CLI run from this folder uses it, others send it as a bearer token",
				"tokenFile", tokenPath, "tokensFile", c.Tokens.File,
				"example", `curl -H "Authorization: Bearer $(cat `+tokenPath+`)" http://`+c.Listen.Addr+`/v1/sites`)
		}
	}
	authn, err := c.Tokens.load(log)
	if err != nil {
		return err
	}
	if c.Seal.KeyFile == "" {
		// Two commands on a fresh machine: dev makes its own key, kept with its data.
		c.Seal.KeyFile = filepath.Join(c.DataDir, "encryption.keys")
		created, err := seal.EnsureKeyFile(c.Seal.KeyFile)
		if err != nil {
			return fmt.Errorf("create the encryption key file %s: %w", c.Seal.KeyFile, err)
		}
		if created {
			log.Info("made a key to seal site credentials; a separate 'cheops worker' needs it too", "encryptionKeyFile", c.Seal.KeyFile)
		}
	}
	if err := servePprof(c.PprofAddr, log); err != nil {
		return fmt.Errorf("--pprof-addr: %w", err)
	}
	ctx, stop := signalContext()
	defer stop()

	etcd, err := etcdembed.Start(etcdembed.Options{Dir: filepath.Join(c.DataDir, "etcd"), ClientAddr: c.EtcdClient, PeerAddr: c.EtcdPeer})
	if err != nil {
		return err
	}
	defer etcd.Close()
	log.Info("etcd ready", "endpoint", etcd.Endpoint)
	// The demo apiservers start while Temporal does, and stop before etcd, however runDev returns.
	demoStarted, demoStart := startDemoAsync(ctx, c, etcd.Endpoint, log)
	defer func() {
		stop()
		if d, _ := demoStarted(); d != nil {
			d.stop()
			log.Info("demo sites stopped")
		}
	}()
	tsrv, err := devstack.StartTemporal(devstack.TemporalOptions{
		DatabaseFile: filepath.Join(c.DataDir, "temporal.db"), IP: "127.0.0.1",
		FrontendPort: c.TemporalPort, UIPort: c.UIPort, LogFormat: c.Log.temporalFormat(),
	})
	if err != nil {
		return err
	}
	defer tsrv.Stop()
	log.Info("temporal ready", "address", tsrv.Address)
	if tsrv.UIAddress != "" {
		log.Info("temporal web ui", "url", "http://"+tsrv.UIAddress)
		if ui.TemporalWebUI == "" {
			ui.TemporalWebUI = "http://" + tsrv.UIAddress
		}
	}

	ec, err := clientv3.New(clientv3.Config{Endpoints: []string{etcd.Endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer ec.Close()
	tcfg := temporalConfig{Address: tsrv.Address, Namespace: "default", TaskQueue: workflows.DefaultTaskQueue}
	tc, err := tcfg.dial(log)
	if err != nil {
		return err
	}
	defer tc.Close()
	keys, err := c.Seal.load()
	if err != nil {
		return err
	}
	s := store.New(ec, "/cheops")
	s.SealWith(keys)
	if c.Demo.Sites > 0 {
		d, err := demoStarted()
		if err != nil {
			return fmt.Errorf("--demo-sites: %w", err)
		}
		if err := d.register(ctx, s, c.Host.drivers()[cheops.DriverKubernetes], log); err != nil {
			return err
		}
		log.Info("demo sites ready", "sites", c.Demo.Sites, "took", time.Since(demoStart).Round(time.Millisecond))
	}
	errc := make(chan error, 2)
	// One registry: the API's /metrics also shows the in-process worker's activity failures.
	m := newMetrics(s)
	running := 1
	go func() { errc <- serveAPI(ctx, c.Listen, s, tc, tcfg.TaskQueue, ui, c.Host, authn, m, log) }()
	if c.Worker {
		running++
		go func() { errc <- runWorker(ctx, tc, s, tcfg, c.WorkerConfig, c.Host, m, log) }()
	}
	var runErr error
	select {
	case runErr = <-errc:
		running--
	case <-ctx.Done():
		log.Info("shutting down")
	}
	stop()
	// The API and the worker stop before Temporal and etcd do (the deferred calls above): stopped
	// the other way round, they would log a retry for every call still under way.
	shutdown := time.After(30 * time.Second)
	for ; running > 0; running-- {
		select {
		case <-errc:
		case <-shutdown:
			log.Warn("the API or the worker did not stop within 30 s; stopping Temporal and etcd anyway")
			return runErr
		}
	}
	return runErr
}

// ---- cheops server / cheops worker ----

func newServerCmd() *cobra.Command {
	var tcfg temporalConfig
	var ecfg etcdConfig
	var host hostConfig
	var sc sealConfig
	var tokens tokensConfig
	var listen listenConfig
	var logs logConfig
	var pprofAddr, temporalUI string
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the API against an external Temporal and etcd",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := host.validate(); err != nil {
				return err
			}
			if err := errors.Join(tokens.validate(), listen.validate()); err != nil {
				return err
			}
			ui, err := uiConfig(temporalUI, tcfg.Namespace)
			if err != nil {
				return err
			}
			return runExternal(tcfg, ecfg, sc, logs, pprofAddr, func(ctx context.Context, tc client.Client, s *store.Store, log *slog.Logger) error {
				authn, err := tokens.load(log)
				if err != nil {
					return err
				}
				return serveAPI(ctx, listen, s, tc, tcfg.TaskQueue, ui, host, authn, newMetrics(s), log)
			})
		},
	}
	tcfg.register(cmd.Flags())
	ecfg.register(cmd.Flags())
	host.register(cmd.Flags())
	sc.register(cmd.Flags(), "")
	tokens.register(cmd.Flags())
	listen.register(cmd.Flags())
	registerTemporalUI(cmd.Flags(), &temporalUI, "default: none, no link")
	logs.register(cmd.Flags())
	registerPprof(cmd.Flags(), &pprofAddr)
	return cmd
}

func newWorkerCmd() *cobra.Command {
	var tcfg temporalConfig
	var ecfg etcdConfig
	var logs logConfig
	var pprofAddr, metricsAddr string
	var wcfg workerConfig
	var host hostConfig
	var sc sealConfig
	cmd := &cobra.Command{
		Use:   "worker",
		Short: "Run the Temporal worker (workflows and activities), the sweeper, the site prober and the drift monitor against an external Temporal and etcd",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := errors.Join(wcfg.validate(), host.validate()); err != nil {
				return err
			}
			if metricsAddr != "" {
				if _, err := metricsListenAddr(metricsAddr); err != nil {
					return fmt.Errorf("--metrics-addr: %w", err)
				}
			}
			return runExternal(tcfg, ecfg, sc, logs, pprofAddr, func(ctx context.Context, tc client.Client, s *store.Store, log *slog.Logger) error {
				// Replicas and site health come from the API's /metrics, read from etcd there:
				// served by every worker too, they would be counted once per worker.
				m := newMetrics(nil)
				if err := serveMetrics(metricsAddr, m, log); err != nil {
					return fmt.Errorf("--metrics-addr: %w", err)
				}
				return runWorker(ctx, tc, s, tcfg, wcfg, host, m, log)
			})
		},
	}
	tcfg.register(cmd.Flags())
	ecfg.register(cmd.Flags())
	logs.register(cmd.Flags())
	wcfg.register(cmd.Flags())
	host.register(cmd.Flags())
	sc.register(cmd.Flags(), "")
	registerPprof(cmd.Flags(), &pprofAddr)
	registerMetricsAddr(cmd.Flags(), &metricsAddr)
	return cmd
}

func runExternal(tcfg temporalConfig, ecfg etcdConfig, sc sealConfig, logs logConfig, pprofAddr string, run func(context.Context, client.Client, *store.Store, *slog.Logger) error) error {
	log, err := logs.logger()
	if err != nil {
		return err
	}
	if err := errors.Join(tcfg.validate(), ecfg.validate()); err != nil {
		return err
	}
	keys, err := sc.load()
	if err != nil {
		return err
	}
	if err := servePprof(pprofAddr, log); err != nil {
		return fmt.Errorf("--pprof-addr: %w", err)
	}
	ec, err := ecfg.dial()
	if err != nil {
		return err
	}
	defer ec.Close()
	tc, err := tcfg.dial(log)
	if err != nil {
		return err
	}
	defer tc.Close()
	s := store.New(ec, strings.TrimSuffix(ecfg.Prefix, "/"))
	s.SealWith(keys)
	ctx, stop := signalContext()
	defer stop()
	return run(ctx, tc, s, log)
}

// sdkMetrics gathers the Temporal SDK's own metrics (requests, polls, task latencies, …) of every
// Temporal client of the process, for its /metrics.
var sdkMetrics = metrics.NewSDK()

// newMetrics is the process's registry: cheops' metrics and the Temporal SDK's.
func newMetrics(s *store.Store) *metrics.Metrics {
	m := metrics.New(s)
	m.Registry().MustRegister(sdkMetrics)
	return m
}
