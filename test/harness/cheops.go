package harness

import (
	"cmp"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cheops-io/cheops/internal/freeport"
)

// BuildCheops builds the cheops binary into dir and returns its path.
func BuildCheops(dir string) (string, error) {
	bin := filepath.Join(dir, "cheops")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/cheops")
	cmd.Dir = moduleRoot()
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build cheops: %w", err)
	}
	return bin, nil
}

// moduleRoot is the cheops module's folder, found from this file's own path, so that callers in
// other modules (the benchmark) build with cheops' go.mod.
func moduleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Process is a child process whose output goes to a log file.
type Process struct {
	cmd    *exec.Cmd
	exited chan struct{}
	Log    string
}

func startProcess(log string, bin string, args ...string) (*Process, error) {
	f, err := os.OpenFile(log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	p := &Process{cmd: cmd, exited: make(chan struct{}), Log: log}
	go func() { _ = cmd.Wait(); f.Close(); close(p.exited) }()
	return p, nil
}

// Kill sends SIGKILL and waits for the process to be gone.
func (p *Process) Kill() {
	if p == nil {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// Stop sends SIGTERM and waits up to 20s before SIGKILL.
func (p *Process) Stop() {
	if p == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		p.Kill()
	}
}

// Pid is the process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.exited:
		return true
	default:
		return false
	}
}

// Cheops is a running cheops: `cheops dev` without its worker, plus a separate `cheops worker`
// process, so a test can kill the worker alone.
type Cheops struct {
	Bin, Dir                   string
	API                        string // http://host:port
	TemporalAddr, EtcdEndpoint string
	UIPort                     int
	// DevPprof and WorkerPprof are the processes' profiling addresses, when enabled.
	DevPprof, WorkerPprof string
	// WorkerMetrics is the worker's --metrics-addr (http://127.0.0.1:port); the API serves its own
	// at API+"/metrics", with a token.
	WorkerMetrics string
	// SiteFilesDir is the folder whose files sites may name (--site-files-dir).
	SiteFilesDir string
	// Token is the admin token the dev process made; every /v1 request needs it.
	Token string
	// WorkerArgs are added to the worker's arguments at its next start (they win over the
	// harness' own, e.g. "--drift-interval=0").
	WorkerArgs  []string
	devArgs     []string
	logLevel    string
	probe       time.Duration
	sweep       time.Duration
	drift       time.Duration
	Dev, Worker *Process
}

// Options tune the cheops processes a harness starts.
type Options struct {
	// LogLevel of both processes (default debug, for test logs).
	LogLevel string
	// PprofAddr, when set, makes both processes serve Go profiles; "127.0.0.1:0" picks free ports.
	PprofAddr string
	// ProbeInterval, SweepInterval and DriftInterval of the worker (defaults 1s, 2s and 2s: fault
	// tests see health change quickly). The benchmark uses the production defaults, so that it
	// measures their cost.
	ProbeInterval, SweepInterval, DriftInterval time.Duration
	// DemoSites makes `cheops dev` run and register that many demo sites (--demo-sites), their
	// files under <dir>/data/demo-sites.
	DemoSites int
}

