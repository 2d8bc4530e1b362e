// Package harness starts and stops the real servers the end-to-end tests and the benchmarks run
// against: kube-apiservers (built by scripts/kube-tools.sh), an etcd for them, and cheops' own
// processes. Every process binds to 127.0.0.1 on a free port, dies with the test process
// (Pdeathsig), and is stopped by Close even when a test fails. Product code never imports it.
package harness

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/cheops-io/cheops/devstack/etcdembed"
	"github.com/cheops-io/cheops/internal/freeport"
)

// KubeVersion is the Kubernetes release the harness runs; scripts/kube-tools.sh builds it.
const KubeVersion = "v1.35.4"

// KubeAPIServerPath returns the kube-apiserver binary: $CHEOPS_KUBE_APISERVER, or the one
// scripts/kube-tools.sh caches. It is an error, not a skip, when it is missing.
func KubeAPIServerPath() (string, error) { return kubeTool("kube-apiserver", "CHEOPS_KUBE_APISERVER") }

// KubectlPath returns the kubectl binary: $CHEOPS_KUBECTL, or the one scripts/kube-tools.sh caches.
func KubectlPath() (string, error) { return kubeTool("kubectl", "CHEOPS_KUBECTL") }

// KubeControllerManagerPath returns the kube-controller-manager binary: $CHEOPS_KUBE_CONTROLLER_MANAGER,
// or the one scripts/kube-tools.sh caches.
func KubeControllerManagerPath() (string, error) {
	return kubeTool("kube-controller-manager", "CHEOPS_KUBE_CONTROLLER_MANAGER")
}

// KubeSchedulerPath returns the kube-scheduler binary: $CHEOPS_KUBE_SCHEDULER, or the one
// scripts/kube-tools.sh caches.
func KubeSchedulerPath() (string, error) { return kubeTool("kube-scheduler", "CHEOPS_KUBE_SCHEDULER") }

func kubeTool(name, envVar string) (string, error) {
	return cachedTool(filepath.Join("kube-"+KubeVersion, "bin", name), envVar)
}

// cachedTool returns $envVar, or the file at rel under the cache scripts/kube-tools.sh fills.
func cachedTool(rel, envVar string) (string, error) {
	if p := os.Getenv(envVar); p != "" {
		return p, nil
	}
	cache := os.Getenv("CHEOPS_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		cache = filepath.Join(home, ".cache", "cheops")
	}
	p := filepath.Join(cache, rel)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s not found at %s: run scripts/kube-tools.sh (make test does): %w", filepath.Base(p), p, err)
	}
	return p, nil
}

// KubeCluster is a set of kube-apiservers sharing one etcd, each under its own prefix.
type KubeCluster struct {
	dir        string
	etcd       *etcdembed.Etcd
	binary     string
	Apiservers []*Apiserver
}

// Apiserver is one running kube-apiserver.
type Apiserver struct {
	Name       string
	URL        string
	Token      string
	Kubeconfig string // path of a kubeconfig file for it
	Config     *rest.Config
	cmd        *exec.Cmd
	exited     chan struct{}
	args       []string
	logPath    string
	dir        string
	workloads  *workloads // set by StartWorkloads
}

