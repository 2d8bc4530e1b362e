package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/auth"
	"github.com/cheops-io/cheops/drivers/kubernetes"
	"github.com/cheops-io/cheops/drivers/openstack"
	"github.com/cheops-io/cheops/seal"
)

// hostConfig is what a site's settings may make this process do on its host. The API checks a
// site against it when the site is written; a worker checks again when it uses the site, so both
// must be given the same settings.
type hostConfig struct {
	// FilesDir is the only folder whose files a site may name (kubeconfigPath, cloudsFile, caFile).
	FilesDir string
	// AllowExec lets kubeconfigs run exec and auth-provider plugins.
	AllowExec bool
	// ImageNetworks are the networks image bytes may be fetched from.
	ImageNetworks []string
}

func (c *hostConfig) register(fs *pflag.FlagSet) {
	fs.StringVar(&c.FilesDir, "site-files-dir", envOr("CHEOPS_SITE_FILES_DIR", ""), "the only folder of this host whose files a site may name (kubeconfigPath, cloudsFile, caFile); empty: none (CHEOPS_SITE_FILES_DIR)")
	fs.BoolVar(&c.AllowExec, "allow-kubeconfig-exec", envOr("CHEOPS_ALLOW_KUBECONFIG_EXEC", "") == "true", "let site kubeconfigs run exec and auth-provider plugins, i.e. programs on this host (CHEOPS_ALLOW_KUBECONFIG_EXEC)")
	fs.StringSliceVar(&c.ImageNetworks, "image-networks", splitEnv("CHEOPS_IMAGE_NETWORKS"), "networks and addresses OpenStack image URLs may be fetched from; empty: any but loopback, link-local and multicast (CHEOPS_IMAGE_NETWORKS)")
}

func splitEnv(key string) []string {
	if v := os.Getenv(key); v != "" {
		return strings.Split(v, ",")
	}
	return nil
}

func (c *hostConfig) validate() error {
	if c.FilesDir != "" {
		if !filepath.IsAbs(c.FilesDir) {
			return fmt.Errorf("--site-files-dir: %q is not an absolute path", c.FilesDir)
		}
		if st, err := os.Stat(c.FilesDir); err != nil || !st.IsDir() {
			return fmt.Errorf("--site-files-dir: %s is not a folder", c.FilesDir)
		}
	}
	if _, err := openstack.ParseNetworks(c.ImageNetworks); err != nil {
		return fmt.Errorf("--image-networks: %w", err)
	}
	return nil
}

// drivers returns the drivers, bound by the host settings.
func (c hostConfig) drivers() map[cheops.DriverName]cheops.Driver {
	k := kubernetes.New()
	k.FilesDir, k.AllowExec = c.FilesDir, c.AllowExec
	o := openstack.New()
	o.FilesDir = c.FilesDir
	o.ImageSources.Networks, _ = openstack.ParseNetworks(c.ImageNetworks) // checked by validate
	return map[cheops.DriverName]cheops.Driver{cheops.DriverKubernetes: k, cheops.DriverOpenStack: o}
}

// sealConfig is where the keys that seal site credentials at rest are.
type sealConfig struct {
	KeyFile string
}

func (c *sealConfig) register(fs *pflag.FlagSet, def string) {
	fs.StringVar(&c.KeyFile, "encryption-key-file", envOr("CHEOPS_ENCRYPTION_KEY_FILE", def),
		"file of the keys that seal site credentials in etcd, one '<id>:<base64 of 32 bytes>' a line, the last one sealing; 'cheops admin new-key' makes one (CHEOPS_ENCRYPTION_KEY_FILE)")
}

// load reads the keys.
func (c sealConfig) load() (*seal.Keyring, error) {
	if c.KeyFile == "" {
		return nil, errors.New("--encryption-key-file is required: site credentials are sealed at rest (make a key file with 'cheops admin new-key > keys')")
	}
	k, err := seal.LoadKeys(c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("--encryption-key-file: %w", err)
	}
	return k, nil
}

// tokensConfig is how the API authenticates bearer tokens: a tokens file, OpenID Connect ID
// tokens, or both.
type tokensConfig struct {
	File string
	// OIDC holds the flags' values; it is used only when an issuer is given.
	OIDC *auth.OIDC
}

func (c *tokensConfig) register(fs *pflag.FlagSet) {
	fs.StringVar(&c.File, "tokens-file", envOr("CHEOPS_TOKENS_FILE", ""),
		"YAML file of the API's tokens, 'tokens: [{name, role: viewer|operator|admin, sha256, sites: <selector>}]', re-read when it changes; 'cheops admin new-token' makes an entry (CHEOPS_TOKENS_FILE; dev: <data-dir>/tokens.yaml)")
	c.OIDC = &auth.OIDC{}
	fs.StringVar(&c.OIDC.Issuer, "oidc-issuer", envOr("CHEOPS_OIDC_ISSUER", ""), "also accept OpenID Connect ID tokens of this issuer URL (CHEOPS_OIDC_ISSUER)")
	fs.StringVar(&c.OIDC.Audience, "oidc-audience", envOr("CHEOPS_OIDC_AUDIENCE", ""), "the client ID ID tokens must be issued for (CHEOPS_OIDC_AUDIENCE)")
	fs.StringVar(&c.OIDC.RoleClaim, "oidc-role-claim", envOr("CHEOPS_OIDC_ROLE_CLAIM", "cheops_role"), "claim holding the role, a string or a list (CHEOPS_OIDC_ROLE_CLAIM)")
	fs.StringVar(&c.OIDC.NameClaim, "oidc-name-claim", envOr("CHEOPS_OIDC_NAME_CLAIM", "sub"), "claim recorded as the actor (CHEOPS_OIDC_NAME_CLAIM)")
	fs.StringVar(&c.OIDC.SitesClaim, "oidc-sites-claim", envOr("CHEOPS_OIDC_SITES_CLAIM", ""), "claim holding a site selector the caller is bound to (CHEOPS_OIDC_SITES_CLAIM)")
}

