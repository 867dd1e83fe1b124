// Package client is a Go client for the pmdaroot socket, mirroring PCP's C
// API (pmdaRootConnect and friends). It speaks to rootd and to PCP's own
// pmdaroot alike.
package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/rootd-project/rootd/wire"
	"golang.org/x/sys/unix"
)

// ErrNoContainer is the error for an unknown container (PM_ERR_NOCONTAINER).
// Other failures are wire.StatusError values that match their errno with
// errors.Is, e.g. errors.Is(err, syscall.ENOTUNIQ) for an ambiguous name.
var ErrNoContainer = wire.ErrNoContainer

// Client is one connection. Its methods may be called from several
// goroutines; requests are sent one at a time, as the protocol requires.
type Client struct {
	mu       sync.Mutex
	conn     *net.UnixConn
	features int32
	buf      []byte
	req      []byte
}

// Connect dials the socket at path and checks the server's INFO greeting.
func Connect(ctx context.Context, path string) (*Client, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, err
	}
	cl, err := New(ctx, c.(*net.UnixConn))
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", path, err)
	}
	return cl, nil
}

// New takes over conn, an open connection to the socket (one dialled
// with other credentials, or inherited), and checks the server's INFO
// greeting. On failure conn is closed.
func New(ctx context.Context, conn *net.UnixConn) (*Client, error) {
	cl := &Client{conn: conn, buf: make([]byte, wire.MaxPDUSize), req: make([]byte, 0, wire.MaxPDUSize)}
	stop := cl.watch(ctx)
	_, pdu, err := wire.ReadPDU(conn, cl.buf)
	stop()
	if err == nil {
		var info wire.Info
		info, err = wire.DecodeInfo(pdu)
		if err == nil && info.Status != 0 {
			err = wire.StatusError(info.Status)
		}
		cl.features = info.Features
	}
	if err != nil {
		conn.Close()
		return nil, ctxErr(ctx, err)
	}
	return cl, nil
}

// Features returns the feature bits the server announced.
func (c *Client) Features() int32 { return c.features }

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// watch makes ctx's cancellation or deadline interrupt blocking I/O.
func (c *Client) watch(ctx context.Context) (stop func()) {
	if dl, ok := ctx.Deadline(); ok {
		c.conn.SetDeadline(dl)
	}
	after := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Now()) })
	return func() {
		after()
		c.conn.SetDeadline(time.Time{})
	}
}

// ctxErr reports a read or write cut off by ctx as ctx's error. The
// connection's deadline is ctx's, so the I/O can time out a moment before
// ctx's own timer fires: a deadline already past counts too.
func ctxErr(ctx context.Context, err error) error {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return err
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return err
}

// roundTrip sends req and reads the reply of type want into c.buf. A
// transport error leaves the connection in an unknown state, so it is closed.
func (c *Client) roundTrip(ctx context.Context, req []byte, want wire.Type) (wire.Header, []byte, error) {
	stop := c.watch(ctx)
	defer stop()
	if _, err := c.conn.Write(req); err != nil {
		c.conn.Close()
		return wire.Header{}, nil, ctxErr(ctx, err)
	}
	hdr, pdu, err := wire.ReadPDU(c.conn, c.buf)
	if err != nil {
		c.conn.Close()
		return hdr, nil, ctxErr(ctx, err)
	}
	if hdr.Type != want {
		c.conn.Close()
		return hdr, nil, fmt.Errorf("%w: got %v reply, want %v", wire.ErrMalformed, hdr.Type, want)
	}
	return hdr, pdu, nil
}

