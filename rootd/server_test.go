package rootd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rootd-project/rootd/client"
	"github.com/rootd-project/rootd/engine"
	"github.com/rootd-project/rootd/wire"
)

// fakeResolver answers from a fixed table; names starting with "slow" block
// until the request's context ends or release is closed.
type fakeResolver struct {
	release chan struct{}
}

type fakeContainer struct {
	pid    int
	cgroup string
	host   string
	err    error
}

var fakeTable = map[string]fakeContainer{
	"web1":     {pid: 101, cgroup: "docker/aaaa", host: "web1-host"},
	"db":       {pid: 202, cgroup: "system.slice/docker-bbbb.scope", host: "db-host"},
	"ab":       {err: &engine.AmbiguousError{Query: "ab", Candidates: []engine.Container{{Engine: "docker", ID: "ab1"}, {Engine: "podman", ID: "ab2"}}}},
	"stopped":  {err: fmt.Errorf("web2: %w", engine.ErrNotRunning)},
	"longhost": {pid: 5, host: strings.Repeat("h", wire.MaxPathLen)},
}

func (f *fakeResolver) lookup(ctx context.Context, name string) (fakeContainer, error) {
	if strings.HasPrefix(name, "slow") {
		select {
		case <-ctx.Done():
			return fakeContainer{}, ctx.Err()
		case <-f.release:
			name = "web1"
		}
	}
	if strings.ContainsRune(name, 0) {
		return fakeContainer{}, engine.ErrInvalidName
	}
	c, ok := fakeTable[name]
	if !ok {
		return c, fmt.Errorf("%q: %w", name, engine.ErrNotFound)
	}
	return c, c.err
}

func (f *fakeResolver) PID(ctx context.Context, name string) (int, error) {
	c, err := f.lookup(ctx, name)
	return c.pid, err
}

func (f *fakeResolver) CgroupPath(ctx context.Context, name string) (int, string, error) {
	c, err := f.lookup(ctx, name)
	return c.pid, c.cgroup, err
}

func (f *fakeResolver) Hostname(ctx context.Context, name string) (int, string, error) {
	c, err := f.lookup(ctx, name)
	return c.pid, c.host, err
}

type testServer struct {
	path   string
	srv    *Server
	procs  *Supervisor
	res    *fakeResolver
	cancel context.CancelFunc
	done   chan error
}

func startServer(t *testing.T, mutate func(*Config)) *testServer {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "root.socket")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	res := &fakeResolver{release: make(chan struct{})}
	procs := NewSupervisor(SupervisorConfig{Log: discardLog(), Stderr: io.Discard})
	cfg := Config{
		Log: discardLog(), Resolver: res, Processes: procs,
		ReadTimeout: 300 * time.Millisecond, RequestTimeout: 2 * time.Second,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	if cfg.Processes != nil {
		procs = cfg.Processes
	}
	srv := NewServer(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{path: path, srv: srv, procs: procs, res: res, cancel: cancel, done: make(chan error, 1)}
	before := runtime.NumGoroutine()
	go func() { ts.done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		ts.stop(t)
		if live := procs.Live(); len(live) > 0 {
			t.Errorf("agents left running: %v", live)
			for _, pid := range live {
				procs.kill(pid)
			}
		}
		procs.Wait()
		// Every connection goroutine must be gone once Serve returns.
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<16)
			t.Errorf("goroutines leaked: %d > %d\n%s", n, before, buf[:runtime.Stack(buf, true)])
		}
	})
	return ts
}

func (ts *testServer) stop(t *testing.T) {
	ts.cancel()
	select {
	case err, ok := <-ts.done:
		if ok && err != nil {
			t.Errorf("Serve: %v", err)
		}
		close(ts.done)
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
}

func discardLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func (ts *testServer) client(t *testing.T) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Connect(ctx, ts.path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// raw connects without the client and consumes INFO.
func (ts *testServer) raw(t *testing.T) *net.UnixConn {
	t.Helper()
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: ts.path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	info := make([]byte, wire.InfoSize)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, info); err != nil {
		t.Fatal(err)
	}
	if _, err := wire.DecodeInfo(info); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Time{})
	return c
}

