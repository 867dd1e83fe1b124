// Command rootsoak is rootd's soak test, run on demand (not in CI) on a
// machine set up by scripts/setup.sh: it starts a real rootd with the live
// engines, creates containers in each engine (names start with "soak-"),
// then drives many connections of mixed requests and many agent start/stop
// cycles through the Go client, and checks that nothing unexpected failed
// and that rootd's descriptors, threads and memory came back to where they
// were, with no zombie children. See docs/soak.md; scripts/soak.sh builds
// and runs it.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rootd-project/rootd/client"
	"github.com/rootd-project/rootd/wire"
)

type config struct {
	rootd, work, engines    string
	conns, requests, agents int
	parallel                int
	containerd, lxcScript   string
	dockerImage, podmanImg  string
	containerdImg           string
	rssTolerance            int64 // KiB
	threadTolerance         int
}

func main() {
	var c config
	flag.StringVar(&c.rootd, "rootd", "bin/rootd", "rootd `binary` to soak")
	flag.StringVar(&c.work, "work", "", "work `directory` for the socket and log (default: a new temporary one)")
	flag.StringVar(&c.engines, "engines", "docker,podman,containerd,lxc", "`engines` to create containers in and start rootd with")
	flag.IntVar(&c.conns, "conns", 1000, "client connections")
	flag.IntVar(&c.requests, "requests", 1000, "requests per connection")
	flag.IntVar(&c.agents, "agents", 1000, "agent start/stop cycles")
	flag.IntVar(&c.parallel, "parallel", 8, "connections open at once")
	flag.StringVar(&c.containerd, "containerd-address", "/run/rootd-ci/containerd/containerd.sock", "containerd `socket` (scripts/engines/containerd.sh's)")
	flag.StringVar(&c.lxcScript, "lxc-script", "scripts/engines/lxc.sh", "`script` that creates an LXC container")
	flag.StringVar(&c.dockerImage, "docker-image", "bb:latest", "Docker `image` with sleep")
	flag.StringVar(&c.podmanImg, "podman-image", "localhost/bb:latest", "Podman `image` with sleep")
	flag.StringVar(&c.containerdImg, "containerd-image", "docker.io/rootd/bb:latest", "containerd `image` with sleep (namespace rootd-test)")
	flag.Int64Var(&c.rssTolerance, "rss-tolerance", 16<<10, "RSS growth in `KiB` still counted as back at baseline")
	flag.IntVar(&c.threadTolerance, "thread-tolerance", 4, "thread growth still counted as back at baseline")
	flag.Parse()
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "rootsoak:", err)
		os.Exit(1)
	}
}

func say(format string, args ...any) {
	fmt.Printf("%s "+format+"\n", append([]any{time.Now().UTC().Format("15:04:05")}, args...)...)
}

