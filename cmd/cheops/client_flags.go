package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/cheops-io/cheops/client"
)

// clientFlags are the flags every client command shares. A flag not given falls back to its
// environment variable, then to the config file 'cheops login' writes.
type clientFlags struct {
	Server string
	Output string
	Token  string
	CA     string
}

func (f *clientFlags) register(cmd *cobra.Command) {
	cmd.PersistentFlags().StringVar(&f.Server, "server", "", "API address (CHEOPS_SERVER; then the login config; default http://127.0.0.1:8080)")
	cmd.PersistentFlags().StringVarP(&f.Output, "output", "o", envOr("CHEOPS_OUTPUT", "table"), "output format: table, json or yaml (CHEOPS_OUTPUT)")
	cmd.PersistentFlags().StringVar(&f.Token, "token", "", "bearer token of the API (CHEOPS_TOKEN; then the login config; against a dev server on this machine, its <data-dir>/dev-token)")
	cmd.PersistentFlags().StringVar(&f.CA, "ca", "", "PEM bundle to verify an https API's certificate with (CHEOPS_CA; then the login config)")
}

// loginConfig is what 'cheops login' keeps, readable by its owner only.
type loginConfig struct {
	Server string `json:"server,omitempty"`
	Token  string `json:"token,omitempty"`
	CA     string `json:"ca,omitempty"`
}

// loginPath is where the login config lives: $CHEOPS_CONFIG, or cheops/config under the user's
// config folder (~/.config/cheops/config).
func loginPath() string {
	if p := os.Getenv("CHEOPS_CONFIG"); p != "" {
		return p
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	return filepath.Join(dir, "cheops", "config")
}

func readLogin() loginConfig {
	var c loginConfig
	if p := loginPath(); p != "" {
		if b, err := os.ReadFile(p); err == nil {
			_ = yaml.Unmarshal(b, &c)
		}
	}
	return c
}

// resolve fills what the flags leave out from the environment, the login config and defaults.
func (f *clientFlags) resolve() (server, token, ca string) {
	login := readLogin()
	pick := func(flag, env, saved, def string) string {
		for _, v := range []string{flag, os.Getenv(env), saved} {
			if v != "" {
				return v
			}
		}
		return def
	}
	server = pick(f.Server, "CHEOPS_SERVER", login.Server, "http://127.0.0.1:8080")
	token = pick(f.Token, "CHEOPS_TOKEN", "", "")
	if token == "" && strings.TrimSuffix(server, "/") == strings.TrimSuffix(login.Server, "/") {
		token = login.Token // a saved token goes only to the server it was saved for
	}
	if token == "" && loopback(server) {
		token = devToken()
	}
	return server, token, pick(f.CA, "CHEOPS_CA", login.CA, "")
}

// api returns a client of the API, with its token and CA.
func (f *clientFlags) api() (*client.Client, error) {
	server, token, ca := f.resolve()
	return newAPIClient(server, token, ca)
}

func newAPIClient(server, token, ca string) (*client.Client, error) {
	opts := []client.Option{client.WithUserAgent("cheops-cli")}
	if token != "" {
		opts = append(opts, client.WithBearerToken(token))
	}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, usageError{fmt.Errorf("--ca: %w", err)}
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, usageError{fmt.Errorf("--ca: %s holds no PEM certificate", ca)}
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		opts = append(opts, client.WithHTTPClient(&http.Client{Transport: tr}))
	}
	c, err := client.New(server, opts...)
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

// newLoginCmd checks a server and token, and saves them for the next commands.
func newLoginCmd(f *clientFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "login --server URL --token TOKEN [--ca FILE]",
		Short: "Check a server and token, and keep them (in ~/.config/cheops/config) for the next commands",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			server, token, ca := f.resolve()
			if token == "" {
				return usageError{fmt.Errorf("--token (or CHEOPS_TOKEN) is required")}
			}
			c, err := newAPIClient(server, token, ca)
			if err != nil {
				return err
			}
			if _, err := c.ListSites(cmd.Context()); err != nil {
				return fmt.Errorf("%s does not take this token: %w", server, err)
			}
			path := loginPath()
			if path == "" {
				return fmt.Errorf("no config folder for this user (set CHEOPS_CONFIG)")
			}
			b, _ := yaml.Marshal(loginConfig{Server: server, Token: token, CA: ca})
			if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
				return err
			}
			if err := os.WriteFile(path, b, 0o600); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "logged in to %s; saved in %s\n", server, path)
			return err
		},
	}
}
