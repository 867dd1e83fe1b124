package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"

	"golang.org/x/sys/unix"
)

// maxStatFile bounds what is read of /proc/PID/stat: 52 numbers and a
// command name of at most 64 bytes (escaped) fit in well under 1 KiB.
const maxStatFile = 1024

// StartTime returns the start time of process pid in clock ticks after
// boot (field 22 of /proc/PID/stat). A PID that the kernel gives to a new
// process gets a new start time, so comparing it with one read earlier
// tells whether pid is still the same process. A process that does not
// exist gives an error wrapping unix.ESRCH.
func StartTime(pid int) (uint64, error) {
	if pid < 1 {
		return 0, fmt.Errorf("start time of pid %d: %w", pid, unix.ESRCH)
	}
	var buf [maxStatFile]byte
	n, err := readSmall("/proc/"+strconv.Itoa(pid)+"/stat", buf[:])
	if err != nil {
		return 0, fmt.Errorf("start time of pid %d: %w", pid, err)
	}
	t, err := ParseStartTime(buf[:n])
	if err != nil {
		return 0, fmt.Errorf("start time of pid %d: %w", pid, err)
	}
	return t, nil
}

// readSmall reads a /proc file into buf with one open and one read, without
// allocating; ENOENT (the process is gone) becomes ESRCH.
func readSmall(path string, buf []byte) (int, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		if err == unix.ENOENT {
			return 0, unix.ESRCH
		}
		return 0, err
	}
	n, err := unix.Read(fd, buf)
	unix.Close(fd)
	if err != nil {
		return 0, err
	}
	return n, nil
}

var errBadStat = errors.New("malformed stat line")

// ParentPID returns the parent of process pid, read from procRoot
// (normally "/proc"). A process that does not exist gives an error
// wrapping unix.ESRCH.
func ParentPID(procRoot string, pid int) (int, error) {
	if pid < 1 {
		return 0, fmt.Errorf("parent of pid %d: %w", pid, unix.ESRCH)
	}
	var buf [maxStatFile]byte
	n, err := readSmall(procRoot+"/"+strconv.Itoa(pid)+"/stat", buf[:])
	if err != nil {
		return 0, fmt.Errorf("parent of pid %d: %w", pid, err)
	}
	v, err := statField(buf[:n], 4)
	if err != nil {
		return 0, fmt.Errorf("parent of pid %d: %w", pid, err)
	}
	return int(v), nil
}

// ParseStartTime reads field 22 (starttime) of a /proc/PID/stat line. The
// command name (field 2) may hold spaces and parentheses, so fields are
// counted from the last ')'.
func ParseStartTime(stat []byte) (uint64, error) {
	return statField(stat, 22)
}

// statField returns numeric field n (n >= 3, counted from 1) of a
// /proc/PID/stat line.
func statField(stat []byte, n int) (uint64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errBadStat
	}
	rest := stat[i+1:]
	// rest starts with " S ppid ...": field 3 is the state.
	for field := 3; ; field++ {
		rest = bytes.TrimLeft(rest, " ")
		end := bytes.IndexByte(rest, ' ')
		if end < 0 {
			end = len(rest)
		}
		if field == n {
			v, err := strconv.ParseUint(string(bytes.TrimSpace(rest[:end])), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%w: field %d: %w", errBadStat, n, err)
			}
			return v, nil
		}
		if end == len(rest) {
			return 0, errBadStat
		}
		rest = rest[end:]
	}
}
