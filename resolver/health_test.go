package resolver

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rootd-project/rootd/engine"
	"github.com/rootd-project/rootd/engine/enginetest"
)

// stuck is a static engine whose List can be made to hang, ignoring its
// context, the way a runtime whose API accepts and never answers does.
type stuck struct {
	*enginetest.Memory
	calls atomic.Int32
	mu    sync.Mutex
	gate  chan struct{} // non-nil: List blocks until it is closed
}

func newStuck(name string, cs ...engine.Container) *stuck {
	return &stuck{Memory: enginetest.NewMemory(name, cs)}
}

// hang makes every List from now on block until resume.
func (s *stuck) hang() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gate == nil {
		s.gate = make(chan struct{})
	}
}

// resume releases the Lists that hang and lets later ones through.
func (s *stuck) resume() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gate != nil {
		close(s.gate)
		s.gate = nil
	}
}

// List blocks while the engine hangs, then reports what the engine holds
// when it answers, as a daemon that wakes up does.
func (s *stuck) List(ctx context.Context) ([]engine.Container, error) {
	s.calls.Add(1)
	s.mu.Lock()
	gate := s.gate
	s.mu.Unlock()
	if gate != nil {
		<-gate
	}
	return s.Memory.List(context.WithoutCancel(ctx))
}

// ListCalls counts List calls as they begin.
func (s *stuck) ListCalls() int { return int(s.calls.Load()) }

func healthOf(t *testing.T, r *Resolver, name string) string {
	t.Helper()
	return statusOf(t, r, name).Health
}

// TestMissWaitsOnceForASlowList: the first lookup that misses while an
// engine's List does not return stops waiting after MissWait and answers
// from the index; later lookups do not wait for that List at all, and no
// second List is started. Nothing here depends on the clock: the List never
// returns until the test releases it.
func TestMissWaitsOnceForASlowList(t *testing.T) {
	slow := newStuck("slow", running(idB, 2, "slowbox"))
	slow.hang()
	t.Cleanup(slow.resume)
	proc := newFakeProc()
	r := New([]engine.Engine{slow}, Options{
		Log: quietLog(), Cgroup: proc.cgroup, Hostname: proc.hostname,
		MissWait: time.Millisecond, RefreshTimeout: time.Hour,
	})
	var waits atomic.Int32
	r.testHookWait = func(uint64) { waits.Add(1) }
	ctx := context.Background()

	steps := []struct {
		name      string
		query     string
		wantWaits int32
	}{
		{name: "first miss waits for the List, then gives up", query: "nosuch", wantWaits: 1},
		{name: "a second miss does not wait", query: "nosuch", wantWaits: 1},
		{name: "a qualified miss does not wait", query: "slow:other", wantWaits: 1},
	}
	for _, st := range steps {
		if _, err := r.Resolve(ctx, st.query); !errors.Is(err, engine.ErrNotFound) {
			t.Fatalf("%s: Resolve(%q) = %v, want not found", st.name, st.query, err)
		}
		if n := waits.Load(); n != st.wantWaits {
			t.Fatalf("%s: lookups waited %d times, want %d", st.name, n, st.wantWaits)
		}
		if n := slow.ListCalls(); n != 1 {
			t.Fatalf("%s: %d Lists, want the one still running", st.name, n)
		}
		if h := healthOf(t, r, "slow"); h != "slow" {
			t.Fatalf("%s: health %q, want slow", st.name, h)
		}
	}
	// When the List returns, its result is indexed and the engine is
	// waited for again.
	slow.resume()
	waitFor(t, "the late List to land", func() bool { return healthOf(t, r, "slow") == "available" })
	if c, err := r.Resolve(ctx, "slowbox"); err != nil || c.ID != idB {
		t.Fatalf("Resolve(slowbox) = %+v, %v", c, err)
	}
}

