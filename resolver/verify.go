package resolver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/rootd-project/rootd/engine"
	"github.com/rootd-project/rootd/internal/procfs"
)

// ErrUnverified is wrapped (with engine.ErrNotRunning) by the errors for
// a container whose engine-reported init PID failed verification: the
// process is not in the container's cgroup, or is rootd itself or PID 1.
// PCP's clients see -ESRCH, as for a container without a process.
var ErrUnverified = errors.New("init process not verified as the container's")

// proof is what verification established about a container's init
// process, cached in its entry: the entry stands for one container and
// one PID, and a process does not leave its container's cgroup.
type proof struct {
	cgroup string // its cgroup path without the leading slash
	start  uint64 // its start time, to notice the PID being reused
	// pidfd refers to the verified process itself, not to its PID: once
	// it has exited, signalling it fails, whoever has the PID now. nil
	// where pidfd_open(2) is not available (Linux < 5.3, seccomp). The
	// descriptor is closed when the proof is garbage (os.File's cleanup).
	pidfd *os.File
}

// openPidfd returns a pidfd for pid, or nil if there is none to be had.
func (r *Resolver) openPidfd(pid int) *os.File {
	if r.opts.NoPidfd {
		return nil
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil
	}
	return os.NewFile(uintptr(fd), "pidfd:"+strconv.Itoa(pid))
}

// exited reports whether the process a pidfd refers to has exited (a
// zombie has not: its PID is not free yet). One syscall.
func exited(pidfd *os.File) (bool, error) {
	rc, err := pidfd.SyscallConn()
	if err != nil {
		return false, err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.PidfdSendSignal(int(fd), 0, nil, 0) }); err != nil {
		return false, err
	}
	switch serr {
	case nil:
		return false, nil
	case unix.ESRCH:
		return true, nil
	}
	return false, serr
}

// stillSame reports whether p's process still holds its PID: by pidfd
// where there is one (one syscall), else by start time (one read of
// /proc/PID/stat).
func (r *Resolver) stillSame(pid int, p *proof) (same bool, err error) {
	if p.pidfd != nil {
		gone, err := exited(p.pidfd)
		if err == nil {
			return !gone, nil
		}
		// A pidfd that cannot be used: fall back to the start time.
	}
	start, err := r.opts.StartTime(pid)
	if err != nil {
		return false, err
	}
	return start == p.start, nil
}

// verifiedEntry is runningEntry with the engine's word checked: the init
// PID it returns is verified (see verify) and is still the process that
// was verified. It is the one place where PIDs leave the resolver for
// PROCESSID, CGROUPNAME and HOSTNAME.
func (r *Resolver) verifiedEntry(ctx context.Context, query string) (*entry, *proof, error) {
	e, err := r.runningEntry(ctx, query)
	if err != nil {
		return nil, nil, err
	}
	p, fresh, err := r.verify(e)
	if err != nil {
		return nil, nil, err
	}
	if fresh {
		return e, p, nil
	}
	// The proof may be older than the process now holding the PID: the
	// init may have exited, and its PID been handed out again, before the
	// engine's event arrived.
	same, err := r.stillSame(e.c.PID, p)
	if err != nil {
		return nil, nil, processError(e, err)
	}
	if !same {
		err := fmt.Errorf("%w: %s:%s: pid %d: the verified process has exited; the pid may be another's now",
			engine.ErrNotRunning, e.c.Engine, e.c.ShortID(), e.c.PID)
		if e.warned.CompareAndSwap(false, true) {
			r.log.Warn("container init pid now belongs to another process; not answering with it",
				"engine", e.c.Engine, "id", e.c.ID, "pid", e.c.PID)
		}
		return nil, nil, err
	}
	return e, p, nil
}

// verify checks, once per container and PID, that the PID the engine
// reported is the container's: not rootd itself, not PID 1, and in a
// cgroup at or below the one the engine says its runtime made for the
// container (engine.Container.CgroupMarks), on the hierarchy whose path
// CGROUPNAME answers (Options.Cgroup). The start time is read before and
// after the cgroup, so that the cgroup read is known to be that process's.
// A refusal is logged once per container and PID and not cached: it is
// checked again on the next request. fresh reports a proof made now.
func (r *Resolver) verify(e *entry) (p *proof, fresh bool, err error) {
	if p := e.proof.Load(); p != nil {
		return p, false, nil
	}
	pid := e.c.PID
	switch pid {
	case os.Getpid():
		return nil, false, r.refuse(e, "", "is rootd itself")
	case 1:
		return nil, false, r.refuse(e, "", "is PID 1")
	}
	// The pidfd and the start time are taken before the cgroup is read and
	// checked after, so that the cgroup read is known to be that process's.
	pidfd := r.openPidfd(pid)
	before, err := r.opts.StartTime(pid)
	if err != nil {
		closeFile(pidfd)
		return nil, false, processError(e, err)
	}
	p = &proof{start: before, pidfd: pidfd}
	path, err := r.opts.Cgroup(pid)
	switch {
	case errors.Is(err, procfs.ErrRootCgroup):
		closeFile(pidfd)
		return nil, false, r.refuse(e, "/", "is in the root cgroup")
	case err != nil:
		closeFile(pidfd)
		return nil, false, processError(e, err)
	}
	if !engine.CgroupMatches(path, e.c.CgroupMarks()) {
		closeFile(pidfd)
		return nil, false, r.refuse(e, path, "is not in the container's cgroup")
	}
	p.cgroup = path
	same, err := r.stillSame(pid, p)
	if err != nil || !same {
		closeFile(pidfd)
	}
	if err != nil {
		return nil, false, processError(e, err)
	}
	if !same {
		return nil, false, fmt.Errorf("%w: %s:%s: pid %d exited while being verified",
			engine.ErrNotRunning, e.c.Engine, e.c.ShortID(), pid)
	}
	if !e.proof.CompareAndSwap(nil, p) {
		// Another request verified it at the same time; keep one pidfd.
		closeFile(pidfd)
		return e.proof.Load(), false, nil
	}
	return p, true, nil
}

func closeFile(f *os.File) {
	if f != nil {
		f.Close()
	}
}

// refuse logs (once per container and PID) and returns the error for an
// init PID that failed verification.
func (r *Resolver) refuse(e *entry, cgroup, why string) error {
	if e.warned.CompareAndSwap(false, true) {
		r.log.Warn("engine reported an init pid that is not the container's; not answering with it",
			"engine", e.c.Engine, "id", e.c.ID, "names", e.c.Names, "pid", e.c.PID,
			"reason", why, "cgroup", cgroup, "expected", e.c.CgroupMarks())
	}
	return fmt.Errorf("%w: %s:%s: pid %d %s (cgroup %q, expected %q): %w",
		engine.ErrNotRunning, e.c.Engine, e.c.ShortID(), e.c.PID, why, cgroup, e.c.CgroupMarks(), ErrUnverified)
}
