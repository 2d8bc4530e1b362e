package main

import (
	"strings"
	"testing"
	"time"

	"github.com/cheops-io/cheops"
	"github.com/cheops-io/cheops/worker"
)

// apply --drift sets policy.drift, on a new resource and on an existing one, and nothing else of
// the policy.
func TestApplyDriftFlag(t *testing.T) {
	api, url := newFakeAPI(t, storedWeb)
	file := writeManifest(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fresh}\n")
	if out, err := runCLI(t, "--server", url, "apply", "-f", file, "--sites", "paris", "--drift", "report"); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	if body := string(api.changes[0].Body); !strings.HasSuffix(body, `"policy":{"drift":"report"}}`) {
		t.Errorf("POST body %s, want policy {drift: report}", body)
	}
	api, url = newFakeAPI(t, storedWeb)
	file = writeManifest(t, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: web}\n")
	if out, err := runCLI(t, "--server", url, "apply", "-f", file, "--drift", "report"); err != nil {
		t.Fatalf("apply: %v\n%s", err, out)
	}
	if pol := api.policy(t); pol["drift"] != "report" || pol["consistency"] != "transactional" {
		t.Errorf("policy after apply --drift report = %v, want drift report with the rest kept", pol)
	}
	if out, err := runCLI(t, "--server", url, "apply", "-f", file, "--drift", ""); err == nil || !strings.Contains(out, "--drift") {
		t.Errorf("apply --drift '': %v\n%s; want a usage error", err, out)
	}
}

// A drifted replica shows what drifted before its message.
func TestReplicaMessageSaysWhatDrifted(t *testing.T) {
	rep := cheops.Replica{State: cheops.ReplicaReady, Drifted: true, DriftMessage: "deleted on the site"}
	if got := replicaMessage(rep); got != "drifted: deleted on the site" {
		t.Errorf("replicaMessage = %q", got)
	}
	rep.Drifted, rep.Message = false, "local ID x"
	if got := replicaMessage(rep); got != "local ID x" {
		t.Errorf("replicaMessage of a replica that did not drift = %q", got)
	}
}

// --drift-interval is positive, or 0 to turn drift detection off; never negative.
func TestDriftIntervalSetting(t *testing.T) {
	valid := workerConfig{SweepInterval: time.Second, Health: worker.HealthConfig{Interval: time.Second, Failures: 1, Timeout: time.Second}}
	for _, c := range []struct {
		interval time.Duration
		ok       bool
	}{{30 * time.Second, true}, {0, true}, {-time.Second, false}} {
		cfg := valid
		cfg.DriftInterval = c.interval
		err := cfg.validate()
		if (err == nil) != c.ok || err != nil && !strings.Contains(err.Error(), "--drift-interval") {
			t.Errorf("--drift-interval %s: %v", c.interval, err)
		}
	}
}
