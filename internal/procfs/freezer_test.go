package procfs

import (
	"errors"
	"path/filepath"
	"testing"
)

func TestFreezerDirs(t *testing.T) {
	mounts := []CgroupMount{
		{Point: "/cg/cpu", Root: "/", Controllers: []string{"cpu"}},
		{Point: "/cg/freezer", Root: "/", Controllers: []string{"freezer"}},
		{Point: "/cg/unified", Root: "/ns", V2: true},
	}
	tests := []struct {
		name         string
		lines        []CgroupLine
		wantV1, want string
	}{
		{"hybrid", []CgroupLine{
			{HierarchyID: "3", Controllers: []string{"cpu"}, Path: "/a"},
			{HierarchyID: "6", Controllers: []string{"freezer"}, Path: "/lxc.payload.web"},
			{HierarchyID: "0", Path: "/ns/lxc.payload.web"},
		}, "/cg/freezer/lxc.payload.web", "/cg/unified/lxc.payload.web"},
		{"freezer shares a hierarchy", []CgroupLine{{HierarchyID: "6", Controllers: []string{"cpu", "freezer"}, Path: "/x"}}, "/cg/freezer/x", ""},
		{"v2 path outside the namespaced mount", []CgroupLine{{HierarchyID: "0", Path: "/other"}}, "", ""},
		{"no freezer line", []CgroupLine{{HierarchyID: "3", Controllers: []string{"cpu"}, Path: "/a"}}, "", ""},
		{"first line of a hierarchy wins", []CgroupLine{
			{HierarchyID: "0", Path: "/ns/first"},
			{HierarchyID: "0", Path: "/ns/second"},
		}, "", "/cg/unified/first"},
	}
	for _, tt := range tests {
		v1, v2 := FreezerDirs(mounts, tt.lines)
		if v1 != tt.wantV1 || v2 != tt.want {
			t.Errorf("%s: FreezerDirs = %q, %q; want %q, %q", tt.name, v1, v2, tt.wantV1, tt.want)
		}
	}
}

func TestFrozen(t *testing.T) {
	const cg = "/machine.slice/ctr"
	tests := []struct {
		name    string
		lines   string            // /proc/PID/cgroup
		files   map[string]string // below the fake cgroup root
		want    bool
		wantErr error
	}{
		{"v1 thawed", "6:freezer:" + cg + "\n0::" + cg + "\n",
			map[string]string{"freezer" + cg + "/freezer.state": "THAWED\n", "unified" + cg + "/cgroup.events": "populated 1\nfrozen 0\n"}, false, nil},
		{"v1 frozen", "6:freezer:" + cg + "\n", map[string]string{"freezer" + cg + "/freezer.state": "FROZEN\n"}, true, nil},
		{"v1 freezing", "6:freezer:" + cg + "\n", map[string]string{"freezer" + cg + "/freezer.state": "FREEZING\n"}, true, nil},
		{"hybrid, frozen through v2", "6:freezer:" + cg + "\n0::" + cg + "\n",
			map[string]string{"freezer" + cg + "/freezer.state": "THAWED\n", "unified" + cg + "/cgroup.events": "populated 1\nfrozen 1\n"}, true, nil},
		{"v2 frozen", "0::" + cg + "\n", map[string]string{"unified" + cg + "/cgroup.events": "populated 1\nfrozen 1\n"}, true, nil},
		{"v2 thawed", "0::" + cg + "\n", map[string]string{"unified" + cg + "/cgroup.events": "populated 1\nfrozen 0\n"}, false, nil},
		{"v2 freeze asked, no events file", "0::" + cg + "\n", map[string]string{"unified" + cg + "/cgroup.freeze": "1\n"}, true, nil},
		{"v2 events win over cgroup.freeze", "0::" + cg + "\n",
			map[string]string{"unified" + cg + "/cgroup.events": "frozen 0\n", "unified" + cg + "/cgroup.freeze": "1\n"}, false, nil},
		{"unreadable cgroup files", "6:freezer:" + cg + "\n0::" + cg + "\n", nil, false, nil},
		{"path climbing out stays inside", "6:freezer:/../../.." + cg + "\n", map[string]string{"freezer" + cg + "/freezer.state": "FROZEN\n"}, true, nil},
		{"no freezer and no v2 line", "3:cpu:" + cg + "\n", nil, false, ErrNoFreezer},
		{"nothing", "", nil, false, ErrNoFreezer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			for f, content := range tt.files {
				writeFile(t, filepath.Join(root, f), content)
			}
			lines, err := ParseCgroupLines([]byte(tt.lines))
			if err != nil {
				t.Fatal(err)
			}
			got, err := Frozen(CgroupMountsAt(root), lines)
			if got != tt.want || !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Errorf("Frozen = %v, %v; want %v, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestFreezerFileContents(t *testing.T) {
	states := map[string]bool{"FROZEN\n": true, "FREEZING": true, " FROZEN \n": true, "THAWED\n": false, "": false, "frozen": false}
	for in, want := range states {
		if got := freezerStateFrozen([]byte(in)); got != want {
			t.Errorf("freezerStateFrozen(%q) = %v, want %v", in, got, want)
		}
	}
	events := map[string]bool{"populated 1\nfrozen 1\n": true, "frozen 1": true, "frozen 0\n": false, "populated 1\n": false, "frozen 10\n": false, "": false}
	for in, want := range events {
		if got := cgroupEventsFrozen([]byte(in)); got != want {
			t.Errorf("cgroupEventsFrozen(%q) = %v, want %v", in, got, want)
		}
	}
}
