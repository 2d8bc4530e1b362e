package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/internal/kubeapi"
	"github.com/cheops-io/cheops/store"
)

// demoSite is a site `cheops dev --demo-sites` runs and registers.
type demoSite struct {
	name   string
	labels map[string]string
}

// demoSites are the demo sites, in the order --demo-sites takes them: the README's walkthrough
// places on region=eu (paris and berlin); lyon, elsewhere, is left for scope expressions.
var demoSites = []demoSite{
	{"paris", map[string]string{"region": "eu", "demo": "true"}},
	{"berlin", map[string]string{"region": "eu", "demo": "true"}},
	{"lyon", map[string]string{"region": "fr", "demo": "true"}},
}

// demoActor names `cheops dev` in the events of the demo sites it registers.
const demoActor = "cheops-dev"

// demoConfig is `cheops dev`'s demo sites.
type demoConfig struct {
	Sites     int
	APIServer string
}

func (c *demoConfig) register(fs *pflag.FlagSet) {
	fs.IntVar(&c.Sites, "demo-sites", envInt("CHEOPS_DEMO_SITES", 0),
		"run this many real kube-apiservers (at most 3, about 270 MB each) on the embedded etcd and register them as sites paris, berlin and lyon (CHEOPS_DEMO_SITES)")
	fs.StringVar(&c.APIServer, "kube-apiserver", envOr("CHEOPS_KUBE_APISERVER", ""),
		"kube-apiserver binary of the demo sites (CHEOPS_KUBE_APISERVER); default: the one scripts/kube-tools.sh builds into $CHEOPS_CACHE or ~/.cache/cheops")
}

// validate checks the settings and finds the kube-apiserver; it never builds one.
func (c *demoConfig) validate() error {
	if c.Sites < 0 || c.Sites > len(demoSites) {
		return fmt.Errorf("--demo-sites: %d is not between 0 and %d (paris, berlin, lyon)", c.Sites, len(demoSites))
	}
	if c.Sites == 0 {
		return nil
	}
	if c.APIServer != "" {
		if fi, err := os.Stat(c.APIServer); err != nil || fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			return fmt.Errorf("--kube-apiserver: %s is not an executable file", c.APIServer)
		}
		return nil
	}
	p, err := kubeapi.Binary()
	if err != nil {
		return fmt.Errorf("--demo-sites: %w", err)
	}
	c.APIServer = p
	return nil
}

// demo is the running demo sites.
type demo struct {
	servers []*kubeapi.Server
	sites   []demoSite
}

