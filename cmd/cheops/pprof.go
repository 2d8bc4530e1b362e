package main

import (
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"

	"github.com/spf13/pflag"

	"github.com/cheops-io/cheops/api"
)

// registerPprof adds --pprof-addr to a command's flags.
func registerPprof(fs *pflag.FlagSet, addr *string) {
	fs.StringVar(addr, "pprof-addr", envOr("CHEOPS_PPROF_ADDR", ""), "serve Go profiles (net/http/pprof) on this address, e.g. 127.0.0.1:6060; off when empty (CHEOPS_PPROF_ADDR)")
}

// servePprof serves the profiling endpoints on addr until the process ends.
func servePprof(addr string, log *slog.Logger) error {
	if addr == "" {
		return nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	log.Info("pprof listening", "address", "http://"+ln.Addr().String()+"/debug/pprof/")
	// No WriteTimeout: a CPU profile or trace is written for as long as ?seconds= asks.
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: api.ReadHeaderTimeout, ReadTimeout: api.ReadTimeout, IdleTimeout: api.IdleTimeout}
	go func() { _ = srv.Serve(ln) }()
	return nil
}
