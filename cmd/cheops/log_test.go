package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// --log-format json writes one JSON object a line; text writes key=value; anything else is refused
// naming the flag.
func TestLogFormats(t *testing.T) {
	var buf bytes.Buffer
	log, err := newLogger(&buf, "info", "json")
	if err != nil {
		t.Fatal(err)
	}
	log.Info("wave done", "resource", "r1", "generation", 3)
	var line map[string]any
	if err := json.Unmarshal(buf.Bytes(), &line); err != nil || line["msg"] != "wave done" || line["resource"] != "r1" || line["generation"] != 3.0 {
		t.Fatalf("json line %q: %v, %v", buf.String(), line, err)
	}
	buf.Reset()
	if log, err = newLogger(&buf, "info", "text"); err != nil {
		t.Fatal(err)
	}
	log.Info("wave done", "resource", "r1")
	if !strings.Contains(buf.String(), `msg="wave done" resource=r1`) {
		t.Fatalf("text line %q", buf.String())
	}
	if _, err := newLogger(&buf, "info", "yaml"); err == nil || !strings.Contains(err.Error(), "--log-format") {
		t.Fatalf("format yaml: %v, want an error naming --log-format", err)
	}
}

// The SDK's "Activity error." (a failed attempt, retried by policy) is logged as a warning; its
// other errors stay errors, and its chatter below WARN is dropped.
func TestSDKLogLevels(t *testing.T) {
	var buf bytes.Buffer
	log, err := newLogger(&buf, "debug", "json")
	if err != nil {
		t.Fatal(err)
	}
	sdk := sdkLogger(log)
	sdk.Error("Activity error.", "ActivityType", "PlanResource")
	sdk.Error("Workflow panic", "WorkflowType", "ResourceWorkflow")
	sdk.Info("Started Worker")
	var levels []string
	for _, l := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var line map[string]any
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			t.Fatal(err)
		}
		levels = append(levels, line["level"].(string)+" "+line["msg"].(string))
	}
	if want := []string{"WARN Activity error.", "ERROR Workflow panic"}; strings.Join(levels, "|") != strings.Join(want, "|") {
		t.Fatalf("SDK lines %v, want %v", levels, want)
	}
}
