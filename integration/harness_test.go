//go:build integration

// Package integration runs rootd against live container engines and PCP's
// real C client library. Build tag "integration"; scripts/test.sh sets up
// the machine (packages, engines, images) and runs it. Nothing here skips:
// a missing prerequisite is a failure.
package integration

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rootd-project/rootd/client"
	"github.com/rootd-project/rootd/engine"
)

// bins holds the programs TestMain builds once for every test.
var bins struct {
	dir        string
	rootd      string
	rootctl    string
	rootclient string // the C client, linked against libpcp_pmda
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "rootd-it-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bins.dir = dir
	bins.rootd = filepath.Join(dir, "rootd")
	bins.rootctl = filepath.Join(dir, "rootctl")
	bins.rootclient = filepath.Join(dir, "rootclient")
	build := [][]string{
		{"go", "build", "-o", bins.rootd, "../cmd/rootd"},
		{"go", "build", "-o", bins.rootctl, "../cmd/rootctl"},
		{"cc", "-Wall", "-Werror", "-O2", "-o", bins.rootclient, "c/rootclient.c", "-lpcp_pmda", "-lpcp"},
	}
	for _, argv := range build {
		if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "integration setup: %s: %v\n%s\n(run scripts/test.sh, which installs libpcp-pmda3-dev and friends)\n",
				strings.Join(argv, " "), err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// daemon is a rootd started by a test.
type daemon struct {
	socket string
	cmd    *exec.Cmd
	logMu  sync.Mutex
	log    bytes.Buffer
	done   chan error
}

// Log returns what rootd has logged so far.
func (d *daemon) Log() string {
	d.logMu.Lock()
	defer d.logMu.Unlock()
	return d.log.String()
}

type lockedWriter struct{ d *daemon }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.d.logMu.Lock()
	defer w.d.logMu.Unlock()
	return w.d.log.Write(p)
}

// startRootd runs rootd on a private socket with args, waits until it
// answers, and stops it (SIGTERM, exit 0, socket removed) at cleanup.
func startRootd(t *testing.T, env []string, args ...string) *daemon {
	t.Helper()
	sockDir, err := os.MkdirTemp("", "rootd-it-sock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	socket := filepath.Join(sockDir, "pmcd", "root.socket")
	return launchRootd(t, socket, append(os.Environ(), env...), append([]string{"-s", socket, "--log-level", "debug"}, args...)...)
}

// launchRootd starts rootd with exactly env and args (plus --config
// /dev/null unless args name a configuration file: see noHostConfig),
// expecting it on socket, waits until it answers there, and stops it at
// cleanup.
func launchRootd(t *testing.T, socket string, env []string, args ...string) *daemon {
	t.Helper()
	d := &daemon{socket: socket, done: make(chan error, 1)}
	d.cmd = exec.Command(bins.rootd, noHostConfig(args)...)
	d.cmd.Env = env
	d.cmd.Stdout = lockedWriter{d}
	d.cmd.Stderr = lockedWriter{d} // the agents' standard error too
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, err := client.Connect(ctx, d.socket)
		cancel()
		if err == nil {
			c.Close()
			break
		}
		select {
		case err := <-d.done:
			t.Fatalf("rootd exited at start: %v\n%s", err, d.Log())
		default:
		}
		if time.Now().After(deadline) {
			d.cmd.Process.Kill()
			<-d.done
			t.Fatalf("rootd did not answer on %s: %v\n%s", d.socket, err, d.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() { d.stop(t) })
	return d
}

// noHostConfig puts --config /dev/null before args unless they already
// give --config: a rootd the tests start must not read the host's
// /etc/rootd/rootd.conf (a second --config would override the test's own).
func noHostConfig(args []string) []string {
	for _, a := range args {
		if a == "--config" || a == "-config" || strings.HasPrefix(a, "--config=") || strings.HasPrefix(a, "-config=") {
			return args
		}
	}
	return append([]string{"--config", os.DevNull}, args...)
}

func (d *daemon) stop(t *testing.T) {
	t.Helper()
	if d.cmd.ProcessState != nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		if err != nil {
			t.Errorf("rootd exit: %v\n%s", err, d.Log())
		}
	case <-time.After(10 * time.Second):
		d.cmd.Process.Kill()
		t.Errorf("rootd ignored SIGTERM\n%s", d.Log())
	}
	if _, err := os.Lstat(d.socket); !os.IsNotExist(err) {
		t.Errorf("socket %s left behind after SIGTERM", d.socket)
	}
	if t.Failed() {
		t.Logf("rootd log:\n%s", d.Log())
	}
}

// client connects the Go client.
func (d *daemon) client(t *testing.T) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Connect(ctx, d.socket)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// cResult is one line of the C client's output.
type cResult struct {
	OK    bool
	Value string // the answer, or for errors "CODE MESSAGE"
	Code  int
}

// cLookup asks the C client (PCP's libpcp_pmda) op for each name, once with
// the name's NUL counted in its length, as real PCP sends it, and once
// without, and fails unless both forms get the same answers.
//
// Tests that poll a container through a change of state may catch the
// change between the two runs, so a disagreement is asked again: only one
// that persists is a failure.
func cLookup(t *testing.T, socket, op string, names ...string) []cResult {
	t.Helper()
	for attempt := 1; ; attempt++ {
		withNUL := cLookupForm(t, "pcp", socket, op, names...)
		without := cLookupForm(t, "strlen", socket, op, names...)
		differ := -1
		for i := range withNUL {
			if withNUL[i] != without[i] {
				differ = i
			}
		}
		if differ < 0 {
			return withNUL
		}
		if attempt == 3 {
			t.Fatalf("C client %s %q: %+v with the NUL counted, %+v without", op, names[differ], withNUL[differ], without[differ])
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func cLookupForm(t *testing.T, form, socket, op string, names ...string) []cResult {
	t.Helper()
	cmd := exec.Command(bins.rootclient, append([]string{socket, op}, names...)...)
	cmd.Env = append(os.Environ(), "ROOTCLIENT_NAMELEN="+form)
	out, _ := cmd.Output()
	var res []cResult
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "ok "):
			res = append(res, cResult{OK: true, Value: strings.TrimPrefix(line, "ok ")})
		case strings.HasPrefix(line, "err "):
			r := cResult{Value: strings.TrimPrefix(line, "err ")}
			fmt.Sscanf(r.Value, "%d", &r.Code)
			res = append(res, r)
		}
	}
	if len(res) != len(names) {
		t.Fatalf("C client %s %v: %d answers for %d names:\n%s", op, names, len(res), len(names), out)
	}
	return res
}

// ctxT is a context bounded by the test's own deadline pressure.
func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// watchEvents starts e's Watch for the rest of the test and returns its
// events.
func watchEvents(t *testing.T, e engine.Engine) <-chan engine.Event {
	t.Helper()
	w, ok := e.(engine.Watcher)
	if !ok {
		t.Fatalf("the %s engine is not a Watcher", e.Name())
	}
	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan engine.Event, 256)
	done := make(chan struct{})
	go func() { defer close(done); w.Watch(ctx, events) }()
	t.Cleanup(func() { cancel(); <-done })
	return events
}

// awaitEvent returns the first event that match accepts, failing after
// timeout.
func awaitEvent(t *testing.T, events <-chan engine.Event, timeout time.Duration, what string, match func(engine.Event) bool) engine.Event {
	t.Helper()
	deadline := time.After(timeout)
	var seen []string
	for {
		select {
		case ev := <-events:
			if match(ev) {
				return ev
			}
			seen = append(seen, fmt.Sprintf("%v %s %s/%s", ev.Kind, ev.ID, ev.Container.ShortID(), ev.Container.State))
		case <-deadline:
			t.Fatalf("no event %s within %s; saw %d others: %v", what, timeout, len(seen), seen)
		}
	}
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, within time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	var last string
	for {
		ok, detail := cond()
		if ok {
			return
		}
		last = detail
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v (last: %s)", what, within, last)
		}
		time.Sleep(25 * time.Millisecond)
	}
}
