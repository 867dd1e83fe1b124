// Package enginetest checks that an engine keeps the contract package engine
// documents, the way testing/fstest.TestFS checks a file system: an engine's
// test fills in a Harness (how to open the engine over its runtime, with the
// runtime absent, and, where the test can, how to drive containers and the
// runtime itself) and calls Run. Every rule the resolver relies on is checked
// here once, for every engine alike.
//
// The package also holds Memory, an in-memory engine for tests of the
// resolver and the server.
package enginetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rootd-project/rootd/engine"
	"github.com/rootd-project/rootd/internal/procfs"
)

// Harness describes one engine under test.
type Harness struct {
	// Open opens the engine over a runtime that holds the Expect containers
	// (a live runtime or a fixture state tree). Required.
	Open func(ctx context.Context) (engine.Engine, error)
	// OpenAbsent opens the engine where its runtime is not there (socket or
	// state directory missing). Required: every engine is opened by default
	// on hosts that have only some runtimes.
	OpenAbsent func(ctx context.Context) (engine.Engine, error)
	// Expect lists containers the runtime is known to hold. Each must be
	// listed with the same ID, namespace and state, and with at least these
	// names. Others may be listed too.
	Expect []engine.Container
	// Live says the runtime runs on this host, so every PID it reports must
	// be a process here whose cgroup path names the container's ID. Fixture
	// trees from other machines leave it false.
	Live bool
	// Runtime, if not nil, lets the suite create and change containers.
	Runtime Runtime
	// Outage, if not nil, lets the suite stop and restart the runtime. Use
	// it only with a private runtime instance that no other test shares.
	Outage Outage
	// Timeout bounds each wait for the engine to see a change (default 20s).
	Timeout time.Duration
}

// Runtime drives containers of the engine's runtime for the suite.
type Runtime interface {
	// Create starts a new container called name and returns its ID (the ID
	// the engine reports) once it is running.
	Create(ctx context.Context, name string) (id string, err error)
	// Pause freezes a running container; it returns errors.ErrUnsupported
	// where the runtime cannot.
	Pause(ctx context.Context, id string) error
	// Stop ends the container's processes; the container stays.
	Stop(ctx context.Context, id string) error
	// Remove deletes the container.
	Remove(ctx context.Context, id string) error
}

// Outage stops and restarts the runtime.
type Outage interface {
	StopRuntime(ctx context.Context) error
	StartRuntime(ctx context.Context) error
}

// Run checks the engine against the contract and fails t with every problem
// found, each naming the rule it breaks.
func Run(t *testing.T, h Harness) {
	t.Helper()
	if err := Test(h); err != nil {
		t.Fatal(err)
	}
}

// Test checks the engine against the contract and returns every problem
// found, joined, or nil.
func Test(h Harness) error {
	if h.Open == nil || h.OpenAbsent == nil {
		return errors.New("enginetest: Harness needs Open and OpenAbsent")
	}
	if h.Timeout <= 0 {
		h.Timeout = 20 * time.Second
	}
	c := &checker{h: h}
	c.run()
	return errors.Join(c.problems...)
}

type checker struct {
	h        Harness
	problems []error
	name     string
}

// fail records a broken rule.
func (c *checker) fail(rule, format string, args ...any) {
	c.problems = append(c.problems, fmt.Errorf("%s: %s", rule, fmt.Sprintf(format, args...)))
}

func (c *checker) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), c.h.Timeout)
}

func (c *checker) run() {
	ctx, cancel := c.ctx()
	e, err := c.h.Open(ctx)
	cancel()
	if err != nil {
		c.fail("Open", "%v", err)
		return
	}
	defer c.checkClose(e)
	c.name = e.Name()
	if c.name == "" || strings.ContainsAny(c.name, ": \t\n") {
		c.fail("Name", "%q is not usable in --engines and ENGINE:NAME queries (empty, or holds ':' or space)", c.name)
	}
	if !c.checkList(e) {
		return
	}
	c.checkAbsent()
	if w, ok := e.(engine.Watcher); ok {
		c.checkWatch(e, w)
	} else if c.h.Runtime != nil || c.h.Outage != nil {
		c.fail("Watcher", "%s has a Runtime or Outage in its harness but does not implement engine.Watcher", c.name)
	}
}

