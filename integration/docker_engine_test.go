//go:build integration

package integration

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rootd-project/rootd/engine"
	_ "github.com/rootd-project/rootd/engine/docker"
)

// These tests need a running dockerd with the bb:latest image: run
// scripts/engines/docker.sh first. They fail (not skip) without it.

const dockerImage = "bb:latest"

// dockerCLI is Debian's docker CLI when present: it matches Debian's dockerd.
func dockerCLI() string {
	if _, err := os.Stat("/usr/bin/docker"); err == nil {
		return "/usr/bin/docker"
	}
	return "docker"
}

func dockerRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(dockerCLI(), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// dockerStart runs a sleeping busybox container and removes it at cleanup.
func dockerStart(t *testing.T, name string) string {
	t.Helper()
	id := dockerRun(t, "run", "-d", "--name", name, "--hostname", name+"-host", "--network", "none",
		dockerImage, "sleep", "600")
	t.Cleanup(func() { exec.Command(dockerCLI(), "rm", "-f", id).Run() })
	return id
}

func dockerName(t *testing.T, what string) string {
	return fmt.Sprintf("rootd-it-%s-%d-%d", what, os.Getpid(), time.Now().UnixNano()%1e6)
}

// dockerOpen opens the registered docker engine in API mode.
func dockerOpen(t *testing.T) engine.Engine {
	t.Helper()
	d, ok := engine.Lookup("docker")
	if !ok {
		t.Fatal("docker engine not registered")
	}
	fs := flag.NewFlagSet("it", flag.ContinueOnError)
	open := d.Configure(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e, err := open(engine.Env{Log: log, Getenv: func(k string) string {
		if k == "PCP_DOCKER_DIR" {
			return "" // API mode, whatever the environment says
		}
		return os.Getenv(k)
	}})
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := e.(io.Closer); ok {
		t.Cleanup(func() { c.Close() })
	}
	return e
}

// testWriter sends log lines to the test log. (podman_engine_test.go uses it
// too; it belongs in harness_test.go.)
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

type dockerInspected struct {
	id, name string
	pid      int
	state    engine.State
}

func dockerInspect(t *testing.T, id string) dockerInspected {
	t.Helper()
	f := strings.Fields(dockerRun(t, "inspect", "--format", "{{.Id}} {{.Name}} {{.State.Pid}} {{.State.Status}}", id))
	if len(f) != 4 {
		t.Fatalf("docker inspect %s: %q", id, f)
	}
	pid, _ := strconv.Atoi(f[2])
	state := map[string]engine.State{
		"running": engine.StateRunning, "paused": engine.StatePaused, "restarting": engine.StateRestarting,
	}[f[3]]
	if state == "" {
		state = engine.StateStopped
	}
	return dockerInspected{id: f[0], name: strings.TrimPrefix(f[1], "/"), pid: pid, state: state}
}

func dockerCheck(t *testing.T, c engine.Container, want dockerInspected) {
	t.Helper()
	if c.ID != want.id || !slices.Equal(c.Names, []string{want.name}) || c.State != want.state || c.PID != want.pid {
		t.Errorf("engine says {%s %q %s pid %d}, docker inspect says {%s %q %s pid %d}",
			c.ID[:12], c.Names, c.State, c.PID, want.id[:12], want.name, want.state, want.pid)
	}
	if c.State == engine.StateRunning || c.State == engine.StatePaused {
		if c.PID <= 0 {
			t.Errorf("%s: %s without a PID", want.name, c.State)
		}
		cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", c.PID))
		if err != nil || !strings.Contains(string(cg), c.ID) {
			t.Errorf("%s: PID %d is not in the container's cgroup (%v): %s", want.name, c.PID, err, cg)
		}
	}
}

func TestDockerListMatchesInspect(t *testing.T) {
	e := dockerOpen(t)
	running := dockerStart(t, dockerName(t, "run"))
	paused := dockerStart(t, dockerName(t, "pause"))
	dockerRun(t, "pause", paused)
	stopped := dockerStart(t, dockerName(t, "stop"))
	dockerRun(t, "stop", "-t", "0", stopped)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs, err := e.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	byID := map[string]engine.Container{}
	for _, c := range cs {
		if c.Engine != "docker" {
			t.Errorf("container %s has engine %q", c.ID, c.Engine)
		}
		byID[c.ID] = c
	}
	for _, id := range []string{running, paused, stopped} {
		c, ok := byID[id]
		if !ok {
			t.Errorf("container %s not listed", id[:12])
			continue
		}
		dockerCheck(t, c, dockerInspect(t, id))
	}
	// Spot check that the states are the ones the test set up.
	if byID[paused].State != engine.StatePaused || byID[stopped].State != engine.StateStopped ||
		byID[running].State != engine.StateRunning {
		t.Errorf("states: running=%s paused=%s stopped=%s",
			byID[running].State, byID[paused].State, byID[stopped].State)
	}
}

func dockerUpsertOf(id string, state engine.State) func(engine.Event) bool {
	return func(ev engine.Event) bool {
		return ev.Kind == engine.Upsert && ev.Container.ID == id && ev.Container.State == state
	}
}

func TestDockerWatch(t *testing.T) {
	e := dockerOpen(t)
	events := watchEvents(t, e)
	// The subscription is made asynchronously; a List proves the daemon
	// answers, and Watch subscribes from the moment it was called.
	if _, err := e.List(context.Background()); err != nil {
		t.Fatal(err)
	}
	const timeout = 10 * time.Second

	name := dockerName(t, "watch")
	id := dockerStart(t, name)
	ev := awaitEvent(t, events, timeout, "upsert after run", dockerUpsertOf(id, engine.StateRunning))
	dockerCheck(t, ev.Container, dockerInspect(t, id))

	dockerRun(t, "pause", id)
	ev = awaitEvent(t, events, timeout, "upsert after pause", dockerUpsertOf(id, engine.StatePaused))
	dockerCheck(t, ev.Container, dockerInspect(t, id))

	dockerRun(t, "unpause", id)
	awaitEvent(t, events, timeout, "upsert after unpause", dockerUpsertOf(id, engine.StateRunning))

	renamed := name + "-renamed"
	dockerRun(t, "rename", id, renamed)
	ev = awaitEvent(t, events, timeout, "upsert after rename", func(ev engine.Event) bool {
		return ev.Kind == engine.Upsert && ev.Container.ID == id && slices.Contains(ev.Container.Names, renamed)
	})
	dockerCheck(t, ev.Container, dockerInspect(t, id))

	dockerRun(t, "stop", "-t", "0", id)
	awaitEvent(t, events, timeout, "upsert after stop", dockerUpsertOf(id, engine.StateStopped))

	dockerRun(t, "rm", "-f", id)
	awaitEvent(t, events, timeout, "remove after rm", func(ev engine.Event) bool {
		return ev.Kind == engine.Remove && ev.ID == id
	})
}

// TestDockerDaemonRestart stops dockerd (which stops every container on the
// machine) and starts it again with scripts/engines/docker.sh. The suite
// runs its tests one at a time, so nothing else is using the daemon then.
func TestDockerDaemonRestart(t *testing.T) {
	e := dockerOpen(t)
	if _, err := e.List(context.Background()); err != nil {
		t.Fatal(err)
	}
	events := watchEvents(t, e)
	id := dockerStart(t, dockerName(t, "restart"))
	awaitEvent(t, events, 10*time.Second, "upsert after run", dockerUpsertOf(id, engine.StateRunning))

	pid := dockerdPID(t)
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatalf("stop dockerd %d: %v", pid, err)
	}
	ev := awaitEvent(t, events, 60*time.Second, "Unavailable after stopping dockerd", func(ev engine.Event) bool {
		return ev.Kind == engine.Unavailable
	})
	if ev.Err == nil {
		t.Error("Unavailable without an error")
	}
	for deadline := time.Now().Add(60 * time.Second); syscall.Kill(pid, 0) == nil; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("dockerd %d did not exit", pid)
		}
	}
	// While the daemon is down, List answers from its state directory and
	// must not report the killed container as running.
	cs, err := e.List(context.Background())
	switch {
	case errors.Is(err, engine.ErrUnavailable):
	case err != nil:
		t.Errorf("List with dockerd down: %v", err)
	default:
		for _, c := range cs {
			if c.ID == id && c.State != engine.StateStopped {
				t.Errorf("with dockerd down, List reports %s as %s pid %d", id[:12], c.State, c.PID)
			}
		}
	}

	// Nothing may claim the daemon is back while it is not.
	for drained := false; !drained; {
		select {
		case ev := <-events:
			if ev.Kind == engine.Resync {
				t.Errorf("Resync while dockerd is down")
			}
		default:
			drained = true
		}
	}

	script := dockerFindScript(t, "scripts/engines/docker.sh")
	if out, err := exec.Command("sh", script).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	awaitEvent(t, events, 30*time.Second, "Resync after dockerd came back", func(ev engine.Event) bool {
		return ev.Kind == engine.Resync
	})
	cs, err = e.List(context.Background())
	if err != nil {
		t.Fatalf("List after restart: %v", err)
	}
	for _, c := range cs {
		if c.ID == id {
			dockerCheck(t, c, dockerInspect(t, id))
		}
	}
}

func dockerdPID(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/var/run/docker.pid")
	if err != nil {
		t.Fatalf("dockerd pid file: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		t.Fatalf("dockerd pid file holds %q", b)
	}
	return pid
}

// dockerFindScript finds a repository file from the test's directory upwards.
func dockerFindScript(t *testing.T, rel string) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		p := dir + "/" + rel
		if _, err := os.Stat(p); err == nil {
			return p
		}
		parent := dir[:max(strings.LastIndex(dir, "/"), 0)]
		if parent == dir || parent == "" {
			t.Fatalf("%s not found above the test directory", rel)
		}
		dir = parent
	}
}
