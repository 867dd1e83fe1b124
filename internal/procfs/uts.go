// Package procfs reads what rootd needs from /proc: a process's cgroup path
// and the hostname in its UTS namespace, and for the engines the lines of
// /proc/PID/cgroup, the mounted cgroup hierarchies and the freezer state.
package procfs

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// Hostname returns the hostname that process pid sees, by entering its UTS
// namespace on a dedicated OS thread.
//
// setns(2) changes only the calling thread, so the goroutine is locked to its
// thread for the whole visit. If the thread cannot be returned to rootd's own
// namespace it is left locked: Go then terminates that thread when the
// goroutine exits, so no other goroutine ever runs in the container's
// namespace.
func Hostname(ctx context.Context, pid int) (string, error) {
	if pid < 1 {
		return "", fmt.Errorf("hostname of pid %d: %w", pid, unix.ESRCH)
	}
	type result struct {
		name string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		name, restored, err := hostnameOnThisThread(pid)
		if restored {
			runtime.UnlockOSThread()
		}
		done <- result{name, err}
	}()
	select {
	case r := <-done:
		return r.name, r.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// hostnameOnThisThread must run on a locked OS thread. restored reports
// whether the thread is back in its original UTS namespace.
func hostnameOnThisThread(pid int) (name string, restored bool, err error) {
	self, err := os.Open("/proc/thread-self/ns/uts")
	if err != nil {
		return "", true, fmt.Errorf("open own uts namespace: %w", err)
	}
	defer self.Close()
	target, err := os.Open("/proc/" + strconv.Itoa(pid) + "/ns/uts")
	if err != nil {
		return "", true, fmt.Errorf("hostname of pid %d: %w", pid, unwrapErrno(err))
	}
	defer target.Close()

	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWUTS); err != nil {
		return "", true, fmt.Errorf("enter uts namespace of pid %d: %w", pid, err)
	}
	var uts unix.Utsname
	unameErr := unix.Uname(&uts)
	if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWUTS); err != nil {
		return "", false, fmt.Errorf("return to own uts namespace: %w", err)
	}
	if unameErr != nil {
		return "", true, fmt.Errorf("uname in pid %d: %w", pid, unameErr)
	}
	n := uts.Nodename[:]
	if i := bytes.IndexByte(n, 0); i >= 0 {
		n = n[:i]
	}
	return string(n), true, nil
}

// unwrapErrno turns an *os.PathError from /proc into its errno, so callers
// can map "no such process" (ENOENT under /proc) onto ESRCH.
func unwrapErrno(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		if pe.Err == unix.ENOENT {
			return unix.ESRCH
		}
		return pe.Err
	}
	return err
}
