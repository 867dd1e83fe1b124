package lxc

import (
	"fmt"
	"strings"

	"github.com/rootd-project/rootd/internal/procfs"
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
func cgroupMarks(name string) []string {
	return []string{"lxc.payload." + name, "lxc/" + name}
}
