package resolver

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/rootd-project/rootd/engine"
	"github.com/rootd-project/rootd/internal/procfs"
)

// cgroupIndex maps the cgroup paths of running containers' init processes
// to the containers, for one generation of the engines' indexes.
type cgroupIndex struct {
	gen    uint64
	byPath map[string][]*entry
}

// ByPID finds the container that process pid belongs to:
//
//   - the container whose init process it is; otherwise
//   - the container whose init process's cgroup is the process's cgroup or
//     its nearest ancestor (processes started inside a container share its
//     cgroup or live below it, as with systemd inside a container).
//
// Cgroup paths come from Options.Cgroup, so on v1 hosts they are the memory
// hierarchy's. A process in the root cgroup belongs to no container. When
// the process exists but no container matches, the lookup is tried again
// after a fresh List of every engine. Results are engine.ErrNotFound (also
// wrapping unix.ESRCH when the process does not exist) or
// *engine.AmbiguousError when two containers share the cgroup.
func (r *Resolver) ByPID(ctx context.Context, pid int) (engine.Container, error) {
	if pid < 1 {
		return engine.Container{}, fmt.Errorf("%w: pid %d", engine.ErrNotFound, pid)
	}
	token := r.seq.Load()
	e, err := r.byPID(pid)
	if err == errNoContainer {
		_ = r.refresh(ctx, -1, token, r.budget()) // failures are recorded per engine
		if err := ctx.Err(); err != nil {
			return engine.Container{}, err
		}
		e, err = r.byPID(pid)
	}
	if err == errNoContainer {
		return engine.Container{}, fmt.Errorf("%w: no container holds pid %d", engine.ErrNotFound, pid)
	}
	if err != nil {
		return engine.Container{}, err
	}
	return e.c, nil
}

// errNoContainer is byPID's "the process exists, but no container has it".
var errNoContainer = errors.New("no container holds the process")

func (r *Resolver) byPID(pid int) (*entry, error) {
	var m matcher
	for _, s := range r.engines {
		if e := s.idx.Load().byPID[pid]; e != nil {
			m.add(e, false)
		}
	}
	// Two containers with one init PID means a stale entry; the cgroup
	// below decides between them. So does an init PID that fails
	// verification: it is not the container's process.
	if e, out := m.outcome(); out == found {
		if _, _, err := r.verify(e); err == nil {
			return e, nil
		}
	}

	path, err := r.opts.Cgroup(pid)
	switch {
	case errors.Is(err, procfs.ErrRootCgroup):
		return nil, errNoContainer
	case err != nil:
		return nil, fmt.Errorf("%w: pid %d: %w", engine.ErrNotFound, pid, err)
	}
	idx := r.cgroups()
	for p := path; p != ""; {
		if cands := idx.byPath[p]; len(cands) > 0 {
			return pickOne(strconv.Itoa(pid), cands)
		}
		i := strings.LastIndexByte(p, '/')
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return nil, errNoContainer
}

// pickOne returns the single distinct container of cands, or an
// AmbiguousError naming them.
func pickOne(query string, cands []*entry) (*entry, error) {
	first := cands[0]
	amb := &engine.AmbiguousError{Query: query, Candidates: []engine.Container{first.c}}
	for _, e := range cands[1:] {
		if !e.same(first) {
			amb.Candidates = append(amb.Candidates, e.c)
		}
	}
	if len(amb.Candidates) == 1 {
		return first, nil
	}
	return nil, amb
}

// cgroups returns the cgroup index for the current generation, building it
// when an engine's index has changed since. Building reads /proc only for
// containers whose cgroup is not cached yet.
func (r *Resolver) cgroups() *cgroupIndex {
	if ci := r.cgroupIdx.Load(); ci != nil && ci.gen == r.gen.Load() {
		return ci
	}
	r.cgroupMu.Lock()
	defer r.cgroupMu.Unlock()
	gen := r.gen.Load()
	if ci := r.cgroupIdx.Load(); ci != nil && ci.gen == gen {
		return ci
	}
	ci := &cgroupIndex{gen: gen, byPath: map[string][]*entry{}}
	for _, s := range r.engines {
		for _, e := range s.idx.Load().sorted {
			if !e.running() {
				continue
			}
			// A failure (the init just exited, or sits in the root cgroup)
			// leaves the container out: no process can be matched to it.
			if path, err := r.entryCgroup(e); err == nil && path != "" {
				ci.byPath[path] = append(ci.byPath[path], e)
			}
		}
	}
	r.cgroupIdx.Store(ci)
	return ci
}
