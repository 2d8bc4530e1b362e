package harness

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/cheops-io/cheops/internal/freeport"
)

// KwokVersion is the kwok release that plays the kubelet of a workload site's node;
// scripts/kube-tools.sh builds it.
const KwokVersion = "v0.8.0"

// NeverPullsImage is a container image whose pods, on a workload site, are scheduled and then stay
// Pending with an ImagePullBackOff container, never Ready: a Deployment of it never becomes
// Available. Every other image "runs" at once.
const NeverPullsImage = "cheops.invalid/never-pulls"

// WorkloadNode is the one Node of a workload site, which kwok manages.
const WorkloadNode = "kwok-node"

// workloadControllers are the kube-controller-manager controllers a workload site runs: those of
// the workload kinds, the garbage collector (a cascading delete), the namespace controller (a
// namespace's deletion), and node lifecycle, which lifts the not-ready taint every new Node is
// created with. serviceaccount-token is off: the apiserver admits pods without service accounts.
var workloadControllers = []string{
	"deployment-controller", "replicaset-controller", "statefulset-controller", "daemonset-controller",
	"job-controller", "cronjob-controller", "garbage-collector-controller", "namespace-controller",
	"node-lifecycle-controller",
}

// KwokPath returns the kwok binary: $CHEOPS_KWOK, or the one scripts/kube-tools.sh caches.
func KwokPath() (string, error) {
	return cachedTool(filepath.Join("kwok-"+KwokVersion, "bin", "kwok"), "CHEOPS_KWOK")
}

// KwokStagesDir returns the folder of kwok's Stage files: $CHEOPS_KWOK_STAGES, or the copy of its
// module's "fast" node and pod stages scripts/kube-tools.sh caches.
func KwokStagesDir() (string, error) {
	return cachedTool(filepath.Join("kwok-"+KwokVersion, "stages"), "CHEOPS_KWOK_STAGES")
}

// neverPullsStage keeps the pods of NeverPullsImage Pending. Its weight beats the fast pod-ready
// stage (weight 0) that matches the same pods; it leaves terminating pods to pod-delete. Its status
// carries no "now", so applying it again changes nothing and kwok does not loop on it.
const neverPullsStage = `apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: cheops-pod-never-pulls
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.phase'
      operator: 'In'
      values:
      - 'Pending'
    - key: '.spec.containers.[].image'
      operator: 'In'
      values:
      - '` + NeverPullsImage + `'
  weight: 1
  next:
    statusTemplate: |
      {{ $since := .metadata.creationTimestamp }}
      conditions:
      - lastTransitionTime: {{ $since | Quote }}
        status: "True"
        type: Initialized
      - lastTransitionTime: {{ $since | Quote }}
        status: "False"
        reason: ContainersNotReady
        type: Ready
      - lastTransitionTime: {{ $since | Quote }}
        status: "False"
        reason: ContainersNotReady
        type: ContainersReady
      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: false
        restartCount: 0
        state:
          waiting:
            reason: ImagePullBackOff
            message: {{ printf "Back-off pulling image %q" .image | Quote }}
      {{ end }}
      phase: Pending
`

// workloads are the processes that make an apiserver's workloads run: a kube-controller-manager, a
// kube-scheduler and kwok, each logging to a file in the apiserver's folder.
type workloads struct {
	a     *Apiserver
	procs []*process
}

// StartWorkloads makes the apiserver's workloads really run: it starts, against it, a
// kube-controller-manager with the controllers of the workload kinds, a kube-scheduler and kwok
// (which plays the kubelet of one Node, WorkloadNode), creates that Node and waits until pods can be
// scheduled on it. A Deployment then becomes Available with Running pods, unless its image is
// NeverPullsImage. Stop (and the cluster's Close) stops these processes before the apiserver; a
// restart by Start starts them again. On failure, what it started is stopped.
func (a *Apiserver) StartWorkloads() error {
	if a.workloads != nil {
		return fmt.Errorf("%s: workloads already started", a.Name)
	}
	kcm, err := KubeControllerManagerPath()
	if err != nil {
		return err
	}
	scheduler, err := KubeSchedulerPath()
	if err != nil {
		return err
	}
	kwok, err := KwokPath()
	if err != nil {
		return err
	}
	config := filepath.Join(a.dir, "kwok.yaml")
	if err := writeKwokConfig(config); err != nil {
		return err
	}
	w := &workloads{a: a}
	// Each component serves its health checks on a port of its own; kube-controller-manager and
	// kube-scheduler make a self-signed certificate for it in their cert folder. They authenticate
	// callers with the admin token's TokenReviews, without the client CA configmap this apiserver
	// (no client certificates) never publishes.
	common := []string{"--kubeconfig=" + a.Kubeconfig, "--authentication-kubeconfig=" + a.Kubeconfig,
		"--authentication-skip-lookup", "--authorization-kubeconfig=" + a.Kubeconfig,
		"--bind-address=127.0.0.1", "--leader-elect=false", "--profiling=false"}
	w.procs = []*process{
		{name: "kube-controller-manager", binary: kcm, https: true, logPath: filepath.Join(a.dir, "controller-manager.log"),
			args: func(port int) []string {
				return append(slices.Clone(common), "--secure-port="+strconv.Itoa(port),
					"--cert-dir="+filepath.Join(a.dir, "controller-manager-certs"),
					"--controllers="+strings.Join(workloadControllers, ","))
			}},
		{name: "kube-scheduler", binary: scheduler, https: true, logPath: filepath.Join(a.dir, "scheduler.log"),
			args: func(port int) []string {
				return append(slices.Clone(common), "--secure-port="+strconv.Itoa(port),
					"--cert-dir="+filepath.Join(a.dir, "scheduler-certs"))
			}},
		{name: "kwok", binary: kwok, logPath: filepath.Join(a.dir, "kwok.log"),
			args: func(port int) []string {
				return []string{"--kubeconfig=" + a.Kubeconfig, "--config=" + config,
					"--manage-all-nodes=false", "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
					"--server-address=127.0.0.1:" + strconv.Itoa(port)}
			}},
	}
	a.workloads = w
	if err := w.start(); err != nil {
		w.stop()
		a.workloads = nil
		return err
	}
	return nil
}

