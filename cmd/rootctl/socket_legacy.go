//go:build !rootdproto

package main

// Until the client package has List, Describe, DescribePID and Status (the
// proto branch), the socket cannot answer ls, resolve, which and status:
// they say so as a daemon without the requests would. Build with
// -tags rootdproto against a client that has them to use socket_proto.go;
// once that is merged, this file and the tag go.

import (
	"context"
	"errors"
	"fmt"
)

func unsupported(what string) error {
	return fmt.Errorf("the daemon cannot %s through the socket (this rootctl was built without the LIST/DESCRIBE/STATUS requests); as root, use --in-process: %w", what, errors.ErrUnsupported)
}

func (d *socketDaemon) List(context.Context) ([]Info, error) {
	return nil, unsupported("list containers")
}

func (d *socketDaemon) Describe(context.Context, string) (Info, error) {
	return Info{}, unsupported("describe a container")
}

func (d *socketDaemon) DescribePID(context.Context, int) (Info, error) {
	return Info{}, unsupported("find a process's container")
}

func (d *socketDaemon) Status(context.Context) (Status, error) {
	return Status{}, unsupported("report its status")
}