// list calls List with the harness's bound.
func (c *checker) list(e engine.Engine) ([]engine.Container, error) {
	ctx, cancel := c.ctx()
	defer cancel()
	return e.List(ctx)
}

// checkList checks one listing's fields and the Expect containers; false
// means nothing further can be checked.
func (c *checker) checkList(e engine.Engine) bool {
	cs, err := c.list(e)
	if err != nil {
		c.fail("List", "over a runtime with containers: %v", err)
		return false
	}
	c.checkContainers("List", cs)
	for _, want := range c.h.Expect {
		got, ok := find(cs, want.Namespace, want.ID)
		if !ok {
			c.fail("List", "expected container %s (namespace %q) not listed", want.ID, want.Namespace)
			continue
		}
		if want.State != "" && got.State != want.State {
			c.fail("List", "container %s: state %q, want %q", want.ID, got.State, want.State)
		}
		for _, n := range want.Names {
			if !slices.Contains(got.Names, n) {
				c.fail("List", "container %s: names %q lack %q", want.ID, got.Names, n)
			}
		}
	}
	again, err := c.list(e)
	if err != nil {
		c.fail("List", "second call: %v", err)
	} else if !c.h.Live && !sameIDs(cs, again) {
		c.fail("List", "two calls over an unchanged fixture disagree: %v then %v", keys(cs), keys(again))
	}
	return true
}

// checkContainers checks the fields of every container of one listing.
func (c *checker) checkContainers(rule string, cs []engine.Container) {
	seen := map[string]bool{}
	for _, ct := range cs {
		key := ct.Namespace + "/" + ct.ID
		switch {
		case ct.Engine != c.name:
			c.fail(rule, "container %s: Engine %q, want %q", ct.ID, ct.Engine, c.name)
		case ct.ID == "":
			c.fail(rule, "a container without an ID (names %q)", ct.Names)
		case seen[key]:
			c.fail(rule, "ID %s listed twice in namespace %q: IDs are unique per namespace", ct.ID, ct.Namespace)
		}
		seen[key] = true
		switch ct.State {
		case engine.StateRunning, engine.StatePaused, engine.StateRestarting, engine.StateStopped:
		default:
			c.fail(rule, "container %s: state %q is not one of engine's four", ct.ID, ct.State)
		}
		// A live runtime always knows its containers' init PIDs; a state
		// tree from an old runtime may lack one, which the resolver answers
		// as not running.
		if ct.State.HasProcess() && (ct.PID < 0 || ct.PID == 0 && c.h.Live) {
			c.fail(rule, "container %s is %s but has no PID", ct.ID, ct.State)
		}
		if !ct.State.HasProcess() && ct.State != engine.StateRestarting && ct.PID != 0 {
			c.fail(rule, "container %s is %s but has PID %d", ct.ID, ct.State, ct.PID)
		}
		for _, n := range ct.Names {
			if n == "" || strings.HasPrefix(n, "/") {
				c.fail(rule, "container %s: name %q is empty or has a leading /", ct.ID, n)
			}
		}
		if c.h.Live && ct.State.HasProcess() && ct.PID > 0 {
			c.checkProcess(rule, ct)
		}
	}
}

