package procfs

import (
	"bytes"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// FuzzParseCgroup feeds arbitrary /proc/PID/cgroup contents, with an
// arbitrary mountinfo beside them, through the parsers rootd trusts with
// PCP's cgroup answers and the freezer lookups: nothing may panic, every
// line kept has the shape the kernel writes, the path chosen is one of the
// lines' paths less its leading slash and never empty, and a cgroup's directory
// never lies outside its mount.
func FuzzParseCgroup(f *testing.F) {
	for _, s := range []struct{ cgroup, mountinfo string }{
		{"0::/system.slice/docker-abc.scope\n",
			"30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"},
		{"12:memory:/docker/abc\n11:freezer:/docker/abc\n1:name=systemd:/docker/abc\n0::/\n",
			"35 25 0:30 / /sys/fs/cgroup/freezer rw shared:15 - cgroup cgroup rw,freezer\n" +
				"36 25 0:31 /docker /sys/fs/cgroup/memory rw shared:16 - cgroup cgroup rw,memory\n" +
				"37 25 0:32 / /sys/fs/cgroup/unified rw shared:17 - cgroup2 cgroup2 rw\n"},
		{"0::/\n", ""},
		{"1:name=systemd:/user.slice\n0::/lxc.payload.c1\n", "40 1 0:40 /lxc.payload.c1 /sys/fs/cgroup rw - cgroup2 none rw\n"},
		{"x::/a\n3::/b\n4:cpu\n0::relative\n", "1 2 3 4 5\n- - - -\n"},
		{"0::/../../etc\n11:freezer:/..\n", "9 1 0:9 /a\\040b /mnt/c\\134g rw - cgroup x rw,freezer\n9 1 0:9 / /m rw - cgroup2 y rw\n"},
		{strings.Repeat("9:memory:/"+strings.Repeat("x", 100)+"\n", 50), ""},
	} {
		f.Add([]byte(s.cgroup), []byte(s.mountinfo))
	}
	f.Fuzz(func(t *testing.T, cgroup, mountinfo []byte) {
		lines, errLines := ParseCgroupLines(cgroup)
		path, errPath := ParseCgroup(bytes.NewReader(cgroup))
		if (errLines != nil) != (errPath != nil && !isChoiceError(errPath)) {
			t.Fatalf("ParseCgroupLines error %v but ParseCgroup error %v", errLines, errPath)
		}
		for _, l := range lines {
			if !isDecimal(l.HierarchyID) || !strings.HasPrefix(l.Path, "/") || strings.ContainsAny(l.Path, "\n") {
				t.Fatalf("kept a malformed line %+v", l)
			}
			if len(l.Controllers) == 0 && l.HierarchyID != "0" {
				t.Fatalf("kept a v1 line with no controllers %+v", l)
			}
		}
		if errPath == nil {
			// A path the kernel never writes, such as "//x", keeps its
			// second slash: only the one leading slash is removed.
			if path == "" {
				t.Fatalf("ParseCgroup gave an empty path")
			}
			if !slices.ContainsFunc(lines, func(l CgroupLine) bool { return l.Path == "/"+path }) {
				t.Fatalf("ParseCgroup gave %q, which no line has", path)
			}
		}

		mounts, err := ParseCgroupMounts(bytes.NewReader(mountinfo))
		if err != nil {
			return
		}
		// Matching is lines × mounts; real files have a dozen of each, and
		// thousands of both would only slow the fuzzer down.
		lines, mounts = lines[:min(len(lines), 32)], mounts[:min(len(mounts), 32)]
		for _, m := range mounts {
			if m.V2 && len(m.Controllers) > 0 {
				t.Fatalf("cgroup2 mount with v1 controllers: %+v", m)
			}
			for _, l := range lines {
				dir := m.Dir(l.Path)
				if dir == "" {
					continue
				}
				if !within(m.Point, dir) {
					t.Fatalf("cgroup %q under mount %+v maps to %q, outside the mount", l.Path, m, dir)
				}
			}
		}
		v1, v2 := FreezerDirs(mounts, lines)
		for _, d := range []string{v1, v2} {
			if d != "" && !slices.ContainsFunc(mounts, func(m CgroupMount) bool { return within(m.Point, d) }) {
				t.Fatalf("freezer directory %q is under no mount", d)
			}
		}
	})
}

// isChoiceError reports whether ParseCgroup's error is about which line to
// choose (none usable, or the root cgroup) rather than about reading.
func isChoiceError(err error) bool {
	return errors.Is(err, ErrRootCgroup) || strings.HasPrefix(err.Error(), "no memory, name=systemd or unified")
}

// within reports whether path is dir or lies below it.
func within(dir, path string) bool {
	rel, err := filepath.Rel(filepath.Clean(dir), path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}
