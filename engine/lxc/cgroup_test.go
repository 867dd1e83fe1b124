package lxc

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/rootd-project/rootd/engine"
)

// fakeCgroups builds a /proc and cgroup mounts in dir: a v1 freezer
// hierarchy and a v2 one, and a cgroup file per pid.
type fakeCgroups struct {
	t                      *testing.T
	proc, freezer, unified string
}

func newFakeCgroups(t *testing.T) *fakeCgroups {
	dir := t.TempDir()
	f := &fakeCgroups{t: t, proc: filepath.Join(dir, "proc"),
		freezer: filepath.Join(dir, "cg", "freezer"), unified: filepath.Join(dir, "cg", "unified")}
	mountinfo := "37 31 0:34 / " + f.freezer + " rw - cgroup cgroup rw,freezer\n" +
		"41 31 0:38 / " + f.unified + " rw - cgroup2 cgroup2 rw\n"
	f.write(filepath.Join(f.proc, "self", "mountinfo"), mountinfo)
	// LXC escapes to init's cgroup minus init.scope.
	f.write(filepath.Join(f.proc, "1", "cgroup"), "6:freezer:/\n0::/init.scope\n")
	return f
}

func (f *fakeCgroups) write(path, content string) {
	f.t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// process gives pid the cgroup /lxc.payload.NAME with the given v1 freezer
// state and v2 frozen flag ("" leaves that hierarchy out).
func (f *fakeCgroups) process(pid, name, freezerState, v2Frozen string) {
	cg := "/lxc.payload." + name
	var lines string
	if freezerState != "" {
		lines += "6:freezer:" + cg + "\n"
		f.write(filepath.Join(f.freezer, cg, "freezer.state"), freezerState+"\n")
	}
	if v2Frozen != "" {
		lines += "0::" + cg + "\n"
		f.write(filepath.Join(f.unified, cg, "cgroup.events"), "populated 1\nfrozen "+v2Frozen+"\n")
	}
	f.write(filepath.Join(f.proc, pid, "cgroup"), lines)
}

func TestFrozen(t *testing.T) {
	f := newFakeCgroups(t)
	f.process("10", "thawed", "THAWED", "0")
	f.process("11", "v1frozen", "FROZEN", "0")
	f.process("12", "freezing", "FREEZING", "")
	f.process("13", "v2frozen", "", "1")
	f.process("14", "v2thawed", "", "0")
	f.write(filepath.Join(f.proc, "15", "cgroup"), "3:cpu:/x\n")
	c := cgroups{procRoot: f.proc}
	mounts, err := c.mounts()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		pid     int
		want    bool
		wantErr bool
	}{
		{10, false, false},
		{11, true, false},
		{12, true, false},
		{13, true, false},
		{14, false, false},
		{15, false, true},  // no freezer, no v2 line
		{999, false, true}, // no such process
	}
	for _, tt := range tests {
		got, err := c.frozen(mounts, tt.pid)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("frozen(%d) = %v, %v; want %v, error %v", tt.pid, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestContainerCgroupParents(t *testing.T) {
	f := newFakeCgroups(t)
	c := cgroups{procRoot: f.proc}
	mounts, err := c.mounts()
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.containerCgroupParents(mounts)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{f.unified, f.freezer}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestCgroupMarks(t *testing.T) {
	for path, want := range map[string]bool{
		"lxc.payload.web":            true,
		"lxc.payload.web/init.scope": true,
		"lxc/web":                    true,
		"lxc.monitor.web":            false,
		"lxc.payload.web2":           false,
		"lxc.payload.we":             false,
	} {
		if got := engine.CgroupMatches(path, cgroupMarks("web", true)); got != want {
			t.Errorf("%s: %v, want %v", path, got, want)
		}
	}
	// LXC's numbered cgroup of a restarted container is its own, unless a
	// container of that very name exists beside it.
	tests := []struct {
		path     string
		siblings []string
		want     bool
	}{
		{"lxc.payload.web-1", []string{"web"}, true},
		{"lxc.payload.web-12/init.scope", []string{"web", "db"}, true},
		{"lxc.payload.web-1", []string{"web", "web-1"}, false},
		{"lxc.payload.web", []string{"web", "web-1"}, true},
		{"lxc.payload.web-2", []string{"web", "web-x"}, true},
	}
	for _, tc := range tests {
		names := map[string]bool{}
		for _, n := range tc.siblings {
			names[n] = true
		}
		marks := cgroupMarks("web", !numberedSibling("web", names))
		if got := engine.CgroupMatches(tc.path, marks); got != tc.want {
			t.Errorf("%s beside %v: %v, want %v", tc.path, tc.siblings, got, tc.want)
		}
	}
}
