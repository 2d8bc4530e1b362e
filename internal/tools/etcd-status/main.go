// Command etcd-status prints, for each member of an etcd cluster, what `etcdctl endpoint status -w
// table` prints (endpoint, member ID, version, database size, whether it leads, raft term and
// index), over mutual TLS. scripts/cluster.sh status uses it so that the cluster needs no etcdctl,
// a separate module that would be built apart from cheops. Settings are etcdctl's:
//
//	etcd-status [--endpoints a,b,c] [--cacert ca.crt] [--cert client.crt] [--key client.key]
//
// with ETCDCTL_ENDPOINTS, ETCDCTL_CACERT, ETCDCTL_CERT and ETCDCTL_KEY as fallbacks. It exits 1
// when a member does not answer. Test infrastructure, not the product.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

func main() {
	endpoints := flag.String("endpoints", envOr("ETCDCTL_ENDPOINTS", "https://127.0.0.1:2379"), "comma-separated client URLs")
	ca := flag.String("cacert", os.Getenv("ETCDCTL_CACERT"), "CA certificate file")
	cert := flag.String("cert", os.Getenv("ETCDCTL_CERT"), "client certificate file")
	key := flag.String("key", os.Getenv("ETCDCTL_KEY"), "client key file")
	flag.Parse()
	if err := run(strings.Split(*endpoints, ","), *ca, *cert, *key); err != nil {
		fmt.Fprintf(os.Stderr, "etcd-status: %v\n", err)
		os.Exit(1)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func run(endpoints []string, ca, cert, key string) error {
	tlsCfg, err := tlsConfig(ca, cert, key)
	if err != nil {
		return err
	}
	cl, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, TLS: tlsCfg, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cl.Close()
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "ENDPOINT\tID\tVERSION\tDB SIZE\tIS LEADER\tRAFT TERM\tRAFT INDEX\tERRORS")
	var errs []error
	for _, ep := range endpoints {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		st, err := cl.Status(ctx, ep)
		cancel()
		if err != nil {
			fmt.Fprintf(w, "%s\t-\t-\t-\t-\t-\t-\t%v\n", ep, err)
			errs = append(errs, fmt.Errorf("%s: %w", ep, err))
			continue
		}
		fmt.Fprintf(w, "%s\t%x\t%s\t%s\t%t\t%d\t%d\t%s\n", ep, st.Header.MemberId, st.Version, size(st.DbSize),
			st.Header.MemberId == st.Leader, st.RaftTerm, st.RaftIndex, strings.Join(st.Errors, "; "))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	return errors.Join(errs...)
}

// tlsConfig is a client configuration with the given files; none at all means plain TCP.
func tlsConfig(ca, cert, key string) (*tls.Config, error) {
	if ca == "" && cert == "" && key == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if cert != "" || key != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("--cert/--key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("--cacert: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--cacert: %s holds no certificate", ca)
		}
	}
	return cfg, nil
}

// size is a byte count as etcdctl prints it (humanize.Bytes: SI units).
func size(n int64) string {
	f := float64(n)
	for _, u := range []string{"B", "kB", "MB", "GB"} {
		if f < 1000 {
			return fmt.Sprintf("%.0f %s", f, u)
		}
		f /= 1000
	}
	return fmt.Sprintf("%.0f TB", f)
}
