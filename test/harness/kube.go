// Package harness starts and stops the real servers the end-to-end tests and the benchmarks run
// against: kube-apiservers (built by scripts/kube-tools.sh), an etcd for them, and cheops' own
// processes. Every process binds to 127.0.0.1 on a free port, dies with the test process
// (Pdeathsig), and is stopped by Close even when a test fails. Product code never imports it.
package harness

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/cheops-io/cheops/devstack/etcdembed"
	"github.com/cheops-io/cheops/internal/kubeapi"
)

// KubeVersion is the Kubernetes release the harness runs; scripts/kube-tools.sh builds it.
const KubeVersion = kubeapi.Version

// KubeAPIServerPath returns the kube-apiserver binary: $CHEOPS_KUBE_APISERVER, or the one
// scripts/kube-tools.sh caches. It is an error, not a skip, when it is missing.
func KubeAPIServerPath() (string, error) { return kubeapi.Binary() }

// KubectlPath returns the kubectl binary: $CHEOPS_KUBECTL, or the one scripts/kube-tools.sh caches.
func KubectlPath() (string, error) { return kubeapi.Tool("kubectl", "CHEOPS_KUBECTL") }

// KubeControllerManagerPath returns the kube-controller-manager binary: $CHEOPS_KUBE_CONTROLLER_MANAGER,
// or the one scripts/kube-tools.sh caches.
func KubeControllerManagerPath() (string, error) {
	return kubeapi.Tool("kube-controller-manager", "CHEOPS_KUBE_CONTROLLER_MANAGER")
}

// KubeSchedulerPath returns the kube-scheduler binary: $CHEOPS_KUBE_SCHEDULER, or the one
// scripts/kube-tools.sh caches.
func KubeSchedulerPath() (string, error) {
	return kubeapi.Tool("kube-scheduler", "CHEOPS_KUBE_SCHEDULER")
}

// cachedTool returns $envVar, or the file at rel under the cache scripts/kube-tools.sh fills.
func cachedTool(rel, envVar string) (string, error) { return kubeapi.Cached(rel, envVar) }

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
	srv        *kubeapi.Server
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
	srv, err := kubeapi.New(kubeapi.Config{Binary: kc.binary, Name: name, Dir: dir, EtcdEndpoint: kc.etcd.Endpoint, Token: name + "-token"})
	if err != nil {
		return nil, err
	}
	a := &Apiserver{Name: name, URL: srv.URL, Token: srv.Token, Kubeconfig: srv.Kubeconfig, srv: srv, dir: dir}
	if err := a.Start(""); err != nil {
		return a, err
	}
	kubeconfig, err := os.ReadFile(a.Kubeconfig)
	if err != nil {
		return a, err
	}
	if a.Config, err = clientcmd.RESTConfigFromKubeConfig(kubeconfig); err != nil {
		return a, err
	}
	// The tests' own clients check and measure; client-side throttling must not skew either.
	a.Config.QPS, a.Config.Burst = 5000, 10000
	return a, nil
}

// Start (re)starts the apiserver process, with binary when not empty, and waits until it is
// ready; after StartWorkloads, it restarts the workload processes too (Stop stopped them).
func (a *Apiserver) Start(binary string) error {
	if binary != "" {
		a.srv.Binary = binary
	}
	if err := a.srv.Start(context.Background()); err != nil {
		return err
	}
	if a.workloads != nil {
		return a.workloads.start()
	}
	return nil
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
	a.srv.Stop()
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

// errExitedDuringStart is a process that ended before it answered.
var errExitedDuringStart = kubeapi.ErrExitedDuringStart

// logTail returns the last n lines of a log file, for an error that points at it.
func logTail(path string, n int) string { return kubeapi.LogTail(path, n) }