func (c *Client) container(ctx context.Context, t wire.Type, pid int, name string) (int, string, error) {
	if name == "" && pid <= 0 {
		return 0, "", errors.New("empty container name")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	req, err := wire.AppendContainer(c.req[:0], wire.Container{Type: t, PID: int32(pid), Name: []byte(name)})
	if err != nil {
		return 0, "", err
	}
	reply, _ := t.Reply()
	_, pdu, err := c.roundTrip(ctx, req, reply)
	if err != nil {
		return 0, "", err
	}
	r, err := wire.DecodeContainer(pdu)
	if err != nil {
		c.conn.Close()
		return 0, "", err
	}
	if r.Status != 0 {
		return 0, "", wire.StatusError(r.Status)
	}
	return int(r.PID), string(r.Name), nil
}

// ProcessID returns the init PID of the container.
func (c *Client) ProcessID(ctx context.Context, name string) (int, error) {
	pid, _, err := c.container(ctx, wire.TypeProcessIDReq, 0, name)
	return pid, err
}

// CgroupName returns the container's cgroup path, without a leading slash.
func (c *Client) CgroupName(ctx context.Context, name string) (string, error) {
	_, path, err := c.container(ctx, wire.TypeCgroupNameReq, 0, name)
	return path, err
}

// HostName returns the hostname inside the container's UTS namespace.
func (c *Client) HostName(ctx context.Context, name string) (string, error) {
	_, host, err := c.container(ctx, wire.TypeHostnameReq, 0, name)
	return host, err
}

// HostNameByPID returns the hostname in process pid's UTS namespace. A pid
// outside 1..2^31-1 (the wire carries an int32) is refused without asking.
func (c *Client) HostNameByPID(ctx context.Context, pid int) (string, error) {
	if pid <= 0 || pid > 1<<31-1 {
		return "", fmt.Errorf("invalid pid %d", pid)
	}
	_, host, err := c.container(ctx, wire.TypeHostnameReq, pid, "")
	return host, err
}

// Process is an agent started by ProcessStart. For a pipe agent Stdin writes
// to the child and Stdout reads from it; the caller closes both.
type Process struct {
	PID    int
	Stdin  *os.File
	Stdout *os.File
}

// ProcessStart asks the server to start argv (joined the way pmcd joins it)
// under label. With pipe true the child's stdin and stdout come back as
// files; otherwise the agent is a socket agent and both are nil.
func (c *Client) ProcessStart(ctx context.Context, label string, argv []string, pipe bool) (Process, error) {
	ipc := int32(wire.IPCSocket)
	if pipe {
		ipc = wire.IPCPipe
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	req, err := wire.AppendStart(c.req[:0], wire.Start{Type: wire.TypeStartReq, IPCType: ipc, Label: []byte(label), Args: []byte(wire.JoinArgs(argv))})
	if err != nil {
		return Process{}, err
	}
	stop := c.watch(ctx)
	defer stop()
	if _, err := c.conn.Write(req); err != nil {
		c.conn.Close()
		return Process{}, ctxErr(ctx, err)
	}
	oob := make([]byte, unix.CmsgSpace(2*4))
	n, oobn, _, _, err := c.conn.ReadMsgUnix(c.buf[:wire.StartFixed], oob)
	var fds []int
	if err == nil && oobn > 0 {
		fds, err = parseRights(oob[:oobn])
	}
	closeFDs := func() {
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
	if err == nil && n < wire.StartFixed {
		// The server sends the whole reply in one write, but a reader
		// must not rely on it arriving in one piece.
		_, err = io.ReadFull(c.conn, c.buf[n:wire.StartFixed])
	}
	if err != nil {
		closeFDs()
		c.conn.Close()
		return Process{}, ctxErr(ctx, err)
	}
	hdr, err := wire.ParseHeader(c.buf[:wire.HeaderSize])
	var r wire.Start
	if err == nil {
		if hdr.Length != wire.StartFixed {
			err = fmt.Errorf("%w: STARTPMDA reply length %d", wire.ErrMalformed, hdr.Length)
		} else {
			r, err = wire.DecodeStart(c.buf[:wire.StartFixed])
		}
	}
	if err == nil && r.Type != wire.TypeStart {
		err = fmt.Errorf("%w: got %v reply, want STARTPMDA", wire.ErrMalformed, r.Type)
	}
	if err != nil {
		closeFDs()
		c.conn.Close()
		return Process{}, err
	}
	if r.Status != 0 {
		closeFDs()
		return Process{}, wire.StatusError(r.Status)
	}
	p := Process{PID: int(r.PID)}
	if pipe {
		if len(fds) != 2 {
			closeFDs()
			return p, fmt.Errorf("STARTPMDA reply carried %d descriptors, want 2", len(fds))
		}
		p.Stdin = os.NewFile(uintptr(fds[0]), label+"-stdin")
		p.Stdout = os.NewFile(uintptr(fds[1]), label+"-stdout")
	} else {
		closeFDs()
	}
	return p, nil
}

func parseRights(oob []byte) ([]int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, m := range msgs {
		if m.Header.Level != unix.SOL_SOCKET || m.Header.Type != unix.SCM_RIGHTS {
			continue
		}
		got, err := unix.ParseUnixRights(&m)
		if err != nil {
			return fds, err
		}
		for _, fd := range got {
			unix.CloseOnExec(fd)
		}
		fds = append(fds, got...)
	}
	return fds, nil
}

func (c *Client) stop(ctx context.Context, pid int, force int32) (wire.Stop, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	req, _ := wire.AppendStop(c.req[:0], wire.Stop{Type: wire.TypeStopReq, PID: int32(pid), Force: force})
	_, pdu, err := c.roundTrip(ctx, req, wire.TypeStop)
	if err != nil {
		return wire.Stop{}, err
	}
	r, err := wire.DecodeStop(pdu)
	if err != nil {
		c.conn.Close()
		return r, err
	}
	if r.Status != 0 {
		return r, wire.StatusError(r.Status)
	}
	return r, nil
}

// ProcessWait collects the next exited agent: its pid and wait status, or
// pid 0 when no agent has exited since the last call.
func (c *Client) ProcessWait(ctx context.Context) (int, syscall.WaitStatus, error) {
	r, err := c.stop(ctx, -1, 0)
	return int(r.PID), syscall.WaitStatus(r.Code), err
}

// ProcessTerminate kills (SIGKILL) an agent the server started.
func (c *Client) ProcessTerminate(ctx context.Context, pid int) error {
	_, err := c.stop(ctx, pid, 1)
	return err
}

// ProcessSignalTerm asks an agent the server started to exit (SIGTERM).
func (c *Client) ProcessSignalTerm(ctx context.Context, pid int) error {
	if pid < 1 {
		return fmt.Errorf("invalid pid %d", pid)
	}
	_, err := c.stop(ctx, pid, 0)
	return err
}