func run(c config) error {
	ctx := context.Background()
	if c.work == "" {
		dir, err := os.MkdirTemp("", "rootsoak-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		c.work = dir
	}
	engines := strings.Split(c.engines, ",")
	tag := fmt.Sprintf("soak-%d", os.Getpid())

	// Containers: one per engine, plus one name that two engines share,
	// which must resolve as ambiguous.
	var made []container
	defer func() {
		say("removing %d containers", len(made))
		for _, m := range made {
			m.remove()
		}
	}()
	var names, ambiguous []string
	for _, e := range engines {
		m := newContainer(c, e, tag+"-"+e)
		if m.create == nil {
			return fmt.Errorf("unknown engine %q", e)
		}
		say("creating %s container %s", e, m.name)
		if err := m.make(ctx); err != nil {
			return err
		}
		made = append(made, m)
		names = append(names, m.name)
	}
	if slices.Contains(engines, "docker") && slices.Contains(engines, "podman") {
		dup := tag + "-twice"
		for _, e := range []string{"docker", "podman"} {
			m := newContainer(c, e, dup)
			if err := m.make(ctx); err != nil {
				return err
			}
			made = append(made, m)
		}
		ambiguous = append(ambiguous, dup)
	}
	unknown := []string{tag + "-nosuch", "soak-nosuch-" + strconv.Itoa(os.Getpid()*7)}

	// rootd itself.
	socket := filepath.Join(c.work, "root.socket")
	logPath := filepath.Join(c.work, "rootd.log")
	cat, err := filepath.EvalSymlinks("/bin/cat")
	if err != nil {
		return err
	}
	// --config /dev/null: the host's /etc/rootd/rootd.conf must not change
	// what the soak runs.
	args := []string{"--config", os.DevNull, "-s", socket, "-l", logPath, "--log-level", "warn", "--engines", c.engines, "--allow-exec", cat}
	if slices.Contains(engines, "containerd") {
		args = append(args, "--containerd-address", c.containerd)
	}
	cmd := exec.Command(c.rootd, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return err
	}
	pid := cmd.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	}()
	say("rootd pid %d: %s %s", pid, c.rootd, strings.Join(args, " "))

	// Ready when every container answers; its PID is what every later
	// answer must agree with.
	expect := map[string]int{}
	deadline := time.Now().Add(90 * time.Second)
	for _, n := range names {
		for {
			p, err := pidOf(ctx, socket, n)
			if err == nil && p > 0 {
				expect[n] = p
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("rootd never resolved %s: %v (log %s)", n, err, logPath)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	say("rootd resolves %d containers, %d ambiguous and %d unknown names", len(names), len(ambiguous), len(unknown))

	// Warm up (lazily made pools, caches, threads), then take the baseline.
	w := workload{socket: socket, expect: expect, names: names, ambiguous: ambiguous, unknown: unknown, stats: &stats{}}
	if err := w.requests(ctx, min(c.conns, 20), min(c.requests, 200), c.parallel); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	if err := agents(ctx, socket, min(c.agents, 20)); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	warm := w.stats
	w.stats = &stats{}
	if n := warm.unexpected.Load(); n > 0 {
		return fmt.Errorf("warm-up: %d unexpected results (first: %s)", n, warm.first())
	}
	time.Sleep(2 * time.Second)
	base, err := measure(pid)
	if err != nil {
		return err
	}
	say("baseline: %s", base)

	peak := base
	stopSampling := sample(pid, &peak)
	start := time.Now()
	err = w.requests(ctx, c.conns, c.requests, c.parallel)
	reqTime := time.Since(start)
	say("requests: %d connections x %d requests in %s (%.0f/s): %s",
		c.conns, c.requests, reqTime.Round(time.Millisecond), float64(c.conns*c.requests)/reqTime.Seconds(), w.stats)
	if err != nil {
		stopSampling()
		return err
	}
	start = time.Now()
	err = agents(ctx, socket, c.agents)
	say("agents: %d start/echo/stop/reap cycles in %s", c.agents, time.Since(start).Round(time.Millisecond))
	stopSampling()
	if err != nil {
		return err
	}
	say("peak during the run: %s", peak)

	// Back at baseline? Give rootd a moment to close and reap.
	var after procStats
	var problems []string
	for try := 0; try < 20; try++ {
		time.Sleep(500 * time.Millisecond)
		if after, err = measure(pid); err != nil {
			return err
		}
		problems = after.compare(base, c)
		if len(problems) == 0 {
			break
		}
	}
	say("after: %s", after)
	if n := w.stats.unexpected.Load(); n > 0 {
		problems = append(problems, fmt.Sprintf("%d unexpected request results (first: %s)", n, w.stats.first()))
	}
	if len(problems) > 0 {
		return fmt.Errorf("soak failed:\n  %s\n(rootd log: %s)", strings.Join(problems, "\n  "), logPath)
	}
	say("PASS: no unexpected errors; fds %d->%d, threads %d->%d, RSS %d->%d KiB (tolerance %d KiB, %d threads), no zombies",
		base.fds, after.fds, base.threads, after.threads, base.rssKiB, after.rssKiB, c.rssTolerance, c.threadTolerance)
	return nil
}

func pidOf(ctx context.Context, socket, name string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cl, err := client.Connect(ctx, socket)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	return cl.ProcessID(ctx, name)
}

// workload is the mixed requests: PID, CGROUP and HOSTNAME of every
// container, and of the ambiguous and unknown names.
type workload struct {
	socket                    string
	expect                    map[string]int
	names, ambiguous, unknown []string
	stats                     *stats
}

type stats struct {
	ok, notFound, ambiguous, unexpected atomic.Int64
	mu                                  sync.Mutex
	firstErr                            string
	// Time spent per kind of name: known, ambiguous, unknown.
	total, worst [3]time.Duration
	count        [3]int64
}

func (s *stats) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d answered, %d not found (expected), %d ambiguous (expected), %d unexpected",
		s.ok.Load(), s.notFound.Load(), s.ambiguous.Load(), s.unexpected.Load())
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, label := range []string{"known", "ambiguous", "unknown"} {
		if s.count[k] > 0 {
			fmt.Fprintf(&b, "; %s: %d, mean %s, max %s", label, s.count[k],
				(s.total[k] / time.Duration(s.count[k])).Round(time.Microsecond), s.worst[k].Round(time.Microsecond))
		}
	}
	return b.String()
}

func (s *stats) took(kind int, d time.Duration) {
	s.mu.Lock()
	s.count[kind]++
	s.total[kind] += d
	s.worst[kind] = max(s.worst[kind], d)
	s.mu.Unlock()
}

func (s *stats) bad(format string, args ...any) {
	s.unexpected.Add(1)
	s.mu.Lock()
	if s.firstErr == "" {
		s.firstErr = fmt.Sprintf(format, args...)
	}
	s.mu.Unlock()
}

func (s *stats) first() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.firstErr
}

