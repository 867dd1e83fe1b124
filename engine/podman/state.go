package podman

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/rootd-project/rootd/engine"
	"github.com/rootd-project/rootd/internal/procfs"
)

// errPIDNotOurs says that a pidfile names a live process that is not the
// container's: the container stopped (podman leaves the pidfile behind) and
// the PID was reused.
var errPIDNotOurs = errors.New("process does not belong to the container")

// containerState derives a container's init PID and state from its run
// directory. Podman keeps the pidfile after the container stops, so the PID
// is only believed when that process is alive and provably the container's:
// its cgroup path names the container ID, or its parent is the container's
// conmon (conmon reaps init, and exits with it).
func (e *Engine) containerState(s storage, id string) (int, engine.State, error) {
	if s.Run == "" {
		return 0, engine.StateStopped, nil
	}
	userdata := s.RunName + "/" + id + "/userdata/"
	pid, err := readPIDFile(s.Run, userdata+"pidfile")
	if errors.Is(err, fs.ErrNotExist) {
		return 0, engine.StateStopped, nil
	}
	if err != nil {
		return 0, engine.StateStopped, err
	}
	proc, err := e.readProc(pid)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && proc.dead()) {
		return 0, engine.StateStopped, nil
	}
	if err != nil {
		return 0, engine.StateStopped, err
	}
	if !procfs.AnyPathContains(proc.cgroups, id) {
		conmon, err := readPIDFile(s.Run, userdata+"conmon.pid")
		if err != nil || proc.ppid != conmon {
			return 0, engine.StateStopped, nil
		}
	}
	if s.Owner >= 0 {
		if err := e.checkRootlessOwner(pid, s.Owner, s.User); err != nil {
			return 0, engine.StateStopped, err
		}
	}
	// A process in no freezer hierarchy (ErrNoFreezer) cannot be paused.
	if frozen, _ := procfs.Frozen(e.cgroupMounts(), proc.cgroups); frozen {
		return pid, engine.StatePaused, nil
	}
	return pid, engine.StateRunning, nil
}

func readPIDFile(root, rel string) (int, error) {
	data, err := readBeneath(root, rel, maxPidFile)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(data)))
	if err != nil || pid < 1 {
		return 0, fmt.Errorf("%s/%s: invalid pid %q", root, rel, bytes.TrimSpace(data))
	}
	return pid, nil
}

type procInfo struct {
	state   byte
	ppid    int
	cgroups []procfs.CgroupLine
}

func (p procInfo) dead() bool { return p.state == 'Z' || p.state == 'X' || p.state == 'x' }

func (e *Engine) readProc(pid int) (procInfo, error) {
	dir := filepath.Join(e.paths.proc, strconv.Itoa(pid))
	stat, err := os.ReadFile(filepath.Join(dir, "stat"))
	if err != nil {
		return procInfo{}, err
	}
	// The command name may contain spaces and parentheses; the fields
	// after the last ')' are fixed: state, ppid, ...
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return procInfo{}, fmt.Errorf("%s/stat: malformed", dir)
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 2 || len(f[0]) != 1 {
		return procInfo{}, fmt.Errorf("%s/stat: malformed", dir)
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return procInfo{}, fmt.Errorf("%s/stat: malformed ppid: %w", dir, err)
	}
	info := procInfo{state: f[0][0], ppid: ppid}
	if info.cgroups, err = procfs.ReadCgroupLines(e.paths.proc, pid); err != nil {
		return procInfo{}, err
	}
	return info, nil
}

// checkRootlessOwner refuses a PID from a rootless user's pidfile unless the
// process runs as that user or one of the user's subordinate uids: the user
// writes that pidfile and must not be able to claim other users' processes.
func (e *Engine) checkRootlessOwner(pid, uid int, name string) error {
	fi, err := os.Stat(filepath.Join(e.paths.proc, strconv.Itoa(pid)))
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fmt.Errorf("pid %d: no owner", pid)
	}
	puid := int(st.Uid)
	if puid == uid {
		return nil
	}
	if data, err := os.ReadFile(e.paths.subuid); err == nil {
		for _, line := range strings.Split(string(data), "\n") {
			f := strings.Split(strings.TrimSpace(line), ":")
			if len(f) != 3 || (f[0] != name && f[0] != strconv.Itoa(uid)) {
				continue
			}
			start, err1 := strconv.Atoi(f[1])
			count, err2 := strconv.Atoi(f[2])
			if err1 == nil && err2 == nil && puid >= start && puid < start+count {
				return nil
			}
		}
	}
	return fmt.Errorf("pid %d runs as uid %d, not as storage owner %d or its subordinate uids: %w", pid, puid, uid, errPIDNotOurs)
}

// cgroupMounts says where the cgroup hierarchies are: as mountinfo says,
// unless a cgroup directory was named, which is taken as laid out in the
// conventional way (as it is when mountinfo cannot be read).
func (e *Engine) cgroupMounts() []procfs.CgroupMount {
	if e.paths.cgroupFromMountinfo {
		mounts, err := procfs.ReadCgroupMounts(e.paths.proc)
		if err == nil && len(mounts) > 0 {
			return mounts
		}
		e.log.Debug("podman: no cgroup mounts in mountinfo; assuming the conventional layout", "dir", e.paths.cgroup, "err", err)
	}
	return procfs.CgroupMountsAt(e.paths.cgroup)
}
