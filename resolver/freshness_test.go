package resolver

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rootd-project/rootd/engine"
	"github.com/rootd-project/rootd/engine/enginetest"
)

// find looks a query up in the index as it is, without any refresh.
func find(r *Resolver, q string) (*entry, outcome) {
	scope, name, problem := r.parseQuery(q)
	if problem != "" {
		panic(problem)
	}
	return r.lookup(scope, name)
}

func TestMissRefreshesOnce(t *testing.T) {
	docker := enginetest.NewMemory("docker", []engine.Container{running(idA, 1, "web")})
	podman := enginetest.NewMemory("podman", nil)
	r := newTestResolver(t, nil, docker, podman)
	ctx := context.Background()

	steps := []struct {
		name       string
		before     func()
		query      string
		found      bool
		dockerList int // List calls of docker after the step
		podmanList int
	}{
		// Never refreshed: the first query's miss lists everything.
		{name: "first query on an empty index", query: "web", found: true, dockerList: 1, podmanList: 1},
		{name: "a hit does not list", query: "web", found: true, dockerList: 1, podmanList: 1},
		{name: "a container created since is found", query: "new", found: true, dockerList: 2, podmanList: 2,
			before: func() { docker.Set([]engine.Container{running(idA, 1, "web"), running(idB, 2, "new")}) }},
		{name: "each miss lists once", query: "bogus", dockerList: 3, podmanList: 3},
		{name: "and again for the next miss", query: "bogus", dockerList: 4, podmanList: 4},
		{name: "a qualified miss lists only its engine", query: "docker:bogus", dockerList: 5, podmanList: 4},
		{name: "an invalid name lists nothing", query: "bad\x01", dockerList: 5, podmanList: 4},
	}
	for _, st := range steps {
		if st.before != nil {
			st.before()
		}
		_, err := r.Resolve(ctx, st.query)
		if st.found != (err == nil) {
			t.Fatalf("%s: Resolve(%q) error = %v", st.name, st.query, err)
		}
		if d, p := docker.ListCalls(), podman.ListCalls(); d != st.dockerList || p != st.podmanList {
			t.Fatalf("%s: List calls docker %d podman %d, want %d %d", st.name, d, p, st.dockerList, st.podmanList)
		}
	}
}

func TestConcurrentMissesShareOneList(t *testing.T) {
	docker := enginetest.NewMemory("docker", nil)
	g := newGated(docker)
	proc := newFakeProc()
	proc.setCgroup(100, "docker/"+idA)
	r := newTestResolver(t, proc, g)
	ctx := context.Background()

	// Every request arrived before any List began (same token), so one List
	// answers them all however they interleave with it.
	token := r.seq.Load()
	const n = 50
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { _, errs[i] = r.resolve(ctx, "bogus", token, r.budget()) })
	}
	<-g.entered
	close(g.release)
	wg.Wait()
	for _, err := range errs {
		if !errors.Is(err, engine.ErrNotFound) {
			t.Fatalf("resolve() error = %v, want not found", err)
		}
	}
	if n := docker.ListCalls(); n != 1 {
		t.Fatalf("%d List calls for concurrent misses, want 1", n)
	}
}

