package main

// The socket side of ls, resolve, which and status: the daemon's view
// requests (client.List, Describe, DescribePID, Status; docs/protocol.md).
// rootctl's Info and Status are the wire types, so the daemon's answers are
// printed as they come, every field included.

import (
	"context"
	"errors"
	"fmt"
	"syscall"

	"github.com/rootd-project/rootd/client"
)

// fromWireErr keeps the candidates of an ambiguous name and says what a
// daemon without the request (pmdaroot, an older rootd) means.
func fromWireErr(what string, err error) error {
	var amb *client.AmbiguousError
	if errors.As(err, &amb) {
		return &AmbiguousError{Name: amb.Name, Candidates: amb.Candidates}
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
	return l, nil
}

// described keeps the container the daemon sends with ESRCH (it exists,
// without a running process): the caller prints it.
func described(what string, c Info, err error) (Info, error) {
	if err == nil {
		return c, nil
	}
	if errors.Is(err, syscall.ESRCH) && c.ID != "" {
		return c, err
	}
	return Info{}, fromWireErr(what, err)
}

func (d *socketDaemon) Describe(ctx context.Context, name string) (Info, error) {
	c, err := d.c.Describe(ctx, name)
	return described("describe a container", c, err)
}

func (d *socketDaemon) DescribePID(ctx context.Context, pid int) (Info, error) {
	c, err := d.c.DescribePID(ctx, pid)
	return described("find a process's container", c, err)
}

func (d *socketDaemon) Status(ctx context.Context) (Status, error) {
	s, err := d.c.Status(ctx)
	if err != nil {
		return Status{}, fromWireErr("report its status", err)
	}
	return s, nil
}
