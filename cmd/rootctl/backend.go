package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/rootd-project/rootd/engine"
	"github.com/rootd-project/rootd/internal/procfs"
	"github.com/rootd-project/rootd/internal/version"
	"github.com/rootd-project/rootd/resolver"
	"github.com/rootd-project/rootd/rootd"
	"github.com/rootd-project/rootd/wire"
)

// Info is one container as rootctl prints it: the daemon's own
// wire.ContainerInfo, so that "ls -o json" and "resolve -o json" print
// exactly the objects the daemon sends (labels_redacted included), and the
// same objects when the engines are read in-process.
type Info = wire.ContainerInfo

// Status and EngineStatus are the daemon's wire.Status and
// wire.EngineStatus, so that "status -o json" prints every field the daemon
// sends (commit, clients, last_refresh, lists, last_list_ns, and whatever a
// newer daemon adds that this build knows).
type (
	Status       = wire.Status
	EngineStatus = wire.EngineStatus
)

// AmbiguousError is a name that matched several containers, with the
// candidates when the source knows them.
type AmbiguousError struct {
	Name       string
	Candidates []Info
}

func (e *AmbiguousError) Error() string { return fmt.Sprintf("%s is ambiguous", quoteName(e.Name)) }

// Is makes it match the ambiguity of both sources.
func (e *AmbiguousError) Is(target error) bool { return target == engine.ErrAmbiguous }

// source answers the questions ls, resolve, which and status ask: the
// daemon through the socket by default, the engines in-process with
// --in-process.
type source interface {
	List(ctx context.Context) ([]Info, error)
	Describe(ctx context.Context, name string) (Info, error)
	DescribePID(ctx context.Context, pid int) (Info, error)
	Status(ctx context.Context) (Status, error)
	Close() error
}

// daemon is the root socket: a source, and the three questions PCP's own
// agents ask. The client package implements it (socket.go); unit tests use
// a fake.
type daemon interface {
	source
	ProcessID(ctx context.Context, name string) (int, error)
	CgroupName(ctx context.Context, name string) (string, error)
	HostName(ctx context.Context, name string) (string, error)
	HostNameByPID(ctx context.Context, pid int) (string, error)
}

// local reads the engines in this process (--in-process, root only): what
// rootctl did before the daemon could list, kept for debugging the daemon.
type local struct {
	r       *resolver.Resolver
	engines []engine.Engine
	started time.Time
}

func (a *app) openLocal(ctx context.Context) (*local, error) {
	if a.euid() != 0 {
		return nil, errors.New("--in-process reads the container engines directly and needs root; without it rootctl asks rootd through the socket")
	}
	known := a.set.Names()
	for _, n := range a.engines {
		if !slices.Contains(known, n) {
			return nil, usagef("--engines: unknown engine %q (known: %v)", n, known)
		}
	}
	log := quietLog(a.stderr)
	opened, err := a.set.Open(engine.Env{Log: log, Getenv: a.getenv}, a.engines)
	if err != nil {
		return nil, fmt.Errorf("opening engines: %w", err)
	}
	r := resolver.New(opened, resolver.Options{Log: log, Hostname: procfs.Hostname})
	l := &local{r: r, engines: opened, started: time.Now()}
	// A failed engine is reported per engine by ls and status; the others'
	// containers are still listed.
	_ = r.Refresh(ctx)
	return l, nil
}

func (l *local) Close() error {
	for _, e := range l.engines {
		if c, ok := e.(io.Closer); ok {
			c.Close()
		}
	}
	return nil
}

// info is what the daemon sends of a container (rootd/view.go's
// containerInfo) for root, who sees every label: in-process is root only.
func info(c engine.Container, cgroup, hostname string) Info {
	return Info{Engine: c.Engine, ID: c.ID, Names: c.Names, State: string(c.State), PID: c.PID,
		Namespace: c.Namespace, Labels: c.Labels, Cgroup: cgroup, Hostname: hostname}
}

// List is the daemon's LIST: the resolver's Listing, with cgroups and
// without hostnames (each would mean entering a UTS namespace).
func (l *local) List(context.Context) ([]Info, error) {
	_, listed := l.r.Listing()
	out := make([]Info, len(listed))
	for i, c := range listed {
		out[i] = info(c.Container, c.Cgroup, "")
	}
	return out, nil
}

// Describe and DescribePID are the daemon's DESCRIBE, from the resolver's
// Describe and DescribePID as the daemon calls them: the candidates of an
// ambiguous name (without cgroup or hostname), and a container without a
// running process returned with its error, as the daemon's ESRCH reply
// carries it.
func (l *local) Describe(ctx context.Context, name string) (Info, error) {
	d, err := l.r.Describe(ctx, name)
	return l.described(name, d, err)
}

func (l *local) DescribePID(ctx context.Context, pid int) (Info, error) {
	d, err := l.r.DescribePID(ctx, pid)
	return l.described(fmt.Sprint(pid), d, err)
}

func (l *local) described(name string, d resolver.Described, err error) (Info, error) {
	c := info(d.Container, d.Cgroup, d.Hostname)
	var amb *engine.AmbiguousError
	switch {
	case err == nil:
		return c, nil
	case errors.As(err, &amb):
		e := &AmbiguousError{Name: name}
		for _, c := range amb.Candidates {
			e.Candidates = append(e.Candidates, info(c, "", ""))
		}
		return Info{}, e
	case errors.Is(err, engine.ErrNotRunning) && !errors.Is(err, engine.ErrNotFound) && d.ID != "":
		return c, err
	}
	return Info{}, err
}

// Status is the daemon's STATUS: the containers are counted once each,
// however many engines report them (a Docker container is a containerd one
// too), as the daemon counts them.
func (l *local) Status(context.Context) (Status, error) {
	st := Status{Version: "in-process: " + version.Get().String("rootctl"), Commit: version.Get().Commit,
		Started: l.started, Ready: true, Containers: len(l.r.Containers())}
	for _, e := range l.r.Status() {
		st.Engines = append(st.Engines, rootd.EngineStatus(e))
	}
	return st, nil
}
