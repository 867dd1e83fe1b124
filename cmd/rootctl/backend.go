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
)

// Info is one container as rootctl prints it. It has the fields and JSON
// names of wire.ContainerInfo, the daemon's answer to LIST and DESCRIBE, so
// that "ls -o json" prints the same objects whether they come from the
// daemon or from the engines read in-process.
type Info struct {
	Engine    string            `json:"engine"`
	ID        string            `json:"id"`
	Names     []string          `json:"names,omitempty"`
	State     string            `json:"state"`
	PID       int               `json:"pid,omitempty"`
	Namespace string            `json:"namespace,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	Cgroup    string            `json:"cgroup,omitempty"`
	Hostname  string            `json:"hostname,omitempty"`
}

// EngineStatus and Status mirror wire.EngineStatus and wire.Status.
type EngineStatus struct {
	Name       string         `json:"name"`
	Health     string         `json:"health"`
	Error      string         `json:"error,omitempty"`
	LastError  time.Time      `json:"last_error,omitzero"`
	Containers int            `json:"containers"`
	States     map[string]int `json:"states,omitempty"`
}

// Status is the daemon's own account of itself and its engines.
type Status struct {
	Version    string         `json:"version"`
	Started    time.Time      `json:"started,omitzero"`
	Ready      bool           `json:"ready"`
	Containers int            `json:"containers"`
	Engines    []EngineStatus `json:"engines"`
}

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

// info fills in what the daemon adds to an engine's record: the cgroup
// and hostname of a container with a process (left empty when they cannot
// be read, as the daemon does).
func (l *local) info(ctx context.Context, c engine.Container) Info {
	out := Info{Engine: c.Engine, ID: c.ID, Names: c.Names, State: string(c.State), PID: c.PID,
		Namespace: c.Namespace, Labels: c.Labels}
	if c.State.HasProcess() && c.PID > 0 {
		q := c.Engine + ":" + c.ID
		if _, cg, err := l.r.CgroupPath(ctx, q); err == nil {
			out.Cgroup = cg
		}
		if h, err := procfs.Hostname(ctx, c.PID); err == nil {
			out.Hostname = h
		}
	}
	return out
}

func (l *local) List(ctx context.Context) ([]Info, error) {
	var out []Info
	for _, c := range l.r.Containers() {
		out = append(out, l.info(ctx, c))
	}
	return out, nil
}

func (l *local) Describe(ctx context.Context, name string) (Info, error) {
	c, err := l.r.Resolve(ctx, name)
	if err != nil {
		var amb *engine.AmbiguousError
		if errors.As(err, &amb) {
			e := &AmbiguousError{Name: name}
			for _, c := range amb.Candidates {
				e.Candidates = append(e.Candidates, l.info(ctx, c))
			}
			return Info{}, e
		}
		return Info{}, err
	}
	return l.info(ctx, c), nil
}

func (l *local) DescribePID(ctx context.Context, pid int) (Info, error) {
	c, err := l.r.ByPID(ctx, pid)
	if err != nil {
		return Info{}, err
	}
	return l.info(ctx, c), nil
}

func (l *local) Status(ctx context.Context) (Status, error) {
	st := Status{Version: "in-process: " + version.Get().String("rootctl"), Started: l.started, Ready: true}
	for _, e := range l.r.Status() {
		es := EngineStatus{Name: e.Name, Health: e.Health, LastError: e.LastErrorTime, Containers: e.Containers, States: map[string]int{}}
		if e.Err != nil {
			es.Error = e.Err.Error()
		}
		for s, n := range e.States {
			es.States[string(s)] = n
		}
		st.Containers += e.Containers
		st.Engines = append(st.Engines, es)
	}
	return st, nil
}
