package resolver

import (
	"context"
	"errors"
	"fmt"
	"os"

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
	// engine's event arrived. One read of /proc/PID/stat tells.
	start, err := r.opts.StartTime(e.c.PID)
	if err != nil {
		return nil, nil, processError(e, err)
	}
	if start != p.start {
		err := fmt.Errorf("%w: %s:%s: pid %d was reused (start time %d, verified %d)",
			engine.ErrNotRunning, e.c.Engine, e.c.ShortID(), e.c.PID, start, p.start)
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
	before, err := r.opts.StartTime(pid)
	if err != nil {
		return nil, false, processError(e, err)
	}
	path, err := r.opts.Cgroup(pid)
	switch {
	case errors.Is(err, procfs.ErrRootCgroup):
		return nil, false, r.refuse(e, "/", "is in the root cgroup")
	case err != nil:
		return nil, false, processError(e, err)
	}
	if !engine.CgroupMatches(path, e.c.CgroupMarks()) {
		return nil, false, r.refuse(e, path, "is not in the container's cgroup")
	}
	after, err := r.opts.StartTime(pid)
	if err != nil {
		return nil, false, processError(e, err)
	}
	if after != before {
		return nil, false, fmt.Errorf("%w: %s:%s: pid %d was reused while being verified",
			engine.ErrNotRunning, e.c.Engine, e.c.ShortID(), pid)
	}
	p = &proof{cgroup: path, start: before}
	e.proof.Store(p)
	return p, true, nil
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
