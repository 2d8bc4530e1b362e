// Command bench measures cheops against the physical floor on real kube-apiservers: replication
// latency through the API for 1, 10 and 100 sites next to direct server-side apply from one Go
// process, throughput of concurrent clients, update and delete propagation, and the cost (peak RSS,
// CPU seconds per replica) of the cheops processes. It starts everything it needs, prints a markdown
// table, and writes the table, a JSON file and a PNG of the latency distributions to -out.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/cheops-io/cheops/client"
	"github.com/cheops-io/cheops/test/harness"
)

type config struct {
	out         string
	samples     map[int]int
	sites       []int
	propagation int
	clients     int
	duration    time.Duration
	apiservers  int
	noDrift     bool
	profile     bool
	keep        bool
	hold        bool
	cluster     string
}

func main() {
	var c config
	var s1, s10, s100, s1000, maxSites int
	flag.StringVar(&c.out, "out", "results", "folder for the table, JSON and PNG")
	flag.IntVar(&s1, "samples-1", 300, "latency samples at 1 site")
	flag.IntVar(&s10, "samples-10", 200, "latency samples at 10 sites")
	flag.IntVar(&s100, "samples-100", 100, "latency samples at 100 sites")
	flag.IntVar(&s1000, "samples-1000", 20, "latency samples at 1,000 sites")
	flag.IntVar(&maxSites, "max-sites", 1000, "the largest site count measured, of 1, 10, 100 and 1,000")
	flag.IntVar(&c.propagation, "samples-propagation", 50, "update and delete propagation samples (10 sites)")
	flag.IntVar(&c.clients, "clients", 4, "concurrent clients of the throughput run")
	flag.DurationVar(&c.duration, "duration", 20*time.Second, "length of the throughput run")
	flag.IntVar(&c.apiservers, "apiservers", 3, "kube-apiservers the sites are spread over")
	flag.BoolVar(&c.noDrift, "no-drift", false, "run the dev stack's worker with drift detection off (--drift-interval=0), to measure its cost")
	flag.BoolVar(&c.profile, "profile", true, "capture CPU and allocation profiles of cheops during the throughput run, and during the first 20 s of the largest site count")
	flag.BoolVar(&c.keep, "keep", false, "keep the working folder (logs of cheops and the apiservers)")
	flag.StringVar(&c.cluster, "cluster", "", "measure the cluster scripts/cluster.sh runs with this state folder (its env file), not a dev stack of the benchmark's own")
	flag.BoolVar(&c.hold, "hold", false, "after the measurements, keep the stack running (API, Temporal and its Web UI) until interrupted, to look into it")
	flag.Parse()
	c.samples = map[int]int{1: s1, 10: s10, 100: s100, 1000: s1000}
	for _, n := range []int{1, 10, 100, 1000} {
		if n <= max(maxSites, 10) {
			c.sites = append(c.sites, n)
		}
	}
	if err := run(context.Background(), c); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, c config) error {
	dir, err := os.MkdirTemp("", "cheops-bench-")
	if err != nil {
		return err
	}
	if c.keep {
		logf("working folder %s is kept", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	if err := os.MkdirAll(c.out, 0o755); err != nil {
		return err
	}
	logf("starting %d kube-apiservers", c.apiservers)
	kube, err := harness.StartKube(dir, c.apiservers)
	if err != nil {
		return err
	}
	defer kube.Close()
	var st stack
	if c.cluster != "" {
		if st, err = clusterStack(c.cluster); err != nil {
			return fmt.Errorf("-cluster %s: %w", c.cluster, err)
		}
		logf("measuring the cluster in %s (API %s)", c.cluster, st.api)
	} else {
		bin, err := harness.BuildCheops(dir)
		if err != nil {
			return err
		}
		// The worker probes and sweeps at the production defaults, so that their cost is measured too.
		ch, err := harness.StartCheops(bin, dir, harness.Options{LogLevel: "warn", PprofAddr: "127.0.0.1:0",
			ProbeInterval: 10 * time.Second, SweepInterval: 30 * time.Second, DriftInterval: 30 * time.Second})
		if err != nil {
			if ch != nil {
				ch.Close()
			}
			return err
		}
		defer ch.Close()
		if c.noDrift {
			ch.WorkerArgs = []string{"--drift-interval=0"}
			ch.Worker.Stop()
			if err := ch.StartWorker(); err != nil {
				return err
			}
			logf("the worker runs with drift detection off (-no-drift)")
		}
		st = devStack(ch)
	}
	opts := []client.Option{client.WithBearerToken(st.token)}
	if st.ca != "" {
		hc, err := httpsClient(st.ca)
		if err != nil {
			return err
		}
		opts = append(opts, client.WithHTTPClient(hc))
	}
	api, err := client.New(st.api, opts...)
	if err != nil {
		return err
	}
	b := &bench{cfg: c, kube: kube, stack: st, api: api}
	if err := b.connect(); err != nil {
		return err
	}
	defer b.close()
	logf("registering %d sites", c.sites[len(c.sites)-1])
	if err := b.setupSites(ctx, c.sites[len(c.sites)-1]); err != nil {
		return err
	}
	res := results{Date: time.Now().UTC().Format(time.RFC3339), Machine: machine(), Stack: st.name}
	for _, n := range c.sites {
		logf("latency at %d sites: %d samples through cheops, then direct", n, c.samples[n])
		profDir := ""
		if n == c.sites[len(c.sites)-1] {
			profDir = filepath.Join(c.out, "profiles", fmt.Sprintf("latency-%d", n))
		}
		lat, err := b.latency(ctx, n, c.samples[n], profDir)
		if err != nil {
			return err
		}
		res.Latency = append(res.Latency, lat)
	}
	logf("update and delete propagation at 10 sites: %d samples", c.propagation)
	if res.Update, res.Delete, err = b.propagation(ctx, 10, c.propagation); err != nil {
		return err
	}
	logf("throughput: %d clients for %s, 10 sites per resource", c.clients, c.duration)
	if res.Throughput, err = b.throughput(ctx, c.clients, c.duration, filepath.Join(c.out, "profiles")); err != nil {
		return err
	}
	res.Cost = b.cost()
	if err := res.write(c.out); err != nil {
		return err
	}
	if c.hold {
		logf("holding the stack until interrupted: API %s, Temporal %s, logs in %s", st.api, st.temporal.HostPort, dir)
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		<-sig
	}
	return nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s bench: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// httpsClient trusts the CA in file, for a cluster's https API.
func httpsClient(file string) (*http.Client, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: 64}}, nil
}
