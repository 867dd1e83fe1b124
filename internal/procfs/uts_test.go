package procfs

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// childWithHostname starts a process in a UTS namespace of its own whose
// hostname is name.
func childWithHostname(t *testing.T, name string) int {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", "hostname "+name+" && exec sleep 60")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUTS}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting a child in a new UTS namespace (needs root): %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid
}

func TestUTSReader(t *testing.T) {
	host, _ := os.Hostname()
	const inside = "rootd-uts-test"
	child := childWithHostname(t, inside)
	u, err := NewUTSReader()
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	ctx := context.Background()

	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := u.Hostname(ctx, child)
		if err == nil && got == inside {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("child's hostname: %q, %v", got, err)
		}
		time.Sleep(10 * time.Millisecond)
	}

	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			pid, want := os.Getpid(), host
			if i%2 == 0 {
				pid, want = child, inside
			}
			if got, err := u.Hostname(ctx, pid); err != nil || got != want {
				t.Errorf("Hostname(%d) = %q, %v; want %q", pid, got, err, want)
			}
		})
	}
	wg.Wait()
	// No thread that runs ordinary goroutines was left inside the child's
	// namespace.
	if got, _ := os.Hostname(); got != host {
		t.Errorf("this process now sees hostname %q, want %q", got, host)
	}

	for _, pid := range []int{0, -1, 1<<22 + 99} {
		if _, err := u.Hostname(ctx, pid); !errors.Is(err, unix.ESRCH) {
			t.Errorf("Hostname(%d) = %v, want ESRCH", pid, err)
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := u.Hostname(cancelled, child); err == nil {
		// A ready worker may win the race with the cancelled context; then
		// the answer must still be right.
		if got, _ := u.Hostname(ctx, child); got != inside {
			t.Errorf("after cancellation: %q", got)
		}
	}
	if got, err := Hostname(ctx, child); err != nil || got != inside {
		t.Errorf("one-shot Hostname = %q, %v", got, err)
	}
}
