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

	"golang.org/x/sys/unix"
)

// Hostname returns the hostname that process pid sees. It uses a thread of
// its own for the one call; a daemon answering many requests uses a
// UTSReader instead.
func Hostname(ctx context.Context, pid int) (string, error) {
	u := NewUTSReader(1)
	defer u.Close()
	return u.Hostname(ctx, pid)
}

// UTSReader reads hostnames inside other processes' UTS namespaces.
//
// setns(2) changes only the calling thread, so each worker is a goroutine
// locked to its OS thread for its whole life, holding that thread's own
// namespace open to return to. If a thread ever fails to return, its worker
// exits still locked: Go then destroys the thread, so no other goroutine can
// run in a container's namespace, and a fresh worker takes its place.
type UTSReader struct {
	reqs chan utsRequest
	done chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

type utsRequest struct {
	pid   int
	reply chan utsResult // buffered: a worker never waits on a caller who gave up
}

type utsResult struct {
	name string
	err  error
}

// NewUTSReader starts workers threads (at least one) that serve Hostname.
func NewUTSReader(workers int) *UTSReader {
	u := &UTSReader{reqs: make(chan utsRequest), done: make(chan struct{})}
	for range max(workers, 1) {
		u.startWorker()
	}
	return u
}

// Close stops the workers once the requests in progress are answered.
func (u *UTSReader) Close() {
	u.once.Do(func() { close(u.done) })
	u.wg.Wait()
}

// Hostname returns the hostname that process pid sees.
func (u *UTSReader) Hostname(ctx context.Context, pid int) (string, error) {
	if pid < 1 {
		return "", fmt.Errorf("hostname of pid %d: %w", pid, unix.ESRCH)
	}
	req := utsRequest{pid: pid, reply: make(chan utsResult, 1)}
	select {
	case u.reqs <- req:
	case <-ctx.Done():
		return "", ctx.Err()
	case <-u.done:
		return "", fmt.Errorf("hostname of pid %d: reader closed", pid)
	}
	select {
	case r := <-req.reply:
		return r.name, r.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func (u *UTSReader) startWorker() {
	u.wg.Add(1)
	go u.work()
}

func (u *UTSReader) work() {
	defer u.wg.Done()
	runtime.LockOSThread()
	self, err := os.Open("/proc/thread-self/ns/uts")
	if err != nil {
		// Without a way back, this thread must not enter anything; it
		// answers every request with the error instead.
		runtime.UnlockOSThread()
		err = fmt.Errorf("open own uts namespace: %w", err)
		for {
			select {
			case req := <-u.reqs:
				req.reply <- utsResult{err: err}
			case <-u.done:
				return
			}
		}
	}
	defer self.Close()
	for {
		select {
		case req := <-u.reqs:
			name, restored, err := hostnameOnThisThread(int(self.Fd()), req.pid)
			req.reply <- utsResult{name, err}
			if !restored {
				u.startWorker()
				return // still locked: the runtime discards this thread
			}
		case <-u.done:
			runtime.UnlockOSThread()
			return
		}
	}
}

// hostnameOnThisThread must run on a locked OS thread whose own namespace
// self is. restored reports whether the thread is back in it.
func hostnameOnThisThread(self, pid int) (name string, restored bool, err error) {
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
	if err := unix.Setns(self, unix.CLONE_NEWUTS); err != nil {
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