// StartKube starts n kube-apiservers named site-1…site-n.
func StartKube(dir string, n int) (*KubeCluster, error) {
	bin, err := KubeAPIServerPath()
	if err != nil {
		return nil, err
	}
	e, err := etcdembed.Start(etcdembed.Options{Dir: filepath.Join(dir, "kube-etcd"), ClientAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:0"})
	if err != nil {
		return nil, err
	}
	kc := &KubeCluster{dir: dir, etcd: e, binary: bin}
	errs := make(chan error, n)
	kc.Apiservers = make([]*Apiserver, n)
	for i := range n {
		go func() {
			// A port found free may be taken before the apiserver binds it (another process of the
			// machine picking ports at the same moment): an apiserver that exits during its start is
			// tried again, on another port, twice.
			var a *Apiserver
			var err error
			for range 3 {
				if a, err = kc.startOne(fmt.Sprintf("site-%d", i+1)); !errors.Is(err, errExitedDuringStart) {
					break
				}
			}
			kc.Apiservers[i] = a
			errs <- err
		}()
	}
	var all error
	for range n {
		all = errors.Join(all, <-errs)
	}
	if all != nil {
		kc.Close()
		return nil, all
	}
	return kc, nil
}

func (kc *KubeCluster) startOne(name string) (*Apiserver, error) {
	dir := filepath.Join(kc.dir, name)
	if err := os.MkdirAll(filepath.Join(dir, "certs"), 0o700); err != nil {
		return nil, err
	}
	token := name + "-token"
	if err := os.WriteFile(filepath.Join(dir, "tokens.csv"), []byte(token+",admin,admin-uid,system:masters\n"), 0o600); err != nil {
		return nil, err
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})
	if err := os.WriteFile(filepath.Join(dir, "sa.key"), keyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "sa.pub"), pubPEM, 0o600); err != nil {
		return nil, err
	}
	port, err := freeport.On("127.0.0.1")
	if err != nil {
		return nil, err
	}
	a := &Apiserver{Name: name, URL: "https://127.0.0.1:" + strconv.Itoa(port), Token: token, logPath: filepath.Join(dir, "apiserver.log"), dir: dir}
	a.args = []string{
		"--etcd-servers=" + kc.etcd.Endpoint,
		"--etcd-prefix=/" + name,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + filepath.Join(dir, "certs"),
		"--token-auth-file=" + filepath.Join(dir, "tokens.csv"),
		"--service-account-key-file=" + filepath.Join(dir, "sa.pub"),
		"--service-account-signing-key-file=" + filepath.Join(dir, "sa.key"),
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-cluster-ip-range=10.0.0.0/24",
		"--authorization-mode=RBAC",
		"--disable-admission-plugins=ServiceAccount",
		"--enable-priority-and-fairness=false",
		"--profiling=false",
	}
	if err := a.Start(kc.binary); err != nil {
		return a, err
	}
	kubeconfig := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: %[1]s
  cluster:
    server: %[2]s
    insecure-skip-tls-verify: true
users:
- name: admin
  user:
    token: %[3]s
contexts:
- name: %[1]s
  context: {cluster: %[1]s, user: admin}
current-context: %[1]s
`, name, a.URL, token)
	a.Kubeconfig = filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(a.Kubeconfig, []byte(kubeconfig), 0o600); err != nil {
		return a, err
	}
	if a.Config, err = clientcmd.RESTConfigFromKubeConfig([]byte(kubeconfig)); err != nil {
		return a, err
	}
	// The tests' own clients check and measure; client-side throttling must not skew either.
	a.Config.QPS, a.Config.Burst = 5000, 10000
	return a, nil
}

// Start (re)starts the apiserver process and waits until it is ready; after StartWorkloads, it
// restarts the workload processes too (Stop stopped them).
func (a *Apiserver) Start(binary string) error {
	if err := a.start(binary); err != nil {
		return err
	}
	if a.workloads != nil {
		return a.workloads.start()
	}
	return nil
}

func (a *Apiserver) start(binary string) error {
	if binary == "" {
		binary = a.cmd.Path
	}
	logf, err := os.OpenFile(a.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(binary, a.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start kube-apiserver %s: %w", a.Name, err)
	}
	a.cmd, a.exited = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(a.exited) }()
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-a.exited:
			return fmt.Errorf("kube-apiserver %s %w; see %s, which ends:\n%s", a.Name, errExitedDuringStart, a.logPath, logTail(a.logPath, 10))
		default:
		}
		req, _ := http.NewRequest(http.MethodGet, a.URL+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+a.Token)
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	a.Stop()
	return fmt.Errorf("kube-apiserver %s not ready after 90s; see %s", a.Name, a.logPath)
}

// Stop stops the workload processes StartWorkloads started, then the apiserver: SIGTERM, then
// SIGKILL if it has not exited within 5s (an apiserver whose etcd is gone can hang in graceful
// shutdown).
func (a *Apiserver) Stop() {
	if a == nil {
		return
	}
	if a.workloads != nil {
		a.workloads.stop()
	}
	if a.cmd == nil || a.cmd.Process == nil {
		return
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.exited:
	case <-time.After(5 * time.Second):
		_ = a.cmd.Process.Kill()
		<-a.exited
	}
}

// Clients returns a typed and a dynamic client for the apiserver.
func (a *Apiserver) Clients() (kubernetes.Interface, dynamic.Interface, error) {
	cs, err := kubernetes.NewForConfig(a.Config)
	if err != nil {
		return nil, nil, err
	}
	dyn, err := dynamic.NewForConfig(a.Config)
	return cs, dyn, err
}

// Close stops every apiserver (and the workload processes of any), then their etcd.
func (kc *KubeCluster) Close() {
	for _, a := range kc.Apiservers {
		a.Stop()
	}
	if kc.etcd != nil {
		kc.etcd.Close()
	}
}

// errExitedDuringStart is an apiserver process that ended before it answered.
var errExitedDuringStart = errors.New("exited during start")

// logTail returns the last n lines of a log file, for an error that points at it.
func logTail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