func (w *workload) requests(ctx context.Context, conns, perConn, parallel int) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, parallel)
	for range parallel {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= conns {
					return
				}
				if err := w.connection(ctx, i, perConn); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// connection is one client's session: perConn requests cycling through
// the mix, starting at a different place for each connection.
func (w *workload) connection(ctx context.Context, n, perConn int) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	cl, err := client.Connect(cctx, w.socket)
	cancel()
	if err != nil {
		return fmt.Errorf("connection %d: %w", n, err)
	}
	defer cl.Close()
	for i := range perConn {
		k := n*perConn + i
		name, kind := w.pick(k)
		op := (k / 7) % 3
		began := time.Now()
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		var pid int
		var answer string
		switch op {
		case 0:
			pid, err = cl.ProcessID(rctx, name)
		case 1:
			answer, err = cl.CgroupName(rctx, name)
		default:
			answer, err = cl.HostName(rctx, name)
		}
		cancel()
		w.stats.took(kind, time.Since(began))
		w.check(name, op, pid, answer, err)
		// A status in a reply leaves the connection usable; anything else
		// (a transport error, a timeout) closed it.
		var status wire.StatusError
		if err != nil && !errors.As(err, &status) {
			return fmt.Errorf("connection %d request %d (%s): %w", n, i, name, err)
		}
	}
	return nil
}

// pick chooses the k-th request's name: an ambiguous name every
// ambiguousEvery requests, an unknown one every unknownEvery, else the
// containers in turn. Misses are the costly case by design (each makes
// rootd list the engines again before it says not found), and PCP asks
// about containers that exist, so they are a small share of the mix.
func (w *workload) pick(k int) (name string, kind int) {
	switch {
	case len(w.unknown) > 0 && k%unknownEvery == unknownEvery-1:
		return w.unknown[(k/unknownEvery)%len(w.unknown)], 2
	case len(w.ambiguous) > 0 && k%ambiguousEvery == ambiguousEvery-1:
		return w.ambiguous[(k/ambiguousEvery)%len(w.ambiguous)], 1
	}
	return w.names[k%len(w.names)], 0
}

