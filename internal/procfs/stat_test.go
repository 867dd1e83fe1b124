package procfs

import (
	"errors"
	"os"
	"os/exec"
	"testing"

	"golang.org/x/sys/unix"
)

func TestParseStartTime(t *testing.T) {
	for _, tc := range []struct {
		name, stat string
		want       uint64
		ok         bool
	}{
		{"plain", "1234 (sleep) S 1 1234 1234 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 987654 2424832 180 18446744073709551615", 987654, true},
		{"name with spaces and parens", "42 (a) b (c)) R 1 42 42 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 55 0 0", 55, true},
		{"name that looks like fields", "42 (1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 77 0", 77, true},
		{"trailing newline", "1 (init) S 0 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 3\n", 3, true},
		{"truncated", "1 (init) S 0 1 1", 0, false},
		{"no name", "garbage", 0, false},
		{"not a number", "1 (init) S 0 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 x 0", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseStartTime([]byte(tc.stat))
			if (err == nil) != tc.ok || got != tc.want {
				t.Fatalf("ParseStartTime = %d, %v; want %d, ok=%v", got, err, tc.want, tc.ok)
			}
		})
	}
}

func TestStartTimeLive(t *testing.T) {
	self, err := StartTime(os.Getpid())
	if err != nil || self == 0 {
		t.Fatalf("StartTime(self) = %d, %v", self, err)
	}
	cmd := exec.Command("sleep", "10")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	child, err := StartTime(pid)
	if err != nil || child < self {
		t.Fatalf("StartTime(child) = %d, %v; own start %d", child, err, self)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if _, err := StartTime(pid); !errors.Is(err, unix.ESRCH) {
		t.Fatalf("StartTime of a reaped process = %v, want ESRCH", err)
	}
	if _, err := StartTime(0); !errors.Is(err, unix.ESRCH) {
		t.Fatalf("StartTime(0) = %v, want ESRCH", err)
	}
}

func TestParentPID(t *testing.T) {
	if got, err := ParentPID("/proc", os.Getpid()); err != nil || got != os.Getppid() {
		t.Fatalf("ParentPID(self) = %d, %v; want %d", got, err, os.Getppid())
	}
	if _, err := ParentPID("/proc", 0); !errors.Is(err, unix.ESRCH) {
		t.Fatalf("ParentPID(0) = %v; want ESRCH", err)
	}
}
