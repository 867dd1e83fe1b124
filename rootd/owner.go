package rootd

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
)

// Owner identifies the client process that started an agent: only it may
// signal the agent or collect its exit status. pmcd talks to the root
// socket over two connections from one process (pmda_pmcd's and its own),
// so ownership follows the process, not the connection.
//
// A pid alone could be recycled once the owner exits, letting a later
// process that happens to get it inherit the agents; the process's start
// time (in clock ticks since boot, from /proc/PID/stat) makes the identity
// unique. A peer whose pid rootd cannot see (another pid namespace) or whose
// start time cannot be read owns its agents through that one connection.
type Owner struct {
	PID   int32
	Start uint64 // start time of PID; 0 with Conn set
	Conn  uint64 // a connection's own number when the process is unknown
}

func (o Owner) String() string {
	if o.Conn != 0 {
		return fmt.Sprintf("connection %d (pid %d unknown)", o.Conn, o.PID)
	}
	return fmt.Sprintf("pid %d", o.PID)
}

var connSeq atomic.Uint64

// ownerOf returns the Owner for a new connection from peer.
func ownerOf(peer Peer) Owner {
	if peer.PID > 0 {
		if start, err := processStart(int(peer.PID)); err == nil {
			return Owner{PID: peer.PID, Start: start}
		}
	}
	return Owner{PID: peer.PID, Conn: connSeq.Add(1)}
}

// processStart reads field 22 of /proc/PID/stat, the process's start time.
func processStart(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold anything,
	// so count fields after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	fields := bytes.Fields(b[i+1:])
	// fields[0] is field 3 (state); the start time is field 22.
	if len(fields) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	return strconv.ParseUint(string(fields[19]), 10, 64)
}
