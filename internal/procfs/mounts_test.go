package procfs

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const hybridMountinfo = `22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime shared:9 - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
50 22 0:40 /ns /mnt/with\040space rw - cgroup2 cgroup2 rw
`

func TestParseCgroupMounts(t *testing.T) {
	mounts, err := ParseCgroupMounts(strings.NewReader(hybridMountinfo + "garbage line\n"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range mounts {
		got = append(got, m.Point+"|"+m.Root+"|"+strings.Join(m.Controllers, ","))
		if m.V2 != strings.HasSuffix(m.Point, "unified") && m.V2 != strings.Contains(m.Point, "space") {
			t.Errorf("%s: v2 = %v", m.Point, m.V2)
		}
	}
	want := []string{
		"/sys/fs/cgroup/cpu|/|cpu",
		"/sys/fs/cgroup/freezer|/|freezer",
		"/sys/fs/cgroup/systemd|/|xattr,name=systemd",
		"/sys/fs/cgroup/unified|/|",
		"/mnt/with space|/ns|",
	}
	if !slices.Equal(got, want) {
		t.Errorf("mounts:\n got %q\nwant %q", got, want)
	}
}

func TestReadCgroupMounts(t *testing.T) {
	proc := t.TempDir()
	writeFile(t, filepath.Join(proc, "self", "mountinfo"), hybridMountinfo)
	mounts, err := ReadCgroupMounts(proc)
	if err != nil || len(mounts) != 5 {
		t.Fatalf("ReadCgroupMounts = %+v, %v; want the 5 cgroup mounts", mounts, err)
	}
	if _, err := ReadCgroupMounts(filepath.Join(proc, "missing")); !os.IsNotExist(err) {
		t.Errorf("ReadCgroupMounts(missing) error = %v, want not-exist", err)
	}
}

// The mounts of the process running the test are the machine's own: each
// one must be a cgroup filesystem that can be looked at.
func TestReadCgroupMountsOfSelf(t *testing.T) {
	mounts, err := ReadCgroupMounts("/proc")
	if err != nil {
		t.Fatal(err)
	}
	if len(mounts) == 0 {
		t.Skip("no cgroup filesystem mounted here")
	}
	for _, m := range mounts {
		if _, err := os.Stat(m.Point); err != nil {
			t.Errorf("mount %+v: %v", m, err)
		}
		if !strings.HasPrefix(m.Root, "/") {
			t.Errorf("mount %+v: root is not absolute", m)
		}
	}
}

func TestCgroupMountDir(t *testing.T) {
	tests := []struct {
		mount CgroupMount
		path  string
		want  string
	}{
		{CgroupMount{Point: "/sys/fs/cgroup/unified", Root: "/"}, "/lxc.payload.web", "/sys/fs/cgroup/unified/lxc.payload.web"},
		{CgroupMount{Point: "/sys/fs/cgroup/unified", Root: "/"}, "/", "/sys/fs/cgroup/unified"},
		// Inside a cgroup namespace the mount shows a subtree.
		{CgroupMount{Point: "/cg", Root: "/ns"}, "/ns/lxc.payload.web", "/cg/lxc.payload.web"},
		{CgroupMount{Point: "/cg", Root: "/ns"}, "/nsx/other", ""},
		{CgroupMount{Point: "/cg", Root: "/ns"}, "/elsewhere", ""},
		{CgroupMount{Point: "/cg", Root: "/"}, "/../../etc", "/cg/etc"},
		{CgroupMount{Point: "/cg", Root: "/ns"}, "/ns/../../etc", "/cg/etc"},
	}
	for _, tt := range tests {
		if got := tt.mount.Dir(tt.path); got != tt.want {
			t.Errorf("%+v.Dir(%q) = %q, want %q", tt.mount, tt.path, got, tt.want)
		}
	}
}

func TestCgroupMountsAt(t *testing.T) {
	hybrid := t.TempDir()
	pure := t.TempDir()
	writeFile(t, filepath.Join(pure, "cgroup.controllers"), "cpu memory\n")
	tests := []struct {
		root string
		want []string
	}{
		{hybrid, []string{filepath.Join(hybrid, "freezer") + "|v1|freezer", filepath.Join(hybrid, "unified") + "|v2|"}},
		{pure, []string{pure + "|v2|"}},
	}
	for _, tt := range tests {
		var got []string
		for _, m := range CgroupMountsAt(tt.root) {
			kind := "v1"
			if m.V2 {
				kind = "v2"
			}
			if m.Root != "/" {
				t.Errorf("%s: mount %+v does not show the whole hierarchy", tt.root, m)
			}
			got = append(got, m.Point+"|"+kind+"|"+strings.Join(m.Controllers, ","))
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("CgroupMountsAt(%s) = %q, want %q", tt.root, got, tt.want)
		}
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
