package resolver

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/rootd-project/rootd/engine"
)

// Described is one container with everything rootd knows of it: what the
// index holds, its init process's cgroup and the hostname in its UTS
// namespace.
type Described struct {
	Listed
	Hostname string
}

// Describe finds the container a query names, by the rules every lookup
// uses (see the package comment), and describes it. A container without a
// verified init process is returned as far as the index knows it, together
// with an error wrapping engine.ErrNotRunning; an ambiguous query gives
// *engine.AmbiguousError with the candidates.
func (r *Resolver) Describe(ctx context.Context, query string) (Described, error) {
	e, err := r.resolve(ctx, query, r.seq.Load(), r.budget())
	if err != nil {
		return Described{}, err
	}
	return r.describe(ctx, e)
}

// DescribePID describes the container that host process pid belongs to,
// found as ByPID finds it.
func (r *Resolver) DescribePID(ctx context.Context, pid int) (Described, error) {
	if pid < 1 {
		return Described{}, fmt.Errorf("%w: pid %d", engine.ErrNotFound, pid)
	}
	token := r.seq.Load()
	e, err := r.byPID(pid)
	if err == errNoContainer {
		_ = r.refresh(ctx, -1, token, r.budget()) // failures are recorded per engine
		if err := ctx.Err(); err != nil {
			return Described{}, err
		}
		e, err = r.byPID(pid)
	}
	if err == errNoContainer {
		return Described{}, fmt.Errorf("%w: no container holds pid %d", engine.ErrNotFound, pid)
	}
	if err != nil {
		return Described{}, err
	}
	return r.describe(ctx, e)
}

// describe adds the cgroup and hostname of e's init process, verified as
// for CGROUPNAME and HOSTNAME. Not refreshing the index when e has no
// process keeps a description as cheap as the index: it says what the
// daemon sees now.
func (r *Resolver) describe(ctx context.Context, e *entry) (Described, error) {
	d := Described{Listed: Listed{Container: e.c}}
	if !e.running() {
		return d, fmt.Errorf("%w: %s:%s is %s", engine.ErrNotRunning, e.c.Engine, e.c.ShortID(), e.c.State)
	}
	p, _, err := r.verify(e)
	if err != nil {
		return d, err
	}
	d.Cgroup = p.cgroup
	host, err := r.opts.Hostname(ctx, e.c.PID)
	switch {
	case errors.Is(err, unix.ESRCH):
		return d, processError(e, err)
	case err != nil:
		// The rest of the description stands; the hostname is only
		// left out (HOSTNAME would answer with the error).
		r.log.Debug("describe: no hostname", "engine", e.c.Engine, "id", e.c.ID, "pid", e.c.PID, "err", err)
	default:
		d.Hostname = host
	}
	return d, nil
}
