package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rootd-project/rootd/internal/pcpconf"
)

// TestPMDALogDefault: in PMDA mode rootd logs where pmdaroot did,
// $PCP_LOG_DIR/pmcd/root.log, unless that file is not root's (the directory
// is the PCP account's): then standard error, which pmcd keeps.
func TestPMDALogDefault(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("log files must be root's")
	}
	on := true
	m := &pmdaMode{on: &on}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "pmcd"), 0o755); err != nil {
		t.Fatal(err)
	}
	pcp := pcpconf.Config{LogDir: dir}
	var stderr bytes.Buffer

	l, err := m.openLog("", pcp, &stderr)
	if err != nil || l.Path() != filepath.Join(dir, "pmcd", "root.log") {
		t.Fatalf("openLog = %v, %v; want pmcd/root.log", l, err)
	}
	l.Close()

	os.Chown(filepath.Join(dir, "pmcd", "root.log"), 65534, 65534)
	l, err = m.openLog("", pcp, &stderr)
	if err != nil || l.Path() != "" {
		t.Fatalf("openLog of a file nobody owns = %v, %v; want standard error", l, err)
	}
	if !strings.Contains(stderr.String(), "logging to standard error") {
		t.Errorf("no word of the fallback: %q", stderr.String())
	}
	// An explicit -l is never silently replaced.
	if _, err := m.openLog(filepath.Join(dir, "pmcd", "root.log"), pcp, &stderr); err == nil {
		t.Error("-l naming a file nobody owns was accepted")
	}
}
