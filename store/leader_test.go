package store_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/cheops-io/cheops/store"
)

// One process at a time leads a task; a leader that stops hands over at once.
func TestOneLeaderAtATime(t *testing.T) {
	prefix := "/test/" + t.Name()
	newClient := func() *clientv3.Client {
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	var running, maxRunning atomic.Int32
	var mu sync.Mutex
	led := map[string]int{}
	work := func(id string) func(ctx context.Context) {
		return func(ctx context.Context) {
			n := running.Add(1)
			for {
				m := maxRunning.Load()
				if n <= m || maxRunning.CompareAndSwap(m, n) {
					break
				}
			}
			mu.Lock()
			led[id]++
			mu.Unlock()
			<-ctx.Done()
			running.Add(-1)
		}
	}
	const ttl = 2 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cancels := map[string]context.CancelFunc{}
	for _, id := range []string{"w1", "w2", "w3"} {
		c := newClient()
		defer c.Close()
		wctx, wcancel := context.WithCancel(ctx)
		cancels[id] = wcancel
		go store.New(c, prefix).Lead(wctx, "prober", id, ttl, work(id))
	}
	oc := newClient()
	defer oc.Close()
	observer := store.New(oc, prefix)
	leader := func() string {
		t.Helper()
		id, err := observer.Leader(ctx, "prober")
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	waitFor := func(what string, within time.Duration, ok func() bool) time.Duration {
		t.Helper()
		start := time.Now()
		for !ok() {
			if time.Since(start) > within {
				t.Fatalf("%s: not after %s", what, within)
			}
			time.Sleep(20 * time.Millisecond)
		}
		return time.Since(start)
	}
	waitFor("a first leader", 5*time.Second, func() bool { return leader() != "" && running.Load() == 1 })
	first := leader()
	// A leader that stops resigns: another leads at once.
	cancels[first]()
	took := waitFor("a second leader after the first stopped", 3*time.Second, func() bool {
		l := leader()
		return l != "" && l != first && running.Load() == 1
	})
	t.Logf("handover after a stop: %s", took)
	if maxRunning.Load() > 1 {
		t.Fatalf("%d processes led at once", maxRunning.Load())
	}
}

// A leader that dies (killed: it neither resigns nor keeps its lease alive) is replaced once its
// lease expires, within about the TTL.
func TestLeaderDeathHandsOverWithinTTL(t *testing.T) {
	prefix := "/test/" + t.Name()
	const ttl = 2 * time.Second
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dead, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}})
	if err != nil {
		t.Fatal(err)
	}
	defer dead.Close()
	// The doomed leader campaigns as Lead does, then stops keeping its lease alive, as a SIGKILL would.
	sess, err := concurrency.NewSession(dead, concurrency.WithTTL(int(ttl/time.Second)))
	if err != nil {
		t.Fatal(err)
	}
	if err := concurrency.NewElection(sess, prefix+"/leaders/sweep").Campaign(ctx, "doomed"); err != nil {
		t.Fatal(err)
	}
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := store.New(c, prefix)
	took := make(chan time.Duration, 1)
	var start time.Time
	go s.Lead(ctx, "sweep", "heir", ttl, func(ctx context.Context) {
		took <- time.Since(start)
		<-ctx.Done()
	})
	time.Sleep(300 * time.Millisecond)
	if id, err := s.Leader(ctx, "sweep"); err != nil || id != "doomed" {
		t.Fatalf("leader %q, %v; want doomed", id, err)
	}
	start = time.Now()
	sess.Orphan()
	select {
	case d := <-took:
		t.Logf("handover after a death: %s (TTL %s)", d, ttl)
		if d < ttl/2 {
			t.Fatalf("handed over after %s, before the dead leader's lease could expire", d)
		}
	case <-time.After(3*ttl + time.Second):
		t.Fatalf("no handover %s after the leader died (TTL %s)", 3*ttl+time.Second, ttl)
	}
}
