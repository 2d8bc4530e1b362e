// Package devstack runs an embedded Temporal server (SQLite persistence) with its Web UI inside the
// process, for `cheops dev` and the tests; production deployments use an external Temporal cluster.
package devstack

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	uiserver "github.com/temporalio/ui-server/v2/server"
	uiconfig "github.com/temporalio/ui-server/v2/server/config"
	uiserveroptions "github.com/temporalio/ui-server/v2/server/server_options"
	"go.temporal.io/server/common/cluster"
	"go.temporal.io/server/common/config"
	tlog "go.temporal.io/server/common/log"
	sqliteplugin "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	sqliteschema "go.temporal.io/server/schema/sqlite"
	"go.temporal.io/server/temporal"

	"github.com/cheops-io/cheops/internal/freeport"
	"github.com/cheops-io/cheops/workflows"
)

// TemporalOptions configure the embedded Temporal server.
type TemporalOptions struct {
	// DatabaseFile is the SQLite file; empty means in memory.
	DatabaseFile string
	// IP is the address every Temporal listener binds to.
	IP string
	// FrontendPort is the gRPC port clients dial (0 picks a free one).
	FrontendPort int
	// UIPort is the Web UI's port; 0 picks a free one, -1 disables the UI.
	UIPort    int
	Namespace string
	// LogLevel is the server's log level (default "warn").
	LogLevel string
	// LogFormat is "console" (the default) or "json", one object a line.
	LogFormat string
}

// Temporal is a running embedded Temporal server.
type Temporal struct {
	server   temporal.Server
	stopping *atomic.Bool
	ui       *uiserver.Server
	// Address is the frontend's host:port.
	Address string
	// UIAddress is the Web UI's host:port, empty without UI.
	UIAddress string
}

// StartTemporal starts a single-process Temporal server (frontend, history, matching and worker
// services) and, unless disabled, its Web UI.
func StartTemporal(o TemporalOptions) (*Temporal, error) {
	if o.IP == "" {
		o.IP = "127.0.0.1"
	}
	if o.Namespace == "" {
		o.Namespace = "default"
	}
	if o.LogFormat == "" {
		o.LogFormat = "console"
	}
	if o.LogLevel == "" {
		o.LogLevel = "warn"
	}
	var err error
	if o.FrontendPort == 0 {
		if o.FrontendPort, err = freeport.On(o.IP); err != nil {
			return nil, err
		}
	}
	cfg, err := temporalConfig(o)
	if err != nil {
		return nil, err
	}
	stopping := &atomic.Bool{}
	logger := tlog.NewZapLogger(quietLogger(tlog.BuildZapLogger(tlog.Config{Level: o.LogLevel, Format: o.LogFormat}), stopping))
	srv, err := temporal.NewServer(
		temporal.WithConfig(cfg),
		temporal.ForServices(temporal.DefaultServices),
		temporal.WithLogger(logger),
	)
	if err != nil {
		return nil, fmt.Errorf("build temporal server: %w", err)
	}
	if err := srv.Start(); err != nil {
		return nil, fmt.Errorf("start temporal server: %w", err)
	}
	t := &Temporal{server: srv, stopping: stopping, Address: net.JoinHostPort(o.IP, strconv.Itoa(o.FrontendPort))}
	if o.UIPort >= 0 {
		if o.UIPort == 0 {
			if o.UIPort, err = freeport.On(o.IP); err != nil {
				srv.Stop()
				return nil, err
			}
		}
		t.UIAddress = net.JoinHostPort(o.IP, strconv.Itoa(o.UIPort))
		t.ui = uiserver.NewServer(uiserveroptions.WithConfigProvider(&uiconfig.Config{
			Host:                o.IP,
			Port:                o.UIPort,
			TemporalGRPCAddress: t.Address,
			EnableUI:            true,
			DefaultNamespace:    o.Namespace,
			CORS:                uiconfig.CORS{CookieInsecure: true},
			HideLogs:            true,
		}))
		uiErr := make(chan error, 1)
		go func() { uiErr <- t.ui.Start() }()
		if err := waitListening(t.UIAddress, uiErr, 20*time.Second); err != nil {
			t.Stop()
			return nil, fmt.Errorf("temporal web ui: %w", err)
		}
	}
	return t, nil
}

// Stop stops the UI and the server.
func (t *Temporal) Stop() {
	t.stopping.Store(true)
	if t.ui != nil {
		t.ui.Stop()
	}
	t.server.Stop()
}

