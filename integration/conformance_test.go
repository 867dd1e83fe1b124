//go:build integration

package integration

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rootd-project/rootd/engine"
	"github.com/rootd-project/rootd/engine/enginetest"
	"github.com/rootd-project/rootd/engine/podman"
)

// The engine contract's suite over each live runtime: the suite creates,
// pauses, stops and removes a container of its own through the runtime's
// CLI and checks that the engine sees each step. The runtimes are the shared
// ones, so the suite's Outage (stopping the runtime) is not used here.

// cliRuntime drives a runtime for enginetest through its command line.
type cliRuntime struct {
	create func(ctx context.Context, name string) (string, error)
	pause  func(ctx context.Context, id string) error
	stop   func(ctx context.Context, id string) error
	remove func(ctx context.Context, id string) error
}

func (r cliRuntime) Create(ctx context.Context, name string) (string, error) {
	return r.create(ctx, name)
}
func (r cliRuntime) Pause(ctx context.Context, id string) error  { return r.pause(ctx, id) }
func (r cliRuntime) Stop(ctx context.Context, id string) error   { return r.stop(ctx, id) }
func (r cliRuntime) Remove(ctx context.Context, id string) error { return r.remove(ctx, id) }

// command runs argv and returns its trimmed standard output.
func command(ctx context.Context, argv ...string) (string, error) {
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, ee.Stderr)
		}
		return "", err
	}
	return strings.TrimSpace(string(out)), nil
}

func commandErr(ctx context.Context, argv ...string) error {
	_, err := command(ctx, argv...)
	return err
}

// openRegistered opens a registered engine with flags, as rootd does.
func openRegistered(t *testing.T, name string, getenv func(string) string, flags ...string) func(context.Context) (engine.Engine, error) {
	return func(context.Context) (engine.Engine, error) {
		d, ok := engine.Lookup(name)
		if !ok {
			return nil, fmt.Errorf("engine %s not registered", name)
		}
		fs := flag.NewFlagSet("conformance", flag.ContinueOnError)
		open := d.Configure(fs)
		if err := fs.Parse(flags); err != nil {
			return nil, err
		}
		return open(engine.Env{Log: engineLog(t), Getenv: getenv})
	}
}

