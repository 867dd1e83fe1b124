package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"

	"github.com/rootd-project/rootd/wire"
)

// The daemon's view: rootd's own requests, announced by wire.FeatureView.
// The API, which rootctl codes against:
//
//	func (c *Client) List(ctx context.Context) ([]wire.ContainerInfo, error)
//	func (c *Client) Describe(ctx context.Context, name string) (wire.ContainerInfo, error)
//	func (c *Client) DescribePID(ctx context.Context, pid int) (wire.ContainerInfo, error)
//	func (c *Client) Status(ctx context.Context) (wire.Status, error)
//
// Errors:
//
//   - errors.Is(err, ErrNoContainer): no container has the name or PID.
//   - errors.Is(err, syscall.ENOTUNIQ): the name is ambiguous; errors.As
//     with a *AmbiguousError gives the Name and the Candidates.
//   - errors.Is(err, syscall.ESRCH): the container has no (verified)
//     running process; Describe then returns it as far as the daemon
//     knows it (engine, ID, names, state) along with the error.
//   - errors.Is(err, errors.ErrUnsupported): the server does not offer
//     these requests (PCP's pmdaroot, an older rootd). Nothing is sent:
//     such a server would close the connection on an unknown PDU type.
//   - errors.Is(err, wire.ErrMalformed) or wire.ErrViewDocument: the reply
//     broke the protocol (too large, out of order, bad JSON); the
//     connection is closed.
//
// Other statuses are wire.StatusError values that match their errno
// (EINVAL, EPERM, EBUSY, ETIMEDOUT, ...). Non-root peers get labels
// only partly (wire.ContainerInfo.LabelsRedacted; docs/security.md).

// AmbiguousError is Describe's error for a name that several containers
// answer to. It matches syscall.ENOTUNIQ with errors.Is.
type AmbiguousError struct {
	Name       string
	Candidates []wire.ContainerInfo
}

func (e *AmbiguousError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%q is ambiguous: %d containers match:", e.Name, len(e.Candidates))
	for i, c := range e.Candidates {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, " %s:%s", c.Engine, c.ID)
		if len(c.Names) > 0 {
			fmt.Fprintf(&b, " (%s)", c.Names[0])
		}
	}
	return b.String()
}

// Unwrap gives the status the reply carried, so that errors.Is(err,
// syscall.ENOTUNIQ) holds.
func (e *AmbiguousError) Unwrap() error { return wire.StatusError(-int32(syscall.ENOTUNIQ)) }

// HasView reports whether the server offers List, Describe, DescribePID and
// Status.
func (c *Client) HasView() bool { return c.features&wire.FeatureView != 0 }

// List returns every container in the daemon's index, each once (a
// container two engines report, as Docker's in containerd, is listed as
// the first engine reports it), ordered by engine, namespace and ID.
// Hostname is not filled in: it costs a namespace switch per container
// (use Describe).
func (c *Client) List(ctx context.Context) ([]wire.ContainerInfo, error) {
	doc, err := c.view(ctx, wire.ViewRequest{Type: wire.TypeListReq}, "")
	return doc.Containers, err
}

// Describe resolves name as PCP's container requests are resolved (exact
// ID, then name or NAMESPACE/POD/CONTAINER, then unique ID prefix;
// ENGINE:NAME searches one engine) and returns the container with its
// cgroup and hostname.
func (c *Client) Describe(ctx context.Context, name string) (wire.ContainerInfo, error) {
	if name == "" {
		return wire.ContainerInfo{}, errors.New("empty container name")
	}
	return c.describe(ctx, wire.ViewRequest{Type: wire.TypeDescribeReq, Name: []byte(name)}, name)
}

// DescribePID returns the container host process pid belongs to: the one
// whose init it is, or whose cgroup holds it.
func (c *Client) DescribePID(ctx context.Context, pid int) (wire.ContainerInfo, error) {
	if pid <= 0 || pid > 1<<31-1 {
		return wire.ContainerInfo{}, fmt.Errorf("invalid pid %d", pid)
	}
	return c.describe(ctx, wire.ViewRequest{Type: wire.TypeDescribeReq, PID: int32(pid)}, fmt.Sprint(pid))
}

func (c *Client) describe(ctx context.Context, r wire.ViewRequest, name string) (wire.ContainerInfo, error) {
	doc, err := c.view(ctx, r, name)
	var info wire.ContainerInfo
	if doc.Container != nil {
		info = *doc.Container
	}
	return info, err
}

// Status returns the daemon's version, readiness, container counts and
// the health of each engine.
func (c *Client) Status(ctx context.Context) (wire.Status, error) {
	doc, err := c.view(ctx, wire.ViewRequest{Type: wire.TypeStatusReq}, "")
	if err != nil || doc.Status == nil {
		return wire.Status{}, err
	}
	return *doc.Status, nil
}

// view sends one view request and gathers its reply. On a non-zero status
// the document is returned with the error, for what it carries (the
// container of an ESRCH reply).
func (c *Client) view(ctx context.Context, r wire.ViewRequest, name string) (wire.ViewDocument, error) {
	if !c.HasView() {
		return wire.ViewDocument{}, fmt.Errorf("%v: server does not offer rootd's view requests (PCP's pmdaroot or an older rootd): %w", r.Type, errors.ErrUnsupported)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	req, err := wire.AppendViewRequest(c.req[:0], r)
	if err != nil {
		return wire.ViewDocument{}, err
	}
	want, _ := r.Type.Reply()
	status, data, err := c.viewRoundTrip(ctx, req, want)
	if err != nil {
		return wire.ViewDocument{}, err
	}
	doc, err := wire.DecodeViewDocument(want, status, data)
	if err != nil {
		c.conn.Close()
		return wire.ViewDocument{}, err
	}
	if status == 0 {
		return doc, nil
	}
	var serr error = wire.StatusError(status)
	switch {
	case status == -int32(syscall.ENOTUNIQ):
		return doc, &AmbiguousError{Name: name, Candidates: doc.Candidates}
	case status == -int32(syscall.EOPNOTSUPP):
		serr = fmt.Errorf("%w: %w", errors.ErrUnsupported, serr)
	}
	if doc.Error != "" {
		return doc, fmt.Errorf("%w (%s)", serr, doc.Error)
	}
	return doc, serr
}

// viewRoundTrip sends req and reads the chunks of its reply into one
// document. Any transport or framing error closes the connection: the
// stream is out of step.
func (c *Client) viewRoundTrip(ctx context.Context, req []byte, want wire.Type) (int32, []byte, error) {
	stop := c.watch(ctx)
	defer stop()
	fail := func(err error) (int32, []byte, error) {
		c.conn.Close()
		return 0, nil, fmt.Errorf("%v reply: %w", want, ctxErr(ctx, err))
	}
	if _, err := c.conn.Write(req); err != nil {
		return fail(err)
	}
	a := wire.NewViewAssembler(want)
	for {
		_, pdu, err := wire.ReadPDU(c.conn, c.buf)
		if err != nil {
			return fail(err)
		}
		v, err := wire.DecodeView(pdu)
		if err != nil {
			return fail(err)
		}
		done, err := a.Add(v)
		if err != nil {
			return fail(err)
		}
		if done {
			return a.Status(), a.Document(), nil
		}
	}
}
