package procfs

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// CgroupMount is one mounted cgroup hierarchy.
type CgroupMount struct {
	Point string // where it is mounted
	// Root is the cgroup shown at Point: "/" unless the mount was made
	// inside a cgroup namespace and shows a subtree.
	Root        string
	V2          bool
	Controllers []string // v1 only: "freezer", "name=systemd", ...
}

// ReadCgroupMounts lists the cgroup hierarchies mounted in this process's
// mount namespace, from procRoot/self/mountinfo (procRoot is normally
// "/proc").
func ReadCgroupMounts(procRoot string) ([]CgroupMount, error) {
	f, err := os.Open(filepath.Join(procRoot, "self", "mountinfo"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ParseCgroupMounts(f)
}

// ParseCgroupMounts reads the cgroup mounts out of a mountinfo file; other
// mounts and lines without mountinfo's shape are skipped.
func ParseCgroupMounts(r io.Reader) ([]CgroupMount, error) {
	var mounts []CgroupMount
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		// ID parent major:minor root point options [optional...] - fstype source super-options
		fields := strings.Fields(sc.Text())
		sep := slices.Index(fields, "-")
		if sep < 6 || len(fields) < sep+4 {
			continue
		}
		m := CgroupMount{Root: unescapeMount(fields[3]), Point: unescapeMount(fields[4])}
		switch fields[sep+1] {
		case "cgroup2":
			m.V2 = true
		case "cgroup":
			for _, o := range strings.Split(fields[sep+3], ",") {
				if o != "rw" && o != "ro" {
					m.Controllers = append(m.Controllers, o)
				}
			}
		default:
			continue
		}
		mounts = append(mounts, m)
	}
	return mounts, sc.Err()
}

// CgroupMountsAt describes the conventional layout below root (normally
// /sys/fs/cgroup) without asking mountinfo, for a directory named by the
// user or a test: cgroup v2 at root itself when root holds
// cgroup.controllers, otherwise the hybrid layout with the v2 hierarchy at
// root/unified and the v1 freezer at root/freezer.
func CgroupMountsAt(root string) []CgroupMount {
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err == nil {
		return []CgroupMount{{Point: root, Root: "/", V2: true}}
	}
	return []CgroupMount{
		{Point: filepath.Join(root, "freezer"), Root: "/", Controllers: []string{"freezer"}},
		{Point: filepath.Join(root, "unified"), Root: "/", V2: true},
	}
}

// Dir maps a cgroup path as /proc/PID/cgroup shows it to its directory
// under the mount. ".." cannot climb out of the mount, and a path that is
// not below the mount's root gives "".
func (m CgroupMount) Dir(cgroupPath string) string {
	rel, ok := strings.CutPrefix(cgroupPath, m.Root)
	if !ok || (rel != "" && m.Root != "/" && rel[0] != '/') {
		return ""
	}
	return filepath.Join(m.Point, "/", filepath.Clean("/"+rel))
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
