package rootd

import (
	"bytes"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func TestLogLimiter(t *testing.T) {
	type step struct {
		advance    time.Duration
		key        limitKey
		n          int    // lines offered
		logged     int    // of which allowed
		suppressed uint64 // count carried by the first allowed line
	}
	a := limitKey{uid: 65534, msg: "refusing client: uid not allowed"}
	b := limitKey{uid: 1000, msg: "refusing client: uid not allowed"}
	c := limitKey{uid: 65534, msg: "bad protocol exchange, closing client"}
	tests := []struct {
		name  string
		steps []step
		total uint64
	}{
		{"under the burst", []step{{key: a, n: logBurst, logged: logBurst}}, 0},
		{"flood is cut at the burst", []step{{key: a, n: 1000, logged: logBurst}}, 1000 - logBurst},
		{"keys are independent", []step{
			{key: a, n: 50, logged: logBurst},
			{key: b, n: 3, logged: 3},
			{key: c, n: 3, logged: 3},
		}, 50 - logBurst},
		{"next window reports the count", []step{
			{key: a, n: 25, logged: logBurst},
			{advance: logWindow / 2, key: a, n: 5, logged: 0},
			{advance: logWindow / 2, key: a, n: 1, logged: 1, suppressed: 20},
			{key: a, n: 1, logged: 1},
		}, 20},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := &fakeClock{t: time.Unix(1e9, 0)}
			l := newLogLimiter(clock.now)
			for i, st := range tc.steps {
				clock.advance(st.advance)
				logged, first := 0, uint64(0)
				for range st.n {
					if ok, sup := l.allow(st.key); ok {
						if logged == 0 {
							first = sup
						}
						logged++
					}
				}
				if logged != st.logged || first != st.suppressed {
					t.Errorf("step %d: %d logged (first with suppressed=%d), want %d (suppressed=%d)", i, logged, first, st.logged, st.suppressed)
				}
			}
			if got := l.Total(); got != tc.total {
				t.Errorf("Total = %d, want %d", got, tc.total)
			}
		})
	}
}

func TestLogLimiterSweep(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	l := newLogLimiter(clock.now)
	quiet := limitKey{uid: 1, msg: "m"}
	flood := limitKey{uid: 2, msg: "m"}
	l.allow(quiet)
	for range logBurst + 7 {
		l.allow(flood)
	}
	if r := l.sweep(); len(r) != 0 {
		t.Errorf("sweep inside the window reported %v", r)
	}
	clock.advance(logWindow)
	r := l.sweep()
	if len(r) != 1 || r[0].key != flood || r[0].count != 7 {
		t.Errorf("sweep = %+v, want 7 for %v", r, flood)
	}
	if r := l.sweep(); len(r) != 0 {
		t.Errorf("second sweep reported again: %v", r)
	}
	if len(l.keys) != 0 {
		t.Errorf("%d keys kept after their windows ended", len(l.keys))
	}
	// The table is bounded: a burst of distinct keys beyond logKeys goes
	// to one shared key.
	for i := range logKeys + 100 {
		l.allow(limitKey{uid: uint32(i), msg: "m"})
	}
	if len(l.keys) > logKeys+1 {
		t.Errorf("%d keys tracked, want at most %d", len(l.keys), logKeys+1)
	}
}

// syncBuffer is a log destination tests can read while the server writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// A client that sends garbage on connection after connection gets its
// first lines logged, then a count.
func TestBadProtocolFloodIsRateLimited(t *testing.T) {
	var logs syncBuffer
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	ts := startServer(t, func(c *Config) {
		c.Log = slog.New(slog.NewTextHandler(&logs, nil))
		c.now = clock.now
	})
	garbage := ints(0x1234, 16, 0, 2) // an unknown PDU type
	flood := func(n int) {
		for range n {
			conn := ts.raw(t)
			conn.Write(garbage)
			expectClosed(t, conn)
		}
	}
	const msg = "bad protocol exchange, closing client"
	flood(3 * logBurst)
	if n := strings.Count(logs.String(), msg); n != logBurst {
		t.Errorf("%d lines for %d bad clients, want %d", n, 3*logBurst, logBurst)
	}
	clock.advance(logWindow)
	flood(1)
	if n := strings.Count(logs.String(), msg); n != logBurst+1 {
		t.Errorf("%d lines after the window, want %d", n, logBurst+1)
	}
	if want := "suppressed=" + strconv.Itoa(2*logBurst); !strings.Contains(logs.String(), want) {
		t.Errorf("no %q in the log:\n%s", want, logs.String())
	}
	if got := ts.srv.SuppressedLogLines(); got != 2*logBurst {
		t.Errorf("SuppressedLogLines = %d, want %d", got, 2*logBurst)
	}
}

