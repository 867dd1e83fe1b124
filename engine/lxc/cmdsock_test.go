package lxc

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rootd-project/rootd/engine"
)

func TestCommandSocketName(t *testing.T) {
	long := "/" + strings.Repeat("x", 100)
	tests := []struct {
		lxcpath, name, want string
	}{
		{"/var/lib/lxc", "web", "@/var/lib/lxc/web/command"},
		// Too long for sun_path: LXC names the socket by the FNV-1a hash
		// of "lxcpath/name" (value computed independently).
		{long, "c1", "@lxc/dee1a6db85456603/command"},
	}
	for _, tt := range tests {
		if got := commandSocketName(tt.lxcpath, tt.name); got != tt.want {
			t.Errorf("commandSocketName(%q, %q) = %q, want %q", tt.lxcpath, tt.name, got, tt.want)
		}
	}
	// The longest name that still fits: 106 bytes after the leading NUL.
	fits := "/" + strings.Repeat("p", 106-len("/n/command")-1)
	if got := commandSocketName(fits, "n"); got != "@"+fits+"/n/command" {
		t.Errorf("a 106-byte name was hashed: %q", got)
	}
	if got := commandSocketName(fits+"p", "n"); !strings.HasPrefix(got, "@lxc/") {
		t.Errorf("a 107-byte name was not hashed: %q", got)
	}
}

// monitorAnswer is how a fake lxc-start monitor behaves.
type monitorAnswer struct {
	state lxcState
	pid   int
	// silent monitors accept connections but never answer, as one that is
	// still starting or already stopping does.
	silent bool
	// hangUp closes every connection without answering.
	hangUp bool
}

// fakeMonitor serves LXC's command protocol on the container's abstract
// socket and records the commands it receives.
type fakeMonitor struct {
	mu       sync.Mutex
	commands []int32
	stop     func() // closes the socket and waits for its connections
}

func (m *fakeMonitor) received() []int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]int32(nil), m.commands...)
}

func startFakeMonitor(t *testing.T, lxcpath, name string, a monitorAnswer) *fakeMonitor {
	t.Helper()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: commandSocketName(lxcpath, name), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	m := &fakeMonitor{}
	var wg sync.WaitGroup
	var once sync.Once
	m.stop = func() { once.Do(func() { l.Close(); wg.Wait() }) }
	t.Cleanup(m.stop)
	wg.Go(func() {
		for {
			c, err := l.AcceptUnix()
			if err != nil {
				return
			}
			wg.Go(func() { m.serve(c, a) })
		}
	})
	return m
}

func (m *fakeMonitor) serve(c *net.UnixConn, a monitorAnswer) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if a.hangUp {
		return
	}
	var req [cmdStructSize]byte
	if _, err := io.ReadFull(c, req[:]); err != nil {
		return
	}
	cmd := int32(binary.NativeEndian.Uint32(req[:]))
	m.mu.Lock()
	m.commands = append(m.commands, cmd)
	m.mu.Unlock()
	if a.silent {
		io.Copy(io.Discard, c) // until the client gives up
		return
	}
	var rsp [cmdStructSize]byte
	switch cmd {
	case cmdGetState:
		binary.NativeEndian.PutUint64(rsp[8:], uint64(a.state))
	case cmdGetInitPID:
		binary.NativeEndian.PutUint64(rsp[8:], uint64(a.pid))
	default:
		ret := -int32(syscall.EINVAL)
		binary.NativeEndian.PutUint32(rsp[0:], uint32(ret))
	}
	c.Write(rsp[:])
}

