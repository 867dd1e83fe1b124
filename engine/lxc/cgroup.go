package lxc

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/rootd-project/rootd/engine"
	"github.com/rootd-project/rootd/internal/procfs"
	"github.com/rootd-project/rootd/internal/safefile"
)

// cgroups reads cgroup state from /proc and the cgroup filesystems.
type cgroups struct {
	procRoot string // "/proc"; tests point it elsewhere
}

func (c cgroups) mounts() ([]procfs.CgroupMount, error) {
	return procfs.ReadCgroupMounts(c.procRoot)
}

// frozen reports whether process pid's cgroup is frozen or freezing, in the
// v1 freezer hierarchy (which LXC uses on hybrid hosts) or in cgroup v2.
func (c cgroups) frozen(mounts []procfs.CgroupMount, pid int) (bool, error) {
	lines, err := procfs.ReadCgroupLines(c.procRoot, pid)
	if err != nil {
		return false, err
	}
	frozen, err := procfs.Frozen(mounts, lines)
	if err != nil {
		return false, fmt.Errorf("pid %d: %w", pid, err)
	}
	return frozen, nil
}

// containerCgroupParents lists the directories in which LXC creates its
// container cgroups (lxc.payload.NAME, lxc.monitor.NAME, legacy lxc/NAME):
// run as root, LXC escapes to init's cgroup minus a trailing /init.scope,
// in the v2 hierarchy and in the v1 freezer hierarchy.
func (c cgroups) containerCgroupParents(mounts []procfs.CgroupMount) ([]string, error) {
	lines, err := procfs.ReadCgroupLines(c.procRoot, 1)
	if err != nil {
		return nil, err
	}
	for i := range lines {
		if p := strings.TrimSuffix(lines[i].Path, "/init.scope"); p != "" {
			lines[i].Path = p
		} else {
			lines[i].Path = "/"
		}
	}
	v1, v2 := procfs.FreezerDirs(mounts, lines)
	var dirs []string
	for _, d := range []string{v2, v1} {
		if d != "" {
			dirs = append(dirs, d)
		}
	}
	return dirs, nil
}

// cgroupMarks says where LXC puts a container's processes (see
// engine.Container.Cgroups): lxc.payload.NAME since LXC 4.0, lxc/NAME
// before; the init may sit below it (systemd inside puts it in
// init.scope). Never lxc.monitor.NAME, the monitor's own cgroup. A config
// that sets lxc.cgroup.dir elsewhere makes the container fail verification.
//
// When that cgroup already exists (left behind by a container whose monitor
// was killed), LXC appends "-1", "-2", ...: so NAME-N is the container's
// too, unless some container of the same LXC path is itself called NAME-N
// (numbered says whether none is).
func cgroupMarks(name string, numbered bool) []string {
	if !numbered {
		return []string{"lxc.payload." + name, "lxc/" + name}
	}
	return []string{"lxc.payload." + name + engine.MarkNumberSuffix, "lxc/" + name + engine.MarkNumberSuffix}
}

// numberedSibling reports whether names holds NAME-<digits> for name.
func numberedSibling(name string, names map[string]bool) bool {
	for other := range names {
		rest, ok := strings.CutPrefix(other, name+"-")
		if ok && rest != "" && strings.Trim(rest, "0123456789") == "" {
			return true
		}
	}
	return false
}

// Bounds on the cgroup walk of payloadInit: a container's cgroup subtree is
// its own to shape, so rootd reads only so much of it.
const (
	maxPayloadCgroups = 1024
	maxPayloadProcs   = 65536
	maxProcsFile      = 1 << 20
)

var errNoPayload = errors.New("no payload cgroup with processes")

// payloadInit finds the init process of container name from its cgroup
// alone, without asking its monitor: of the processes in the container's
// cgroup subtree (lxc.payload.NAME, legacy lxc/NAME, in the directories
// where LXC creates them), the one whose parent is outside it. Only root
// can move processes into those cgroups. errNoPayload means there is no
// such cgroup or no process in it: the container is not running.
func (c cgroups) payloadInit(mounts []procfs.CgroupMount, name string) (int, error) {
	parents, err := c.containerCgroupParents(mounts)
	if err != nil {
		return 0, err
	}
	for _, parent := range parents {
		for _, rel := range []string{"lxc.payload." + name, "lxc/" + name} {
			pids, err := cgroupProcs(filepath.Join(parent, rel))
			if errors.Is(err, fs.ErrNotExist) || err == nil && len(pids) == 0 {
				continue
			}
			if err != nil {
				return 0, err
			}
			var inits []int
			for pid := range pids {
				ppid, err := procfs.ParentPID(c.procRoot, pid)
				if err != nil {
					continue // exited meanwhile
				}
				if !pids[ppid] {
					inits = append(inits, pid)
				}
			}
			if len(inits) != 1 {
				return 0, fmt.Errorf("cgroup %s: %d processes whose parent is outside it, want 1", rel, len(inits))
			}
			return inits[0], nil
		}
	}
	return 0, errNoPayload
}

// cgroupProcs gathers the PIDs in the cgroup dir and every cgroup below it.
func cgroupProcs(dir string) (map[int]bool, error) {
	pids := map[int]bool{}
	dirs := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if dirs++; dirs > maxPayloadCgroups {
			return fmt.Errorf("%s: more than %d cgroups", dir, maxPayloadCgroups)
		}
		data, err := safefile.ReadFile(path, "cgroup.procs", maxProcsFile)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, f := range strings.Fields(string(data)) {
			pid, err := strconv.Atoi(f)
			if err != nil || pid < 1 {
				continue
			}
			pids[pid] = true
			if len(pids) > maxPayloadProcs {
				return fmt.Errorf("%s: more than %d processes", dir, maxPayloadProcs)
			}
		}
		return nil
	})
	return pids, err
}