func ctx5(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestContainerRequests(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.client(t)
	ctx := ctx5(t)
	if c.Features() != wire.AllFeatures {
		t.Errorf("features %d", c.Features())
	}
	if pid, err := c.ProcessID(ctx, "web1"); err != nil || pid != 101 {
		t.Errorf("ProcessID = %d, %v", pid, err)
	}
	if cg, err := c.CgroupName(ctx, "db"); err != nil || cg != "system.slice/docker-bbbb.scope" {
		t.Errorf("CgroupName = %q, %v", cg, err)
	}
	if h, err := c.HostName(ctx, "web1"); err != nil || h != "web1-host" {
		t.Errorf("HostName = %q, %v", h, err)
	}
	errCases := []struct {
		name string
		want error
	}{
		{"nosuch", client.ErrNoContainer},
		{"ab", syscall.ENOTUNIQ},
		{"stopped", syscall.ESRCH},
		{"bad\x00name", syscall.EINVAL},
		{"longhost", syscall.E2BIG},
	}
	for _, tc := range errCases {
		_, err := c.HostName(ctx, tc.name)
		if !errors.Is(err, tc.want) {
			t.Errorf("HostName(%q) = %v, want %v", tc.name, err, tc.want)
		}
	}
	// The connection survives every error reply.
	if pid, err := c.ProcessID(ctx, "db"); err != nil || pid != 202 {
		t.Errorf("after errors: ProcessID = %d, %v", pid, err)
	}
}

func TestHostnameByPID(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.client(t)
	want, _ := os.Hostname()
	if got, err := c.HostNameByPID(ctx5(t), os.Getpid()); err != nil || got != want {
		t.Errorf("HostNameByPID(self) = %q, %v; want %q", got, err, want)
	}
	if _, err := c.HostNameByPID(ctx5(t), 1<<22+12345); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("HostNameByPID(unknown) = %v, want ESRCH", err)
	}
}

func TestSlowLookupDoesNotBlockOthers(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.RequestTimeout = 300 * time.Millisecond })
	slow, fast := ts.client(t), ts.client(t)
	errc := make(chan error, 1)
	go func() { _, err := slow.ProcessID(ctx5(t), "slowpoke"); errc <- err }()
	for range 20 {
		if _, err := fast.ProcessID(ctx5(t), "web1"); err != nil {
			t.Fatal(err)
		}
	}
	if err := <-errc; !errors.Is(err, syscall.ETIMEDOUT) {
		t.Errorf("slow lookup: %v, want ETIMEDOUT", err)
	}
}