func temporalConfig(o TemporalOptions) (*config.Config, error) {
	sqlCfg := config.SQL{PluginName: sqliteplugin.PluginName}
	if o.DatabaseFile == "" {
		sqlCfg.ConnectAttributes = map[string]string{"mode": "memory", "cache": "shared"}
		sqlCfg.DatabaseName = fmt.Sprintf("cheops-%d", time.Now().UnixNano())
	} else {
		// WAL with synchronous=NORMAL: a commit is in the WAL file before it returns, so a crash of
		// the process loses nothing; only a power loss can drop the last commits. FULL would fsync
		// every commit, which profiles showed to be the largest CPU cost of a replication.
		// Keys other than the driver's own become "_pragma=key=value" in the DSN.
		sqlCfg.ConnectAttributes = map[string]string{"mode": "rwc", "journal_mode": "wal", "synchronous": "normal", "busy_timeout": "10000"}
		// WAL lets readers run beside the one writer.
		sqlCfg.MaxConns, sqlCfg.MaxIdleConns = 4, 4
		sqlCfg.DatabaseName = o.DatabaseFile
	}
	// An in-memory database gets its schema from the SQLite plugin; a new file needs it set up.
	if _, err := os.Stat(o.DatabaseFile); o.DatabaseFile != "" && errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(o.DatabaseFile), 0o700); err != nil {
			return nil, err
		}
		if err := sqliteschema.SetupSchema(&sqlCfg); err != nil {
			return nil, fmt.Errorf("set up temporal schema: %w", err)
		}
	}
	const clusterName = "active"
	ns, err := sqliteschema.NewNamespaceConfig(clusterName, o.Namespace, false, workflows.SearchAttributes)
	if err != nil {
		return nil, err
	}
	if err := sqliteschema.CreateNamespaces(&sqlCfg, ns); err != nil {
		return nil, fmt.Errorf("create namespace %s: %w", o.Namespace, err)
	}

	var cfg config.Config
	cfg.Global.Membership.MaxJoinDuration = 10 * time.Second
	cfg.Global.Membership.BroadcastAddress = o.IP
	cfg.Persistence.DefaultStore = "sqlite"
	cfg.Persistence.VisibilityStore = "sqlite"
	cfg.Persistence.NumHistoryShards = 1
	cfg.Persistence.DataStores = map[string]config.DataStore{"sqlite": {SQL: &sqlCfg}}
	cfg.ClusterMetadata = &cluster.Config{
		EnableGlobalNamespace:    false,
		FailoverVersionIncrement: 10,
		MasterClusterName:        clusterName,
		CurrentClusterName:       clusterName,
		ClusterInformation: map[string]cluster.ClusterInformation{
			clusterName: {
				Enabled:                true,
				InitialFailoverVersion: 1,
				RPCAddress:             net.JoinHostPort(o.IP, strconv.Itoa(o.FrontendPort)),
				ClusterID:              "6c1e0e4a-2f4b-4c59-9d43-0f6a1c2d7e01", // fixed: one dev cluster per data folder
			},
		},
	}
	cfg.DCRedirectionPolicy.Policy = "noop"
	ports, err := loadPorts(o.DatabaseFile, o.IP)
	if err != nil {
		return nil, err
	}
	cfg.Services = map[string]config.Service{}
	for _, name := range []string{"frontend", "history", "matching", "worker"} {
		var svc config.Service
		svc.RPC.BindOnIP = o.IP
		svc.RPC.GRPCPort = o.FrontendPort
		if name != "frontend" {
			if svc.RPC.GRPCPort, err = ports.get(name + ".grpc"); err != nil {
				return nil, err
			}
		}
		if svc.RPC.MembershipPort, err = ports.get(name + ".membership"); err != nil {
			return nil, err
		}
		cfg.Services[name] = svc
	}
	if err := ports.save(); err != nil {
		return nil, err
	}
	cfg.Archival.History.State = "disabled"
	cfg.Archival.Visibility.State = "disabled"
	cfg.NamespaceDefaults.Archival.History.State = "disabled"
	cfg.NamespaceDefaults.Archival.Visibility.State = "disabled"
	cfg.PublicClient.HostPort = net.JoinHostPort(o.IP, strconv.Itoa(o.FrontendPort))
	return &cfg, nil
}

func waitListening(addr string, failed <-chan error, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case err := <-failed:
			return err
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not listening after %s", addr, timeout)
}

// internalPorts remembers the ports of Temporal's internal services next to its database. The
// membership table in the database lists the hosts of the previous run; were the ports new on every
// start, each restart would wait for those dead hosts before serving (seen: ~50 s).
type internalPorts struct {
	file  string
	ip    string
	Ports map[string]int `json:"ports"`
}

func loadPorts(dbFile, ip string) (*internalPorts, error) {
	p := &internalPorts{ip: ip, Ports: map[string]int{}}
	if dbFile == "" {
		return p, nil
	}
	p.file = dbFile + ".ports.json"
	b, err := os.ReadFile(p.file)
	if errors.Is(err, os.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, p); err != nil {
		return nil, fmt.Errorf("%s: %w", p.file, err)
	}
	return p, nil
}

// get returns the remembered port for key if it is still free, or a new free one.
func (p *internalPorts) get(key string) (int, error) {
	if port, ok := p.Ports[key]; ok {
		if l, err := net.Listen("tcp", net.JoinHostPort(p.ip, strconv.Itoa(port))); err == nil {
			l.Close()
			return port, nil
		}
	}
	port, err := freeport.On(p.ip)
	if err != nil {
		return 0, err
	}
	p.Ports[key] = port
	return port, nil
}

func (p *internalPorts) save() error {
	if p.file == "" {
		return nil
	}
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return os.WriteFile(p.file, b, 0o600)
}