// writeKwokConfig writes kwok's --config: the fast node and pod stages, and neverPullsStage.
func writeKwokConfig(path string) error {
	dir, err := KwokStagesDir()
	if err != nil {
		return err
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no kwok stages in %s: run scripts/kube-tools.sh", dir)
	}
	var docs []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		docs = append(docs, string(b))
	}
	docs = append(docs, neverPullsStage)
	return os.WriteFile(path, []byte(strings.Join(docs, "\n---\n")), 0o600)
}

// start starts the processes, creates the Node (kept from an earlier start) and waits until it is
// Ready without the not-ready taint, so that the scheduler places pods on it.
func (w *workloads) start() error {
	for _, p := range w.procs {
		if err := p.startRetrying(); err != nil {
			return fmt.Errorf("%s workloads: %w", w.a.Name, err)
		}
	}
	cs, err := kubernetes.NewForConfig(w.a.Config)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: WorkloadNode,
		Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
		Labels:      map[string]string{"kubernetes.io/hostname": WorkloadNode, "kubernetes.io/os": "linux", "type": "kwok"}}}
	if _, err := cs.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("%s workloads: create node: %w", w.a.Name, err)
	}
	var last string
	for {
		n, err := cs.CoreV1().Nodes().Get(ctx, WorkloadNode, metav1.GetOptions{})
		if err == nil {
			if last = schedulable(n); last == "" {
				return nil
			}
		} else {
			last = err.Error()
		}
		for _, p := range w.procs {
			if p.hasExited() {
				return fmt.Errorf("%s workloads: %s exited; see %s, which ends:\n%s", w.a.Name, p.name, p.logPath, logTail(p.logPath, 10))
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s workloads: node %s not schedulable after 90s (%s); see kwok.log and controller-manager.log in %s",
				w.a.Name, WorkloadNode, last, w.a.dir)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// schedulable says why the scheduler would not place pods on n, or "" when it would.
func schedulable(n *corev1.Node) string {
	ready := false
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
			ready = true
		}
	}
	if !ready {
		return "not Ready"
	}
	for _, t := range n.Spec.Taints {
		if t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute {
			return "tainted " + t.Key
		}
	}
	return ""
}

// stop stops the processes, kwok first so that nothing changes pods while the controllers go.
func (w *workloads) stop() {
	for _, p := range slices.Backward(w.procs) {
		p.stop()
	}
}

// RSS returns the resident memory of the apiserver and of its workload processes, in bytes, by
// process name; a process not running is left out.
func (a *Apiserver) RSS() map[string]int64 {
	out := map[string]int64{}
	if a.srv != nil && a.srv.Running() {
		if n, err := rss(a.srv.Pid()); err == nil {
			out["kube-apiserver"] = n
		}
	}
	if a.workloads != nil {
		for _, p := range a.workloads.procs {
			if p.cmd != nil && !p.hasExited() {
				if n, err := rss(p.cmd.Process.Pid); err == nil {
					out[p.name] = n
				}
			}
		}
	}
	return out
}

func rss(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, errors.New("no VmRSS")
}

// process is one workload process: it serves /healthz on 127.0.0.1 at a port picked at each start.
type process struct {
	name    string
	binary  string
	args    func(port int) []string
	https   bool
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
}

// startRetrying starts the process; one that exits during its start (the port found free was taken
// meanwhile) is tried again on another port, twice.
func (p *process) startRetrying() error {
	var err error
	for range 3 {
		if err = p.start(); !errors.Is(err, errExitedDuringStart) {
			break
		}
	}
	return err
}

func (p *process) start() error {
	port, err := freeport.On("127.0.0.1")
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.binary, p.args(port)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	exited := make(chan struct{})
	p.cmd, p.exited = cmd, exited
	go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
	scheme := "http"
	if p.https {
		scheme = "https"
	}
	url := scheme + "://127.0.0.1:" + strconv.Itoa(port) + "/healthz"
	hc := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if p.hasExited() {
			return fmt.Errorf("%s %w; see %s, which ends:\n%s", p.name, errExitedDuringStart, p.logPath, logTail(p.logPath, 10))
		}
		if resp, err := hc.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	p.stop()
	return fmt.Errorf("%s not healthy after 60s; see %s, which ends:\n%s", p.name, p.logPath, logTail(p.logPath, 10))
}

func (p *process) hasExited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, then SIGKILL if the process has not exited within 5s.
func (p *process) stop() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}
