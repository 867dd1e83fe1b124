//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rootd-project/rootd/engine"
	"github.com/rootd-project/rootd/engine/podman"
)

// These tests run real podman (rootful): scripts/engines/podman.sh prepares
// a fresh machine, including the localhost/bb:latest image.

const (
	podmanImage    = "localhost/bb:latest"
	podmanDeadline = 20 * time.Second
)

func podmanRequire(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("podman"); err != nil {
		t.Fatalf("podman is not installed (run scripts/engines/podman.sh): %v", err)
	}
	if out, err := exec.Command("podman", "image", "exists", podmanImage).CombinedOutput(); err != nil {
		t.Fatalf("image %s missing (run scripts/engines/podman.sh): %v %s", podmanImage, err, out)
	}
}

func podmanCLI(t *testing.T, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "podman", args...).Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return strings.TrimSpace(string(out))
}

// podmanName is unique per run so that leftovers of an aborted run never
// collide with this one.
func podmanName(what string) string {
	return fmt.Sprintf("rootd-it-%s-%d", what, os.Getpid())
}

// podmanRunning starts a container and removes it when the test ends.
func podmanRunning(t *testing.T, name string, extra ...string) string {
	t.Helper()
	t.Cleanup(func() { _ = exec.Command("podman", "rm", "-f", "-t", "0", name).Run() })
	args := append([]string{"run", "-d", "--name", name}, extra...)
	args = append(args, podmanImage, "sleep", "600")
	return podmanCLI(t, args...)
}

type podmanInspected struct {
	ID    string `json:"Id"`
	Name  string `json:"Name"`
	Pod   string `json:"Pod"`
	State struct {
		Status string `json:"Status"`
		Pid    int    `json:"Pid"`
	} `json:"State"`
}

func podmanInspect(t *testing.T, name string) podmanInspected {
	t.Helper()
	var got []podmanInspected
	if err := json.Unmarshal([]byte(podmanCLI(t, "container", "inspect", name)), &got); err != nil || len(got) != 1 {
		t.Fatalf("inspect %s: %v (%d results)", name, err, len(got))
	}
	return got[0]
}

func podmanStateOf(status string) engine.State {
	switch status {
	case "running":
		return engine.StateRunning
	case "paused":
		return engine.StatePaused
	}
	return engine.StateStopped
}

