package lxc

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rootd-project/rootd/engine"
)

// eventDeadline is how long a test waits for an expected event before
// failing; it is not a latency requirement.
const eventDeadline = 10 * time.Second

func expectEvent(t *testing.T, events <-chan engine.Event, kind engine.EventKind, after string) {
	t.Helper()
	deadline := time.After(eventDeadline)
	for {
		select {
		case ev := <-events:
			if ev.Engine != Name {
				t.Errorf("event from engine %q", ev.Engine)
			}
			if ev.Kind == kind {
				return
			}
		case <-deadline:
			t.Fatalf("no %s event after %s", kind, after)
		}
	}
}

func drain(events <-chan engine.Event) {
	for {
		select {
		case <-events:
		default:
			return
		}
	}
}

func startWatch(t *testing.T, e *Engine) chan engine.Event {
	events := make(chan engine.Event, 64)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Watch(ctx, events); close(done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(eventDeadline):
			t.Error("Watch did not return after its context was cancelled")
		}
	})
	return events
}

func TestWatchFilesAndCgroups(t *testing.T) {
	lxcpath := filepath.Join(t.TempDir(), "lxc")
	must(t, os.MkdirAll(lxcpath, 0o755))
	cg := newFakeCgroups(t)
	must(t, os.MkdirAll(cg.unified, 0o755))
	must(t, os.MkdirAll(cg.freezer, 0o755))
	e := testEngine(t, lxcpath, cg.proc)
	events := startWatch(t, e)
	// Give the watcher time to set up: an event before that is not seen,
	// and would make the first step wait for nothing.
	waitWatched(t, e, events, lxcpath)

	payload := filepath.Join(cg.unified, "lxc.payload.c1")
	freezer := filepath.Join(cg.freezer, "lxc.payload.c1")
	steps := []struct {
		what   string
		do     func()
		expect engine.EventKind
	}{
		{"container created", func() { mkContainer(t, lxcpath, "c1", "lxc.uts.name = a\n") }, engine.Resync},
		{"config changed", func() {
			must(t, os.WriteFile(filepath.Join(lxcpath, "c1", "config"), []byte("lxc.uts.name = b\n"), 0o644))
		}, engine.Resync},
		{"payload cgroup created (start)", func() { must(t, os.Mkdir(payload, 0o755)) }, engine.Resync},
		{"v1 freezer cgroup created", func() { must(t, os.Mkdir(freezer, 0o755)) }, engine.Resync},
		{"freezer.state written (freeze)", func() {
			must(t, os.WriteFile(filepath.Join(freezer, "freezer.state"), []byte("FROZEN\n"), 0o644))
		}, engine.Resync},
		{"cgroup.events changed", func() {
			must(t, os.WriteFile(filepath.Join(payload, "cgroup.events"), []byte("populated 0\nfrozen 0\n"), 0o644))
		}, engine.Resync},
		{"payload cgroup removed (stop)", func() { must(t, os.RemoveAll(payload)) }, engine.Resync},
		{"legacy lxc/NAME cgroup created", func() {
			must(t, os.Mkdir(filepath.Join(cg.unified, "lxc"), 0o755))
			must(t, os.Mkdir(filepath.Join(cg.unified, "lxc", "c1"), 0o755))
		}, engine.Resync},
		{"container destroyed", func() { must(t, os.RemoveAll(filepath.Join(lxcpath, "c1"))) }, engine.Resync},
		{"lxc path removed", func() { must(t, os.RemoveAll(lxcpath)) }, engine.Unavailable},
		{"lxc path back", func() { must(t, os.MkdirAll(lxcpath, 0o755)) }, engine.Resync},
	}
	for _, s := range steps {
		drain(events)
		s.do()
		expectEvent(t, events, s.expect, s.what)
	}
}

// waitWatched pokes the LXC path until the watcher reports it.
func waitWatched(t *testing.T, e *Engine, events <-chan engine.Event, lxcpath string) {
	t.Helper()
	probe := filepath.Join(lxcpath, ".probe")
	deadline := time.Now().Add(eventDeadline)
	for time.Now().Before(deadline) {
		must(t, os.WriteFile(probe, nil, 0o644))
		select {
		case <-events:
			must(t, os.Remove(probe))
			expectEvent(t, events, engine.Resync, "probe removed")
			return
		case <-time.After(200 * time.Millisecond):
		}
		must(t, os.Remove(probe))
	}
	t.Fatal("the watcher never reported a change in the lxc path")
}

func TestWatchRechecksUnsettled(t *testing.T) {
	lxcpath := t.TempDir()
	cg := newFakeCgroups(t)
	e := testEngine(t, lxcpath, cg.proc)
	events := startWatch(t, e)
	waitWatched(t, e, events, lxcpath)
	// As if the List after that Resync had seen a container starting.
	e.unsettled.Store(true)
	expectEvent(t, events, engine.Resync, "an unsettled listing, without any file event")
	e.unsettled.Store(false)
}

// Without a cgroup hierarchy to watch, starts and stops are found by
// polling which command sockets are listening.
func TestWatchFallbackPollsSockets(t *testing.T) {
	lxcpath := t.TempDir()
	noCgroups := t.TempDir() // a /proc without mountinfo
	mkContainer(t, lxcpath, "c1", "")
	e := testEngine(t, lxcpath, noCgroups)
	events := startWatch(t, e)
	waitWatched(t, e, events, lxcpath)
	drain(events)
	startFakeMonitor(t, lxcpath, "c1", monitorAnswer{state: lxcRunning, pid: 1})
	expectEvent(t, events, engine.Resync, "a command socket started listening")
}