// validate checks that some authentication is configured, and OIDC's settings go together.
func (c *tokensConfig) validate() error {
	if c.File == "" && c.OIDC.Issuer == "" {
		return errors.New("--tokens-file or --oidc-issuer is required: every route but health needs a bearer token (make one with 'cheops admin new-token')")
	}
	if (c.OIDC.Issuer == "") != (c.OIDC.Audience == "") {
		return errors.New("--oidc-issuer and --oidc-audience go together")
	}
	if c.OIDC.Issuer != "" && !strings.HasPrefix(c.OIDC.Issuer, "https://") && !strings.HasPrefix(c.OIDC.Issuer, "http://127.0.0.1") && !strings.HasPrefix(c.OIDC.Issuer, "http://localhost") {
		return fmt.Errorf("--oidc-issuer: %q must be an https URL", c.OIDC.Issuer)
	}
	return nil
}

// load reads the tokens file; later changes are read as they come, and a change that does not
// parse is logged and leaves the tokens read before in force.
func (c *tokensConfig) load(log *slog.Logger) (auth.Authenticator, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	var chain auth.Chain
	if c.File != "" {
		f, err := auth.LoadTokenFile(c.File)
		if err != nil {
			return nil, fmt.Errorf("--tokens-file: %w", err)
		}
		f.OnError = func(err error) { log.Error("tokens file changed but cannot be read", "error", err) }
		chain = append(chain, f)
	}
	if c.OIDC.Issuer != "" {
		chain = append(chain, c.OIDC)
	}
	return chain, nil
}

// devTokenFile is where, in its data folder, 'cheops dev' keeps its admin token.
const devTokenFile = "dev-token"

// ensureDevToken makes an admin token for a dev server, unless its tokens file exists: the token
// in tokenPath (readable by its owner only), its hash in tokensFile.
func ensureDevToken(tokensFile, tokenPath string) (bool, error) {
	if _, err := os.Stat(tokensFile); err == nil {
		return false, nil
	}
	token, err := auth.NewToken()
	if err != nil {
		return false, err
	}
	if err := os.WriteFile(tokenPath, []byte(token+"\n"), 0o600); err != nil {
		return false, fmt.Errorf("write the dev token: %w", err)
	}
	doc := fmt.Sprintf("# The API's tokens: name, role (viewer, operator, admin), the token's SHA-256, optional sites selector.\ntokens:\n- {name: dev-admin, role: admin, sha256: %s}\n", auth.Hash(token))
	if err := os.WriteFile(tokensFile, []byte(doc), 0o600); err != nil {
		return false, fmt.Errorf("write the dev tokens file: %w", err)
	}
	return true, nil
}

// listenConfig is how the API serves: TLS, optionally verifying client certificates (mTLS), or
// plain HTTP, which is refused off this machine unless asked for.
type listenConfig struct {
	Addr            string
	TLSCert, TLSKey string
	ClientCA        string
	InsecureHTTP    bool
}

func (c *listenConfig) register(fs *pflag.FlagSet) {
	fs.StringVar(&c.Addr, "listen", envOr("CHEOPS_LISTEN", "127.0.0.1:8080"), "API listen address (CHEOPS_LISTEN)")
	fs.StringVar(&c.TLSCert, "tls-cert", envOr("CHEOPS_TLS_CERT", ""), "serve the API over TLS with this certificate (CHEOPS_TLS_CERT)")
	fs.StringVar(&c.TLSKey, "tls-key", envOr("CHEOPS_TLS_KEY", ""), "the certificate's key (CHEOPS_TLS_KEY)")
	fs.StringVar(&c.ClientCA, "client-ca", envOr("CHEOPS_CLIENT_CA", ""), "also accept client certificates signed by this CA; the subject's CN is the actor, an OU names the role (CHEOPS_CLIENT_CA)")
	fs.BoolVar(&c.InsecureHTTP, "insecure-http", envOr("CHEOPS_INSECURE_HTTP", "") == "true", "serve plain HTTP on an address other than loopback (behind a TLS-terminating proxy) (CHEOPS_INSECURE_HTTP)")
}

func (c *listenConfig) validate() error {
	host, _, err := net.SplitHostPort(c.Addr)
	if err != nil {
		return fmt.Errorf("--listen: %q is not host:port", c.Addr)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if c.ClientCA != "" && c.TLSCert == "" {
		return errors.New("--client-ca needs --tls-cert and --tls-key: client certificates come with TLS")
	}
	ip := net.ParseIP(host)
	local := host == "localhost" || ip != nil && ip.IsLoopback()
	if c.TLSCert == "" && !local && !c.InsecureHTTP {
		return fmt.Errorf("--listen %s: refusing to serve the API, which holds every site's credentials, over plain HTTP off this machine; give --tls-cert and --tls-key, or --insecure-http behind a TLS-terminating proxy", c.Addr)
	}
	return nil
}

// tlsConfig is the server's TLS configuration, or nil for plain HTTP.
func (c *listenConfig) tlsConfig() (*tls.Config, error) {
	if c.TLSCert == "" {
		return nil, nil
	}
	pair, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
	if c.ClientCA != "" {
		pem, err := os.ReadFile(c.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("--client-ca: %w", err)
		}
		cfg.ClientCAs = x509.NewCertPool()
		if !cfg.ClientCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--client-ca: %s holds no PEM certificate", c.ClientCA)
		}
		// A bearer token still works without a certificate; a certificate given must verify.
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return cfg, nil
}
