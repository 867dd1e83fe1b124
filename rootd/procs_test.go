package rootd

import (
	"bufio"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rootd-project/rootd/client"
	"github.com/rootd-project/rootd/wire"
)

// waitExit polls ProcessWait, as pmcd does, until pid's status arrives.
func waitExit(t *testing.T, c *client.Client, pid int) syscall.WaitStatus {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		got, status, err := c.ProcessWait(ctx5(t))
		if err != nil {
			t.Fatal(err)
		}
		if got == pid {
			return status
		}
		if got != 0 {
			t.Fatalf("collected unexpected child %d", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no exit status for %d", pid)
	return 0
}

func TestStartPipeTerminateWait(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.client(t)
	p, err := c.ProcessStart(ctx5(t), "cat", []string{"/bin/cat"}, true)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stdin.Close()
	defer p.Stdout.Close()
	if _, err := p.Stdin.WriteString("hello through rootd\n"); err != nil {
		t.Fatal(err)
	}
	p.Stdout.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(p.Stdout).ReadString('\n')
	if err != nil || line != "hello through rootd\n" {
		t.Fatalf("echo: %q, %v", line, err)
	}
	if err := c.ProcessTerminate(ctx5(t), p.PID); err != nil {
		t.Fatal(err)
	}
	ws := waitExit(t, c, p.PID)
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("status %#x: want killed by SIGKILL", int(ws))
	}
	// Reported once: a second wait finds nothing, a second kill is refused.
	if pid, _, err := c.ProcessWait(ctx5(t)); pid != 0 || err != nil {
		t.Errorf("second wait: %d, %v", pid, err)
	}
	if err := c.ProcessTerminate(ctx5(t), p.PID); !errors.Is(err, syscall.EPERM) {
		t.Errorf("kill after collection: %v, want EPERM", err)
	}
}

func TestArgsWithSpacesReachTheChild(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.client(t)
	argv := []string{"/bin/sh", "-c", `printf '%s|' "$@"`, "sh", "two words", `a "quoted" one`, "tab\there"}
	p, err := c.ProcessStart(ctx5(t), "sh", argv, true)
	if err != nil {
		t.Fatal(err)
	}
	p.Stdin.Close()
	p.Stdout.SetReadDeadline(time.Now().Add(5 * time.Second))
	out, _ := bufio.NewReader(p.Stdout).ReadString(0)
	p.Stdout.Close()
	if want := "two words|a \"quoted\" one|tab\there|"; out != want {
		t.Errorf("child saw %q, want %q", out, want)
	}
	if ws := waitExit(t, c, p.PID); ws.ExitStatus() != 0 {
		t.Errorf("exit status %d", ws.ExitStatus())
	}
}

func TestChildGetsOnlyStdio(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.client(t)
	p, err := c.ProcessStart(ctx5(t), "ls", []string{"/bin/ls", "/proc/self/fd"}, true)
	if err != nil {
		t.Fatal(err)
	}
	p.Stdin.Close()
	p.Stdout.SetReadDeadline(time.Now().Add(5 * time.Second))
	var fds []string
	sc := bufio.NewScanner(p.Stdout)
	for sc.Scan() {
		fds = append(fds, sc.Text())
	}
	p.Stdout.Close()
	// ls itself opens one descriptor to read the directory.
	if len(fds) > 4 {
		t.Errorf("child has descriptors %v, want only 0-2 (plus ls's own)", fds)
	}
	waitExit(t, c, p.PID)
}

func TestSocketAgentAndSIGTERM(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.client(t)
	p, err := c.ProcessStart(ctx5(t), "sleeper", []string{"sleep", "60"}, false)
	if err != nil {
		t.Fatal(err)
	}
	if p.Stdin != nil || p.Stdout != nil {
		t.Error("socket agent came with pipes")
	}
	if err := c.ProcessSignalTerm(ctx5(t), p.PID); err != nil {
		t.Fatal(err)
	}
	if ws := waitExit(t, c, p.PID); ws.Signal() != syscall.SIGTERM {
		t.Errorf("status %#x, want SIGTERM", int(ws))
	}
}

func TestExecFailure(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.client(t)
	for _, argv := range [][]string{{"/nonexistent/pmda"}, {"/etc/passwd"}, {"no-such-program-anywhere"}} {
		_, err := c.ProcessStart(ctx5(t), "bad", argv, true)
		if !errors.Is(err, wire.StatusError(wire.StatusGeneric)) {
			t.Errorf("start %q: %v, want PM_ERR_GENERIC", argv, err)
		}
	}
	if z := zombies(t); len(z) > 0 {
		t.Errorf("zombie children: %v", z)
	}
	if pid, _, err := c.ProcessWait(ctx5(t)); pid != 0 || err != nil {
		t.Errorf("wait after failed starts: %d, %v", pid, err)
	}
}

// zombies lists this process's children in state Z.
func zombies(t *testing.T) []int {
	entries, _ := os.ReadDir("/proc")
	self := strconv.Itoa(os.Getpid())
	var z []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Fields after the parenthesised command: state, ppid.
		rest := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
		if len(rest) > 1 && rest[0] == "Z" && rest[1] == self {
			z = append(z, pid)
		}
	}
	return z
}

