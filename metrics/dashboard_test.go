package metrics

import (
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"
)

// The Grafana dashboard in deploy/grafana queries exactly the metrics cheops exports: every name
// it uses is one of ours (or the Go client's process_ and go_ metrics), and every one of ours is on
// it. A renamed metric fails here, not on an operator's screen.
func TestGrafanaDashboardUsesOurMetrics(t *testing.T) {
	data, err := os.ReadFile("../deploy/grafana/cheops.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(data, &dash); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	ours := map[string]bool{HTTPRequestDuration: true, Replicas: true, SiteHealth: true, ActivityFailures: true, SiteFailures: true,
		ScrapeErrors: true, ReplicationLatency: true}
	runtime := map[string]bool{}
	mfs, err := New(nil).Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		runtime[mf.GetName()] = true
	}
	used := map[string]bool{}
	name := regexp.MustCompile(`\b(?:cheops|process|go)_[a-z_]+\b`)
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q queries nothing", p.Title)
		}
		for _, target := range p.Targets {
			for _, n := range name.FindAllString(target.Expr, -1) {
				base := n
				for _, suffix := range []string{"_bucket", "_count", "_sum"} {
					if b, ok := strings.CutSuffix(n, suffix); ok && (b == HTTPRequestDuration || b == ReplicationLatency) {
						base = b
					}
				}
				if !ours[base] && !runtime[base] {
					t.Errorf("panel %q queries %s, which cheops does not export", p.Title, n)
				}
				used[base] = true
			}
		}
	}
	for n := range ours {
		if !used[n] {
			t.Errorf("no panel shows %s", n)
		}
	}
}
