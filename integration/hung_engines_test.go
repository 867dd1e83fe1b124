//go:build integration

// Hung and dead engines are cheap (issue 10, item 6). For each engine, on a
// private instance of its runtime, a resolver running in-process over the
// real engine is asked, while the runtime's API hangs and while it is
// killed, for a name no engine has and for a container it knew; every
// lookup's time is measured and printed. Then the runtime returns (the same
// instance, not a stand-in) and the resolver, never restarted, must be back
// in use within 2 s. Shared daemons are never touched.
package integration

import (
	"bufio"
	"context"
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

	"github.com/rootd-project/rootd/engine"
	"github.com/rootd-project/rootd/resolver"
)

const (
	// hungPhase is how long lookups run while a runtime hangs: past the
	// resolver's 5 s refresh timeout, so both the "slow" phase (a List is
	// running) and the "hung" phase (it timed out) are measured.
	hungPhase = resolver.DefaultRefreshTimeout + 2*time.Second
	// deadPhase is how long lookups run while a runtime is dead.
	deadPhase = 3 * time.Second
	// hungLookupBound is the generous bound asserted on every single
	// lookup during an outage, well below pmcd's 5 s agent timeout; the
	// design bound is resolver.DefaultMissWait (100 ms), and the figures
	// are printed, next to how late a 20 ms sleep woke up on the same
	// machine at the same time (the shared test machines are loaded).
	hungLookupBound = 2 * time.Second
	// hungRecovery is the figure: back in use within 2 s of the
	// runtime's return.
	hungRecovery = 2 * time.Second
	// hungStartup bounds starting a private runtime.
	hungStartup = 60 * time.Second
)

// hungDir makes a short private directory (unix socket paths are limited
// to 107 bytes) and, at cleanup, kills whatever processes still run from
// it, unmounts what is mounted below it and removes it.
func hungDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "rdh")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, pid := range processesUsing(dir) {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(200 * time.Millisecond)
		unmountBelow(t, dir)
		if err := os.RemoveAll(dir); err != nil {
			t.Logf("cleanup: %v", err)
		}
	})
	return dir
}

// processesUsing lists the processes whose command line mentions dir: the
// private daemons, shims and monitors a test started, and nothing else.
func processesUsing(dir string) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(b), dir) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func unmountBelow(t *testing.T, dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer f.Close()
	var mounts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			mounts = append(mounts, fields[4])
		}
	}
	slices.Reverse(mounts)
	for _, m := range mounts {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			t.Logf("cleanup: umount %s: %v", m, err)
		}
	}
}

// hungOpen opens a registered engine with flags, as rootd does.
func hungOpen(t *testing.T, name string, args ...string) engine.Engine {
	t.Helper()
	fs := flag.NewFlagSet("rootd", flag.ContinueOnError)
	set := engine.Configure(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	getenv := func(k string) string {
		if strings.HasPrefix(k, "PCP_") || k == "DOCKER_HOST" || k == "CONTAINERD_ADDRESS" {
			return ""
		}
		return os.Getenv(k)
	}
	engines, err := set.Open(engine.Env{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Getenv: getenv}, []string{name})
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := engines[0].(io.Closer); ok {
		t.Cleanup(func() { c.Close() })
	}
	return engines[0]
}

// hungResolver runs a resolver with its default options over eng until
// the test ends, logging to the test.
func hungResolver(t *testing.T, eng engine.Engine) *resolver.Resolver {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	r := resolver.New([]engine.Engine{eng}, resolver.Options{Log: log})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-r.Ready():
	case <-time.After(hungStartup):
		t.Fatal("resolver not ready")
	}
	return r
}

func hungHealth(r *resolver.Resolver) (string, error) {
	st := r.Status()[0]
	return st.Health, st.Err
}