// checkProcess checks a live container's PID against /proc: it exists, it
// is neither this process nor the host's init, and one of its cgroup paths
// holds one of the container's cgroup marks, which is what the resolver
// verifies before it answers with the PID.
func (c *checker) checkProcess(rule string, ct engine.Container) {
	if ct.PID == 1 || ct.PID == os.Getpid() {
		c.fail(rule, "container %s: PID %d is the host's init or the test itself", ct.ID, ct.PID)
		return
	}
	lines, err := procfs.ReadCgroupLines("/proc", ct.PID)
	if err != nil {
		c.fail(rule, "container %s: PID %d: %v", ct.ID, ct.PID, err)
		return
	}
	for _, l := range lines {
		if engine.CgroupMatches(l.Path, ct.CgroupMarks()) {
			return
		}
	}
	c.fail(rule, "container %s: PID %d's cgroups %v hold none of its cgroup marks %q", ct.ID, ct.PID, lines, ct.CgroupMarks())
}

// checkAbsent checks that an engine whose runtime is not there says so with
// ErrUnavailable, promptly, and is not a failure to open.
func (c *checker) checkAbsent() {
	ctx, cancel := c.ctx()
	defer cancel()
	e, err := c.h.OpenAbsent(ctx)
	if err != nil {
		c.fail("ErrUnavailable", "opening with the runtime absent failed (%v); an absent runtime is not an error to open", err)
		return
	}
	defer c.checkClose(e)
	cs, err := e.List(ctx)
	if !errors.Is(err, engine.ErrUnavailable) {
		c.fail("ErrUnavailable", "List with the runtime absent returned %d containers and %v; want an error wrapping engine.ErrUnavailable", len(cs), err)
	}
	w, ok := e.(engine.Watcher)
	if !ok {
		return
	}
	wctx, wcancel := context.WithCancel(ctx)
	events := make(chan engine.Event, 64)
	done := make(chan struct{})
	go func() { defer close(done); w.Watch(wctx, events) }()
	ev, ok := c.next(events, done, "with the runtime absent a watch starts with Unavailable")
	if ok && ev.Kind != engine.Unavailable && ev.Kind != engine.Resync {
		c.fail("Watch", "with the runtime absent, the first event is %v; want Unavailable (or Resync, whose List then fails)", ev.Kind)
	}
	wcancel()
	c.awaitReturn(done)
}

// next returns the next event, failing the rule when none comes in time or
// the watch returns first; why says what the event was expected for.
func (c *checker) next(events <-chan engine.Event, done <-chan struct{}, why string) (engine.Event, bool) {
	select {
	case ev, ok := <-events:
		if !ok {
			c.fail("Watch", "closed its events channel; a Watcher must never close it")
			return engine.Event{}, false
		}
		if ev.Engine != c.name {
			c.fail("Watch", "%v event with Engine %q, want %q", ev.Kind, ev.Engine, c.name)
		}
		return ev, true
	case <-done:
		c.fail("Watch", "returned before its context was cancelled")
	case <-time.After(c.h.Timeout):
		c.fail("Watch", "no event within %v: %s", c.h.Timeout, why)
	}
	return engine.Event{}, false
}

// awaitReturn checks that a cancelled Watch returns promptly.
func (c *checker) awaitReturn(done <-chan struct{}) {
	select {
	case <-done:
	case <-time.After(c.h.Timeout):
		c.fail("Watch", "did not return within %v of its context's cancellation", c.h.Timeout)
	}
}

func (c *checker) checkWatch(e engine.Engine, w engine.Watcher) {
	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan engine.Event, 256)
	done := make(chan struct{})
	go func() { defer close(done); w.Watch(ctx, events) }()
	defer func() {
		cancel()
		c.awaitReturn(done)
		select {
		case _, ok := <-events:
			if !ok {
				c.fail("Watch", "closed its events channel; a Watcher must never close it")
			}
		default:
		}
	}()
	ev, ok := c.next(events, done, "a watch starts with Resync, covering changes made before it subscribed")
	if !ok {
		return
	}
	if ev.Kind != engine.Resync {
		c.fail("Watch", "first event is %v; a watch starts with Resync, covering changes made before it subscribed", ev.Kind)
	}
	if rt := c.h.Runtime; rt != nil {
		c.checkLifecycle(e, rt, events, done)
	}
	if o := c.h.Outage; o != nil {
		c.checkOutage(e, o, events, done)
	}
}