// engineLog is an engine's logger for a live test: debug and up, in the
// test's output, so that a failed run on CI shows what the engine saw.
// Engines may log from their own goroutines after the test has ended;
// those lines are dropped instead of panicking the test binary.
func engineLog(t *testing.T) *slog.Logger {
	w := &endedWriter{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		w.ended = true
		w.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type endedWriter struct {
	t     *testing.T
	mu    sync.Mutex
	ended bool
}

func (w *endedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.ended {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func noEnv(string) string { return "" }

func TestConformanceDocker(t *testing.T) {
	first := dockerStart(t, dockerName(t, "conf"))
	docker := func(ctx context.Context, args ...string) (string, error) {
		return command(ctx, append([]string{dockerCLI()}, args...)...)
	}
	enginetest.Run(t, enginetest.Harness{
		Open: openRegistered(t, "docker", noEnv),
		// Over TCP: a unix socket's engine falls back to the daemon's state
		// directory, which is there, so the runtime would not be absent.
		OpenAbsent: openRegistered(t, "docker", noEnv, "--docker-host", "tcp://127.0.0.1:1"),
		Expect:     []engine.Container{{ID: first, State: engine.StateRunning}},
		Live:       true,
		Runtime: cliRuntime{
			create: func(ctx context.Context, name string) (string, error) {
				return docker(ctx, "run", "-d", "--name", name, "--network", "none", dockerImage, "sleep", "600")
			},
			pause:  func(ctx context.Context, id string) error { _, err := docker(ctx, "pause", id); return err },
			stop:   func(ctx context.Context, id string) error { _, err := docker(ctx, "kill", id); return err },
			remove: func(ctx context.Context, id string) error { _, err := docker(ctx, "rm", "-f", id); return err },
		},
		Timeout: 30 * time.Second,
	})
}

func TestConformancePodman(t *testing.T) {
	podmanRequire(t)
	first := podmanRunning(t, podmanName("conf"))
	openPodman := func(opts podman.Options) func(context.Context) (engine.Engine, error) {
		return func(context.Context) (engine.Engine, error) {
			return podman.Open(engine.Env{Log: engineLog(t), Getenv: os.Getenv}, opts)
		}
	}
	absent := t.TempDir()
	enginetest.Run(t, enginetest.Harness{
		Open:       openPodman(podman.Options{}),
		OpenAbsent: openPodman(podman.Options{DataDir: filepath.Join(absent, "data"), RunDir: filepath.Join(absent, "run")}),
		Expect:     []engine.Container{{ID: first, State: engine.StateRunning}},
		Live:       true,
		Runtime: cliRuntime{
			create: func(ctx context.Context, name string) (string, error) {
				return command(ctx, "podman", "run", "-d", "--name", name, podmanImage, "sleep", "600")
			},
			pause: func(ctx context.Context, id string) error { return commandErr(ctx, "podman", "pause", id) },
			stop:  func(ctx context.Context, id string) error { return commandErr(ctx, "podman", "kill", id) },
			remove: func(ctx context.Context, id string) error {
				return commandErr(ctx, "podman", "rm", "-f", "-t", "0", id)
			},
		},
		Timeout: 30 * time.Second,
	})
}

func TestConformanceContainerd(t *testing.T) {
	containerdRequire(t)
	const ns = containerdTestNamespace // where setup imported the image
	first := containerdUniqueID(t, "conf")
	containerdRun(t, ns, first)
	ctr := func(ctx context.Context, args ...string) error {
		return commandErr(ctx, append([]string{"ctr", "-a", containerdSocket(), "-n", ns}, args...)...)
	}
	enginetest.Run(t, enginetest.Harness{
		Open:       openRegistered(t, "containerd", noEnv, "--containerd-address", containerdSocket()),
		OpenAbsent: openRegistered(t, "containerd", noEnv, "--containerd-address", filepath.Join(t.TempDir(), "no-containerd.sock")),
		Expect:     []engine.Container{{ID: first, Namespace: ns, State: engine.StateRunning}},
		Live:       true,
		Runtime: cliRuntime{
			create: func(ctx context.Context, name string) (string, error) {
				t.Cleanup(func() { containerdRemove(t, ns, name) })
				return name, ctr(ctx, "run", "-d", containerdImage(), name, "sleep", "600")
			},
			pause: func(ctx context.Context, id string) error { return ctr(ctx, "task", "pause", id) },
			stop: func(ctx context.Context, id string) error {
				if err := ctr(ctx, "task", "kill", "-s", "KILL", id); err != nil {
					return err
				}
				// The task stays until removed, as stopped.
				return nil
			},
			remove: func(ctx context.Context, id string) error {
				containerdRemove(t, ns, id)
				if containerdHasTask(t, ns, id) {
					return fmt.Errorf("task %s still there", id)
				}
				return nil
			},
		},
		Timeout: 30 * time.Second,
	})
}

func TestConformanceLXC(t *testing.T) {
	first := fmt.Sprintf("rootd-conf-%d", os.Getpid())
	mixedLXCCreate(t, first)
	lxcRun(t, "lxc-start", "-n", first)
	lxcRun(t, "lxc-wait", "-n", first, "-s", "RUNNING", "-t", "20")
	lxcPathEnv := func(dir string) func(string) string {
		return func(k string) string {
			if k == "PCP_LXC_DIR" {
				return dir
			}
			return ""
		}
	}
	enginetest.Run(t, enginetest.Harness{
		Open:       openRegistered(t, "lxc", noEnv),
		OpenAbsent: openRegistered(t, "lxc", lxcPathEnv(filepath.Join(t.TempDir(), "no-lxc"))),
		Expect:     []engine.Container{{ID: first, Names: []string{first}, State: engine.StateRunning}},
		Live:       true,
		Runtime: cliRuntime{
			create: func(ctx context.Context, name string) (string, error) {
				mixedLXCCreate(t, name)
				if err := commandErr(ctx, "lxc-start", "-n", name); err != nil {
					return "", err
				}
				return name, commandErr(ctx, "lxc-wait", "-n", name, "-s", "RUNNING", "-t", "20")
			},
			pause: lxcFreeze,
			stop:  func(ctx context.Context, id string) error { return commandErr(ctx, "lxc-stop", "-k", "-n", id) },
			remove: func(ctx context.Context, id string) error {
				return commandErr(ctx, "lxc-destroy", "-f", "-n", id)
			},
		},
		Timeout: 30 * time.Second,
	})
}

// privateOutage stops and starts a private runtime daemon for the suite.
type privateOutage struct{ d *privateDaemon }

func (o privateOutage) StopRuntime(context.Context) error  { o.d.kill(); return nil }
func (o privateOutage) StartRuntime(context.Context) error { o.d.start(); return nil }

// TestConformanceContainerdOutage runs the whole suite, Outage included,
// against a private containerd that the suite kills and starts again: the
// engine must report Unavailable and recover with a Resync.
func TestConformanceContainerdOutage(t *testing.T) {
	const ns = "rootd-conformance"
	pc := startPrivateContainerd(t, ns)
	sock, d, dir := pc.sock, pc.d, filepath.Dir(pc.sock)
	ctr := func(ctx context.Context, args ...string) error {
		return commandErr(ctx, append([]string{"ctr", "-a", sock, "-n", ns}, args...)...)
	}
	ctx := ctxT(t, 2*time.Minute)
	first := fmt.Sprintf("conf-first-%d", os.Getpid())
	pc.ids = append(pc.ids, first)
	if err := ctr(ctx, "run", "-d", containerdImage(), first, "sleep", "600"); err != nil {
		t.Fatal(err)
	}
	enginetest.Run(t, enginetest.Harness{
		Open:       openRegistered(t, "containerd", noEnv, "--containerd-address", sock),
		OpenAbsent: openRegistered(t, "containerd", noEnv, "--containerd-address", filepath.Join(dir, "no-containerd.sock")),
		Expect:     []engine.Container{{ID: first, Namespace: ns, State: engine.StateRunning}},
		Live:       true,
		Runtime: cliRuntime{
			create: func(ctx context.Context, name string) (string, error) {
				pc.ids = append(pc.ids, name)
				return name, ctr(ctx, "run", "-d", containerdImage(), name, "sleep", "600")
			},
			pause: func(ctx context.Context, id string) error { return ctr(ctx, "task", "pause", id) },
			stop:  func(ctx context.Context, id string) error { return ctr(ctx, "task", "kill", "-s", "KILL", id) },
			remove: func(ctx context.Context, id string) error {
				for i := 0; i < 50; i++ {
					if ctr(ctx, "task", "rm", "-f", id) == nil {
						break
					}
					time.Sleep(100 * time.Millisecond)
				}
				return ctr(ctx, "containers", "rm", id)
			},
		},
		Outage:  privateOutage{d},
		Timeout: 30 * time.Second,
	})
}