// hungAwaitHealth waits until the engine's health is want and returns how
// long that took from since.
func hungAwaitHealth(t *testing.T, r *resolver.Resolver, want string, since time.Time, within time.Duration) time.Duration {
	t.Helper()
	for {
		h, err := hungHealth(r)
		if h == want {
			return time.Since(since)
		}
		if time.Since(since) > within {
			t.Fatalf("engine health %q (%v), want %q within %v", h, err, want, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// hungAwaitPID waits until query resolves to want (want 0: any PID) and
// returns the PID and how long that took from since.
func hungAwaitPID(t *testing.T, r *resolver.Resolver, query string, want int, since time.Time, within time.Duration) (int, time.Duration) {
	t.Helper()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		pid, err := r.PID(ctx, query)
		cancel()
		if err == nil && (want == 0 || pid == want) {
			return pid, time.Since(since)
		}
		if time.Since(since) > within {
			t.Fatalf("PID(%s) = %d, %v; want %d within %v", query, pid, err, want, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// hungAwaitOtherPID waits until query resolves to a PID other than old
// (old 0: any PID) and returns it and how long that took from since; the
// caller checks it against the runtime afterwards, so that the runtime's
// own slowness (podman inspect) is not counted.
func hungAwaitOtherPID(t *testing.T, r *resolver.Resolver, query string, old int, since time.Time, within time.Duration) (int, time.Duration) {
	t.Helper()
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		pid, err := r.PID(ctx, query)
		cancel()
		if err == nil && pid != old {
			return pid, time.Since(since)
		}
		if time.Since(since) > within {
			t.Fatalf("PID(%s) = %d, %v; want a pid other than %d within %v", query, pid, err, old, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// durations summarises lookup times.
type durations []time.Duration

func (d durations) String() string {
	if len(d) == 0 {
		return "no lookups"
	}
	s := slices.Clone(d)
	slices.Sort(s)
	over := 0
	for _, x := range s {
		if x > resolver.DefaultMissWait {
			over++
		}
	}
	q := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	return fmt.Sprintf("n=%d median=%v p99=%v max=%v over-%v=%d first=%v",
		len(s), q(0.5), q(0.99), s[len(s)-1], resolver.DefaultMissWait, over, d[0])
}

// hungLookups asks PID for a name no engine has and for known, alternately,
// every 20 ms for phase, as pmdaproc would during an outage, with rootd's
// 5 s request timeout. Unknown names must be "not found" (never a timeout);
// check judges the answers for known. Every lookup must take less than
// hungLookupBound. It logs the figures and the health the engine went
// through.
func hungLookups(t *testing.T, r *resolver.Resolver, phase time.Duration, known string, check func(pid int, err error) error) {
	t.Helper()
	var missT, knownT, oversleep durations
	var healths, knownAnswers []string
	lastHealth, lastAnswer := "", ""
	start := time.Now()
	for i := 0; time.Since(start) < phase; i++ {
		if h, _ := hungHealth(r); h != lastHealth {
			lastHealth = h
			healths = append(healths, fmt.Sprintf("%s@%v", h, time.Since(start).Round(time.Millisecond)))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		q := fmt.Sprintf("rootd-it-nosuch-%d", i)
		t0 := time.Now()
		_, err := r.PID(ctx, q)
		d := time.Since(t0)
		missT = append(missT, d)
		if !errors.Is(err, engine.ErrNotFound) {
			cancel()
			t.Fatalf("PID(%s) after %v = %v, want not found", q, d, err)
		}
		if d > hungLookupBound {
			t.Errorf("PID(%s) took %v", q, d)
		}
		t0 = time.Now()
		pid, err := r.PID(ctx, known)
		d = time.Since(t0)
		cancel()
		knownT = append(knownT, d)
		if d > hungLookupBound {
			t.Errorf("PID(%s) took %v", known, d)
		}
		if err := check(pid, err); err != nil {
			t.Fatalf("PID(%s) = %d: %v", known, pid, err)
		}
		answer := fmt.Sprint(pid)
		if err != nil {
			answer = err.Error()
		}
		if answer != lastAnswer {
			lastAnswer = answer
			knownAnswers = append(knownAnswers, fmt.Sprintf("@%v: %s", time.Since(start).Round(time.Millisecond), answer))
		}
		t0 = time.Now()
		time.Sleep(20 * time.Millisecond)
		oversleep = append(oversleep, time.Since(t0)-20*time.Millisecond)
	}
	t.Logf("lookups of unknown names: %v", missT)
	t.Logf("lookups of %s:  %v", known, knownT)
	t.Logf("answers for %s: %s", known, strings.Join(knownAnswers, "; "))
	t.Logf("engine health: %s", strings.Join(healths, " -> "))
	slices.Sort(oversleep)
	t.Logf("control: 20 ms sleeps woke up late by median %v, max %v", oversleep[len(oversleep)/2], oversleep[len(oversleep)-1])
}

// Checks for hungLookups.
func wantPID(want int) func(int, error) error {
	return func(pid int, err error) error {
		if err != nil || pid != want {
			return fmt.Errorf("got %d, %v; want the last known pid %d", pid, err, want)
		}
		return nil
	}
}

// anyAnswer accepts a PID or "not found"/"not running", never a timeout.
func anyAnswer(pid int, err error) error {
	if err != nil && !errors.Is(err, engine.ErrNotFound) && !errors.Is(err, engine.ErrNotRunning) {
		return err
	}
	return nil
}

// stopped freezes pid with SIGSTOP until the returned function (also run
// at cleanup) continues it.
func stopped(t *testing.T, pid int) (cont func()) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	done := false
	cont = func() {
		if !done {
			done = true
			syscall.Kill(pid, syscall.SIGCONT)
		}
	}
	t.Cleanup(cont)
	return cont
}

// bbRootfsTar builds the one-binary busybox root filesystem the engine
// scripts import, as a tar in dir.
func bbRootfsTar(t *testing.T, dir string) string {
	t.Helper()
	root := filepath.Join(dir, "bbroot")
	if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("busybox-static: %v", err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin", "busybox"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"sh", "sleep", "hostname", "cat"} {
		os.Symlink("busybox", filepath.Join(root, "bin", a))
	}
	tarball := filepath.Join(dir, "bb.tar")
	if out, err := exec.Command("tar", "-C", root, "-cf", tarball, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	return tarball
}

// cmdOut runs a command with a timeout and returns its trimmed output.
func cmdOut(t *testing.T, timeout time.Duration, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// privateDaemon is a runtime daemon a test started, restartable.
type privateDaemon struct {
	t      *testing.T
	name   string
	argv   []string
	log    string
	ready  func() error // nil once it answers
	cmd    *exec.Cmd
	exited chan struct{}
}

// start starts the daemon and waits until it answers; it returns when.
func (d *privateDaemon) start() time.Time {
	t := d.t
	t.Helper()
	logf, err := os.OpenFile(d.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	d.cmd = exec.Command(d.argv[0], d.argv[1:]...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	d.exited = exited
	go func() { d.cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(hungStartup)
	for {
		if err := d.ready(); err == nil {
			return time.Now()
		} else if time.Now().After(deadline) {
			b, _ := os.ReadFile(d.log)
			t.Fatalf("%s did not answer: %v\n%s", d.name, err, b)
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(d.log)
			t.Fatalf("%s exited at start\n%s", d.name, b)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (d *privateDaemon) pid() int { return d.cmd.Process.Pid }

// kill kills the daemon with SIGKILL and waits for it.
func (d *privateDaemon) kill() {
	d.cmd.Process.Signal(syscall.SIGCONT)
	d.cmd.Process.Kill()
	<-d.exited
}

// stop stops the daemon with SIGTERM (SIGKILL after 20 s).
func (d *privateDaemon) stop() {
	if d.cmd == nil {
		return
	}
	select {
	case <-d.exited:
		return
	default:
	}
	d.cmd.Process.Signal(syscall.SIGCONT)
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(20 * time.Second):
		d.cmd.Process.Kill()
		<-d.exited
	}
}

// TestHungEnginesDocker: a private dockerd (own data root, exec root,
// socket and pidfile; no iptables, no bridge). Hung API: the daemon is
// SIGSTOPped, so its socket accepts and never answers. Killed: SIGKILL,
// then the same daemon is started again.
func TestHungEnginesDocker(t *testing.T) {
	dir := hungDir(t)
	sock := filepath.Join(dir, "docker.sock")
	host := "unix://" + sock
	if err := os.WriteFile(filepath.Join(dir, "daemon.json"), []byte("{}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	docker := func(t *testing.T, args ...string) string {
		return cmdOut(t, 120*time.Second, dockerCLI(), append([]string{"-H", host}, args...)...)
	}
	d := &privateDaemon{
		t:    t,
		name: "private dockerd",
		argv: []string{"dockerd", "--config-file", filepath.Join(dir, "daemon.json"),
			"--data-root", filepath.Join(dir, "root"), "--exec-root", filepath.Join(dir, "exec"),
			"-H", host, "--pidfile", filepath.Join(dir, "docker.pid"),
			"--iptables=false", "--ip-masq=false", "--bridge=none"},
		log: filepath.Join(dir, "dockerd.log"),
		ready: func() error {
			return exec.Command(dockerCLI(), "-H", host, "version").Run()
		},
	}
	d.start()
	t.Cleanup(func() {
		if out, err := exec.Command(dockerCLI(), "-H", host, "ps", "-aq").Output(); err == nil {
			if ids := strings.Fields(string(out)); len(ids) > 0 {
				exec.Command(dockerCLI(), append([]string{"-H", host, "rm", "-f"}, ids...)...).Run()
			}
		}
		d.stop()
	})
	docker(t, "import", bbRootfsTar(t, dir), "bb:latest")
	var ranAt time.Time // when the last docker run returned
	run := func(t *testing.T, name string) (string, int) {
		id := docker(t, "run", "-d", "--name", name, "--network", "none", "bb:latest", "sleep", "600")
		ranAt = time.Now()
		pid, err := strconv.Atoi(docker(t, "inspect", "-f", "{{.State.Pid}}", id))
		if err != nil {
			t.Fatal(err)
		}
		return id, pid
	}
	_, pidX := run(t, "hx")

	eng := hungOpen(t, "docker", "--docker-host", host, "--docker-data-root", filepath.Join(dir, "root"))
	r := hungResolver(t, eng)
	hungAwaitPID(t, r, "hx", pidX, time.Now(), 10*time.Second)

	t.Run("hung-api", func(t *testing.T) {
		cont := stopped(t, d.pid())
		hungLookups(t, r, hungPhase, "hx", wantPID(pidX))
		if h, err := hungHealth(r); h != "hung" {
			t.Errorf("health after %v of hang: %s (%v), want hung", hungPhase, h, err)
		}
		cont()
		back := time.Now()
		took := hungAwaitHealth(t, r, "available", back, hungRecovery)
		t.Logf("recovery: engine available %v after SIGCONT", took.Round(time.Millisecond))
		_, pidY := run(t, "hy")
		ran := ranAt
		_, took = hungAwaitPID(t, r, "hy", pidY, ran, hungRecovery)
		t.Logf("recovery: a container started after the return resolves %v after docker run returned (%v after SIGCONT)",
			took.Round(time.Millisecond), time.Since(back).Round(time.Millisecond))
	})

	t.Run("killed-and-restarted", func(t *testing.T) {
		d.kill()
		killed := time.Now()
		// The containers outlive the daemon (their shims run on); the
		// engine falls back to --docker-data-root and still verifies each
		// PID against its cgroup.
		hungLookups(t, r, deadPhase, "hx", anyAnswer)
		h, err := hungHealth(r)
		t.Logf("health %v after SIGKILL: %s (%v)", time.Since(killed).Round(time.Millisecond), h, err)
		back := d.start()
		took := hungAwaitHealth(t, r, "available", back, hungRecovery)
		t.Logf("recovery: engine available %v after the restarted daemon answered", took.Round(time.Millisecond))
		_, pidZ := run(t, "hz")
		ran := ranAt
		_, took = hungAwaitPID(t, r, "hz", pidZ, ran, hungRecovery)
		t.Logf("recovery: a container started after the restart resolves %v after docker run returned (%v after the daemon answered)",
			took.Round(time.Millisecond), time.Since(back).Round(time.Millisecond))
	})
}

// TestHungEnginesContainerd: a private containerd (own root, state, socket
// and config; CRI disabled). Hung API: the daemon is SIGSTOPped. Killed:
// SIGKILL (the shims and their containers run on), then the same daemon is
// started again and finds its containers.
func TestHungEnginesContainerd(t *testing.T) {
	const ns = "rootd-hung"
	pc := startPrivateContainerd(t, ns)
	sock, d := pc.sock, pc.d
	ctr := func(t *testing.T, args ...string) string {
		return cmdOut(t, 120*time.Second, "ctr", append([]string{"-a", sock, "-n", ns}, args...)...)
	}
	ids := &pc.ids
	var ranAt time.Time // when the last ctr run returned
	run := func(t *testing.T, id string) int {
		*ids = append(*ids, id)
		ctr(t, "run", "-d", containerdImage(), id, "sleep", "600")
		ranAt = time.Now()
		for _, line := range strings.Split(ctr(t, "tasks", "ls"), "\n") {
			if f := strings.Fields(line); len(f) >= 2 && f[0] == id {
				pid, err := strconv.Atoi(f[1])
				if err != nil {
					t.Fatal(err)
				}
				return pid
			}
		}
		t.Fatalf("no task %s", id)
		return 0
	}
	x := fmt.Sprintf("rdh-x-%d", os.Getpid())
	pidX := run(t, x)

	eng := hungOpen(t, "containerd", "--containerd-address", sock)
	r := hungResolver(t, eng)
	hungAwaitPID(t, r, x, pidX, time.Now(), 10*time.Second)

	t.Run("hung-api", func(t *testing.T) {
		cont := stopped(t, d.pid())
		hungLookups(t, r, hungPhase, x, wantPID(pidX))
		if h, err := hungHealth(r); h != "hung" {
			t.Errorf("health after %v of hang: %s (%v), want hung", hungPhase, h, err)
		}
		cont()
		back := time.Now()
		took := hungAwaitHealth(t, r, "available", back, hungRecovery)
		t.Logf("recovery: engine available %v after SIGCONT", took.Round(time.Millisecond))
		y := fmt.Sprintf("rdh-y-%d", os.Getpid())
		pidY := run(t, y)
		ran := ranAt
		_, took = hungAwaitPID(t, r, y, pidY, ran, hungRecovery)
		t.Logf("recovery: a container started after the return resolves %v after ctr run returned (%v after SIGCONT)",
			took.Round(time.Millisecond), time.Since(back).Round(time.Millisecond))
	})

	t.Run("killed-and-restarted", func(t *testing.T) {
		d.kill()
		killed := time.Now()
		hungLookups(t, r, deadPhase, x, anyAnswer)
		h, err := hungHealth(r)
		t.Logf("health %v after SIGKILL: %s (%v)", time.Since(killed).Round(time.Millisecond), h, err)
		back := d.start()
		took := hungAwaitHealth(t, r, "available", back, hungRecovery)
		t.Logf("recovery: engine available %v after the restarted daemon answered", took.Round(time.Millisecond))
		// The task survived in its shim: the same init, found again.
		_, took = hungAwaitPID(t, r, x, pidX, back, hungRecovery)
		t.Logf("recovery: %s resolves to its surviving pid %d %v after the daemon answered", x, pidX, took.Round(time.Millisecond))
		z := fmt.Sprintf("rdh-z-%d", os.Getpid())
		pidZ := run(t, z)
		ran := ranAt
		_, took = hungAwaitPID(t, r, z, pidZ, ran, hungRecovery)
		t.Logf("recovery: a container started after the restart resolves %v after ctr run returned", took.Round(time.Millisecond))
	})
}

// TestHungEnginesLXC: a private LXC path (lxc-create/lxc-start -P DIR).
// The engine's API is each container's monitor, over its abstract command
// socket. Hung API: the monitor of the private container is SIGSTOPped
// (its socket still accepts; nothing answers). Killed: the monitor is
// SIGKILLed, then the container is started again.
func TestHungEnginesLXC(t *testing.T) {
	for _, tool := range []string{"lxc-create", "lxc-start", "lxc-stop", "lxc-info", "lxc-destroy"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found (run scripts/engines/lxc.sh as root): %v", tool, err)
		}
	}
	dir := hungDir(t)
	lxcpath := filepath.Join(dir, "lxc")
	if err := os.Mkdir(lxcpath, 0o755); err != nil {
		t.Fatal(err)
	}
	lxc := func(t *testing.T, tool string, args ...string) string {
		return cmdOut(t, 120*time.Second, tool, append([]string{"-P", lxcpath}, args...)...)
	}
	var names []string
	t.Cleanup(func() {
		for _, n := range names {
			exec.Command("lxc-stop", "-P", lxcpath, "-n", n, "-k").Run()
			exec.Command("lxc-destroy", "-P", lxcpath, "-n", n, "-f").Run()
		}
	})
	create := func(name string) {
		names = append(names, name)
		lxc(t, "lxc-create", "-n", name, "-t", "busybox")
		cfg := filepath.Join(lxcpath, name, "config")
		b, err := os.ReadFile(cfg)
		if err != nil {
			t.Fatal(err)
		}
		var kept []string
		for _, line := range strings.Split(string(b), "\n") {
			k, _, _ := strings.Cut(line, "=")
			switch strings.TrimSpace(k) {
			case "lxc.net.0.link", "lxc.net.0.flags", "lxc.net.0.hwaddr", "lxc.apparmor.allow_nesting",
				"lxc.net.0.type", "lxc.apparmor.profile":
				continue
			}
			kept = append(kept, line)
		}
		kept = append(kept, "lxc.net.0.type = empty", "lxc.apparmor.profile = unconfined", "")
		if err := os.WriteFile(cfg, []byte(strings.Join(kept, "\n")), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var ranAt time.Time // when the last lxc-start returned
	start := func(t *testing.T, name string) int {
		lxc(t, "lxc-start", "-n", name)
		ranAt = time.Now()
		deadline := time.Now().Add(30 * time.Second)
		for {
			out, _ := exec.Command("lxc-info", "-P", lxcpath, "-n", name, "-p", "-H").Output()
			if pid, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil && pid > 0 {
				return pid
			}
			if time.Now().After(deadline) {
				t.Fatalf("lxc container %s has no init pid", name)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// The monitor is the init's parent.
	monitorOf := func(t *testing.T, pid int) int {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "PPid:"); ok {
				ppid, _ := strconv.Atoi(strings.TrimSpace(v))
				cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", ppid))
				if !strings.Contains(string(cmdline), "monitor") && !strings.Contains(string(cmdline), lxcpath) {
					t.Fatalf("parent %d of init %d is not an lxc monitor: %q", ppid, pid, cmdline)
				}
				return ppid
			}
		}
		t.Fatalf("no parent for %d", pid)
		return 0
	}
	x, y := "hx", "hy"
	create(x)
	create(y)
	pidX := start(t, x)

	eng := hungOpen(t, "lxc", "--lxc-path", lxcpath)
	r := hungResolver(t, eng)
	hungAwaitPID(t, r, x, pidX, time.Now(), 10*time.Second)

	t.Run("hung-api", func(t *testing.T) {
		mon := monitorOf(t, pidX)
		cont := stopped(t, mon)
		hungLookups(t, r, hungPhase, x, wantPID(pidX))
		h, err := hungHealth(r)
		t.Logf("health after %v of a hung monitor: %s (%v)", hungPhase, h, err)
		cont()
		back := time.Now()
		took := hungAwaitHealth(t, r, "available", back, hungRecovery)
		t.Logf("recovery: engine available %v after SIGCONT", took.Round(time.Millisecond))
		pidY := start(t, y)
		ran := ranAt
		_, took = hungAwaitPID(t, r, y, pidY, ran, hungRecovery)
		t.Logf("recovery: a container started after the return resolves %v after lxc-start returned (%v after SIGCONT)",
			took.Round(time.Millisecond), time.Since(back).Round(time.Millisecond))
		lxc(t, "lxc-stop", "-n", y, "-k")
	})

	t.Run("killed-and-restarted", func(t *testing.T) {
		mon := monitorOf(t, pidX)
		if err := syscall.Kill(mon, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		// Without its monitor the container's init runs on, unmanaged.
		syscall.Kill(pidX, syscall.SIGKILL)
		killed := time.Now()
		hungLookups(t, r, deadPhase, x, anyAnswer)
		h, err := hungHealth(r)
		t.Logf("health %v after SIGKILL: %s (%v)", time.Since(killed).Round(time.Millisecond), h, err)
		pidX2 := start(t, x)
		back := ranAt
		_, took := hungAwaitPID(t, r, x, pidX2, back, hungRecovery)
		t.Logf("recovery: %s restarted resolves to its new pid %v after lxc-start returned", x, took.Round(time.Millisecond))
	})
}

// TestHungEnginesPodman: a private podman storage (--root, --runroot,
// --tmpdir). Podman has no daemon: its "API", for rootd, is its state files
// (containers.json, pidfiles, OCI configs) and inotify on them; rootd takes
// no podman lock and opens no podman database. Hung: podman's state
// database is locked (flock on libpod/bolt_state.db, as a podman process
// wedged inside a transaction holds it), so every podman command hangs —
// a `podman run` is left blocked for the whole phase. Killed: the
// container's conmon (podman's only long-lived process) and its init are
// SIGKILLed, then the container is started again.
func TestHungEnginesPodman(t *testing.T) {
	if _, err := exec.LookPath("podman"); err != nil {
		t.Fatalf("podman is not installed (run scripts/engines/podman.sh): %v", err)
	}
	dir := hungDir(t)
	root, runroot, tmp := filepath.Join(dir, "root"), filepath.Join(dir, "run"), filepath.Join(dir, "tmp")
	global := []string{"--root", root, "--runroot", runroot, "--tmpdir", tmp,
		"--storage-driver", "overlay", "--cgroup-manager", "cgroupfs", "--events-backend", "file"}
	podman := func(t *testing.T, args ...string) string {
		return cmdOut(t, 120*time.Second, "podman", append(slices.Clone(global), args...)...)
	}
	t.Cleanup(func() {
		exec.Command("podman", append(slices.Clone(global), "rm", "-a", "-f", "-t", "0")...).Run()
	})
	podman(t, "import", bbRootfsTar(t, dir), "localhost/bb:latest")
	runArgs := func(name string) []string {
		return []string{"run", "-d", "--name", name, "--network", "none",
			"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", "localhost/bb:latest", "sleep", "600"}
	}
	pidOf := func(t *testing.T, name string) int {
		pid, err := strconv.Atoi(podman(t, "inspect", "-f", "{{.State.Pid}}", name))
		if err != nil {
			t.Fatal(err)
		}
		return pid
	}
	podman(t, runArgs("hx")...)
	pidX := pidOf(t, "hx")

	eng := hungOpen(t, "podman",
		"--podman-datadir", filepath.Join(root, "overlay-containers"),
		"--podman-rundir", filepath.Join(runroot, "overlay-containers"))
	r := hungResolver(t, eng)
	hungAwaitPID(t, r, "hx", pidX, time.Now(), 10*time.Second)

	t.Run("hung-api", func(t *testing.T) {
		db, err := os.OpenFile(filepath.Join(root, "libpod", "bolt_state.db"), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := syscall.Flock(int(db.Fd()), syscall.LOCK_EX); err != nil {
			t.Fatal(err)
		}
		unlocked := false
		unlock := func() {
			if !unlocked {
				unlocked = true
				syscall.Flock(int(db.Fd()), syscall.LOCK_UN)
			}
		}
		t.Cleanup(unlock)
		blocked := exec.Command("podman", append(slices.Clone(global), runArgs("hy")...)...)
		var out strings.Builder
		blocked.Stdout, blocked.Stderr = &out, &out
		if err := blocked.Start(); err != nil {
			t.Fatal(err)
		}
		ran := make(chan error, 1)
		go func() { ran <- blocked.Wait() }()
		t.Cleanup(func() {
			unlock()
			select {
			case <-ran:
			case <-time.After(30 * time.Second):
				blocked.Process.Kill()
			}
		})

		hungLookups(t, r, hungPhase, "hx", wantPID(pidX))
		select {
		case err := <-ran:
			t.Fatalf("podman run did not hang on the locked database: %v\n%s", err, out.String())
		default:
			t.Logf("podman run still blocked on the locked database after %v", hungPhase)
		}
		unlock()
		back := time.Now()
		select {
		case err := <-ran:
			if err != nil {
				t.Fatalf("podman run: %v\n%s", err, out.String())
			}
		case <-time.After(60 * time.Second):
			t.Fatal("podman run did not finish once the database was unlocked")
		}
		done := time.Now() // podman run returned
		got, took := hungAwaitOtherPID(t, r, "hy", 0, done, hungRecovery)
		if pidY := pidOf(t, "hy"); got != pidY {
			t.Fatalf("hy resolved to %d, podman says %d", got, pidY)
		}
		t.Logf("recovery: the container podman started once unlocked resolves %v after podman run returned (%v after the unlock)",
			took.Round(time.Millisecond), time.Since(back).Round(time.Millisecond))
	})

	t.Run("killed-and-restarted", func(t *testing.T) {
		conmon, err := strconv.Atoi(podman(t, "inspect", "-f", "{{.State.ConmonPid}}", "hx"))
		if err != nil {
			t.Fatal(err)
		}
		syscall.Kill(conmon, syscall.SIGKILL)
		syscall.Kill(pidX, syscall.SIGKILL)
		killed := time.Now()
		hungLookups(t, r, deadPhase, "hx", anyAnswer)
		h, err := hungHealth(r)
		t.Logf("health %v after SIGKILL: %s (%v)", time.Since(killed).Round(time.Millisecond), h, err)
		// Without its conmon, podman cannot start the container again
		// ("container state improper"): it is removed and run again under
		// the same name.
		podman(t, "rm", "-f", "-t", "0", "hx")
		podman(t, runArgs("hx")...)
		back := time.Now() // podman run returned
		got, took := hungAwaitOtherPID(t, r, "hx", pidX, back, hungRecovery)
		if pidX2 := pidOf(t, "hx"); got != pidX2 {
			t.Fatalf("hx resolved to %d, podman says %d", got, pidX2)
		}
		t.Logf("recovery: hx run again resolves to its new pid %v after podman run returned", took.Round(time.Millisecond))
	})
}

// privateContainerd is a containerd of a test's own (own root, state and
// socket; no CRI plugin), with the busybox image imported into namespace ns.
// Cleanup kills and removes the containers named in ids, then stops it.
type privateContainerd struct {
	sock string
	d    *privateDaemon
	ids  []string
}

func startPrivateContainerd(t *testing.T, ns string) *privateContainerd {
	t.Helper()
	image := "/var/lib/rootd-ci/bb-oci/bb-oci.tar"
	if _, err := os.Stat(image); err != nil {
		t.Fatalf("the busybox OCI image is missing (run scripts/engines/containerd.sh): %v", err)
	}
	dir := hungDir(t)
	pc := &privateContainerd{sock: filepath.Join(dir, "containerd.sock")}
	config := filepath.Join(dir, "config.toml")
	if err := os.WriteFile(config, []byte("version = 2\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pc.d = &privateDaemon{
		t:    t,
		name: "private containerd",
		argv: []string{"containerd", "--config", config, "--root", filepath.Join(dir, "root"),
			"--state", filepath.Join(dir, "state"), "--address", pc.sock},
		log:   filepath.Join(dir, "containerd.log"),
		ready: func() error { return exec.Command("ctr", "-a", pc.sock, "version").Run() },
	}
	pc.d.start()
	t.Cleanup(func() {
		for _, id := range pc.ids {
			exec.Command("ctr", "-a", pc.sock, "-n", ns, "tasks", "kill", "-s", "KILL", id).Run()
		}
		time.Sleep(300 * time.Millisecond)
		for _, id := range pc.ids {
			exec.Command("ctr", "-a", pc.sock, "-n", ns, "tasks", "rm", "-f", id).Run()
			exec.Command("ctr", "-a", pc.sock, "-n", ns, "containers", "rm", id).Run()
		}
		pc.d.stop()
	})
	cmdOut(t, 120*time.Second, "ctr", "-a", pc.sock, "-n", ns, "images", "import", image)
	return pc
}
