package lxc

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// cgroupMount is one mounted cgroup hierarchy.
type cgroupMount struct {
	point       string // where it is mounted
	root        string // the cgroup shown at point (not "/" inside a cgroup namespace)
	v2          bool
	controllers []string // v1 only: "freezer", "name=systemd", ...
}

// parseCgroupMounts reads the cgroup mounts out of /proc/self/mountinfo.
func parseCgroupMounts(r io.Reader) ([]cgroupMount, error) {
	var mounts []cgroupMount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		sep := slices.Index(fields, "-")
		if sep < 6 || len(fields) < sep+4 {
			continue
		}
		m := cgroupMount{root: unescapeMount(fields[3]), point: unescapeMount(fields[4])}
		switch fields[sep+1] {
		case "cgroup2":
			m.v2 = true
		case "cgroup":
			for _, o := range strings.Split(fields[sep+3], ",") {
				if o != "rw" && o != "ro" {
					m.controllers = append(m.controllers, o)
				}
			}
		default:
			continue
		}
		mounts = append(mounts, m)
	}
	return mounts, sc.Err()
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// procCgroup is one line of /proc/PID/cgroup.
type procCgroup struct {
	controllers []string // empty for the v2 line "0::"
	path        string
}

func parseProcCgroup(data []byte) []procCgroup {
	var out []procCgroup
	for line := range bytes.Lines(data) {
		parts := strings.SplitN(strings.TrimSpace(string(line)), ":", 3)
		if len(parts) != 3 {
			continue
		}
		var ctrl []string
		if parts[1] != "" {
			ctrl = strings.Split(parts[1], ",")
		}
		out = append(out, procCgroup{controllers: ctrl, path: parts[2]})
	}
	return out
}

// cgroupDir maps a cgroup path as /proc shows it to a directory under the
// mount. It returns "" when the path is not below the mount's root.
func (m cgroupMount) cgroupDir(path string) string {
	rel, ok := strings.CutPrefix(path, m.root)
	if !ok || (rel != "" && m.root != "/" && rel[0] != '/') {
		return ""
	}
	return filepath.Join(m.point, "/", filepath.Clean("/"+rel))
}

// hierarchies pairs every line of a /proc/PID/cgroup file with its mount.
func hierarchies(mounts []cgroupMount, lines []procCgroup) (v1Freezer, v2 string) {
	for _, l := range lines {
		for _, m := range mounts {
			switch {
			case len(l.controllers) == 0 && m.v2:
				if v2 == "" {
					v2 = m.cgroupDir(l.path)
				}
			case slices.Contains(l.controllers, "freezer") && slices.Contains(m.controllers, "freezer"):
				if v1Freezer == "" {
					v1Freezer = m.cgroupDir(l.path)
				}
			}
		}
	}
	return v1Freezer, v2
}

// cgroups reads cgroup state from /proc and the cgroup filesystems.
type cgroups struct {
	procRoot string // "/proc"; tests point it elsewhere
}

func (c cgroups) mounts() ([]cgroupMount, error) {
	f, err := os.Open(filepath.Join(c.procRoot, "self", "mountinfo"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseCgroupMounts(f)
}

// frozen reports whether process pid's cgroup is frozen or freezing, in the
// v1 freezer hierarchy (which LXC uses on hybrid hosts) or in cgroup v2.
func (c cgroups) frozen(mounts []cgroupMount, pid int) (bool, error) {
	data, err := os.ReadFile(filepath.Join(c.procRoot, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return false, err
	}
	v1, v2 := hierarchies(mounts, parseProcCgroup(data))
	if v1 == "" && v2 == "" {
		return false, fmt.Errorf("pid %d: no freezer or cgroup2 hierarchy found", pid)
	}
	if v1 != "" {
		st, err := os.ReadFile(filepath.Join(v1, "freezer.state"))
		if err == nil && freezerStateFrozen(st) {
			return true, nil
		}
	}
	if v2 != "" {
		ev, err := os.ReadFile(filepath.Join(v2, "cgroup.events"))
		if err == nil && cgroupEventsFrozen(ev) {
			return true, nil
		}
	}
	return false, nil
}

func freezerStateFrozen(data []byte) bool {
	s := string(bytes.TrimSpace(data))
	return s == "FROZEN" || s == "FREEZING"
}

func cgroupEventsFrozen(data []byte) bool {
	for line := range bytes.Lines(data) {
		if k, v, ok := strings.Cut(strings.TrimSpace(string(line)), " "); ok && k == "frozen" {
			return v == "1"
		}
	}
	return false
}

// containerCgroupParents lists the directories in which LXC creates its
// container cgroups (lxc.payload.NAME, lxc.monitor.NAME, legacy lxc/NAME):
// run as root, LXC escapes to init's cgroup minus a trailing /init.scope,
// in the v2 hierarchy and in the v1 freezer hierarchy.
func (c cgroups) containerCgroupParents(mounts []cgroupMount) ([]string, error) {
	data, err := os.ReadFile(filepath.Join(c.procRoot, "1", "cgroup"))
	if err != nil {
		return nil, err
	}
	lines := parseProcCgroup(data)
	for i := range lines {
		if p := strings.TrimSuffix(lines[i].path, "/init.scope"); p != "" {
			lines[i].path = p
		} else {
			lines[i].path = "/"
		}
	}
	v1, v2 := hierarchies(mounts, lines)
	var dirs []string
	for _, d := range []string{v2, v1} {
		if d != "" {
			dirs = append(dirs, d)
		}
	}
	return dirs, nil
}