// StartCheops starts cheops with its data under dir.
func StartCheops(bin, dir string, opts ...Options) (*Cheops, error) {
	o := Options{LogLevel: "debug"}
	if len(opts) > 0 {
		o = opts[0]
	}
	ports := make([]int, 6)
	for i := range ports {
		p, err := freeport.On("127.0.0.1")
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	c := &Cheops{Bin: bin, Dir: dir,
		API:          "http://127.0.0.1:" + strconv.Itoa(ports[0]),
		TemporalAddr: "127.0.0.1:" + strconv.Itoa(ports[1]),
		EtcdEndpoint: "http://127.0.0.1:" + strconv.Itoa(ports[3]),
		UIPort:       ports[2],
		// A port of its own, so a restarted worker serves its metrics where the tests look.
		WorkerMetrics: "http://127.0.0.1:" + strconv.Itoa(ports[5]),
	}
	c.SiteFilesDir = filepath.Join(dir, "site-files")
	if err := os.MkdirAll(c.SiteFilesDir, 0o700); err != nil {
		return nil, err
	}
	c.devArgs = []string{"dev", "--worker=false", "--data-dir", filepath.Join(dir, "data"), "--site-files-dir", c.SiteFilesDir,
		"--listen", "127.0.0.1:" + strconv.Itoa(ports[0]),
		"--temporal-port", strconv.Itoa(ports[1]), "--ui-port", strconv.Itoa(ports[2]),
		"--etcd-client-addr", "127.0.0.1:" + strconv.Itoa(ports[3]),
		"--etcd-peer-addr", "127.0.0.1:" + strconv.Itoa(ports[4]), "--log-level", o.LogLevel}
	if o.DemoSites > 0 {
		c.devArgs = append(c.devArgs, "--demo-sites", strconv.Itoa(o.DemoSites))
	}
	c.logLevel = o.LogLevel
	c.probe, c.sweep, c.drift = cmp.Or(o.ProbeInterval, time.Second), cmp.Or(o.SweepInterval, 2*time.Second), cmp.Or(o.DriftInterval, 2*time.Second)
	if o.PprofAddr != "" {
		var err error
		if c.DevPprof, err = freeport.Resolve(o.PprofAddr); err != nil {
			return nil, err
		}
		if c.WorkerPprof, err = freeport.Resolve(o.PprofAddr); err != nil {
			return nil, err
		}
		c.devArgs = append(c.devArgs, "--pprof-addr", c.DevPprof)
	}
	if err := c.StartDev(); err != nil {
		return c, err
	}
	return c, c.StartWorker()
}

// StartDev starts `cheops dev` (again, on the same data and ports) and waits until it is ready.
func (c *Cheops) StartDev() error {
	p, err := startProcess(filepath.Join(c.Dir, "dev.log"), c.Bin, c.devArgs...)
	if err != nil {
		return err
	}
	c.Dev = p
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if p.Exited() {
			return fmt.Errorf("cheops dev exited during start; see %s", p.Log)
		}
		if resp, err := http.Get(c.API + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				token, err := os.ReadFile(filepath.Join(c.Dir, "data", "dev-token"))
				c.Token = strings.TrimSpace(string(token))
				return err
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("cheops dev not ready after 90s; see %s", p.Log)
}

// StartWorker starts a `cheops worker` process against the dev stack.
func (c *Cheops) StartWorker() error {
	// Unreachable after two failures: fault tests see health change quickly. The worker shares dev's encryption key and host settings; images are served by the tests on
	// loopback, which only this allow-list lets a worker fetch from.
	args := []string{"worker", "--temporal-address", c.TemporalAddr, "--etcd-endpoints", c.EtcdEndpoint,
		"--sweep-interval", c.sweep.String(), "--probe-interval", c.probe.String(), "--drift-interval", c.drift.String(), "--probe-failures", "2", "--probe-timeout", "1s",
		"--encryption-key-file", filepath.Join(c.Dir, "data", "encryption.keys"),
		"--site-files-dir", c.SiteFilesDir, "--image-networks", "127.0.0.0/8",
		"--log-level", c.logLevel}
	if c.WorkerPprof != "" {
		args = append(args, "--pprof-addr", c.WorkerPprof)
	}
	args = append(args, "--metrics-addr", strings.TrimPrefix(c.WorkerMetrics, "http://"))
	args = append(args, c.WorkerArgs...)
	p, err := startProcess(filepath.Join(c.Dir, "worker.log"), c.Bin, args...)
	if err != nil {
		return err
	}
	c.Worker = p
	return nil
}

// Close stops the worker and the dev process.
func (c *Cheops) Close() {
	c.Worker.Stop()
	c.Dev.Stop()
}
