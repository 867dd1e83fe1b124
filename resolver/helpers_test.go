package resolver

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rootd-project/rootd/engine"
	"github.com/rootd-project/rootd/engine/enginetest"
	"github.com/rootd-project/rootd/internal/procfs"
)

// waitLimit bounds waits for asynchronous work; it guards against hangs and
// is never what a test asserts.
const waitLimit = 10 * time.Second

// id makes a realistic 64-hex-digit ID from a seed.
func id(seed string) string {
	sum := sha256.Sum256([]byte(seed))
	return hex.EncodeToString(sum[:])
}

func running(idStr string, pid int, names ...string) engine.Container {
	return engine.Container{ID: idStr, Names: names, PID: pid, State: engine.StateRunning}
}

func stopped(idStr string, names ...string) engine.Container {
	return engine.Container{ID: idStr, Names: names, State: engine.StateStopped}
}

// inCgroup sets what the engine says of c's cgroup.
func inCgroup(c engine.Container, marks ...string) engine.Container {
	c.Cgroups = marks
	return c
}

func withPod(c engine.Container, ns, pod, ctr string) engine.Container {
	c.Labels = map[string]string{
		engine.LabelPodNamespace:  ns,
		engine.LabelPodName:       pod,
		engine.LabelContainerName: ctr,
	}
	return c
}

// fakeProc stands in for /proc: cgroup paths, hostnames and start times by
// PID. A process exists when it has a cgroup or a hostname; its start time
// is 1 unless set.
type fakeProc struct {
	mu          sync.Mutex
	cgroups     map[int]string
	hostnames   map[int]string
	starts      map[int]uint64
	cgroupReads atomic.Int64
}

func newFakeProc() *fakeProc {
	return &fakeProc{cgroups: map[int]string{}, hostnames: map[int]string{}, starts: map[int]uint64{}}
}

func (f *fakeProc) setStart(pid int, start uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.starts[pid] = start
}

func (f *fakeProc) startTime(pid int) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s, ok := f.starts[pid]; ok {
		return s, nil
	}
	_, cg := f.cgroups[pid]
	_, host := f.hostnames[pid]
	if !cg && !host {
		return 0, unix.ESRCH
	}
	return 1, nil
}

// options is the resolver configuration reading f instead of /proc.
func (f *fakeProc) options() Options {
	return Options{Log: quietLog(), Cgroup: f.cgroup, Hostname: f.hostname, StartTime: f.startTime, NoPidfd: true}
}

func (f *fakeProc) setCgroup(pid int, path string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cgroups[pid] = path
}

func (f *fakeProc) cgroup(pid int) (string, error) {
	f.cgroupReads.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.cgroups[pid]
	switch {
	case !ok:
		return "", unix.ESRCH
	case p == "":
		return "", procfs.ErrRootCgroup
	}
	return p, nil
}

func (f *fakeProc) hostname(_ context.Context, pid int) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	h, ok := f.hostnames[pid]
	if !ok {
		return "", unix.ESRCH
	}
	return h, nil
}

// logBuffer collects log output safely across goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newTestResolver builds a resolver over engines with a fake /proc. Lookups
// wait for Lists as long as the refresh timeout allows, so that tests which
// hold a List with a gate do not depend on how fast the machine is; the
// tests of the wait budget set MissWait themselves.
func newTestResolver(t testing.TB, proc *fakeProc, engines ...engine.Engine) *Resolver {
	t.Helper()
	if proc == nil {
		proc = newFakeProc()
	}
	opts := proc.options()
	opts.MissWait = time.Hour
	return New(engines, opts)
}

// gated wraps a memory engine so that a test can hold List calls: each call
// takes the engine's contents first, then announces itself on entered and
// waits for release. What it returns is therefore what the engine held when
// the call began.
type gated struct {
	*enginetest.Memory
	entered chan struct{}
	release chan struct{}
}

func newGated(e *enginetest.Memory) *gated {
	return &gated{Memory: e, entered: make(chan struct{}, 16), release: make(chan struct{})}
}

func (g *gated) List(ctx context.Context) ([]engine.Container, error) {
	cs, err := g.Memory.List(ctx)
	g.entered <- struct{}{}
	<-g.release
	return cs, err
}

// hung ignores its context and blocks until unblocked: the worst engine.
type hung struct {
	*enginetest.Memory
	unblock chan struct{}
}

func (h *hung) List(ctx context.Context) ([]engine.Container, error) {
	cs, err := h.Memory.List(ctx)
	<-h.unblock
	return cs, err
}

// panicky panics in List.
type panicky struct{ name string }

func (p panicky) Name() string { return p.name }
func (p panicky) List(context.Context) ([]engine.Container, error) {
	panic("engine bug")
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func ids(cs []engine.Container) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Engine + ":" + c.ID
	}
	return out
}
