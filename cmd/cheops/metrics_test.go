package main

import (
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/cheops-io/cheops/internal/freeport"
	"github.com/cheops-io/cheops/metrics"
)

// A bare port listens on loopback; only a named host listens elsewhere.
func TestMetricsAddrIsLoopbackUnlessAHostIsNamed(t *testing.T) {
	for in, want := range map[string]string{
		"9464": "127.0.0.1:9464", ":9464": "127.0.0.1:9464", "0.0.0.0:9464": "0.0.0.0:9464",
		"[::1]:9464": "[::1]:9464", "localhost:9464": "localhost:9464",
	} {
		if got, err := metricsListenAddr(in); err != nil || got != want {
			t.Errorf("metricsListenAddr(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := metricsListenAddr("a:b:c"); err == nil {
		t.Error("a:b:c: no error")
	}
}

// The worker's listener serves /metrics and nothing else.
func TestServeMetricsServesOnlyMetrics(t *testing.T) {
	m := metrics.New(nil)
	m.ActivityFailed("ApplySite", io.EOF)
	p, err := freeport.On("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(p)
	if err := serveMetrics(port, m, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://127.0.0.1:" + port + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `cheops_activity_failures_total{activity="ApplySite",class="Transient"} 1`) {
		t.Fatalf("GET /metrics: %d\n%s", resp.StatusCode, body)
	}
	resp, err = http.Get("http://127.0.0.1:" + port + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET /debug/pprof/ on the metrics listener: %d, want 404", resp.StatusCode)
	}
}