// await reads events until one shows that the engine saw the change: an
// Upsert or Remove for id that satisfies ok, or a Resync after which List
// does. Engines that only know "something changed" send Resync; both are
// within the contract.
func (c *checker) await(e engine.Engine, events <-chan engine.Event, done <-chan struct{}, step, id string, ok func(ct engine.Container, present bool) bool) {
	deadline := time.After(c.h.Timeout)
	var seen []string
	for {
		select {
		case ev, open := <-events:
			if !open {
				c.fail("Watch", "closed its events channel; a Watcher must never close it")
				return
			}
			if ev.Engine != c.name {
				c.fail("Watch", "%v event with Engine %q, want %q", ev.Kind, ev.Engine, c.name)
			}
			switch ev.Kind {
			case engine.Upsert:
				// An Upsert names its container by Container.ID; Event.ID,
				// if set, must agree.
				seen = append(seen, fmt.Sprintf("upsert %s %s", ev.Container.ID, ev.Container.State))
				if ev.ID != "" && ev.ID != ev.Container.ID {
					c.fail("Watch", "Upsert with ID %q carries container ID %q; they must be the same", ev.ID, ev.Container.ID)
				}
				c.checkContainers("Watch Upsert", []engine.Container{ev.Container})
				if ev.Container.ID == id && ok(ev.Container, true) {
					return
				}
			case engine.Remove:
				seen = append(seen, "remove "+ev.ID)
				if ev.ID == id && ok(engine.Container{}, false) {
					return
				}
			case engine.Resync:
				seen = append(seen, "resync")
				cs, err := c.list(e)
				if err != nil {
					c.fail(step, "List after Resync: %v", err)
					continue
				}
				ct, present := findID(cs, id)
				if ok(ct, present) {
					return
				}
			default:
				seen = append(seen, ev.Kind.String())
			}
		case <-done:
			c.fail("Watch", "returned before its context was cancelled")
			return
		case <-deadline:
			// Whether List knows by now tells a missed event from a wrong
			// listing.
			now := "List fails"
			if cs, err := c.list(e); err == nil {
				if ct, present := findID(cs, id); present {
					now = fmt.Sprintf("List now says %s, pid %d", ct.State, ct.PID)
				} else {
					now = "List now lacks it"
				}
			}
			c.fail(step, "the engine did not report it within %v (events seen: %v; %s)", c.h.Timeout, seen, now)
			return
		}
	}
}

func (c *checker) checkLifecycle(e engine.Engine, rt Runtime, events <-chan engine.Event, done <-chan struct{}) {
	// Each step of the runtime gets the harness's bound afresh.
	step := func(f func(ctx context.Context) error) error {
		ctx, cancel := c.ctx()
		defer cancel()
		return f(ctx)
	}
	name := fmt.Sprintf("enginetest-%d", time.Now().UnixNano()%1e9)
	var id string
	err := step(func(ctx context.Context) (err error) { id, err = rt.Create(ctx, name); return err })
	if err != nil {
		c.fail("Runtime", "Create: %v", err)
		return
	}
	removed := false
	defer func() {
		if !removed {
			rt.Remove(context.Background(), id)
		}
	}()
	inState := func(s engine.State) func(engine.Container, bool) bool {
		return func(ct engine.Container, present bool) bool { return present && ct.State == s }
	}
	c.await(e, events, done, "Upsert on start", id, inState(engine.StateRunning))
	if cs, err := c.list(e); err == nil {
		if ct, ok := findID(cs, id); !ok || !slices.Contains(ct.Names, name) {
			c.fail("List", "new container %s (%s) listed as %+v", id, name, ct)
		}
	}
	switch err := step(func(ctx context.Context) error { return rt.Pause(ctx, id) }); {
	case errors.Is(err, errors.ErrUnsupported):
	case err != nil:
		c.fail("Runtime", "Pause: %v", err)
	default:
		c.await(e, events, done, "Upsert on pause", id, inState(engine.StatePaused))
	}
	if err := step(func(ctx context.Context) error { return rt.Stop(ctx, id) }); err != nil {
		c.fail("Runtime", "Stop: %v", err)
	} else {
		c.await(e, events, done, "Upsert on stop", id, inState(engine.StateStopped))
	}
	if err := step(func(ctx context.Context) error { return rt.Remove(ctx, id) }); err != nil {
		c.fail("Runtime", "Remove: %v", err)
		return
	}
	removed = true
	c.await(e, events, done, "Remove on rm", id, func(_ engine.Container, present bool) bool { return !present })
}