// startDemo starts c.Sites kube-apiservers at once, on the etcd at endpoint, their files under
// dir. On error the ones started are stopped.
func startDemo(ctx context.Context, c demoConfig, dir, endpoint string) (*demo, error) {
	d := &demo{sites: demoSites[:c.Sites], servers: make([]*kubeapi.Server, c.Sites)}
	errs := make([]error, c.Sites)
	var wg sync.WaitGroup
	for i, site := range d.sites {
		wg.Go(func() {
			// A port found free may be taken before the apiserver binds it: try again, twice.
			for range 3 {
				var s *kubeapi.Server
				s, errs[i] = kubeapi.New(kubeapi.Config{Binary: c.APIServer, Name: site.name, Dir: filepath.Join(dir, site.name),
					EtcdEndpoint: endpoint, EtcdPrefix: "/demo-sites/" + site.name})
				if errs[i] != nil {
					return
				}
				d.servers[i] = s
				if errs[i] = s.Start(ctx); !errors.Is(errs[i], kubeapi.ErrExitedDuringStart) {
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		d.stop()
		return nil, err
	}
	return d, nil
}

// stop stops every demo apiserver, all at once; their etcd must still run.
func (d *demo) stop() {
	if d == nil {
		return
	}
	var wg sync.WaitGroup
	for _, s := range d.servers {
		wg.Go(s.Stop)
	}
	wg.Wait()
}

// register records each demo apiserver as a site, its kubeconfig inline (write-only, sealed like
// any credentials), validated by the driver as the API would. A demo site that exists keeps its
// labels and gets the kubeconfig again when it changed (a new port); a site of that name that
// `cheops dev` did not register is left as it is.
func (d *demo) register(ctx context.Context, s *store.Store, drv cheops.Driver, log *slog.Logger) error {
	for i, site := range d.sites {
		kc, err := d.servers[i].KubeconfigData()
		if err != nil {
			return err
		}
		st := cheops.Site{Name: site.name, Driver: cheops.DriverKubernetes, Labels: maps.Clone(site.labels),
			Kubernetes: &cheops.KubernetesSite{}, CreatedBy: demoActor}
		cred := cheops.Credentials{Kubeconfig: string(kc)}
		if err := drv.ValidateSite(st, cred); err != nil {
			return fmt.Errorf("demo site %s: %w", site.name, err)
		}
		_, err = s.CreateSite(ctx, st, cred)
		switch {
		case err == nil:
			log.Info("demo site registered", "site", site.name, "url", d.servers[i].URL, "labels", site.labels, "kubeconfig", d.servers[i].Kubeconfig)
			continue
		case !errors.Is(err, store.ErrExists):
			return fmt.Errorf("register demo site %s: %w", site.name, err)
		}
		cur, err := s.GetSite(ctx, site.name)
		if err != nil {
			return err
		}
		if cur.CreatedBy != demoActor || cur.Driver != cheops.DriverKubernetes {
			log.Warn("a site of a demo site's name exists, registered by someone else: left as it is; its demo apiserver runs unregistered",
				"site", site.name, "createdBy", cur.CreatedBy, "url", d.servers[i].URL)
			continue
		}
		old, err := s.SiteCredentials(ctx, site.name)
		if err != nil {
			return err
		}
		if old.Kubeconfig == cred.Kubeconfig && cur.Kubernetes != nil && *cur.Kubernetes == (cheops.KubernetesSite{}) {
			log.Info("demo site running", "site", site.name, "url", d.servers[i].URL, "kubeconfig", d.servers[i].Kubeconfig)
			continue
		}
		if _, err := s.UpdateSite(ctx, site.name, &cred, func(cur *cheops.Site) (*cheops.Event, error) {
			cur.Kubernetes = &cheops.KubernetesSite{}
			return &cheops.Event{Type: cheops.EventSiteUpdated, Actor: demoActor, Message: "demo apiserver restarted; kubeconfig replaced"}, nil
		}); err != nil {
			return fmt.Errorf("update demo site %s: %w", site.name, err)
		}
		log.Info("demo site updated", "site", site.name, "url", d.servers[i].URL, "kubeconfig", d.servers[i].Kubeconfig)
	}
	return nil
}

// startDemoAsync starts the demo sites c asks for in the background; the function it returns
// waits for that start (nil, nil when there are none), and can be called any number of times.
func startDemoAsync(ctx context.Context, c devConfig, etcdEndpoint string, log *slog.Logger) (func() (*demo, error), time.Time) {
	start := time.Now()
	if c.Demo.Sites == 0 {
		return func() (*demo, error) { return nil, nil }, start
	}
	dir := filepath.Join(c.DataDir, "demo-sites")
	log.Info("starting demo sites", "sites", c.Demo.Sites, "kubeApiserver", c.Demo.APIServer, "dir", dir)
	type result struct {
		d   *demo
		err error
	}
	done := make(chan result, 1)
	go func() {
		d, err := startDemo(ctx, c.Demo, dir, etcdEndpoint)
		if err == nil {
			log.Info("demo apiservers ready", "sites", c.Demo.Sites, "took", time.Since(start).Round(time.Millisecond))
		}
		done <- result{d, err}
	}()
	return sync.OnceValues(func() (*demo, error) {
		r := <-done
		return r.d, r.err
	}), start
}
