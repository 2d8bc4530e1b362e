package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.temporal.io/sdk/client"

	"github.com/cheops-io/cheops/test/harness"
)

// stack is the cheops under measurement: the dev stack the benchmark starts (`cheops dev` without
// its worker, plus a `cheops worker`), or the production topology scripts/cluster.sh runs.
type stack struct {
	// name labels the results: "dev" or "cluster".
	name string
	// api, token and ca reach the API (ca: a PEM file, for an https API).
	api, token, ca string
	etcd           clientv3.Config
	temporal       client.Options
	// processes names the processes whose CPU and peak memory count, each with its pids.
	processes func() map[string][]int
	// pprof names the profiling address of each process that serves one.
	pprof map[string]string
}

// devStack is the stack of a harness-started dev process and worker.
func devStack(ch *harness.Cheops) stack {
	return stack{name: "dev", api: ch.API, token: ch.Token,
		etcd:     clientv3.Config{Endpoints: []string{ch.EtcdEndpoint}},
		temporal: client.Options{HostPort: ch.TemporalAddr},
		processes: func() map[string][]int {
			return map[string][]int{"dev (etcd+temporal+api)": {ch.Dev.Pid()}, "worker": {ch.Worker.Pid()}}
		},
		pprof: map[string]string{"dev": ch.DevPprof, "worker": ch.WorkerPprof},
	}
}

// clusterStack reads the env file scripts/cluster.sh wrote in dir: the API of its first server,
// etcd and Temporal with the operator's certificate, and the processes of dir/run/*.pid, each with
// every process of its session (PostgreSQL's backends with their postmaster).
func clusterStack(dir string) (stack, error) {
	env, err := readEnv(filepath.Join(dir, "env"))
	if err != nil {
		return stack{}, err
	}
	token, err := os.ReadFile(filepath.Join(dir, "admin.token"))
	if err != nil {
		return stack{}, err
	}
	// prefix is CHEOPS_ETCD or CHEOPS_TEMPORAL: the env file's TLS files for each.
	tlsCfg := func(prefix, serverName string) (*tls.Config, error) {
		cert, err := tls.LoadX509KeyPair(env[prefix+"_TLS_CERT"], env[prefix+"_TLS_KEY"])
		if err != nil {
			return nil, err
		}
		pem, err := os.ReadFile(env[prefix+"_TLS_CA"])
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		return &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool, ServerName: serverName}, nil
	}
	etcdTLS, err := tlsCfg("CHEOPS_ETCD", "")
	if err != nil {
		return stack{}, fmt.Errorf("etcd TLS: %w", err)
	}
	temporalTLS, err := tlsCfg("CHEOPS_TEMPORAL", env["CHEOPS_TEMPORAL_TLS_SERVER_NAME"])
	if err != nil {
		return stack{}, fmt.Errorf("temporal TLS: %w", err)
	}
	s := stack{name: "cluster", api: env["CHEOPS_SERVER"], token: strings.TrimSpace(string(token)), ca: env["CHEOPS_CA"],
		etcd:     clientv3.Config{Endpoints: strings.Split(env["CHEOPS_ETCD_ENDPOINTS"], ","), TLS: etcdTLS, DialTimeout: 5 * time.Second},
		temporal: client.Options{HostPort: env["CHEOPS_TEMPORAL_ADDRESS"], ConnectionOptions: client.ConnectionOptions{TLS: temporalTLS}},
	}
	s.processes = func() map[string][]int {
		out := map[string][]int{}
		files, _ := filepath.Glob(filepath.Join(dir, "run", "*.pid"))
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
			if err != nil {
				continue
			}
			out[strings.TrimSuffix(filepath.Base(f), ".pid")] = sessionOf(pid)
		}
		return out
	}
	return s, nil
}

// readEnv reads the `export K=V` lines of an env file.
func readEnv(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimPrefix(strings.TrimSpace(sc.Text()), "export ")
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(k, "#") {
			env[k] = strings.Trim(v, `"`)
		}
	}
	return env, nil
}

// sessionOf returns pid and every other process of its session.
func sessionOf(pid int) []int {
	sid := statField(pid, 3)
	if sid == "" {
		return nil
	}
	pids := []int{pid}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil || p == pid {
			continue
		}
		if statField(p, 3) == sid {
			pids = append(pids, p)
		}
	}
	return pids
}

// statField returns field i (from 0, after the command name) of /proc/pid/stat.
func statField(pid, i int) string {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+2:]))
	if i >= len(f) {
		return ""
	}
	return f[i]
}
