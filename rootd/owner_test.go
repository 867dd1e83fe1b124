package rootd

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"syscall"
	"testing"
	"time"
)

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

func waitReaped(t *testing.T, s *Supervisor, pid int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if !slices.Contains(s.Live(), pid) {
			return
		}
	}
	t.Fatalf("agent %d still running", pid)
}

// TestAgentsBelongToTheirClientProcess: process A's agent cannot be
// signalled or reaped by process B (another pid, even as root); A's second
// connection can, as pmcd's two connections do; B's agents outlive B's
// connection and their statuses never reach A.
func TestAgentsBelongToTheirClientProcess(t *testing.T) {
	var logs logCapture
	ts := startServer(t, func(cfg *Config) {
		cfg.Processes = NewSupervisor(SupervisorConfig{Log: logs.logger(), Stderr: os.Stderr})
		cfg.Log = logs.logger()
	})
	a1 := ts.client(t)
	pa, err := a1.ProcessStart(ctx5(t), "a", []string{"/bin/sleep", "60"}, false)
	if err != nil {
		t.Fatal(err)
	}

	b := runHelperAs(t, 0, helperReq{Op: "signal", Socket: ts.path, PID: pa.PID})
	if b.TermErr != "EPERM" || b.KillErr != "EPERM" {
		t.Errorf("process B signalling A's agent: SIGTERM %q, SIGKILL %q; want EPERM", b.TermErr, b.KillErr)
	}
	if !alive(pa.PID) {
		t.Fatal("A's agent was killed by B")
	}
	if n := logs.count("agent belongs to another client"); n != 2 {
		t.Errorf("%d refusals logged, want 2\n%s", n, logs.String())
	}
	if b.WaitPID != 0 {
		t.Errorf("process B reaped %d", b.WaitPID)
	}

	// An exited agent of A's: B can neither reap it nor learn it exited.
	pe, err := a1.ProcessStart(ctx5(t), "a-exit", []string{"/bin/sh", "-c", "exit 3"}, false)
	if err != nil {
		t.Fatal(err)
	}
	waitReaped(t, ts.procs, pe.PID)
	b = runHelperAs(t, 0, helperReq{Op: "signal", Socket: ts.path, PID: pe.PID})
	if b.WaitPID != 0 || b.TermErr != "EPERM" || b.KillErr != "EPERM" {
		t.Errorf("process B on A's exited agent: %+v; want EPERM and nothing reaped", b)
	}
	if ws := waitExit(t, a1, pe.PID); ws.ExitStatus() != 3 {
		t.Errorf("A's status %#x, want exit 3", int(ws))
	}

	// B starts agents and leaves: one exits, one keeps running.
	b1 := runHelperAs(t, 0, helperReq{Op: "start", Socket: ts.path, Argv: []string{"/bin/sh", "-c", "exit 5"}})
	bExit := b1.PIDs[0]
	b = runHelperAs(t, 0, helperReq{Op: "start", Socket: ts.path, Argv: []string{"/bin/sleep", "60"}})
	bSleep := b.PIDs[0]
	waitReaped(t, ts.procs, bExit)
	if !alive(bSleep) {
		t.Error("B's agent died with B's connection")
	}
	if err := a1.ProcessTerminate(ctx5(t), bSleep); !errors.Is(err, syscall.EPERM) {
		t.Errorf("A killing B's agent: %v, want EPERM", err)
	}
	if pid, _, err := a1.ProcessWait(ctx5(t)); pid != 0 || err != nil {
		t.Errorf("A reaped %d (%v): B's agents' statuses must not reach A", pid, err)
	}
	ts.procs.LogUncollected()
	if n := logs.count(fmt.Sprintf("never collected\" owner=\"pid %d\" label=helper pid=%d ", b1.HelperID, bExit)); n != 1 {
		t.Errorf("B's uncollected status not logged at shutdown:\n%s", logs.String())
	}

	// A's other connection (same process) may stop A's agent; A collects.
	a2 := ts.client(t)
	if err := a2.ProcessSignalTerm(ctx5(t), pa.PID); err != nil {
		t.Fatalf("A's second connection: %v", err)
	}
	if ws := waitExit(t, a1, pa.PID); ws.Signal() != syscall.SIGTERM {
		t.Errorf("A's agent status %#x, want SIGTERM", int(ws))
	}
	ts.procs.kill(bSleep)
	waitReaped(t, ts.procs, bSleep)
}

// TestOwnerIsPIDAndStartTime: a process that later gets the owner's pid is
// not the owner.
func TestOwnerIsPIDAndStartTime(t *testing.T) {
	s := NewSupervisor(SupervisorConfig{Log: discardLog()})
	owner := Owner{PID: 4242, Start: 100}
	recycled := Owner{PID: 4242, Start: 200}
	st, err := s.Start(StartRequest{Peer: Peer{UID: 0}, Owner: owner, Label: "x", Argv: []string{"/bin/sleep", "60"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Signal(recycled, st.PID, syscall.SIGKILL); !errors.Is(err, syscall.EPERM) {
		t.Errorf("recycled pid signalled the agent: %v", err)
	}
	if err := s.Signal(owner, st.PID, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	s.Wait()
	if e, ok := s.Collect(recycled); ok {
		t.Errorf("recycled pid collected %+v", e)
	}
	if e, ok := s.Collect(owner); !ok || e.PID != st.PID || e.Status.Signal() != syscall.SIGKILL {
		t.Errorf("owner collected %+v, %v", e, ok)
	}
	if o := ownerOf(Peer{PID: 0}); o.Conn == 0 || o == ownerOf(Peer{PID: 0}) {
		t.Errorf("peers of unknown pid share an owner: %+v", o)
	}
}
