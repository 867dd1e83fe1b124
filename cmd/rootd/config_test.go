package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The configuration file alone (no -s, no --engines) says where rootd
// listens and which engines it opens; the command line still wins.
func TestConfigFileSettings(t *testing.T) {
	dir := shortDir(t)
	fromFile := filepath.Join(dir, "pmcd", "file.socket")
	conf := filepath.Join(dir, "rootd.conf")
	text := "socket = \"" + fromFile + "\"\nengines = [\"static\"]\n\n[rootd]\nlog-level = \"debug\"\n\n[rootctl]\ntimeout = \"3s\"\n"
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	d := &daemon{socket: fromFile, done: make(chan error, 1)}
	d.cmd = exec.Command(os.Args[0], "--config", conf)
	d.cmd.Env = append(os.Environ(), daemonEnv+"=1")
	d.cmd.Stderr = &stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.cmd.Process.Kill()
			<-d.done
		}
	})
	d.mustServe(t)
	d.stop(t)
	log := stderr.String()
	// log-level debug from [rootd]; engines=[static] from the top level.
	if !strings.Contains(log, "level=DEBUG") || !strings.Contains(log, "engines=[static]") {
		t.Errorf("rootd did not take [rootd] log-level and engines from the file:\n%s", log)
	}

	// -s on the command line wins over socket in the file.
	d2 := start(t, &stderr, nil, "--config", conf)
	d2.stop(t)
	if _, err := os.Stat(fromFile); err == nil {
		t.Errorf("%s exists: the file's socket was used although -s was given", fromFile)
	}
}

func TestConfigFileErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.conf")
	if err := os.WriteFile(bad, []byte("[docker]\nhots = \"unix:///x\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown key", []string{"--config", bad}, `bad.conf: unknown key "docker.hots"`},
		{"explicit file absent", []string{"--config", filepath.Join(dir, "none.conf")}, "none.conf: no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := run(tc.args, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), tc.want) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, errOut.String(), tc.want)
			}
		})
	}
}

// Every setting the shipped file shows, uncommented, is a flag rootd has
// and a value it accepts.
func TestShippedConfigKeys(t *testing.T) {
	data, err := os.ReadFile("../../packaging/rootd.conf")
	if err != nil {
		t.Fatal(err)
	}
	uncommented := regexp.MustCompile(`(?m)^#([a-z][a-z-]* = )`).ReplaceAllString(string(data), "$1")
	if uncommented == string(data) {
		t.Fatal("no commented setting found")
	}
	for name, text := range map[string]string{"shipped": string(data), "uncommented": uncommented} {
		path := filepath.Join(t.TempDir(), "rootd.conf")
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		var out, errOut bytes.Buffer
		if code := run([]string{"--config", path, "--version"}, &out, &errOut); code != 0 {
			t.Errorf("%s: exit %d: %s", name, code, errOut.String())
		}
	}
}
