package podman

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/rootd-project/rootd/engine"
)

// The freezer is looked up where mountinfo says cgroups are mounted, and
// below the cgroup directory when mountinfo is missing or not to be used.
func TestFreezerFromMountinfo(t *testing.T) {
	id := testID(11)
	cg := "/machine.slice/libpod-" + id + ".scope"
	const pid = 6161
	tests := []struct {
		name        string
		fromMounts  bool
		mountinfo   bool   // write proc/self/mountinfo naming cgroup2 at "elsewhere"
		frozenBelow string // where the frozen cgroup.events is written
		wantPaused  bool
	}{
		{"mountinfo names the v2 mount", true, true, "elsewhere", true},
		{"mountinfo wins over the conventional root", true, true, "sys/fs/cgroup", false},
		{"no mountinfo: conventional root", true, false, "sys/fs/cgroup", true},
		{"named cgroup directory ignores mountinfo", false, true, "sys/fs/cgroup", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newFakeHost(t)
			h.paths.cgroupFromMountinfo = tt.fromMounts
			h.write("sys/fs/cgroup/cgroup.controllers", "cpu memory\n")
			h.write("elsewhere/cgroup.controllers", "cpu memory\n")
			if tt.mountinfo {
				h.write("proc/self/mountinfo", "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"+
					"41 22 0:38 / "+h.path("elsewhere")+" rw,nosuid - cgroup2 cgroup2 rw\n")
			}
			h.write(filepath.Join(tt.frozenBelow, cg, "cgroup.events"), "populated 1\nfrozen 1\n")
			h.writeProc(pid, 'S', 1, "0::"+cg)
			h.writeStorage("var/lib/containers/storage", "run/containers/storage", "overlay",
				fakeContainer{id: id, names: []string{"c"}, pid: pid})
			got, err := newEngine(testLog(t), h.paths, nil).List(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			want := engine.StateRunning
			if tt.wantPaused {
				want = engine.StatePaused
			}
			if len(got) != 1 || got[0].State != want || got[0].PID != pid {
				t.Errorf("got %+v, want %s pid %d", got, want, pid)
			}
		})
	}
}

func TestOpenCgroupDirDisablesMountinfo(t *testing.T) {
	for env, want := range map[string]bool{"": true, "/cg": false} {
		e, err := Open(engine.Env{Log: testLog(t), Getenv: func(k string) string {
			if k == EnvCgroupDir {
				return env
			}
			return ""
		}}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if e.paths.cgroupFromMountinfo != want {
			t.Errorf("%s=%q: cgroupFromMountinfo = %v, want %v", EnvCgroupDir, env, e.paths.cgroupFromMountinfo, want)
		}
	}
}