func podmanOpen(t *testing.T) *podman.Engine {
	t.Helper()
	e, err := podman.Open(engine.Env{
		Log:    slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Getenv: os.Getenv,
	}, podman.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func podmanFind(cs []engine.Container, id string) (engine.Container, bool) {
	for _, c := range cs {
		if c.ID == id {
			return c, true
		}
	}
	return engine.Container{}, false
}

func TestPodmanListMatchesInspect(t *testing.T) {
	podmanRequire(t)
	ctx := context.Background()

	run, paused, stopped, created := podmanName("run"), podmanName("paused"), podmanName("stopped"), podmanName("created")
	pod, member := podmanName("pod"), podmanName("member")
	podmanRunning(t, run, "--hostname", "rootd-it-host", "--network", "none")
	podmanRunning(t, paused, "--network", "none")
	podmanCLI(t, "pause", paused)
	podmanRunning(t, stopped, "--network", "none")
	podmanCLI(t, "stop", "-t", "0", stopped)
	t.Cleanup(func() { _ = exec.Command("podman", "rm", "-f", created).Run() })
	podmanCLI(t, "create", "--name", created, "--network", "none", podmanImage, "sleep", "600")
	t.Cleanup(func() { _ = exec.Command("podman", "pod", "rm", "-f", "-t", "0", pod).Run() })
	podID := podmanCLI(t, "pod", "create", "--name", pod, "--network", "none")
	podmanRunning(t, member, "--pod", pod)
	infraID := podmanCLI(t, "pod", "inspect", "--format", "{{.InfraContainerID}}", pod)

	got, err := podmanOpen(t).List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	infraName := podmanInspect(t, infraID).Name
	for _, name := range []string{run, paused, stopped, created, member, infraName} {
		want := podmanInspect(t, name)
		c, ok := podmanFind(got, want.ID)
		if !ok {
			t.Errorf("%s (%s) not listed", name, want.ID)
			continue
		}
		wantPID := want.State.Pid
		if !podmanStateOf(want.State.Status).HasProcess() {
			wantPID = 0
		}
		if len(c.Names) != 1 || c.Names[0] != want.Name || c.PID != wantPID || c.State != podmanStateOf(want.State.Status) {
			t.Errorf("%s: listed names %q pid %d state %s; podman says name %q pid %d status %s",
				name, c.Names, c.PID, c.State, want.Name, want.State.Pid, want.State.Status)
		}
		if want.Pod != "" {
			if c.Labels[podman.LabelPodID] != want.Pod || c.Labels[podman.LabelPodName] != pod {
				t.Errorf("%s: pod labels %v, want id %s name %s", name, c.Labels, want.Pod, pod)
			}
		} else if c.Labels[podman.LabelPodID] != "" {
			t.Errorf("%s: pod label %q on a container outside pods", name, c.Labels[podman.LabelPodID])
		}
	}
	if c, _ := podmanFind(got, infraID); c.Labels[podman.LabelPodInfra] != "true" || c.Labels[podman.LabelPodID] != podID {
		t.Errorf("infra container labels %v, want infra of pod %s", c.Labels, podID)
	}
	if c, _ := podmanFind(got, podmanInspect(t, member).ID); c.Labels[podman.LabelPodInfra] != "" {
		t.Errorf("pod member marked as infra: %v", c.Labels)
	}
	// A stopped container's pidfile stays behind with a dead PID.
	stoppedID := podmanInspect(t, stopped).ID
	if _, err := os.Stat("/run/containers/storage/overlay-containers/" + stoppedID + "/userdata/pidfile"); err != nil {
		t.Logf("note: stopped container has no pidfile (%v)", err)
	}
}

// podmanWatcher records Watch's events.
type podmanWatcher struct {
	mu      sync.Mutex
	resyncs int
	other   []engine.Event
}

func (w *podmanWatcher) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.resyncs
}

func TestPodmanWatch(t *testing.T) {
	podmanRequire(t)
	e := podmanOpen(t)
	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan engine.Event)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); e.Watch(ctx, events) }()
	rec := &podmanWatcher{}
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-events:
				rec.mu.Lock()
				if ev.Kind == engine.Resync {
					rec.resyncs++
				} else {
					rec.other = append(rec.other, ev)
				}
				rec.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })

	// expect runs action, then waits for a Resync after it and for List to
	// show what check wants.
	expect := func(what string, action func(), check func([]engine.Container) bool) {
		t.Helper()
		// Let the previous step's events settle, so that the resync
		// counted below is caused by this action.
		deadline := time.Now().Add(podmanDeadline)
		for before, stable := rec.count(), time.Now(); time.Since(stable) < 300*time.Millisecond; {
			if time.Now().After(deadline) {
				t.Fatalf("%s: watch never settled", what)
			}
			time.Sleep(10 * time.Millisecond)
			if n := rec.count(); n != before {
				before, stable = n, time.Now()
			}
		}
		before := rec.count()
		action()
		deadline = time.Now().Add(podmanDeadline)
		for rec.count() == before {
			if time.Now().After(deadline) {
				t.Fatalf("%s: no resync within %v", what, podmanDeadline)
			}
			time.Sleep(10 * time.Millisecond)
		}
		for {
			got, err := e.List(context.Background())
			if err == nil && check(got) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: List never showed it (err %v): %+v", what, err, got)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	deadline := time.Now().Add(podmanDeadline)
	for rec.count() == 0 { // Watch's initial resync: watches are in place
		if time.Now().After(deadline) {
			t.Fatal("no initial resync")
		}
		time.Sleep(10 * time.Millisecond)
	}

	name := podmanName("watch")
	var id string
	stateIs := func(want engine.State) func([]engine.Container) bool {
		return func(cs []engine.Container) bool {
			c, ok := podmanFind(cs, id)
			return ok && c.State == want
		}
	}
	expect("run", func() { id = podmanRunning(t, name, "--network", "none") }, stateIs(engine.StateRunning))
	expect("pause", func() { podmanCLI(t, "pause", name) }, stateIs(engine.StatePaused))
	expect("unpause", func() { podmanCLI(t, "unpause", name) }, stateIs(engine.StateRunning))
	expect("stop", func() { podmanCLI(t, "stop", "-t", "0", name) }, stateIs(engine.StateStopped))
	expect("start", func() { podmanCLI(t, "start", name) }, stateIs(engine.StateRunning))
	// A process that ends by itself: only conmon and its exit file notice.
	expect("kill", func() {
		pid := podmanInspect(t, name).State.Pid
		if err := exec.Command("kill", "-9", fmt.Sprint(pid)).Run(); err != nil {
			t.Fatal(err)
		}
	}, stateIs(engine.StateStopped))
	expect("rm", func() { podmanCLI(t, "rm", "-f", name) }, func(cs []engine.Container) bool {
		_, ok := podmanFind(cs, id)
		return !ok
	})
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.other) > 0 {
		t.Errorf("unexpected events: %+v", rec.other)
	}
}
