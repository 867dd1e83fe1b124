package lxc

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// LXC's monitor process (lxc-start) answers commands on the abstract unix
// socket "@<lxcpath>/<name>/command"; lxc-info itself is only a client of
// it. Asking the socket directly gives the same answers without starting a
// process. The request and response are C structs sent as raw bytes; their
// layout and the command numbers have been the same from LXC 1.1 to 6.0
// (commands.h pins the numbers explicitly since 4.0):
//
//	struct lxc_cmd_req { int32 cmd; int32 datalen; void *data; }   // 16 bytes
//	struct lxc_cmd_rsp { int32 ret; int32 datalen; void *data; }   // 16 bytes
//
// Small answers (the state, the init PID) travel in the data pointer field
// itself; ret is 0 or a negative errno.
// The daemon answers one command per connection and closes it.
const (
	cmdGetState   = 3 // LXC_CMD_GET_STATE: rsp.data carries an lxc_state_t
	cmdGetInitPID = 4 // LXC_CMD_GET_INIT_PID: rsp.data carries the pid

	cmdStructSize = 16 // both structs on 64-bit hosts
	// sunPathMax is sizeof(sockaddr_un.sun_path); LXC hashes names that do
	// not fit after the leading NUL of an abstract address.
	sunPathMax = 108
)

// lxcState mirrors LXC's lxc_state_t.
type lxcState int32

const (
	lxcStopped lxcState = iota
	lxcStarting
	lxcRunning
	lxcStopping
	lxcAborting
	lxcFreezing
	lxcFrozen
	lxcThawed
)

var lxcStateNames = [...]string{"STOPPED", "STARTING", "RUNNING", "STOPPING", "ABORTING", "FREEZING", "FROZEN", "THAWED"}

func (s lxcState) String() string {
	if s >= 0 && int(s) < len(lxcStateNames) {
		return lxcStateNames[s]
	}
	return fmt.Sprintf("lxc_state_t(%d)", int32(s))
}

// errNoMonitor means nothing listens on the command socket: the container
// is not running (this is how LXC itself decides that it is stopped).
var errNoMonitor = errors.New("no lxc monitor listening")

// errUntrustedMonitor means the command socket's listener is not root
// (nor the owner of the LXC path). Abstract socket names belong to whoever
// binds them first, so any local user can bind the name of a container
// whose monitor is not running and answer for it: its answers are not
// read.
var errUntrustedMonitor = errors.New("lxc command socket is not served by root or the lxc path's owner")

// commandSocketName is the abstract socket name (with Go's leading "@")
// that lxc-start listens on, computed as LXC's lxc_make_abstract_socket_name
// does.
func commandSocketName(lxcpath, name string) string {
	full := lxcpath + "/" + name + "/command"
	if len(full) < sunPathMax-1 {
		return "@" + full
	}
	h := fnv.New64a()
	io.WriteString(h, lxcpath+"/"+name)
	return fmt.Sprintf("@lxc/%016x/command", h.Sum64())
}

// commandClient talks to LXC command sockets.
type commandClient struct {
	// timeout bounds one command: a monitor that is starting or stopping
	// accepts connections before (or after) it serves them.
	timeout time.Duration
	// trusted says whether a listener running as uid may answer; nil
	// trusts root only.
	trusted func(uid uint32) bool
}

// trusts reports whether the listener's uid may answer.
func (c commandClient) trusts(uid uint32) bool {
	if c.trusted == nil {
		return uid == 0
	}
	return c.trusted(uid)
}

// peerUID returns the uid the listener at the other end of conn had when
// it called listen(2) (SO_PEERCRED), which the listener cannot forge.
func peerUID(conn *net.UnixConn) (uint32, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if credErr != nil {
		return 0, credErr
	}
	return cred.Uid, nil
}

// query sends one command and returns the response header fields.
func (c commandClient) query(ctx context.Context, socket string, cmd int32) (ret int32, data uint64, err error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) {
			return 0, 0, errNoMonitor
		}
		return 0, 0, fmt.Errorf("connect %s: %w", socket, err)
	}
	uc := conn.(*net.UnixConn)
	defer uc.Close()
	// Nothing is sent, not even our credentials, to a listener we do not
	// trust.
	uid, err := peerUID(uc)
	if err != nil {
		return 0, 0, fmt.Errorf("credentials of %s: %w", socket, err)
	}
	if !c.trusts(uid) {
		return 0, 0, fmt.Errorf("%s: listener uid %d: %w", socket, uid, errUntrustedMonitor)
	}
	if dl, ok := ctx.Deadline(); ok {
		uc.SetDeadline(dl)
	}
	var req [cmdStructSize]byte
	binary.NativeEndian.PutUint32(req[0:], uint32(cmd))
	// LXC sends its credentials with every request; the monitor refuses
	// requests from other non-root users.
	cred := unix.UnixCredentials(&unix.Ucred{Pid: int32(os.Getpid()), Uid: uint32(os.Getuid()), Gid: uint32(os.Getgid())})
	if _, _, err := uc.WriteMsgUnix(req[:], cred, nil); err != nil {
		if errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) {
			return 0, 0, errNoMonitor
		}
		return 0, 0, fmt.Errorf("send command %d to %s: %w", cmd, socket, err)
	}
	var rsp [cmdStructSize]byte
	if _, err := io.ReadFull(uc, rsp[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
			// The monitor closed without answering: it is going away.
			return 0, 0, errNoMonitor
		}
		return 0, 0, fmt.Errorf("read answer to command %d from %s: %w", cmd, socket, err)
	}
	ret = int32(binary.NativeEndian.Uint32(rsp[0:]))
	data = binary.NativeEndian.Uint64(rsp[8:])
	return ret, data, nil
}

// state asks the monitor for the container's lifecycle state. It does not
// know about freezing (lxc-info reads the freezer cgroup for that).
func (c commandClient) state(ctx context.Context, socket string) (lxcState, error) {
	ret, data, err := c.query(ctx, socket, cmdGetState)
	if err != nil {
		return 0, err
	}
	if ret < 0 {
		return 0, fmt.Errorf("get state from %s: %w", socket, syscall.Errno(-ret))
	}
	st := lxcState(int32(data))
	if st < lxcStopped || st > lxcThawed {
		return 0, fmt.Errorf("get state from %s: unknown state %d", socket, int64(data))
	}
	return st, nil
}

// initPID asks the monitor for the host PID of the container's init.
func (c commandClient) initPID(ctx context.Context, socket string) (int, error) {
	ret, data, err := c.query(ctx, socket, cmdGetInitPID)
	if err != nil {
		return 0, err
	}
	pid := int64(data)
	if ret < 0 || pid <= 0 || pid > 1<<22 {
		return 0, fmt.Errorf("get init pid from %s: bad answer ret=%d pid=%d", socket, ret, pid)
	}
	return int(pid), nil
}