func TestCommandClient(t *testing.T) {
	lxcpath := t.TempDir()
	startFakeMonitor(t, lxcpath, "up", monitorAnswer{state: lxcRunning, pid: 4321})
	startFakeMonitor(t, lxcpath, "bad", monitorAnswer{state: 99, pid: -5})
	startFakeMonitor(t, lxcpath, "silent", monitorAnswer{silent: true})
	startFakeMonitor(t, lxcpath, "hangup", monitorAnswer{hangUp: true})
	c := commandClient{timeout: 300 * time.Millisecond}
	ctx := context.Background()
	sock := func(name string) string { return commandSocketName(lxcpath, name) }

	if st, err := c.state(ctx, sock("up")); err != nil || st != lxcRunning {
		t.Errorf("state(up) = %v, %v; want RUNNING", st, err)
	}
	if pid, err := c.initPID(ctx, sock("up")); err != nil || pid != 4321 {
		t.Errorf("initPID(up) = %v, %v; want 4321", pid, err)
	}
	if _, err := c.state(ctx, sock("bad")); err == nil {
		t.Error("state(bad): an unknown state gave no error")
	}
	if _, err := c.initPID(ctx, sock("bad")); err == nil {
		t.Error("initPID(bad): a negative pid gave no error")
	}
	for _, name := range []string{"absent", "hangup"} {
		if _, err := c.state(ctx, sock(name)); !errors.Is(err, errNoMonitor) {
			t.Errorf("state(%s) = %v, want errNoMonitor", name, err)
		}
	}
	_, err := c.state(ctx, sock("silent"))
	if err == nil || errors.Is(err, errNoMonitor) {
		t.Errorf("state(silent) = %v, want a timeout error", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.state(cancelled, sock("up")); err == nil {
		t.Error("state with a cancelled context succeeded")
	}
}

// TestUntrustedListener: a listener whose uid the policy does not trust
// gets nothing sent, and its answers are not read. (The fake monitor runs
// as root here; the policy stands in for one that is not root.)
func TestUntrustedListener(t *testing.T) {
	lxcpath := t.TempDir()
	m := startFakeMonitor(t, lxcpath, "squat", monitorAnswer{state: lxcRunning, pid: 1})
	sock := commandSocketName(lxcpath, "squat")
	ctx := context.Background()
	distrust := commandClient{timeout: 300 * time.Millisecond, trusted: func(uid uint32) bool { return uid == 4242 }}
	if st, err := distrust.state(ctx, sock); !errors.Is(err, errUntrustedMonitor) {
		t.Errorf("state() = %v, %v; want errUntrustedMonitor", st, err)
	}
	if pid, err := distrust.initPID(ctx, sock); !errors.Is(err, errUntrustedMonitor) {
		t.Errorf("initPID() = %v, %v; want errUntrustedMonitor", pid, err)
	}
	if got := m.received(); len(got) != 0 {
		t.Errorf("commands sent to an untrusted listener: %v", got)
	}
	// The default trusts root.
	if pid, err := (commandClient{timeout: 300 * time.Millisecond}).initPID(ctx, sock); err != nil || pid != 1 {
		t.Errorf("initPID() with the default policy = %d, %v", pid, err)
	}
}

func TestTrustedMonitor(t *testing.T) {
	lxcpath := t.TempDir()
	must(t, os.Chown(lxcpath, 1234, 1234))
	e := &Engine{lxcpath: lxcpath}
	for uid, want := range map[uint32]bool{0: true, 1234: true, 65534: false, 1000: false} {
		if got := e.trustedMonitor(uid); got != want {
			t.Errorf("trustedMonitor(%d) = %v, want %v", uid, got, want)
		}
	}
	e.lxcpath = filepath.Join(lxcpath, "missing")
	if e.trustedMonitor(1234) || !e.trustedMonitor(0) {
		t.Error("a missing lxc path must trust root only")
	}
}

// TestListIgnoresUntrustedMonitor: a container whose command socket is
// served by someone untrusted is answered from its cgroup: stopped when
// it has no processes, else the process whose parent is outside it.
func TestListIgnoresUntrustedMonitor(t *testing.T) {
	cg := newFakeCgroups(t)
	lxcpath := t.TempDir()
	mkContainer(t, lxcpath, "squat", "")
	mkContainer(t, lxcpath, "lost", "")
	// lost: init 200 (parent 150, its monitor, outside), 201 and 202 below
	// it, one in a child cgroup (systemd's init.scope).
	cg.process("200", "lost", "", "0")
	stat := func(pid, ppid string) string {
		return pid + " (x) S " + ppid + " 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 100 0 0\n"
	}
	cg.write(filepath.Join(cg.proc, "200", "stat"), stat("200", "150"))
	cg.write(filepath.Join(cg.proc, "201", "stat"), stat("201", "200"))
	cg.write(filepath.Join(cg.proc, "202", "stat"), stat("202", "201"))
	cg.write(filepath.Join(cg.unified, "lxc.payload.lost", "cgroup.procs"), "200\n201\n")
	cg.write(filepath.Join(cg.unified, "lxc.payload.lost", "init.scope", "cgroup.procs"), "202\n")
	mSquat := startFakeMonitor(t, lxcpath, "squat", monitorAnswer{state: lxcRunning, pid: 1})
	mLost := startFakeMonitor(t, lxcpath, "lost", monitorAnswer{state: lxcRunning, pid: 1})

	e := testEngine(t, lxcpath, cg.proc)
	e.commands.trusted = func(uid uint32) bool { return uid == 4242 }
	cs, err := e.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := byName(t, cs)
	if c := got["squat"]; c.State != engine.StateStopped || c.PID != 0 {
		t.Errorf("squat: %s pid %d; want stopped, 0", c.State, c.PID)
	}
	if c := got["lost"]; c.State != engine.StateRunning || c.PID != 200 {
		t.Errorf("lost: %s pid %d; want running 200 (from its cgroup)", c.State, c.PID)
	}
	if n := len(mSquat.received()) + len(mLost.received()); n != 0 {
		t.Errorf("%d commands sent to untrusted listeners", n)
	}
	// Two processes whose parents are outside: no answer.
	cg.write(filepath.Join(cg.proc, "201", "stat"), stat("201", "1"))
	cs, _ = e.List(context.Background())
	if c := byName(t, cs)["lost"]; c.State != engine.StateStopped {
		t.Errorf("lost with two candidate inits: %s pid %d; want stopped", c.State, c.PID)
	}
}