func (c *checker) checkOutage(e engine.Engine, o Outage, events <-chan engine.Event, done <-chan struct{}) {
	ctx, cancel := c.ctx()
	defer cancel()
	if err := o.StopRuntime(ctx); err != nil {
		c.fail("Outage", "StopRuntime: %v", err)
		return
	}
	restarted := false
	defer func() {
		if !restarted {
			o.StartRuntime(context.Background())
		}
	}()
	deadline := time.After(c.h.Timeout)
wait:
	for {
		select {
		case ev := <-events:
			if ev.Kind == engine.Unavailable {
				if !errors.Is(ev.Err, engine.ErrUnavailable) {
					c.fail("Unavailable", "event error %v does not wrap engine.ErrUnavailable", ev.Err)
				}
				break wait
			}
		case <-done:
			c.fail("Watch", "returned when its runtime went away; it must keep trying until cancelled")
			return
		case <-deadline:
			c.fail("Unavailable", "no Unavailable event within %v of the runtime stopping", c.h.Timeout)
			break wait
		}
	}
	if _, err := c.list(e); !errors.Is(err, engine.ErrUnavailable) {
		c.fail("ErrUnavailable", "List while the runtime is stopped: %v; want an error wrapping engine.ErrUnavailable", err)
	}
	if err := o.StartRuntime(ctx); err != nil {
		c.fail("Outage", "StartRuntime: %v", err)
		return
	}
	restarted = true
	deadline = time.After(c.h.Timeout)
	for {
		select {
		case ev := <-events:
			if ev.Kind == engine.Resync {
				if _, err := c.list(e); err != nil {
					c.fail("Recovery", "List after the runtime came back and Resync: %v", err)
				}
				return
			}
		case <-done:
			c.fail("Watch", "returned before its context was cancelled")
			return
		case <-deadline:
			c.fail("Recovery", "no Resync within %v of the runtime's return", c.h.Timeout)
			return
		}
	}
}

// checkClose closes engines that hold resources; closing twice is harmless.
func (c *checker) checkClose(e engine.Engine) {
	cl, ok := e.(io.Closer)
	if !ok {
		return
	}
	if err := cl.Close(); err != nil {
		c.fail("Close", "%v", err)
	}
	defer func() {
		if r := recover(); r != nil {
			c.fail("Close", "a second Close panicked: %v", r)
		}
	}()
	cl.Close()
}

func find(cs []engine.Container, namespace, id string) (engine.Container, bool) {
	i := slices.IndexFunc(cs, func(c engine.Container) bool { return c.ID == id && c.Namespace == namespace })
	if i < 0 {
		return engine.Container{}, false
	}
	return cs[i], true
}

func findID(cs []engine.Container, id string) (engine.Container, bool) {
	i := slices.IndexFunc(cs, func(c engine.Container) bool { return c.ID == id })
	if i < 0 {
		return engine.Container{}, false
	}
	return cs[i], true
}

func keys(cs []engine.Container) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Namespace + "/" + c.ID
	}
	slices.Sort(out)
	return out
}

func sameIDs(a, b []engine.Container) bool { return slices.Equal(keys(a), keys(b)) }
