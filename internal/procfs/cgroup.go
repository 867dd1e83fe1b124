package procfs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrRootCgroup is returned for a process that sits in the root cgroup.
// Its path would be "" once the leading slash is removed, and a client such
// as pmdaproc that filters processes by cgroup path would then match every
// process on the host, so the root cgroup is reported as an error instead:
// no container lives there.
var ErrRootCgroup = errors.New("process is in the root cgroup")

// maxCgroupFile bounds what is read from /proc/PID/cgroup; a real one is a
// few hundred bytes, at most a dozen lines of PATH_MAX each.
const maxCgroupFile = 64 << 10

// CgroupPath returns the cgroup path of process pid, without its leading
// slash, chosen as ParseCgroup describes. A process that does not exist gives
// an error wrapping unix.ESRCH.
func CgroupPath(pid int) (string, error) {
	if pid < 1 {
		return "", fmt.Errorf("cgroup of pid %d: %w", pid, unix.ESRCH)
	}
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return "", fmt.Errorf("cgroup of pid %d: %w", pid, unwrapErrno(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxCgroupFile))
	if err != nil {
		// A process that exits between open and read fails here with ESRCH.
		return "", fmt.Errorf("cgroup of pid %d: %w", pid, unwrapErrno(err))
	}
	path, err := ParseCgroup(bytes.NewReader(data))
	if err != nil {
		return "", fmt.Errorf("cgroup of pid %d: %w", pid, err)
	}
	return path, nil
}

// ParseCgroup reads a /proc/PID/cgroup file and returns the process's cgroup
// path without its leading slash ("docker/<id>",
// "system.slice/docker-<id>.scope", "lxc.payload.NAME", ...).
//
// Each line is "hierarchy-ID:controller-list:path". On a pure cgroup v2 host
// there is only the unified line "0::/path", and that is the answer. On v1
// and hybrid hosts the memory controller's path is used, because that is the
// hierarchy every runtime places its containers in and the one PCP's own
// cgroup metrics are keyed by; failing that the name=systemd hierarchy, and
// last the unified "0::" line.
//
// Lines that do not have that shape are skipped: the kernel never writes
// them, so they say nothing about the process. A process in the root cgroup
// gives ErrRootCgroup.
func ParseCgroup(r io.Reader) (string, error) {
	var memory, systemd, unified string
	var haveMemory, haveSystemd, haveUnified bool
	malformed := 0

	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		id, rest, ok1 := strings.Cut(line, ":")
		controllers, path, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 || !isDecimal(id) || !strings.HasPrefix(path, "/") {
			malformed++
			continue
		}
		if controllers == "" {
			if id == "0" {
				unified, haveUnified = path, true
			} else {
				malformed++
			}
			continue
		}
		for c := range strings.SplitSeq(controllers, ",") {
			switch c {
			case "memory":
				memory, haveMemory = path, true
			case "name=systemd":
				systemd, haveSystemd = path, true
			}
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read cgroup file: %w", err)
	}

	var path string
	switch {
	case haveMemory:
		path = memory
	case haveSystemd:
		path = systemd
	case haveUnified:
		path = unified
	case malformed > 0:
		return "", fmt.Errorf("no memory, name=systemd or unified cgroup entry (%d malformed lines)", malformed)
	default:
		return "", errors.New("no memory, name=systemd or unified cgroup entry")
	}
	path = strings.TrimPrefix(path, "/")
	if path == "" {
		return "", ErrRootCgroup
	}
	return path, nil
}

func isDecimal(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
