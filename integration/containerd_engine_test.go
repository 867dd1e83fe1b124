//go:build integration

package integration

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/rootd-project/rootd/engine"
	_ "github.com/rootd-project/rootd/engine/containerd"
)

// The daemon and image that scripts/engines/containerd.sh sets up.
const (
	containerdDefaultSocket = "/run/rootd-ci/containerd/containerd.sock"
	containerdDefaultImage  = "docker.io/rootd/bb:latest"
	containerdTestNamespace = "rootd-test"
	containerdWait          = 20 * time.Second
)

func containerdSocket() string {
	if s := os.Getenv("ROOTD_CONTAINERD_ADDRESS"); s != "" {
		return s
	}
	return containerdDefaultSocket
}

func containerdImage() string {
	if s := os.Getenv("ROOTD_CONTAINERD_IMAGE"); s != "" {
		return s
	}
	return containerdDefaultImage
}

// containerdCtr runs ctr against the test daemon and returns its output.
func containerdCtr(t *testing.T, namespace string, args ...string) (string, error) {
	t.Helper()
	full := append([]string{"-a", containerdSocket(), "-n", namespace}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ctr", full...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ctr %s: %w: %s", strings.Join(full, " "), err, out)
	}
	return string(out), nil
}

func containerdMustCtr(t *testing.T, namespace string, args ...string) string {
	t.Helper()
	out, err := containerdCtr(t, namespace, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// containerdRequire fails (not skips) when the daemon is not there: the live
// suite is meant to run after scripts/engines/containerd.sh.
func containerdRequire(t *testing.T) {
	t.Helper()
	if _, err := containerdCtr(t, "default", "version"); err != nil {
		t.Fatalf("containerd is not reachable at %s (run scripts/engines/containerd.sh): %v", containerdSocket(), err)
	}
}

// containerdOpen opens the engine through the registry, as rootd does.
func containerdOpen(t *testing.T, address string) engine.Engine {
	t.Helper()
	d, ok := engine.Lookup("containerd")
	if !ok {
		t.Fatal("engine containerd is not registered")
	}
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	open := d.Configure(fs)
	if err := fs.Parse([]string{"--containerd-address", address}); err != nil {
		t.Fatal(err)
	}
	eng, err := open(engine.Env{
		Log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Getenv: func(string) string { return "" },
	})
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := eng.(io.Closer); ok {
		t.Cleanup(func() { c.Close() })
	}
	return eng
}

// containerdRun starts a detached container and removes it at cleanup.
func containerdRun(t *testing.T, namespace, id string, extra ...string) {
	t.Helper()
	args := append([]string{"run", "-d"}, extra...)
	args = append(args, containerdImage(), id, "sleep", "600")
	containerdMustCtr(t, namespace, args...)
	t.Cleanup(func() { containerdRemove(t, namespace, id) })
}

func containerdRemove(t *testing.T, namespace, id string) {
	// Each step may fail because the test already did it.
	containerdCtr(t, namespace, "task", "kill", "-s", "KILL", id)
	for i := 0; i < 50; i++ {
		if _, err := containerdCtr(t, namespace, "task", "rm", id); err == nil || !containerdHasTask(t, namespace, id) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	containerdCtr(t, namespace, "containers", "rm", id)
}

func containerdHasTask(t *testing.T, namespace, id string) bool {
	_, ok := containerdTasks(t, namespace)[id]
	return ok
}

type containerdTask struct {
	pid    int
	status string
}

// containerdTasks parses `ctr task ls`: TASK PID STATUS.
func containerdTasks(t *testing.T, namespace string) map[string]containerdTask {
	t.Helper()
	out := containerdMustCtr(t, namespace, "task", "ls")
	tasks := map[string]containerdTask{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 3 || f[0] == "TASK" {
			continue
		}
		pid, err := strconv.Atoi(f[1])
		if err != nil {
			t.Fatalf("ctr task ls: bad line %q", sc.Text())
		}
		tasks[f[0]] = containerdTask{pid: pid, status: f[2]}
	}
	return tasks
}

func containerdUniqueID(t *testing.T, prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid(), time.Now().UnixNano()%1e6)
}

func containerdHexID(t *testing.T) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// containerdCreateBare makes a container without image or task through the
// Go client: enough to exist in a namespace the test image is not in.
func containerdCreateBare(t *testing.T, namespace, id string) {
	t.Helper()
	c, err := client.New(containerdSocket())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := namespaces.WithNamespace(context.Background(), namespace)
	if _, err := c.NewContainer(ctx, id,
		client.WithRuntime("io.containerd.runc.v2", nil),
		client.WithSpec(&specs.Spec{Version: specs.Version})); err != nil {
		t.Fatalf("creating %s/%s: %v", namespace, id, err)
	}
	t.Cleanup(func() {
		c, err := client.New(containerdSocket())
		if err != nil {
			return
		}
		defer c.Close()
		c.ContainerService().Delete(ctx, id)
	})
}

func containerdFind(cs []engine.Container, namespace, id string) (engine.Container, bool) {
	for _, c := range cs {
		if c.ID == id && c.Namespace == namespace {
			return c, true
		}
	}
	return engine.Container{}, false
}

func TestContainerdEngineList(t *testing.T) {
	containerdRequire(t)
	plain := containerdUniqueID(t, "rootd-it-ctr1")
	created := containerdUniqueID(t, "rootd-it-created")
	k8sID := containerdHexID(t)
	mobyID := containerdUniqueID(t, "rootd-it-moby")
	pod := containerdUniqueID(t, "web")

	containerdRun(t, containerdTestNamespace, plain)
	containerdMustCtr(t, containerdTestNamespace, "containers", "create", containerdImage(), created, "sleep", "600")
	t.Cleanup(func() { containerdRemove(t, containerdTestNamespace, created) })
	containerdRun(t, "k8s.io", k8sID,
		"--label", engine.LabelPodName+"="+pod,
		"--label", engine.LabelPodNamespace+"=rootd-it",
		"--label", engine.LabelContainerName+"=app",
		"--label", "io.cri-containerd.kind=container")
	containerdCreateBare(t, "moby", mobyID)

	eng := containerdOpen(t, containerdSocket())
	if eng.Name() != "containerd" {
		t.Errorf("Name() = %q", eng.Name())
	}
	cs, err := eng.List(context.Background())
	if err != nil {
		t.Fatalf("List: %v", err)
	}

	tasks := containerdTasks(t, containerdTestNamespace)
	c, ok := containerdFind(cs, containerdTestNamespace, plain)
	switch {
	case !ok:
		t.Errorf("List lacks %s/%s", containerdTestNamespace, plain)
	case c.Engine != "containerd" || c.State != engine.StateRunning || !slices.Equal(c.Names, []string{plain}):
		t.Errorf("plain container = %+v", c)
	case c.PID != tasks[plain].pid || c.PID <= 0:
		t.Errorf("plain container PID %d, ctr task ls says %d", c.PID, tasks[plain].pid)
	default:
		cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", c.PID))
		if err != nil || !strings.Contains(string(cg), "/"+containerdTestNamespace+"/"+plain) {
			t.Errorf("PID %d's cgroup %q is not the container's (%v)", c.PID, cg, err)
		}
	}

	if c, ok := containerdFind(cs, containerdTestNamespace, created); !ok {
		t.Errorf("List lacks the created-only container %s", created)
	} else if c.State != engine.StateStopped || c.PID != 0 {
		t.Errorf("created-only container = %+v, want stopped without PID", c)
	}

	k8sTasks := containerdTasks(t, "k8s.io")
	if c, ok := containerdFind(cs, "k8s.io", k8sID); !ok {
		t.Errorf("List lacks k8s.io/%s", k8sID)
	} else {
		if len(c.Names) != 0 {
			t.Errorf("k8s container names = %q, want none (identity is in the labels)", c.Names)
		}
		if c.Labels[engine.LabelPodName] != pod || c.Labels[engine.LabelPodNamespace] != "rootd-it" ||
			c.Labels[engine.LabelContainerName] != "app" || c.Labels["io.cri-containerd.kind"] != "container" {
			t.Errorf("k8s container labels = %v", c.Labels)
		}
		if c.State != engine.StateRunning || c.PID != k8sTasks[k8sID].pid {
			t.Errorf("k8s container state %s PID %d; ctr task ls says %+v", c.State, c.PID, k8sTasks[k8sID])
		}
	}

	for _, c := range cs {
		if c.Namespace == "moby" || c.Namespace == "plugins.moby" {
			t.Errorf("List reports Docker's namespace: %+v", c)
		}
	}

	// Every task ctr knows in these namespaces is in List with the same PID
	// (other tests may share the daemon, so compare what ctr reports).
	for ns, nsTasks := range map[string]map[string]containerdTask{containerdTestNamespace: tasks, "k8s.io": k8sTasks} {
		for id, task := range nsTasks {
			c, ok := containerdFind(cs, ns, id)
			if !ok {
				// Created after List by someone else: not an error of ours.
				continue
			}
			if (task.status == "RUNNING" || task.status == "PAUSED") && c.PID != task.pid {
				t.Errorf("%s/%s: List PID %d, ctr task ls %d (%s)", ns, id, c.PID, task.pid, task.status)
			}
		}
	}
}

func TestContainerdEngineWatch(t *testing.T) {
	containerdRequire(t)
	eng := containerdOpen(t, containerdSocket())
	events := watchEvents(t, eng)
	awaitEvent(t, events, containerdWait, "resync after subscribing", func(ev engine.Event) bool { return ev.Kind == engine.Resync })

	ns := containerdTestNamespace
	id := containerdUniqueID(t, "rootd-it-watch")
	upsertOf := func(state engine.State) func(engine.Event) bool {
		return func(ev engine.Event) bool {
			return ev.Kind == engine.Upsert && ev.Container.ID == id && ev.Container.State == state
		}
	}

	// An event in a skipped namespace comes before this test's container,
	// and the stream is ordered, so it must not show up before it.
	mobyID := containerdUniqueID(t, "rootd-it-moby")
	containerdCreateBare(t, "moby", mobyID)
	containerdRun(t, ns, id)
	ev := awaitEvent(t, events, containerdWait, "running upsert", func(ev engine.Event) bool {
		if ev.Container.ID == mobyID || ev.ID == mobyID {
			t.Errorf("event for a container in namespace moby: %+v", ev)
		}
		return upsertOf(engine.StateRunning)(ev)
	})
	if want := containerdTasks(t, ns)[id].pid; ev.Container.PID != want || want <= 0 || ev.Container.Namespace != ns {
		t.Errorf("upsert %+v, ctr task ls PID %d", ev.Container, want)
	}

	containerdMustCtr(t, ns, "task", "pause", id)
	awaitEvent(t, events, containerdWait, "paused upsert", upsertOf(engine.StatePaused))
	containerdMustCtr(t, ns, "task", "resume", id)
	awaitEvent(t, events, containerdWait, "resumed upsert", upsertOf(engine.StateRunning))

	containerdMustCtr(t, ns, "task", "kill", "-s", "KILL", id)
	ev = awaitEvent(t, events, containerdWait, "stopped upsert", upsertOf(engine.StateStopped))
	if ev.Container.PID != 0 {
		t.Errorf("stopped container has PID %d", ev.Container.PID)
	}
	// ctr task rm fails while the exit is still being processed.
	deadline := time.Now().Add(containerdWait)
	for {
		_, err := containerdCtr(t, ns, "task", "rm", id)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	containerdMustCtr(t, ns, "containers", "rm", id)
	awaitEvent(t, events, containerdWait, "remove", func(ev engine.Event) bool { return ev.Kind == engine.Remove && ev.ID == id })
}

// A daemon that is not there yet makes the engine idle; when it appears the
// watcher resyncs, and when it goes the watcher reports Unavailable. Uses a
// throwaway daemon so that the shared one is never disturbed.
func TestContainerdEngineDaemonComesAndGoes(t *testing.T) {
	dir, err := os.MkdirTemp("", "rootd-ctrd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "containerd.sock")

	eng := containerdOpen(t, sock)
	if _, err := eng.List(context.Background()); !errors.Is(err, engine.ErrUnavailable) {
		t.Fatalf("List without daemon: %v, want ErrUnavailable", err)
	}
	events := watchEvents(t, eng)
	awaitEvent(t, events, containerdWait, "unavailable", func(ev engine.Event) bool { return ev.Kind == engine.Unavailable })

	config := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(config, []byte(`version = 2
disabled_plugins = ["io.containerd.grpc.v1.cri"]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command("containerd", "--config", config,
		"--root", filepath.Join(dir, "root"), "--state", filepath.Join(dir, "state"), "--address", sock)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})

	awaitEvent(t, events, containerdWait, "resync once the daemon is up", func(ev engine.Event) bool { return ev.Kind == engine.Resync })
	if _, err := eng.List(context.Background()); err != nil {
		t.Errorf("List with the daemon up: %v", err)
	}

	cmd.Process.Signal(syscall.SIGTERM)
	<-exited
	awaitEvent(t, events, containerdWait, "unavailable after the daemon stopped", func(ev engine.Event) bool { return ev.Kind == engine.Unavailable })
	if _, err := eng.List(context.Background()); !errors.Is(err, engine.ErrUnavailable) {
		t.Errorf("List after the daemon stopped: %v, want ErrUnavailable", err)
	}
}