func TestMissDuringListWaitsForANewerList(t *testing.T) {
	docker := enginetest.NewMemory("docker", nil)
	g := newGated(docker)
	proc := newFakeProc()
	proc.setCgroup(100, "docker/"+idA)
	r := newTestResolver(t, proc, g)
	ctx := context.Background()
	waiting := make(chan uint64, 8)
	r.testHookWait = func(seq uint64) { waiting <- seq }

	// List #1 starts and takes the engine's (empty) contents.
	first := make(chan error, 1)
	go func() { _, err := r.Resolve(ctx, "first"); first <- err }()
	<-g.entered
	// Now a container is created and a query for it arrives. List #1
	// cannot know it; whether the query joins List #1 or finds it just
	// finished, it must be answered by a List that starts after it.
	docker.Upsert(running(idN(), 7, "new"))
	second := make(chan error, 1)
	go func() {
		c, err := r.Resolve(ctx, "new")
		if err == nil && c.ID != idN() {
			err = errors.New("wrong container " + c.ID)
		}
		second <- err
	}()
	// Make sure the second query joined List #1 before it ends: that is the
	// case a plain singleflight gets wrong.
	if a, b := <-waiting, <-waiting; a != b {
		t.Fatalf("queries waited for Lists %d and %d, want both on the first", a, b)
	}
	close(g.release)
	if err := <-second; err != nil {
		t.Fatalf("Resolve(new) = %v", err)
	}
	if err := <-first; !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("Resolve(first) = %v", err)
	}
}

func idN() string { return id("new container") }

func TestNotRunningRelistsItsEngine(t *testing.T) {
	docker := enginetest.NewMemory("docker", []engine.Container{stopped(idA, "web")})
	podman := enginetest.NewMemory("podman", nil)
	proc := newFakeProc()
	proc.setCgroup(42, "docker/"+idA)
	r := newTestResolver(t, proc, docker, podman)
	ctx := context.Background()
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	// Started since the index was built; its event has not arrived.
	docker.Set([]engine.Container{running(idA, 42, "web")})
	if pid, err := r.PID(ctx, "web"); err != nil || pid != 42 {
		t.Fatalf("PID() = %d, %v; want 42", pid, err)
	}
	if d, p := docker.ListCalls(), podman.ListCalls(); d != 2 || p != 1 {
		t.Fatalf("List calls docker %d podman %d, want 2 1", d, p)
	}
	// Still stopped after the relist: not running.
	docker.Set([]engine.Container{stopped(idA, "web")})
	if _, err := r.PID(ctx, "web"); err != nil {
		t.Fatalf("PID() before the index learns of the stop = %v", err)
	}
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := r.PID(ctx, "web"); !errors.Is(err, engine.ErrNotRunning) {
		t.Fatalf("PID() of a stopped container = %v", err)
	}
}

func TestHungEngineDoesNotHangResolver(t *testing.T) {
	good := enginetest.NewMemory("docker", []engine.Container{running(idA, 1, "web")})
	h := &hung{Memory: enginetest.NewMemory("slow", []engine.Container{running(idB, 2, "slowbox")}), unblock: make(chan struct{})}
	unblocked := false
	defer func() {
		if !unblocked {
			close(h.unblock)
		}
	}()
	proc := newFakeProc()
	r := New([]engine.Engine{good, h}, Options{
		Log: quietLog(), RefreshTimeout: 50 * time.Millisecond, Cgroup: proc.cgroup, Hostname: proc.hostname,
	})
	ctx := context.Background()

	if c, err := r.Resolve(ctx, "web"); err != nil || c.ID != idA {
		t.Fatalf("Resolve(web) with a hung engine = %v", err)
	}
	if err := r.Refresh(ctx); !errors.Is(err, errListTimeout) {
		t.Fatalf("Refresh() with a hung engine = %v, want a timeout", err)
	}
	st := statusOf(t, r, "slow")
	if st.Available || !errors.Is(st.Err, errListTimeout) {
		t.Fatalf("status of the hung engine = %+v", st)
	}
	// While its List is still hung, no second one is started.
	if _, err := r.Resolve(ctx, "bogus"); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("Resolve(bogus) = %v", err)
	}
	if n := h.ListCalls(); n != 1 {
		t.Fatalf("hung engine listed %d times, want 1", n)
	}
	if n := good.ListCalls(); n != 3 {
		t.Fatalf("healthy engine listed %d times, want 3", n)
	}
	// When the List finally returns, its result is used.
	close(h.unblock)
	unblocked = true
	waitFor(t, "the late List to land", func() bool { return statusOf(t, r, "slow").Available })
	if c, err := r.Resolve(ctx, "slowbox"); err != nil || c.ID != idB {
		t.Fatalf("Resolve(slowbox) = %v", err)
	}
}

