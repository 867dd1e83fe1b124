package rootd

import (
	"fmt"
	"net"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Peer is who is on the other end of a connection, as the kernel reports it.
type Peer struct {
	PID    int32
	UID    uint32
	GID    uint32
	Groups []uint32
}

// Access decides which peers may use the socket. Root always may.
type Access struct {
	UIDs map[uint32]bool
	GIDs map[uint32]bool
}

// Allows reports whether p may connect: its uid is root or listed, or its
// primary or any supplementary group is listed.
func (a Access) Allows(p Peer) bool {
	if p.UID == 0 || a.UIDs[p.UID] {
		return true
	}
	if a.GIDs[p.GID] {
		return true
	}
	for _, g := range p.Groups {
		if a.GIDs[g] {
			return true
		}
	}
	return false
}

// peerOf reads SO_PEERCRED and SO_PEERGROUPS: the credentials the kernel
// recorded when the peer connected, which the peer cannot forge.
func peerOf(c *net.UnixConn) (Peer, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return Peer{}, err
	}
	var p Peer
	var sockErr error
	err = raw.Control(func(fd uintptr) {
		cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
		if err != nil {
			sockErr = fmt.Errorf("SO_PEERCRED: %w", err)
			return
		}
		p.PID, p.UID, p.GID = cred.Pid, cred.Uid, cred.Gid
		// Kernels before 4.13 lack SO_PEERGROUPS: the peer is then judged
		// by its uid and primary group alone, which only ever refuses more.
		p.Groups, _ = peerGroups(int(fd))
	})
	if err != nil {
		return Peer{}, err
	}
	return p, sockErr
}

// peerGroups reads SO_PEERGROUPS, which x/sys has no wrapper for. The
// buffer grows once if the kernel says the peer has more groups.
func peerGroups(fd int) ([]uint32, error) {
	size := 64
	for range 2 {
		buf := make([]uint32, size)
		n := uint32(len(buf) * 4)
		_, _, errno := syscall.Syscall6(syscall.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERGROUPS,
			uintptr(unsafe.Pointer(&buf[0])), uintptr(unsafe.Pointer(&n)), 0)
		switch errno {
		case 0:
			return buf[:n/4], nil
		case unix.ERANGE:
			size = int(n/4) + 1
		default:
			return nil, fmt.Errorf("SO_PEERGROUPS: %w", errno)
		}
	}
	return nil, fmt.Errorf("SO_PEERGROUPS: %w", unix.ERANGE)
}
