package main

// The socket side of ls, resolve, which and status: the daemon's view
// requests (client.List, Describe, DescribePID, Status; docs/protocol.md).

import (
	"context"
	"errors"
	"fmt"

	"github.com/rootd-project/rootd/client"
	"github.com/rootd-project/rootd/wire"
)

func fromWire(c wire.ContainerInfo) Info {
	return Info{Engine: c.Engine, ID: c.ID, Names: c.Names, State: c.State, PID: c.PID,
		Namespace: c.Namespace, Labels: c.Labels, Cgroup: c.Cgroup, Hostname: c.Hostname}
}

// fromWireErr keeps the candidates of an ambiguous name and says what a
// daemon without the request (pmdaroot, an older rootd) means.
func fromWireErr(what string, err error) error {
	var amb *client.AmbiguousError
	if errors.As(err, &amb) {
		e := &AmbiguousError{Name: amb.Name}
		for _, c := range amb.Candidates {
			e.Candidates = append(e.Candidates, fromWire(c))
		}
		return e
	}
	if errors.Is(err, errors.ErrUnsupported) {
		return fmt.Errorf("the daemon cannot %s: it is PCP's pmdaroot or an older rootd; as root, use --in-process: %w", what, err)
	}
	return err
}

func (d *socketDaemon) List(ctx context.Context) ([]Info, error) {
	l, err := d.c.List(ctx)
	if err != nil {
		return nil, fromWireErr("list containers", err)
	}
	out := make([]Info, len(l))
	for i, c := range l {
		out[i] = fromWire(c)
	}
	return out, nil
}

func (d *socketDaemon) Describe(ctx context.Context, name string) (Info, error) {
	c, err := d.c.Describe(ctx, name)
	if err != nil {
		return Info{}, fromWireErr("describe a container", err)
	}
	return fromWire(c), nil
}

func (d *socketDaemon) DescribePID(ctx context.Context, pid int) (Info, error) {
	c, err := d.c.DescribePID(ctx, pid)
	if err != nil {
		return Info{}, fromWireErr("find a process's container", err)
	}
	return fromWire(c), nil
}

func (d *socketDaemon) Status(ctx context.Context) (Status, error) {
	s, err := d.c.Status(ctx)
	if err != nil {
		return Status{}, fromWireErr("report its status", err)
	}
	out := Status{Version: s.Version, Started: s.Started, Ready: s.Ready, Containers: s.Containers}
	for _, e := range s.Engines {
		out.Engines = append(out.Engines, EngineStatus{Name: e.Name, Health: e.Health, Error: e.Error,
			LastError: e.LastError, Containers: e.Containers, States: e.States})
	}
	return out, nil
}