func statusOf(t *testing.T, r *Resolver, name string) EngineStatus {
	t.Helper()
	for _, st := range r.Status() {
		if st.Name == name {
			return st
		}
	}
	t.Fatalf("no status for engine %s", name)
	return EngineStatus{}
}

func TestCancelledQueryReturns(t *testing.T) {
	g := newGated(enginetest.NewMemory("docker", nil))
	defer close(g.release)
	r := newTestResolver(t, nil, g)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := r.Resolve(ctx, "web"); errc <- err }()
	<-g.entered
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("Resolve() after cancel = %v", err)
	}
}

func TestUnavailableAtStartIsLoggedOnce(t *testing.T) {
	docker := enginetest.NewMemory("docker", nil)
	docker.SetAvailable(false)
	podman := enginetest.NewMemory("podman", []engine.Container{running(idE, 1, "web")})
	var logs logBuffer
	r := New([]engine.Engine{docker, podman}, Options{Log: slog.New(slog.NewTextHandler(&logs, nil))})
	ctx := context.Background()
	for range 3 {
		if err := r.Refresh(ctx); err != nil {
			t.Fatalf("Refresh() with an absent engine = %v, want nil", err)
		}
	}
	if n := strings.Count(logs.String(), "engine not available"); n != 1 {
		t.Fatalf("logged %d times, want once:\n%s", n, logs.String())
	}
	st := statusOf(t, r, "docker")
	if st.Available || !errors.Is(st.Err, engine.ErrUnavailable) || !st.LastRefresh.IsZero() {
		t.Fatalf("status = %+v", st)
	}
	if c, err := r.Resolve(ctx, "web"); err != nil || c.Engine != "podman" {
		t.Fatalf("Resolve(web) = %+v, %v", c, err)
	}
	docker.SetAvailable(true)
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if st := statusOf(t, r, "docker"); !st.Available || st.Err != nil || st.LastRefresh.IsZero() {
		t.Fatalf("status after recovery = %+v", st)
	}
	if n := strings.Count(logs.String(), "engine available again"); n != 1 {
		t.Fatalf("recovery logged %d times, want once:\n%s", n, logs.String())
	}
}

func TestListErrorKeepsLastKnown(t *testing.T) {
	docker := enginetest.NewMemory("docker", []engine.Container{running(idA, 1, "web")})
	var logs logBuffer
	r := New([]engine.Engine{docker}, Options{Log: slog.New(slog.NewTextHandler(&logs, nil))})
	ctx := context.Background()
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("permission denied on state dir")
	docker.SetListErr(boom)
	for range 2 {
		if err := r.Refresh(ctx); !errors.Is(err, boom) {
			t.Fatalf("Refresh() = %v, want %v", err, boom)
		}
	}
	if c, err := r.Resolve(ctx, "web"); err != nil || c.ID != idA {
		t.Fatalf("Resolve(web) after a failed List = %v", err)
	}
	if st := statusOf(t, r, "docker"); !st.Available || !errors.Is(st.Err, boom) || st.Containers != 1 {
		t.Fatalf("status = %+v", st)
	}
	if n := strings.Count(logs.String(), "listing containers failed"); n != 1 {
		t.Fatalf("failure logged %d times, want once:\n%s", n, logs.String())
	}
}

func TestPanickingEngineIsContained(t *testing.T) {
	good := enginetest.NewMemory("docker", []engine.Container{running(idA, 1, "web")})
	r := newTestResolver(t, nil, panicky{"bad"}, good)
	if err := r.Refresh(context.Background()); err == nil || !strings.Contains(err.Error(), "panicked") {
		t.Fatalf("Refresh() = %v, want the panic as an error", err)
	}
	if _, err := r.Resolve(context.Background(), "web"); err != nil {
		t.Fatalf("Resolve(web) = %v", err)
	}
}

