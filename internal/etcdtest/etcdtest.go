// Package etcdtest gives tests a store over a real, embedded etcd of their own. Test code only.
package etcdtest

import (
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cheops-io/cheops/devstack/etcdembed"
	"github.com/cheops-io/cheops/store"
)

// Store starts an etcd under the test's temporary folder and returns a store over it; both are
// closed when the test ends.
func Store(t testing.TB) *store.Store {
	t.Helper()
	s, _ := StoreAndClient(t)
	return s
}

// StoreAndClient is Store, with the etcd client under the store, for a test that looks at etcd
// itself (its revision counts the transactions that wrote).
func StoreAndClient(t testing.TB) (*store.Store, *clientv3.Client) {
	t.Helper()
	e, err := etcdembed.Start(etcdembed.Options{Dir: t.TempDir(), ClientAddr: "127.0.0.1:0", PeerAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return store.New(c, ""), c
}