const (
	unknownEvery   = 100
	ambiguousEvery = 20
)

func (w *workload) check(name string, op, pid int, answer string, err error) {
	switch {
	case slices.Contains(w.unknown, name):
		if errors.Is(err, wire.ErrNoContainer) {
			w.stats.notFound.Add(1)
			return
		}
		w.stats.bad("%s (op %d): got %d %q %v, want not found", name, op, pid, answer, err)
	case slices.Contains(w.ambiguous, name):
		if errors.Is(err, syscall.ENOTUNIQ) {
			w.stats.ambiguous.Add(1)
			return
		}
		w.stats.bad("%s (op %d): got %d %q %v, want ambiguous", name, op, pid, answer, err)
	case err != nil:
		w.stats.bad("%s (op %d): %v", name, op, err)
	case op == 0 && pid != w.expect[name]:
		w.stats.bad("%s: pid %d, want %d", name, pid, w.expect[name])
	case op != 0 && answer == "":
		w.stats.bad("%s (op %d): empty answer", name, op)
	default:
		w.stats.ok.Add(1)
	}
}

// agents runs n cycles on one connection: start /bin/cat as root with
// pipes, echo a line through it, kill it (STOPPMDA force) and collect its
// exit (STOPPMDA reap).
func agents(ctx context.Context, socket string, n int) error {
	ctx, cancel := context.WithTimeout(ctx, time.Duration(n)*time.Second+30*time.Second)
	defer cancel()
	cl, err := client.Connect(ctx, socket)
	if err != nil {
		return err
	}
	defer cl.Close()
	for i := range n {
		p, err := cl.ProcessStart(ctx, "soak", []string{"/bin/cat"}, true)
		if err != nil {
			return fmt.Errorf("agent %d: start: %w", i, err)
		}
		line := fmt.Sprintf("soak line %d\n", i)
		_, werr := io.WriteString(p.Stdin, line)
		p.Stdout.SetReadDeadline(time.Now().Add(5 * time.Second))
		got, rerr := bufio.NewReader(p.Stdout).ReadString('\n')
		// cat waits for its next line until killed: the pipes close only
		// after STOPPMDA, or it would exit by itself.
		terr := cl.ProcessTerminate(ctx, p.PID)
		p.Stdin.Close()
		p.Stdout.Close()
		if werr != nil || rerr != nil || got != line {
			return fmt.Errorf("agent %d (pid %d): echoed %q, want %q (%v, %v)", i, p.PID, got, line, werr, rerr)
		}
		if terr != nil {
			return fmt.Errorf("agent %d (pid %d): stop: %w", i, p.PID, terr)
		}
		for {
			pid, ws, err := cl.ProcessWait(ctx)
			if err != nil {
				return fmt.Errorf("agent %d (pid %d): reap: %w", i, p.PID, err)
			}
			if pid == p.PID {
				if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
					return fmt.Errorf("agent %d (pid %d): exit status %#x, want killed by SIGKILL", i, p.PID, int(ws))
				}
				break
			}
			if pid != 0 {
				return fmt.Errorf("agent %d: reaped pid %d, want %d", i, pid, p.PID)
			}
			time.Sleep(time.Millisecond)
		}
	}
	return nil
}

// procStats is what the soak watches of rootd.
type procStats struct {
	fds, threads int
	rssKiB       int64
	children     int // live children of any state
	zombies      int
}

func (s procStats) String() string {
	return fmt.Sprintf("fds %d, threads %d, RSS %d KiB, children %d, zombies %d", s.fds, s.threads, s.rssKiB, s.children, s.zombies)
}