func TestConcurrentClients(t *testing.T) {
	ts := startServer(t, nil)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 32 {
		c := ts.client(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 100 {
				name, want := "web1", 101
				if (i+j)%2 == 0 {
					name, want = "db", 202
				}
				pid, err := c.ProcessID(context.Background(), name)
				if err != nil || pid != want {
					errs <- fmt.Errorf("client %d: %s = %d, %v", i, name, pid, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func pdu(t *testing.T, c wire.Container) []byte {
	b, err := wire.AppendContainer(nil, c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSplitAndCoalescedRequests(t *testing.T) {
	ts := startServer(t, nil)
	conn := ts.raw(t)
	a := pdu(t, wire.Container{Type: wire.TypeProcessIDReq, Name: []byte("web1")})
	b := pdu(t, wire.Container{Type: wire.TypeProcessIDReq, Name: []byte("db")})
	if _, err := conn.Write(append(append([]byte{}, a...), b...)); err != nil {
		t.Fatal(err)
	}
	readPIDs(t, conn, 101, 202)
	for _, by := range a {
		conn.Write([]byte{by})
		time.Sleep(time.Millisecond)
	}
	readPIDs(t, conn, 101)
}

func readPIDs(t *testing.T, conn *net.UnixConn, want ...int32) {
	t.Helper()
	buf := make([]byte, wire.MaxPDUSize)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer conn.SetReadDeadline(time.Time{})
	for _, w := range want {
		_, p, err := wire.ReadPDU(conn, buf)
		if err != nil {
			t.Fatal(err)
		}
		r, err := wire.DecodeContainer(p)
		if err != nil || r.PID != w || r.Type != wire.TypeProcessID {
			t.Fatalf("reply %+v %v, want pid %d", r, err, w)
		}
	}
}

// expectClosed waits for the server to close conn without replying.
func expectClosed(t *testing.T, conn *net.UnixConn) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := conn.Read(make([]byte, 64))
	if n != 0 || (err != io.EOF && !errors.Is(err, syscall.ECONNRESET)) {
		t.Fatalf("read %d bytes, %v; want the server to close", n, err)
	}
}

// expectStatus reads one reply and checks its type and status.
func expectStatus(t *testing.T, conn *net.UnixConn, typ wire.Type, status int32) {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	defer conn.SetReadDeadline(time.Time{})
	hdr, _, err := wire.ReadPDU(conn, make([]byte, wire.MaxPDUSize))
	if err != nil {
		t.Fatal(err)
	}
	if hdr.Type != typ || hdr.Status != status {
		t.Fatalf("reply %v status %d, want %v status %d", hdr.Type, hdr.Status, typ, status)
	}
}

func ints(v ...int32) []byte {
	var b bytes.Buffer
	for _, x := range v {
		var w [4]byte
		wireOrder.PutUint32(w[:], uint32(x))
		b.Write(w[:])
	}
	return b.Bytes()
}

// TestNULTerminatedNames sends container requests byte for byte as PCP
// 6.0.3's pmcd and agents send them (the name's NUL counted in namelen) and
// checks each reply byte for byte.
func TestNULTerminatedNames(t *testing.T) {
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name      string
		send      []byte
		wantReply []byte
	}{
		{"HOSTNAME_REQ as pmcd sends it", cat(ints(0x9001, 29, 0, 2, 0, 5), []byte("web1\x00")),
			cat(ints(0x9002, 33, 0, 2, 101, 9), []byte("web1-host"))},
		{"PROCESSID_REQ as pmdalinux sends it", cat(ints(0x9003, 29, 0, 2, 0, 5), []byte("web1\x00")),
			ints(0x9004, 24, 0, 2, 101, 0)},
		{"CGROUPNAME_REQ as pmdaproc sends it", cat(ints(0x9005, 27, 0, 2, 0, 3), []byte("db\x00")),
			cat(ints(0x9006, 54, 0, 2, 202, 30), []byte("system.slice/docker-bbbb.scope"))},
		{"without NUL, as the Go client sends it", cat(ints(0x9003, 28, 0, 2, 0, 4), []byte("web1")),
			ints(0x9004, 24, 0, 2, 101, 0)},
		{"unknown name with NUL", cat(ints(0x9003, 31, 0, 2, 0, 7), []byte("nosuch\x00")),
			ints(0x9004, 24, wire.StatusNoContainer, 2, 0, 0)},
		{"bytes after the NUL", cat(ints(0x9003, 31, 0, 2, 0, 7), []byte("web1\x00ab")),
			ints(0x9004, 24, -int32(syscall.EINVAL), 2, 0, 0)},
	}
	ts := startServer(t, nil)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conn := ts.raw(t)
			if _, err := conn.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, got, err := wire.ReadPDU(conn, make([]byte, wire.MaxPDUSize))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.wantReply) {
				t.Fatalf("reply\n% x\nwant\n% x", got, tc.wantReply)
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	label := make([]byte, 64)
	copy(label, "lbl")
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	einval := -int32(syscall.EINVAL)
	tests := []struct {
		name  string
		send  []byte
		reply wire.Type // 0: the server must close the client
		code  int32
	}{
		{"short header then EOF", ints(0x9003, 24), 0, 0},
		{"length below header", ints(0x9003, 12, 0, 2), 0, 0},
		{"length above max", ints(0x9003, wire.MaxPDUSize+1, 0, 2), 0, 0},
		{"huge length", ints(0x9003, 1<<30, 0, 2), 0, 0},
		{"unknown type", ints(0x9100, 24, 0, 2, 0, 0), 0, 0},
		{"reply type sent as request", ints(0x9004, 24, 0, 2, 0, 0), 0, 0},
		{"INFO from client", ints(0x9000, 24, 0, 2, 7, 0), 0, 0},
		{"version 3", cat(ints(0x9003, 26, 0, 3, 0, 2), []byte("ab")), 0, 0},
		{"negative status", cat(ints(0x9003, 28, -5, 2, 0, 4), []byte("web1")), wire.TypeProcessID, einval},
		{"negative namelen", ints(0x9003, 24, 0, 2, 0, -1), wire.TypeProcessID, einval},
		{"namelen 4096", cat(ints(0x9003, 28, 0, 2, 0, 4096), []byte("web1")), wire.TypeProcessID, einval},
		{"namelen beyond length", cat(ints(0x9005, 28, 0, 2, 0, 9), []byte("web1")), wire.TypeCgroupName, einval},
		{"empty name for cgroup", ints(0x9005, 24, 0, 2, 0, 0), wire.TypeCgroupName, einval},
		{"empty label", cat(ints(0x9007, 105, 0, 2, 0, 0, 0, 2, 0, 1), make([]byte, 64), []byte("x")), wire.TypeStart, wire.StatusGeneric},
		{"label too long", cat(ints(0x9007, 105, 0, 2, 0, 0, 0, 2, 64, 1), label, []byte("x")), wire.TypeStart, wire.StatusGeneric},
		{"args length mismatch", cat(ints(0x9007, 105, 0, 2, 0, 0, 0, 2, 3, 9), label, []byte("x")), wire.TypeStart, wire.StatusGeneric},
		{"unknown ipctype", cat(ints(0x9007, 112, 0, 2, 0, 0, 0, 7, 3, 8), label, []byte("/bin/cat")), wire.TypeStart, wire.StatusGeneric},
		{"unbalanced quote", cat(ints(0x9007, 106, 0, 2, 0, 0, 0, 2, 3, 2), label, []byte(`"x`)), wire.TypeStart, wire.StatusGeneric},
		{"stop wrong length", ints(0x9009, 28, 0, 2, -1, 0, 0), wire.TypeStop, einval},
		{"stop with status", ints(0x9009, 32, 3, 2, -1, 0, 0, 0), wire.TypeStop, einval},
	}
	ts := startServer(t, nil)
	healthy := ts.client(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conn := ts.raw(t)
			if _, err := conn.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			if tc.reply == 0 {
				if tc.name == "short header then EOF" {
					conn.CloseWrite()
				}
				expectClosed(t, conn)
			} else {
				expectStatus(t, conn, tc.reply, tc.code)
				// The stream is still in step: a good request is answered.
				conn.Write(pdu(t, wire.Container{Type: wire.TypeProcessIDReq, Name: []byte("web1")}))
				readPIDs(t, conn, 101)
			}
			if pid, err := healthy.ProcessID(ctx5(t), "db"); err != nil || pid != 202 {
				t.Fatalf("other client after %s: %d, %v", tc.name, pid, err)
			}
		})
	}
}

func TestStalledClientIsDropped(t *testing.T) {
	ts := startServer(t, nil)
	healthy := ts.client(t)
	conn := ts.raw(t)
	half := pdu(t, wire.Container{Type: wire.TypeProcessIDReq, Name: []byte("web1")})[:10]
	conn.Write(half)
	if _, err := healthy.ProcessID(ctx5(t), "web1"); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, conn) // after ReadTimeout (300ms here)
}

func TestIdleClientIsKept(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.client(t)
	time.Sleep(600 * time.Millisecond) // twice ReadTimeout, with no request
	if _, err := c.ProcessID(ctx5(t), "web1"); err != nil {
		t.Fatalf("idle client was dropped: %v", err)
	}
}

func TestDisconnectMidReply(t *testing.T) {
	ts := startServer(t, nil)
	for range 20 {
		conn := ts.raw(t)
		conn.Write(pdu(t, wire.Container{Type: wire.TypeHostnameReq, Name: []byte("web1")}))
		conn.Close()
	}
	c := ts.client(t)
	if _, err := c.HostName(ctx5(t), "web1"); err != nil {
		t.Fatal(err)
	}
}

func TestShutdownFinishesInFlightRequest(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.client(t)
	type result struct {
		pid int
		err error
	}
	got := make(chan result, 1)
	go func() {
		pid, err := c.ProcessID(context.Background(), "slowly")
		got <- result{pid, err}
	}()
	// Let the request reach the resolver before shutdown begins.
	time.Sleep(100 * time.Millisecond)
	ts.cancel()
	time.Sleep(50 * time.Millisecond)
	close(ts.res.release)
	r := <-got
	if r.err != nil || r.pid != 101 {
		t.Fatalf("in-flight request: %d, %v", r.pid, r.err)
	}
	if err := <-ts.done; err != nil {
		t.Fatal(err)
	}
	ts.done = make(chan error, 1)
	ts.done <- nil
	if _, err := net.Dial("unix", ts.path); err == nil {
		t.Error("still accepting after shutdown")
	}
}