func TestTerminateRefusesForeignPIDs(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.client(t)
	victim := exec.Command("sleep", "60")
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { victim.Process.Kill(); victim.Wait() }()
	for _, pid := range []int{0, -1, -victim.Process.Pid, 1, os.Getpid(), victim.Process.Pid, 1 << 22} {
		if err := c.ProcessTerminate(ctx5(t), pid); !errors.Is(err, syscall.EPERM) {
			t.Errorf("terminate %d: %v, want EPERM", pid, err)
		}
	}
	if err := c.ProcessSignalTerm(ctx5(t), victim.Process.Pid); !errors.Is(err, syscall.EPERM) {
		t.Errorf("SIGTERM to foreign pid: %v, want EPERM", err)
	}
	if err := victim.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("foreign process was harmed: %v", err)
	}
}

func TestExitStatusesQueueUntilCollected(t *testing.T) {
	ts := startServer(t, nil)
	c := ts.client(t)
	want := map[int]int{}
	for i := range 5 {
		p, err := c.ProcessStart(ctx5(t), "exit", []string{"/bin/sh", "-c", "exit " + strconv.Itoa(i+3)}, false)
		if err != nil {
			t.Fatal(err)
		}
		want[p.PID] = i + 3
	}
	// All five exit and are reaped before anyone asks.
	for deadline := time.Now().Add(5 * time.Second); len(ts.procs.Live()) > 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	for range 5 {
		pid, ws, err := c.ProcessWait(ctx5(t))
		if err != nil || want[pid] == 0 || ws.ExitStatus() != want[pid] {
			t.Fatalf("wait: pid %d status %d, %v; want one of %v", pid, ws.ExitStatus(), err, want)
		}
		delete(want, pid)
	}
	if z := zombies(t); len(z) > 0 {
		t.Errorf("zombies: %v", z)
	}
}

func TestClientGoneBeforeStartReply(t *testing.T) {
	ts := startServer(t, nil)
	conn := ts.raw(t)
	req, _ := wire.AppendStart(nil, wire.Start{Type: wire.TypeStartReq, IPCType: wire.IPCPipe, Label: []byte("orphan"), Args: []byte("sleep 60")})
	// With our read side shut, the server's reply fails with EPIPE every
	// time, as if the client had vanished between request and reply.
	conn.CloseRead()
	conn.Write(req)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if e, ok := ts.procs.Collect(selfOwner(t)); ok {
			if e.Status.Signal() != syscall.SIGKILL {
				t.Errorf("orphan agent status %#x, want SIGKILL", int(e.Status))
			}
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("orphan agent still running: %v", ts.procs.Live())
}
