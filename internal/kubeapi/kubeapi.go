// Package kubeapi runs real kube-apiservers on an etcd run by someone else, each under its own
// --etcd-prefix and bound to 127.0.0.1: the sites of the end-to-end tests (test/harness) and the
// demo sites of `cheops dev --demo-sites`, with one way of starting and stopping them. It never
// builds a kube-apiserver: scripts/kube-tools.sh does, into the cache Tool reads.
package kubeapi

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cheops-io/cheops/internal/freeport"
)

// Version is the Kubernetes release run here; scripts/kube-tools.sh builds it.
const Version = "v1.35.4"

// CacheDir is the folder scripts/kube-tools.sh builds into: $CHEOPS_CACHE, or ~/.cache/cheops.
func CacheDir() (string, error) {
	if c := os.Getenv("CHEOPS_CACHE"); c != "" {
		return c, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, ".cache", "cheops"), nil
}

// Cached returns $envVar when set, else the file at rel under CacheDir; an error that says how to
// build it when it is missing.
func Cached(rel, envVar string) (string, error) {
	if p := os.Getenv(envVar); p != "" {
		return p, nil
	}
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	p := filepath.Join(cache, rel)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s not found at %s: build it with `bash scripts/kube-tools.sh` (make run and make test do): %w", filepath.Base(p), p, err)
	}
	return p, nil
}

// Tool returns a Kubernetes binary of Version: $envVar when set, else the cached one.
func Tool(name, envVar string) (string, error) {
	return Cached(filepath.Join("kube-"+Version, "bin", name), envVar)
}

// Binary returns the kube-apiserver: $CHEOPS_KUBE_APISERVER, or the cached one.
func Binary() (string, error) { return Tool("kube-apiserver", "CHEOPS_KUBE_APISERVER") }

// Config is one kube-apiserver.
type Config struct {
	// Binary is the kube-apiserver to run.
	Binary string
	// Name names it in errors, logs and its kubeconfig.
	Name string
	// Dir holds its files: certificates, token file, service-account keys, kubeconfig, log, port.
	// What an earlier server of the same Dir left is used again: its token, its keys, its serving
	// certificate and, while it is free, its port, so its kubeconfig stays valid across restarts.
	Dir string
	// EtcdEndpoint is the etcd's client URL; EtcdPrefix its keys' prefix (default "/"+Name).
	EtcdEndpoint, EtcdPrefix string
	// Token is the admin's bearer token; empty, a random one (or the one Dir holds).
	Token string
}

// Server is a kube-apiserver, running or stopped.
type Server struct {
	Config
	// URL is https://127.0.0.1:<port>.
	URL string
	// Kubeconfig is the path of a kubeconfig (0600) with the admin token and the server's CA,
	// written once it has started.
	Kubeconfig string
	// LogPath is where its output goes.
	LogPath string
	args    []string
	cmd     *exec.Cmd
	exited  chan struct{}
}

// ErrExitedDuringStart is a kube-apiserver that ended before it answered, e.g. because another
// process took its port first.
var ErrExitedDuringStart = errors.New("exited during start")

// New writes a server's files and picks its port; Start runs it.
func New(c Config) (*Server, error) {
	if c.EtcdPrefix == "" {
		c.EtcdPrefix = "/" + c.Name
	}
	if err := os.MkdirAll(filepath.Join(c.Dir, "certs"), 0o700); err != nil {
		return nil, err
	}
	tokens := filepath.Join(c.Dir, "tokens.csv")
	if c.Token == "" {
		c.Token = earlierToken(tokens)
	}
	if c.Token == "" {
		b := make([]byte, 24)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		c.Token = hex.EncodeToString(b)
	}
	if err := os.WriteFile(tokens, []byte(c.Token+",admin,admin-uid,system:masters\n"), 0o600); err != nil {
		return nil, err
	}
	if err := ensureServiceAccountKeys(c.Dir); err != nil {
		return nil, err
	}
	port, err := pickPort(filepath.Join(c.Dir, "port"))
	if err != nil {
		return nil, err
	}
	s := &Server{Config: c, URL: "https://127.0.0.1:" + strconv.Itoa(port),
		Kubeconfig: filepath.Join(c.Dir, "kubeconfig"), LogPath: filepath.Join(c.Dir, "apiserver.log")}
	s.args = []string{
		"--etcd-servers=" + c.EtcdEndpoint,
		"--etcd-prefix=" + c.EtcdPrefix,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + filepath.Join(c.Dir, "certs"),
		"--token-auth-file=" + tokens,
		"--service-account-key-file=" + filepath.Join(c.Dir, "sa.pub"),
		"--service-account-signing-key-file=" + filepath.Join(c.Dir, "sa.key"),
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-cluster-ip-range=10.0.0.0/24",
		"--authorization-mode=RBAC",
		"--disable-admission-plugins=ServiceAccount",
		"--enable-priority-and-fairness=false",
		"--profiling=false",
	}
	return s, nil
}

