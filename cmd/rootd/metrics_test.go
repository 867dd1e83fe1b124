package main

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rootd-project/rootd/client"
)

// A non-loopback --metrics-address stops rootd at once with status 2 and
// says why.
func TestMetricsAddressMustBeLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:9559", ":9559", "192.0.2.1:9559"} {
		var stderr strings.Builder
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		cmd := exec.CommandContext(ctx, os.Args[0], "-s", filepath.Join(shortDir(t), "root.socket"), "--engines", "static", "--metrics-address", addr)
		cmd.Env = append(os.Environ(), daemonEnv+"=1")
		cmd.Stderr = &stderr
		err := cmd.Run()
		cancel()
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 {
			t.Errorf("%s: rootd: %v, want exit status 2", addr, err)
		}
		if !strings.Contains(stderr.String(), "loopback") {
			t.Errorf("%s: stderr %q does not say loopback", addr, stderr.String())
		}
	}
}

// rootd serves metrics, /healthz and /readyz on a unix socket, and logs
// JSON with --log-format json.
func TestMetricsEndpointAndJSONLog(t *testing.T) {
	dir := shortDir(t)
	msock := filepath.Join(dir, "metrics.sock")
	logPath := filepath.Join(dir, "rootd.log")
	d := start(t, io.Discard, nil, "--metrics-address", "unix:"+msock, "--log-format", "json", "-l", logPath)
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", msock)
		},
	}}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := hc.Get("http://rootd" + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d", code)
	}
	// The static engine lists at once: ready soon after start.
	deadline := time.Now().Add(20 * time.Second)
	for code, _ := get("/readyz"); code != http.StatusOK; code, _ = get("/readyz") {
		if time.Now().After(deadline) {
			t.Fatalf("/readyz: %d", code)
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Connect(ctx, d.socket)
	if err != nil {
		t.Fatal(err)
	}
	c.ProcessID(ctx, "nothere")
	c.Close()
	deadline = time.Now().Add(20 * time.Second)
	for {
		_, body := get("/metrics")
		if strings.Contains(body, `rootd_requests_total{result="not_found",type="processid"} 1`) &&
			strings.Contains(body, `rootd_engine_available{engine="static"} 1`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics never showed the request:\n%s", body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	fi, err := os.Stat(msock)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("metrics socket mode %o, want 600", perm)
	}
	d.stop(t)
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("log line %q is not JSON: %v", line, err)
		}
		if rec["msg"] == "serving metrics" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d 'serving metrics' lines, want 1:\n%s", n, b)
	}
}
