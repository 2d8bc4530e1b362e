package activities

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

// A wave logs a line per site carrying the resource, the site and the generation, at a level that
// says whether anyone must act (a rejection: WARN) or not (a retried failure: INFO; done: DEBUG),
// and one line for the wave.
func TestApplyWaveLogsEachSiteWithItsResourceAndGeneration(t *testing.T) {
	_, _, a, env := waveFixture(t, "a", "rejects", "down")
	var buf bytes.Buffer
	a.Log = slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	runWave(t, env, a, WaveInput{ResourceID: "r1", Generation: 1, Sites: []string{"a", "rejects", "down"}, MaxParallel: 3, Attempt: 2})
	levels := map[string]string{}
	var wave map[string]any
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var line map[string]any
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		if line["msg"] == "wave done" {
			wave = line
			continue
		}
		if line["resource"] != "r1" || line["generation"] != 1.0 || line["site"] == nil || line["attempt"] != 2.0 {
			t.Errorf("site line without its resource, generation, site or attempt: %s", l)
		}
		levels[line["site"].(string)] = line["level"].(string)
	}
	want := map[string]string{"a": "DEBUG", "rejects": "WARN", "down": "INFO"}
	for site, level := range want {
		if levels[site] != level {
			t.Errorf("site %s logged at %q, want %s", site, levels[site], level)
		}
	}
	if wave == nil || wave["level"] != "INFO" || wave["sites"] != 3.0 || wave["failed"] != 2.0 || wave["resource"] != "r1" {
		t.Fatalf("wave line %v, want INFO with 3 sites, 2 failed", wave)
	}
}
