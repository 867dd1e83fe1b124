package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestLoggerFormats(t *testing.T) {
	var text strings.Builder
	l, err := Logger(&text, "info", "text")
	if err != nil {
		t.Fatal(err)
	}
	l.Info("hello", "engine", "docker", "containers", 3)
	l.Debug("hidden")
	if got := text.String(); !strings.Contains(got, `level=INFO msg=hello engine=docker containers=3`) || strings.Contains(got, "hidden") {
		t.Errorf("text log %q", got)
	}

	var js strings.Builder
	if l, err = Logger(&js, "debug", "json"); err != nil {
		t.Fatal(err)
	}
	l.Warn("engine does not answer", "engine", "containerd", "containers", 2)
	l.Debug("shown")
	lines := strings.Split(strings.TrimSpace(js.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("json log: %d lines, want 2:\n%s", len(lines), js.String())
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil {
		t.Fatalf("json log line %q: %v", lines[0], err)
	}
	for k, want := range map[string]any{"level": "WARN", "msg": "engine does not answer", "engine": "containerd", "containers": 2.0} {
		if rec[k] != want {
			t.Errorf("json %s = %v, want %v", k, rec[k], want)
		}
	}
	if _, ok := rec["time"]; !ok {
		t.Error("json line has no time")
	}

	if _, err := Logger(&js, "info", "xml"); err == nil || !strings.Contains(err.Error(), "log format") {
		t.Errorf("format xml: %v", err)
	}
	if _, err := Logger(&js, "loud", "text"); err == nil {
		t.Error("level loud accepted")
	}
}