// With a limit of N, connection N+1 is closed before the greeting, and once
// a client leaves a new one is served.
func TestConnectionLimit(t *testing.T) {
	const limit = 3
	var logs syncBuffer
	ts := startServer(t, func(c *Config) {
		c.MaxConnections = limit
		c.Log = slog.New(slog.NewTextHandler(&logs, nil))
	})
	var held []*net.UnixConn
	for range limit {
		held = append(held, ts.raw(t)) // each has had its INFO
	}
	over, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: ts.path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer over.Close()
	expectClosed(t, over) // EOF with no INFO
	if !strings.Contains(logs.String(), "too many connections") {
		t.Errorf("refusal not logged:\n%s", logs.String())
	}
	if n := ts.srv.Clients(); n != limit {
		t.Errorf("Clients = %d, want %d", n, limit)
	}

	held[0].Close()
	waitFor(t, func() bool { return ts.srv.Clients() == limit-1 })
	c := ts.client(t) // reads INFO, so it was served
	pid, err := c.ProcessID(ctx5(t), "web1")
	if err != nil || pid != 101 {
		t.Errorf("PID(web1) on the freed slot = %d, %v", pid, err)
	}
}

// waitFor polls cond until it holds, failing the test after 10s. It waits
// for the server to notice a client leaving; it asserts nothing about time.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// dialAs connects to path with effective uid uid, which is what the kernel
// records as the peer's credentials. Only the calling thread changes uid:
// the goroutine locks its thread and never unlocks it, so the thread is
// thrown away when the goroutine ends.
func dialAs(uid int, path string) (*net.UnixConn, error) {
	type result struct {
		c   *net.UnixConn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		if _, _, e := syscall.RawSyscall(syscall.SYS_SETRESUID, ^uintptr(0), uintptr(uid), ^uintptr(0)); e != 0 {
			ch <- result{nil, e}
			return
		}
		c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// The flood of issue 10: a uid that is not allowed reconnects in a loop.
func TestRefusedPeerFloodIsRateLimited(t *testing.T) {
	requireRoot(t)
	var logs syncBuffer
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	ts := startServer(t, func(c *Config) {
		c.Log = slog.New(slog.NewTextHandler(&logs, nil))
		c.now = clock.now
	})
	// Let nobody reach the socket, as the PCP group can on a real host.
	os.Chmod(filepath.Dir(filepath.Dir(ts.path)), 0o755)
	os.Chmod(filepath.Dir(ts.path), 0o755)
	os.Chmod(ts.path, 0o666)
	flood := func(n int) {
		t.Helper()
		for range n {
			c, err := dialAs(nobody, ts.path)
			if err != nil {
				t.Fatal(err)
			}
			expectClosed(t, c) // refused before the greeting
			c.Close()
		}
	}
	const msg = "refusing client: uid not allowed"
	flood(3 * logBurst)
	if n := strings.Count(logs.String(), msg); n != logBurst {
		t.Errorf("%d lines for %d refused connections, want %d", n, 3*logBurst, logBurst)
	}
	if !strings.Contains(logs.String(), "peer_uid=65534") {
		t.Errorf("refusals do not name the uid:\n%s", logs.String())
	}
	clock.advance(logWindow)
	flood(1)
	if want := "suppressed=" + strconv.Itoa(2*logBurst); strings.Count(logs.String(), msg) != logBurst+1 || !strings.Contains(logs.String(), want) {
		t.Errorf("after the window: want one more line with %q:\n%s", want, logs.String())
	}
	// Root is still served.
	ts.raw(t)
}