func (s procStats) compare(base procStats, c config) []string {
	var p []string
	if s.fds > base.fds {
		p = append(p, fmt.Sprintf("fds %d, baseline %d", s.fds, base.fds))
	}
	if s.threads > base.threads+c.threadTolerance {
		p = append(p, fmt.Sprintf("threads %d, baseline %d (+%d allowed)", s.threads, base.threads, c.threadTolerance))
	}
	if s.rssKiB > base.rssKiB+c.rssTolerance {
		p = append(p, fmt.Sprintf("RSS %d KiB, baseline %d KiB (+%d allowed)", s.rssKiB, base.rssKiB, c.rssTolerance))
	}
	if s.zombies > 0 {
		p = append(p, fmt.Sprintf("%d zombie children", s.zombies))
	}
	if s.children > base.children {
		p = append(p, fmt.Sprintf("%d children left running, baseline %d", s.children, base.children))
	}
	return p
}

func measure(pid int) (procStats, error) {
	var s procStats
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return s, err
	}
	s.fds = len(fds)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		k, v, _ := strings.Cut(line, ":")
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		switch k {
		case "Threads":
			s.threads, _ = strconv.Atoi(f[0])
		case "VmRSS":
			s.rssKiB, _ = strconv.ParseInt(f[0], 10, 64)
		}
	}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return s, err
	}
	for _, e := range procs {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 2 || f[1] != strconv.Itoa(pid) {
			continue
		}
		s.children++
		if f[0] == "Z" {
			s.zombies++
		}
	}
	return s, nil
}

// sample records the peak of each measure every half second until stopped.
func sample(pid int, peak *procStats) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
			}
			s, err := measure(pid)
			if err != nil {
				continue
			}
			peak.fds = max(peak.fds, s.fds)
			peak.threads = max(peak.threads, s.threads)
			peak.rssKiB = max(peak.rssKiB, s.rssKiB)
			peak.children = max(peak.children, s.children)
			peak.zombies = max(peak.zombies, s.zombies)
		}
	}()
	return func() { close(done); <-finished }
}

// container is one container the soak makes, with how to make and remove it.
type container struct {
	engine, name   string
	create, remove func() error
}

func (m container) make(ctx context.Context) error {
	if err := m.create(); err != nil {
		m.remove()
		return fmt.Errorf("creating %s container %s: %w", m.engine, m.name, err)
	}
	return nil
}

func newContainer(c config, engine, name string) container {
	m := container{engine: engine, name: name}
	sh := func(args ...string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
		return nil
	}
	quiet := func(args ...string) { _ = sh(args...) }
	switch engine {
	case "docker", "podman":
		image := c.dockerImage
		if engine == "podman" {
			image = c.podmanImg
		}
		m.create = func() error {
			return sh(engine, "run", "-d", "--name", name, "--hostname", name, "--network", "none", image, "sleep", "7200")
		}
		m.remove = func() error { quiet(engine, "rm", "-f", name); return nil }
	case "containerd":
		ctr := func(args ...string) []string {
			return append([]string{"ctr", "-a", c.containerd, "-n", "rootd-test"}, args...)
		}
		m.create = func() error { return sh(ctr("run", "-d", c.containerdImg, name, "sleep", "7200")...) }
		m.remove = func() error {
			quiet(ctr("task", "kill", "-s", "KILL", name)...)
			for range 50 {
				if sh(ctr("task", "rm", name)...) == nil || sh(ctr("task", "ls", "-q")...) != nil {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			quiet(ctr("containers", "rm", name)...)
			return nil
		}
	case "lxc":
		m.create = func() error {
			if err := sh("sh", c.lxcScript, "create", name); err != nil {
				return err
			}
			return sh("lxc-start", "-n", name)
		}
		m.remove = func() error {
			quiet("lxc-stop", "-k", "-n", name)
			quiet("lxc-destroy", "-f", "-n", name)
			return nil
		}
	}
	return m
}
