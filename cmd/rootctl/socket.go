package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/rootd-project/rootd/client"
)

// socketDaemon is the daemon interface over the client package. The
// questions that need the LIST, DESCRIBE and STATUS requests are in
// socket_view.go.
type socketDaemon struct {
	c *client.Client
}

// dialSocket connects to rootd (or pmdaroot) and names the real cause of a
// failure: nothing there, nothing listening, no permission on the socket
// file, or a daemon that accepted and closed without a greeting (it refuses
// this user's credentials, or it is at its connection limit).
func dialSocket(ctx context.Context, path string) (daemon, error) {
	c, err := client.Connect(ctx, path)
	if err != nil {
		return nil, classifyDial(path, err)
	}
	return &socketDaemon{c: c}, nil
}

func classifyDial(path string, err error) error {
	switch {
	case errors.Is(err, syscall.ENOENT):
		return withCode(exitUnreachable, fmt.Errorf("no socket at %s: rootd is not running (systemctl status rootd), or -s/--socket names the wrong path: %w", path, err))
	case errors.Is(err, syscall.ECONNREFUSED):
		return withCode(exitUnreachable, fmt.Errorf("nothing listens on %s: rootd is not running (the socket file is a leftover): %w", path, err))
	case errors.Is(err, syscall.ENOTSOCK), errors.Is(err, syscall.ENOTDIR):
		return withCode(exitUnreachable, fmt.Errorf("%s is not a socket: %w", path, err))
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return withCode(exitRefused, fmt.Errorf("no permission to connect to %s (uid %d): the socket is for root and the PCP group; add this user to that group, or have rootd --allow-uid/--allow-gid it: %w", path, os.Geteuid(), err))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		// rootd accepts, reads the peer's credentials and closes a peer
		// it does not allow before sending INFO; it does the same past
		// --max-connections.
		return withCode(exitRefused, fmt.Errorf("rootd at %s closed the connection before greeting: it refuses this user (uid %d; allowed are root, the PCP user and group, and --allow-uid/--allow-gid), or it is at its --max-connections limit (rootd's log says which): %w", path, os.Geteuid(), err))
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return withCode(exitUnreachable, fmt.Errorf("rootd at %s did not greet within --timeout: %w", path, err))
	}
	return fmt.Errorf("connect %s: %w", path, err)
}

func (d *socketDaemon) Close() error { return d.c.Close() }

func (d *socketDaemon) ProcessID(ctx context.Context, name string) (int, error) {
	return d.c.ProcessID(ctx, name)
}

func (d *socketDaemon) CgroupName(ctx context.Context, name string) (string, error) {
	return d.c.CgroupName(ctx, name)
}

func (d *socketDaemon) HostName(ctx context.Context, name string) (string, error) {
	return d.c.HostName(ctx, name)
}

func (d *socketDaemon) HostNameByPID(ctx context.Context, pid int) (string, error) {
	return d.c.HostNameByPID(ctx, pid)
}