func TestEventsUpdateIndex(t *testing.T) {
	docker := enginetest.NewMemory("docker", []engine.Container{running(idA, 100, "web")})
	podman := enginetest.NewMemory("podman", []engine.Container{running(idE, 200, "pod1")})
	var logs logBuffer
	r := New([]engine.Engine{docker, podman}, Options{Log: slog.New(slog.NewTextHandler(&logs, nil))})
	ctx := context.Background()
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	sd := r.byName["docker"]
	upsert := func(c engine.Container) engine.Event {
		return engine.Event{Kind: engine.Upsert, Engine: "docker", Container: c}
	}
	ev := func(k engine.EventKind, id string) engine.Event {
		return engine.Event{Kind: k, Engine: "docker", ID: id}
	}
	idX := id("x")

	steps := []struct {
		name      string
		batch     []engine.Event
		present   []string // queries that must resolve
		absent    []string // queries that must not
		pid       map[string]int
		available bool
		lists     int // docker List calls so far
	}{
		{name: "upsert adds a container the engine never listed",
			batch: []engine.Event{upsert(running(idX, 300, "x"))}, present: []string{"x", "web", "pod1"},
			available: true, lists: 1},
		{name: "upsert replaces",
			batch: []engine.Event{upsert(running(idA, 150, "web2"))}, present: []string{"web2"}, absent: []string{"web"},
			pid: map[string]int{"web2": 150}, available: true, lists: 1},
		{name: "remove, and remove of an unknown id",
			batch: []engine.Event{ev(engine.Remove, idX), ev(engine.Remove, "nope")}, absent: []string{"x"},
			present: []string{"web2"}, available: true, lists: 1},
		{name: "upsert without an id is ignored",
			batch: []engine.Event{upsert(engine.Container{Names: []string{"ghost"}})}, absent: []string{"ghost"},
			available: true, lists: 1},
		{name: "unavailable drops the engine only",
			batch: []engine.Event{ev(engine.Unavailable, "")}, absent: []string{"web2", "docker:" + idA[:6]},
			present: []string{"pod1"}, lists: 1},
		{name: "events while unavailable are ignored",
			batch: []engine.Event{ev(engine.Unavailable, ""), upsert(running(idX, 300, "x"))}, absent: []string{"x"},
			present: []string{"pod1"}, lists: 1},
		{name: "resync lists and restores",
			batch: []engine.Event{ev(engine.Resync, "")}, present: []string{"web", "pod1"}, absent: []string{"web2"},
			pid: map[string]int{"web": 100}, available: true, lists: 2},
		{name: "unavailable after resync in one batch wins, without a List",
			batch: []engine.Event{ev(engine.Resync, ""), ev(engine.Unavailable, "")}, absent: []string{"web"}, lists: 2},
		{name: "resync after unavailable lists",
			batch: []engine.Event{ev(engine.Unavailable, ""), ev(engine.Resync, "")}, present: []string{"web"},
			available: true, lists: 3},
		{name: "resyncs in one batch list once, after the batch's upserts",
			batch:   []engine.Event{ev(engine.Resync, ""), upsert(running(idX, 300, "x")), ev(engine.Resync, "")},
			present: []string{"web"}, absent: []string{"x"}, available: true, lists: 4},
	}
	for _, st := range steps {
		r.applyBatch(ctx, sd, st.batch)
		for _, q := range st.present {
			if _, out := find(r, q); out != found {
				t.Fatalf("%s: %q not found", st.name, q)
			}
		}
		for _, q := range st.absent {
			if _, out := find(r, q); out == found {
				t.Fatalf("%s: %q still found", st.name, q)
			}
		}
		for q, want := range st.pid {
			if e, _ := find(r, q); e == nil || e.c.PID != want {
				t.Fatalf("%s: pid of %q is not %d", st.name, q, want)
			}
		}
		if got := statusOf(t, r, "docker"); got.Available != st.available {
			t.Fatalf("%s: docker available = %v, want %v", st.name, got.Available, st.available)
		}
		if n := docker.ListCalls(); n != st.lists {
			t.Fatalf("%s: %d List calls, want %d", st.name, n, st.lists)
		}
	}
	if n := strings.Count(logs.String(), "became unavailable"); n != 2 {
		t.Fatalf("unavailability logged %d times for two transitions:\n%s", n, logs.String())
	}
}

