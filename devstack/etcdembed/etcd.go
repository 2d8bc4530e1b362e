// Package etcdembed runs a single-member etcd inside the process, for `cheops dev` and the tests;
// production deployments use an external etcd cluster instead.
package etcdembed

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"go.etcd.io/etcd/server/v3/embed"

	"github.com/cheops-io/cheops/internal/freeport"
)

// Options configure an embedded etcd.
type Options struct {
	// Dir is the data folder; state survives a restart on the same folder.
	Dir string
	// ClientAddr and PeerAddr are host:port listen addresses; port 0 picks a free one.
	ClientAddr string
	PeerAddr   string
}

// Etcd is a running embedded etcd.
type Etcd struct {
	e *embed.Etcd
	// Endpoint is the client URL to dial.
	Endpoint string
}

// Start starts a single-member etcd and waits until it serves.
func Start(o Options) (*Etcd, error) {
	clientAddr, err := freeport.Resolve(o.ClientAddr)
	if err != nil {
		return nil, fmt.Errorf("etcd client address: %w", err)
	}
	peerAddr, err := freeport.Resolve(o.PeerAddr)
	if err != nil {
		return nil, fmt.Errorf("etcd peer address: %w", err)
	}
	cfg := embed.NewConfig()
	cfg.Name = "cheops"
	cfg.Dir = o.Dir
	cfg.LogLevel = "error"
	lg, err := closingQuietly()
	if err != nil {
		return nil, err
	}
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(lg)
	cu := url.URL{Scheme: "http", Host: clientAddr}
	pu := url.URL{Scheme: "http", Host: peerAddr}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start etcd in %s: %w", o.Dir, err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("etcd failed: %w", err)
	case <-time.After(60 * time.Second):
		e.Close()
		return nil, fmt.Errorf("etcd in %s not ready after 60s", o.Dir)
	}
	return &Etcd{e: e, Endpoint: cu.String()}, nil
}

// Close stops etcd.
func (e *Etcd) Close() { e.e.Close() }

// closingQuietly is etcd's logger at error level, without the errors its own Close logs about the
// listeners it is closing ("setting up serving from embedded etcd failed: http: Server closed"):
// four lines at ERROR, with stack traces, at every clean stop.
func closingQuietly() (*zap.Logger, error) {
	cfg := zap.NewProductionConfig()
	cfg.Level = zap.NewAtomicLevelAt(zap.ErrorLevel)
	lg, err := cfg.Build()
	if err != nil {
		return nil, fmt.Errorf("etcd logger: %w", err)
	}
	return lg.WithOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return closingCore{c} })), nil
}

// closingCore drops the entries closingQuietly describes.
type closingCore struct{ zapcore.Core }

func (c closingCore) With(fields []zapcore.Field) zapcore.Core {
	return closingCore{c.Core.With(fields)}
}

func (c closingCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c closingCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	if e.Message == "setting up serving from embedded etcd failed." {
		for _, f := range fields {
			if err, ok := f.Interface.(error); ok && closedListener(err.Error()) {
				return nil
			}
		}
	}
	return c.Core.Write(e, fields)
}

func closedListener(s string) bool {
	return strings.Contains(s, "Server closed") || strings.Contains(s, "server closed") || strings.Contains(s, "use of closed network connection")
}
