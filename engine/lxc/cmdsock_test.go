package lxc

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
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
