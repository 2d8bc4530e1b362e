package main

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/cheops-io/cheops/client"
)

// clientFlags are the flags every client command shares.
type clientFlags struct {
	Server string
	Output string
	Token  string
}

func (f *clientFlags) register(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&f.Server, "server", envOr("CHEOPS_SERVER", "http://127.0.0.1:8080"), "API address (CHEOPS_SERVER)")
	cmd.PersistentFlags().StringVarP(&f.Output, "output", "o", envOr("CHEOPS_OUTPUT", "table"), "output format: table, json or yaml (CHEOPS_OUTPUT)")
	cmd.PersistentFlags().StringVar(&f.Token, "token", "", "bearer token of the API (CHEOPS_TOKEN; against a dev server on this machine, its <data-dir>/dev-token by default)")
}

// api returns a client of the API at --server, with the token of --token, CHEOPS_TOKEN, or the
// dev server's.
func (f *clientFlags) api() (*client.Client, error) {
	token := f.Token
	if token == "" {
		token = os.Getenv("CHEOPS_TOKEN")
	}
	if token == "" && loopback(f.Server) {
		token = devToken()
	}
	opts := []client.Option{client.WithUserAgent("cheops-cli")}
	if token != "" {
		opts = append(opts, client.WithBearerToken(token))
	}
	c, err := client.New(f.Server, opts...)
	if err != nil {
		return nil, usageError{fmt.Errorf("--server (CHEOPS_SERVER): %w", err)}
	}
	return c, nil
}

// loopback reports whether an API address is on this machine, where a dev server's token may be
// found; it is never sent anywhere else.
func loopback(server string) bool {
	u, err := url.Parse(server)
	if err != nil {
		return false
	}
	if u.Hostname() == "localhost" {
		return true
	}
	ip := net.ParseIP(u.Hostname())
	return ip != nil && ip.IsLoopback()
}

// devToken is the admin token 'cheops dev' made in its data folder (CHEOPS_DATA_DIR, or .cheops
// here, as 'make run' uses), or "".
func devToken() string {
	b, err := os.ReadFile(filepath.Join(envOr("CHEOPS_DATA_DIR", ".cheops"), devTokenFile))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