// TestUnhealthyEngineIsNotWaitedFor: once an engine is hung, unavailable
// or failing, lookups neither start nor wait for its Lists, a hung or
// failing engine's containers answer as last known, and a gone engine's do
// not.
func TestUnhealthyEngineIsNotWaitedFor(t *testing.T) {
	timeoutErr := fmt.Errorf("docker at unix:///x: %w: %w", engine.ErrUnavailable, context.DeadlineExceeded)
	cases := []struct {
		name       string
		breakIt    func(t *testing.T, r *Resolver, e *stuck)
		health     string
		lastKnown  bool // the engine's container still resolves
		wantErrIs  error
		refreshErr bool
	}{
		{
			name: "List outlives the refresh timeout",
			breakIt: func(t *testing.T, r *Resolver, e *stuck) {
				e.hang()
				t.Cleanup(e.resume)
				// The watchdog marks it hung with nobody waiting.
				r.mu(e.Name(), func(s *engineState) { r.startList(s) })
				waitFor(t, "hung", func() bool { return healthOf(t, r, e.Name()) == "hung" })
			},
			health: "hung", lastKnown: true, wantErrIs: errListTimeout,
		},
		{
			name: "engine reports a timeout as unavailable",
			breakIt: func(t *testing.T, r *Resolver, e *stuck) {
				r.applyBatch(context.Background(), r.byName[e.Name()],
					[]engine.Event{{Kind: engine.Unavailable, Engine: e.Name(), Err: timeoutErr}})
			},
			health: "hung", lastKnown: true, wantErrIs: context.DeadlineExceeded,
		},
		{
			name: "engine gone",
			breakIt: func(t *testing.T, r *Resolver, e *stuck) {
				e.SetAvailable(false)
				_ = r.Refresh(context.Background())
			},
			health: "unavailable", lastKnown: false, wantErrIs: engine.ErrUnavailable,
		},
		{
			name: "List fails",
			breakIt: func(t *testing.T, r *Resolver, e *stuck) {
				e.SetListErr(errors.New("permission denied"))
				_ = r.Refresh(context.Background())
			},
			health: "failing", lastKnown: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			good := enginetest.NewMemory("docker", []engine.Container{running(idA, 1, "web")})
			sick := newStuck("sick", running(idB, 2, "sickbox"))
			proc := newFakeProc()
			proc.setCgroup(2, "docker/"+idB) // sickbox's init, verifiable
			opts := proc.options()
			opts.RefreshTimeout, opts.MissWait = 20*time.Millisecond, time.Hour
			r := New([]engine.Engine{good, sick}, opts)
			ctx := context.Background()
			if err := r.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
			tc.breakIt(t, r, sick)
			st := statusOf(t, r, "sick")
			if st.Health != tc.health || st.Available != (tc.health == "failing") {
				t.Fatalf("status = %+v, want health %s", st, tc.health)
			}
			if tc.wantErrIs != nil && !errors.Is(st.Err, tc.wantErrIs) {
				t.Fatalf("status error = %v, want %v", st.Err, tc.wantErrIs)
			}
			lists, goodLists := sick.ListCalls(), good.ListCalls()
			var waited []uint64
			var mu sync.Mutex
			r.testHookWait = func(seq uint64) { mu.Lock(); waited = append(waited, seq); mu.Unlock() }

			if _, err := r.Resolve(ctx, "sick:nosuch"); !errors.Is(err, engine.ErrNotFound) {
				t.Fatalf("Resolve(sick:nosuch) = %v", err)
			}
			if _, err := r.Resolve(ctx, "nosuch"); !errors.Is(err, engine.ErrNotFound) {
				t.Fatalf("Resolve(nosuch) = %v", err)
			}
			pid, err := r.PID(ctx, "sickbox")
			switch {
			case tc.lastKnown && (err != nil || pid != 2):
				t.Fatalf("PID(sickbox) = %d, %v; want the last known 2", pid, err)
			case !tc.lastKnown && !errors.Is(err, engine.ErrNotFound):
				t.Fatalf("PID(sickbox) = %d, %v; want not found", pid, err)
			}
			if n := sick.ListCalls(); n != lists {
				t.Fatalf("lookups listed the unhealthy engine %d times", n-lists)
			}
			// The misses ("nosuch", and "sickbox" once dropped) waited for
			// the healthy engine's Lists only.
			misses := 1
			if !tc.lastKnown {
				misses = 2
			}
			mu.Lock()
			defer mu.Unlock()
			if len(waited) != misses || good.ListCalls() != goodLists+misses {
				t.Fatalf("lookups waited for Lists %v (healthy engine listed %d times); want %d waits, all for the healthy engine",
					waited, good.ListCalls()-goodLists, misses)
			}
		})
	}
}

// mu runs f on the named engine's state with its lock held.
func (r *Resolver) mu(name string, f func(*engineState)) {
	s := r.byName[name]
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

// TestProbeRecoversEngine: Run re-lists an unhealthy engine by itself, so
// it comes back, with what it holds now, without any lookup asking.
func TestProbeRecoversEngine(t *testing.T) {
	cases := []struct {
		name    string
		breakIt func(*stuck)
		heal    func(*stuck)
		health  string
	}{
		{name: "hung", breakIt: (*stuck).hang, heal: (*stuck).resume, health: "hung"},
		{name: "gone", breakIt: func(e *stuck) { e.SetAvailable(false) }, heal: func(e *stuck) { e.SetAvailable(true) }, health: "unavailable"},
		{name: "failing", breakIt: func(e *stuck) { e.SetListErr(errors.New("boom")) }, heal: func(e *stuck) { e.SetListErr(nil) }, health: "failing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// No Watch: recovery must come from the prober.
			e := newStuck("sick", running(idB, 2, "old"))
			proc := newFakeProc()
			r := New([]engine.Engine{noWatch{e}}, Options{
				Log: quietLog(), Cgroup: proc.cgroup, Hostname: proc.hostname,
				RefreshTimeout: 20 * time.Millisecond, ProbeInterval: 5 * time.Millisecond,
			})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); r.Run(ctx) }()
			t.Cleanup(func() { e.resume(); cancel(); <-done })
			<-r.Ready()

			tc.breakIt(e)
			go func() { _ = r.Refresh(ctx) }()
			waitFor(t, tc.health, func() bool { return healthOf(t, r, "sick") == tc.health })
			e.Set([]engine.Container{running(idB, 2, "old"), running(idN(), 3, "new")})
			tc.heal(e)
			waitFor(t, "recovery", func() bool {
				st := statusOf(t, r, "sick")
				return st.Health == "available" && st.Containers == 2
			})
			if c, err := r.Resolve(ctx, "new"); err != nil || c.ID != idN() {
				t.Fatalf("Resolve(new) = %+v, %v", c, err)
			}
		})
	}
}

// noWatch hides an engine's Watch.
type noWatch struct{ e *stuck }

func (n noWatch) Name() string                                         { return n.e.Name() }
func (n noWatch) List(ctx context.Context) ([]engine.Container, error) { return n.e.List(ctx) }
