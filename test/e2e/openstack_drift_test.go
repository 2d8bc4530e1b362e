package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gophercloud/gophercloud/v2/openstack/compute/v2/keypairs"

	"github.com/cheops-io/cheops"
)

// An OpenStack object deleted by hand is seen by the drift monitor's observe (every 2 s in the
// harness) and made again on its region; the other region is left alone.
func TestOpenStackDriftRepaired(t *testing.T) {
	needOpenStack(t)
	ctx := context.Background()
	name := osName("drift-kp")
	r := osResource(t, "drift-kp", "compute.keypair", map[string]any{"name": name, "publicKey": sshKey(5)}, nil, osSites...)
	defer remove(t, r.ID)
	waitReady(t, r.ID, 1)
	regs := regions(t)
	// The monitor picks the new replicas up within a second of their record.
	time.Sleep(2 * time.Second)
	if err := keypairs.Delete(ctx, regs[0].compute, name, nil).ExtractErr(); err != nil {
		t.Fatal(err)
	}
	deleted := time.Now()
	for {
		if _, err := keypairs.Get(ctx, regs[0].compute, name, nil).Extract(); err == nil {
			break
		}
		if time.Since(deleted) > time.Minute {
			t.Fatalf("keypair %s deleted by hand on %s is not back after a minute", name, regs[0].name)
		}
		time.Sleep(100 * time.Millisecond)
	}
	took := time.Since(deleted)
	fmt.Fprintf(os.Stderr, "e2e: an OpenStack keypair deleted by hand was made again in %s (drift interval 2s)\n", took.Round(time.Millisecond))
	waitFor(t, r.ID, 30*time.Second, "Ready with no drift", func(r resource, code int) bool {
		return code == http.StatusOK && r.State == cheops.ResourceReady
	})
	var drift int
	for _, ev := range events(t, r.ID) {
		if ev.Type == cheops.EventDrift {
			drift++
			if ev.Site != osSites[0] || !strings.Contains(ev.Message, "deleted") {
				t.Errorf("drift event %+v; want os-1's keypair deleted", ev)
			}
		}
	}
	if drift != 1 {
		t.Errorf("%d Drift events; want 1", drift)
	}
}
