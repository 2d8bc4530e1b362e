// Package etcdembed runs a single-member etcd inside the process, for `cheops dev` and the tests;
// production deployments use an external etcd cluster instead.
package etcdembed

import (
	"fmt"
	"net/url"
	"time"

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