// earlierToken is the admin token of a token file written by New, or "".
func earlierToken(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	tok, _, _ := strings.Cut(string(b), ",")
	return strings.TrimSpace(tok)
}

// ensureServiceAccountKeys writes the RSA key pair that signs service-account tokens, unless dir
// has one.
func ensureServiceAccountKeys(dir string) error {
	keyPath, pubPath := filepath.Join(dir, "sa.key"), filepath.Join(dir, "sa.pub")
	_, errKey := os.Stat(keyPath)
	_, errPub := os.Stat(pubPath)
	if errKey == nil && errPub == nil {
		return nil
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyPath, keyPEM, 0o600); err != nil {
		return err
	}
	return os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600)
}

// pickPort returns the port recorded at path while it is free, else a free one, recorded there.
func pickPort(path string) (int, error) {
	if b, err := os.ReadFile(path); err == nil {
		if p, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && portFree(p) {
			return p, nil
		}
	}
	p, err := freeport.On("127.0.0.1")
	if err != nil {
		return 0, err
	}
	return p, os.WriteFile(path, []byte(strconv.Itoa(p)+"\n"), 0o600)
}

func portFree(p int) bool {
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

// readyTimeout bounds a start: about 4 s on an idle machine, much longer on two busy cores.
const readyTimeout = 90 * time.Second

// Start runs the server and waits until it answers /readyz, then writes its kubeconfig. It is
// stopped again when it does not become ready, or ctx ends first.
func (s *Server) Start(ctx context.Context) error {
	logf, err := os.OpenFile(s.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.Binary, s.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = dieWithParent()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start kube-apiserver %s: %w", s.Name, err)
	}
	s.cmd, s.exited = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(s.exited) }()
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	defer hc.CloseIdleConnections()
	deadline := time.Now().Add(readyTimeout)
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return fmt.Errorf("kube-apiserver %s %w; see %s, which ends:\n%s", s.Name, ErrExitedDuringStart, s.LogPath, LogTail(s.LogPath, 10))
		case <-ctx.Done():
			s.Stop()
			return fmt.Errorf("kube-apiserver %s: %w", s.Name, ctx.Err())
		default:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+s.Token)
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s.writeKubeconfig()
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.Stop()
	return fmt.Errorf("kube-apiserver %s not ready after %s; see %s", s.Name, readyTimeout, s.LogPath)
}

// KubeconfigData is the server's kubeconfig: its URL, the CA of the serving certificate the
// server made itself (certs/apiserver.crt, kept across restarts) and the admin token.
func (s *Server) KubeconfigData() ([]byte, error) {
	ca, err := os.ReadFile(filepath.Join(s.Dir, "certs", "apiserver.crt"))
	if err != nil {
		return nil, fmt.Errorf("kube-apiserver %s: its serving certificate: %w", s.Name, err)
	}
	return fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- name: %[1]s
  cluster:
    server: %[2]s
    certificate-authority-data: %[4]s
users:
- name: admin
  user:
    token: %[3]s
contexts:
- name: %[1]s
  context: {cluster: %[1]s, user: admin}
current-context: %[1]s
`, s.Name, s.URL, s.Token, base64.StdEncoding.EncodeToString(ca)), nil
}

func (s *Server) writeKubeconfig() error {
	kc, err := s.KubeconfigData()
	if err != nil {
		return err
	}
	return os.WriteFile(s.Kubeconfig, kc, 0o600)
}

// Stop stops the server: SIGTERM, then SIGKILL if it has not exited within 5 s (an apiserver whose
// etcd is gone can hang in its graceful shutdown). Stopping a server not running does nothing.
func (s *Server) Stop() {
	if s == nil || s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// Pid is the process ID of the last process Start started, 0 before.
func (s *Server) Pid() int {
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Running reports whether the process Start started has not exited.
func (s *Server) Running() bool {
	if s.exited == nil {
		return false
	}
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// LogTail returns the last n lines of a log file, for an error that points at it.
func LogTail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
