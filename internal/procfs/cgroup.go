package procfs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
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

// CgroupLine is one line of /proc/PID/cgroup:
// "hierarchy-ID:controller-list:path".
type CgroupLine struct {
	HierarchyID string
	// Controllers of a v1 hierarchy ("memory", "cpu", "name=systemd", ...);
	// nil on the unified (cgroup v2) line "0::/path".
	Controllers []string
	Path        string // as the kernel shows it, with its leading slash
}

// Unified reports whether l is the cgroup v2 line.
func (l CgroupLine) Unified() bool { return l.HierarchyID == "0" && len(l.Controllers) == 0 }

// AnyPathContains reports whether the cgroup path of some line contains s,
// such as a container ID that its runtime puts in the cgroup's name.
func AnyPathContains(lines []CgroupLine, s string) bool {
	for _, l := range lines {
		if strings.Contains(l.Path, s) {
			return true
		}
	}
	return false
}

// ReadCgroupLines reads the cgroup lines of process pid from procRoot
// (normally "/proc"). A process that does not exist gives an error wrapping
// fs.ErrNotExist.
func ReadCgroupLines(procRoot string, pid int) ([]CgroupLine, error) {
	if pid < 1 {
		return nil, fmt.Errorf("cgroup of pid %d: %w", pid, unix.ESRCH)
	}
	data, err := readCgroupFile(procRoot, pid)
	if err != nil {
		return nil, err
	}
	lines, err := ParseCgroupLines(data)
	if err != nil {
		return nil, fmt.Errorf("cgroup of pid %d: %w", pid, err)
	}
	return lines, nil
}

// ParseCgroupLines parses the contents of a /proc/PID/cgroup file, skipping
// lines that do not have the shape the kernel writes.
func ParseCgroupLines(data []byte) ([]CgroupLine, error) {
	lines, _, err := scanCgroupLines(bytes.NewReader(data))
	return lines, err
}

// scanCgroupLines parses a /proc/PID/cgroup file and counts the lines it
// skipped: a line needs a decimal hierarchy ID and an absolute path, and
// only hierarchy 0 (the unified one) may have no controllers. The kernel
// writes nothing else, so such a line says nothing about the process.
func scanCgroupLines(r io.Reader) (lines []CgroupLine, malformed int, err error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		text := sc.Text()
		if text == "" {
			continue
		}
		id, rest, ok1 := strings.Cut(text, ":")
		controllers, path, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 || !isDecimal(id) || !strings.HasPrefix(path, "/") || (controllers == "" && id != "0") {
			malformed++
			continue
		}
		l := CgroupLine{HierarchyID: id, Path: path}
		if controllers != "" {
			l.Controllers = strings.Split(controllers, ",")
		}
		lines = append(lines, l)
	}
	if err := sc.Err(); err != nil {
		return nil, malformed, fmt.Errorf("read cgroup file: %w", err)
	}
	return lines, malformed, nil
}

// readCgroupFile reads procRoot/PID/cgroup, up to maxCgroupFile bytes.
func readCgroupFile(procRoot string, pid int) ([]byte, error) {
	f, err := os.Open(filepath.Join(procRoot, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// A process that exits between open and read fails here with ESRCH.
	return io.ReadAll(io.LimitReader(f, maxCgroupFile))
}

// CgroupPath returns the cgroup path of process pid, without its leading
// slash, chosen as ParseCgroup describes. A process that does not exist gives
// an error wrapping unix.ESRCH.
func CgroupPath(pid int) (string, error) {
	if pid < 1 {
		return "", fmt.Errorf("cgroup of pid %d: %w", pid, unix.ESRCH)
	}
	data, err := readCgroupFile("/proc", pid)
	if err != nil {
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
	lines, malformed, err := scanCgroupLines(r)
	if err != nil {
		return "", err
	}
	var memory, systemd, unified string
	var haveMemory, haveSystemd, haveUnified bool
	for _, l := range lines {
		if l.Unified() {
			unified, haveUnified = l.Path, true
			continue
		}
		for _, c := range l.Controllers {
			switch c {
			case "memory":
				memory, haveMemory = l.Path, true
			case "name=systemd":
				systemd, haveSystemd = l.Path, true
			}
		}
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
