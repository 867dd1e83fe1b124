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
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Hostname returns the hostname that process pid sees. A daemon answering
// many requests keeps a UTSReader instead, which opens its own namespace once.
func Hostname(ctx context.Context, pid int) (string, error) {
	u, err := NewUTSReader()
	if err != nil {
		return "", err
	}
	defer u.Close()
	return u.Hostname(ctx, pid)
}

// UTSReader reads hostnames inside other processes' UTS namespaces.
//
// setns(2) changes only the calling thread, so a read locks the calling
// goroutine to its OS thread for the whole visit and returns the thread to
// the namespace held open in self. Reading on the caller's own thread keeps
// the request on one CPU: handing it to another thread (a new goroutine, or
// a pool of parked threads, both measured) wakes that thread each time, which
// costs more than the read on a virtual machine with idle vCPUs.
//
// If a thread cannot be returned it stays locked to its goroutine, so no
// other goroutine ever runs on it, and Go discards it when that goroutine
// exits. From then on every read runs on a goroutine of its own, which
// exits when done, so no thread is ever left behind in a container's
// namespace by a read that is still running.
type UTSReader struct {
	self     int            // descriptor of the namespace to return to
	inflight sync.WaitGroup // reads that may still use self
	// stranded is set once a thread failed to return to self.
	stranded atomic.Bool
}

// NewUTSReader opens the caller's UTS namespace as the one to return to. It
// must be called from an ordinary goroutine, which is never inside another
// namespace.
func NewUTSReader() (*UTSReader, error) {
	self, err := unix.Open("/proc/thread-self/ns/uts", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open own uts namespace: %w", err)
	}
	return &UTSReader{self: self}, nil
}

// Close releases the reader's namespace handle once every read has
// finished, including those whose callers gave up waiting: a thread must
// never return to a descriptor number that now means something else. Call
// it only after the last Hostname call has been made.
func (u *UTSReader) Close() error {
	u.inflight.Wait()
	return unix.Close(u.self)
}

// Hostname returns the hostname that process pid sees.
func (u *UTSReader) Hostname(ctx context.Context, pid int) (string, error) {
	if pid < 1 {
		return "", fmt.Errorf("hostname of pid %d: %w", pid, unix.ESRCH)
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if !u.stranded.Load() {
		u.inflight.Add(1)
		defer u.inflight.Done()
		runtime.LockOSThread()
		name, restored, err := hostnameOnThisThread(u.self, pid)
		if restored {
			runtime.UnlockOSThread()
		} else {
			u.stranded.Store(true)
		}
		return name, err
	}
	done := make(chan utsResult, 1)
	u.inflight.Add(1)
	go func() {
		defer u.inflight.Done()
		runtime.LockOSThread()
		name, restored, err := hostnameOnThisThread(u.self, pid)
		if restored {
			runtime.UnlockOSThread()
		}
		done <- utsResult{name, err}
	}()
	select {
	case r := <-done:
		return r.name, r.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

type utsResult struct {
	name string
	err  error
}

// hostnameOnThisThread must run on a locked OS thread whose own namespace
// self is. restored reports whether the thread is back in it.
func hostnameOnThisThread(self, pid int) (name string, restored bool, err error) {
	if pid == os.Getpid() {
		// /proc/PID/ns names the namespaces of the main thread, which may
		// be visiting a container for another read right now; this thread
		// is in rootd's own namespace, so ask it directly.
		name, err := uname()
		return name, true, err
	}
	target, err := unix.Open("/proc/"+strconv.Itoa(pid)+"/ns/uts", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		if err == unix.ENOENT {
			err = unix.ESRCH
		}
		return "", true, fmt.Errorf("hostname of pid %d: %w", pid, err)
	}
	defer unix.Close(target)

	if err := unix.Setns(target, unix.CLONE_NEWUTS); err != nil {
		return "", true, fmt.Errorf("enter uts namespace of pid %d: %w", pid, err)
	}
	name, unameErr := uname()
	if err := unix.Setns(self, unix.CLONE_NEWUTS); err != nil {
		return "", false, fmt.Errorf("return to own uts namespace: %w", err)
	}
	if unameErr != nil {
		return "", true, fmt.Errorf("uname in pid %d: %w", pid, unameErr)
	}
	return name, true, nil
}

// uname returns the calling thread's hostname.
func uname() (string, error) {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return "", err
	}
	n := uts.Nodename[:]
	if i := bytes.IndexByte(n, 0); i >= 0 {
		n = n[:i]
	}
	return string(n), nil
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