func TestEventDuringListIsKept(t *testing.T) {
	g := newGated(enginetest.NewMemory("docker", []engine.Container{running(idA, 1, "web")}))
	r := newTestResolver(t, nil, g)
	ctx := context.Background()
	done := make(chan error, 1)
	go func() { done <- r.Refresh(ctx) }()
	<-g.entered
	// These happen after the List took its snapshot, which still has web
	// and lacks new: they must survive the List's result.
	r.applyBatch(ctx, r.byName["docker"], []engine.Event{
		{Kind: engine.Upsert, Container: running(idN(), 7, "new")},
		{Kind: engine.Remove, ID: idA},
	})
	close(g.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, out := find(r, "new"); out != found {
		t.Fatal("container upserted during the List was lost")
	}
	if _, out := find(r, "web"); out == found {
		t.Fatal("container removed during the List came back")
	}
}

func TestRunFollowsEngines(t *testing.T) {
	docker := enginetest.NewMemory("docker", []engine.Container{running(idA, 1, "web")})
	podman := enginetest.NewMemory("podman", []engine.Container{running(idE, 2, "pod1")})
	r := newTestResolver(t, nil, docker, podman)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	defer func() { cancel(); <-done }()

	has := func(want ...string) func() bool {
		return func() bool {
			got := ids(r.Containers())
			slices.Sort(got)
			slices.Sort(want)
			return slices.Equal(got, want)
		}
	}
	waitFor(t, "initial list", has("docker:"+idA, "podman:"+idE))
	docker.Upsert(running(idN(), 3, "new"))
	waitFor(t, "upsert", has("docker:"+idA, "docker:"+idN(), "podman:"+idE))
	docker.Remove(idA)
	waitFor(t, "remove", has("docker:"+idN(), "podman:"+idE))
	docker.SetAvailable(false)
	waitFor(t, "unavailable", has("podman:"+idE))
	if statusOf(t, r, "docker").Available {
		t.Fatal("docker still available")
	}
	docker.SetAvailable(true)
	waitFor(t, "recovery", has("docker:"+idN(), "podman:"+idE))
	podman.Set(nil)
	waitFor(t, "set", has("docker:"+idN()))
}

// TestFirstQueryJoinsInitialList: a query that arrives while the first List
// is running waits for that List instead of asking for a second one, so the
// time to the first answer is one List, not two.
func TestFirstQueryJoinsInitialList(t *testing.T) {
	docker := enginetest.NewMemory("docker", []engine.Container{running(idA, 100, "web")})
	g := newGated(docker)
	proc := newFakeProc()
	proc.setCgroup(100, "docker/"+idA)
	r := newTestResolver(t, proc, g)
	ctx := context.Background()
	initial := make(chan error, 1)
	go func() { initial <- r.Refresh(ctx) }() // as Run begins
	<-g.entered
	got := make(chan error, 1)
	go func() { _, err := r.PID(ctx, "web"); got <- err }()
	close(g.release)
	if err := <-got; err != nil {
		t.Fatalf("first query: %v", err)
	}
	<-initial
	if n := docker.ListCalls(); n != 1 {
		t.Errorf("%d Lists for the first query, want the initial one only", n)
	}
	// Once the index has been filled, a miss still asks for a newer List.
	if _, err := r.PID(ctx, "nosuch"); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("miss: %v", err)
	}
	if n := docker.ListCalls(); n != 2 {
		t.Errorf("%d Lists after a miss, want 2", n)
	}
}
