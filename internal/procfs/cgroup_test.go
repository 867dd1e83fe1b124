package procfs

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

const dockerID = "3f5c2a1b9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b"

func TestParseCgroup(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    string
		wantErr error // nil: any error is checked by errSubstr
		errSub  string
	}{
		{
			name: "v2 only, systemd driver",
			in:   "0::/system.slice/docker-" + dockerID + ".scope\n",
			want: "system.slice/docker-" + dockerID + ".scope",
		},
		{
			name: "v2 only, no trailing newline",
			in:   "0::/libpod_parent/libpod-" + dockerID,
			want: "libpod_parent/libpod-" + dockerID,
		},
		{
			name: "v1 cgroupfs driver",
			in: "12:pids:/docker/" + dockerID + "\n" +
				"11:memory:/docker/" + dockerID + "\n" +
				"2:cpu,cpuacct:/docker/" + dockerID + "\n" +
				"1:name=systemd:/docker/" + dockerID + "\n",
			want: "docker/" + dockerID,
		},
		{
			name: "hybrid: memory wins over systemd and unified",
			in: "9:name=systemd:/\n" +
				"4:memory:/process_api/946a337997e3bdf3719ab5463e5dfe65\n" +
				"1:cpu:/\n" +
				"0::/\n",
			want: "process_api/946a337997e3bdf3719ab5463e5dfe65",
		},
		{
			name: "hybrid with systemd driver and a unified line",
			in: "13:memory:/system.slice/docker-" + dockerID + ".scope\n" +
				"1:name=systemd:/system.slice/docker-" + dockerID + ".scope\n" +
				"0::/system.slice/docker-" + dockerID + ".scope\n",
			want: "system.slice/docker-" + dockerID + ".scope",
		},
		{
			name: "memory listed together with other controllers",
			in:   "5:memory,hugetlb:/lxc.payload.web\n1:name=systemd:/other\n",
			want: "lxc.payload.web",
		},
		{
			name: "no memory hierarchy: name=systemd before unified",
			in:   "3:cpu:/a\n1:name=systemd:/lxc.payload.c1\n0::/unified/path\n",
			want: "lxc.payload.c1",
		},
		{
			name: "no memory, no systemd: unified line",
			in:   "3:cpu:/a\n0::/kubepods/burstable/pod1234/" + dockerID + "\n",
			want: "kubepods/burstable/pod1234/" + dockerID,
		},
		{
			name: "kubepods v1 cgroupfs",
			in: "10:memory:/kubepods/burstable/pod0f9c3c1e-7b0a-4a8e-9a57-1d2c3b4a5f6e/" + dockerID + "\n" +
				"1:name=systemd:/kubepods/burstable/pod0f9c3c1e-7b0a-4a8e-9a57-1d2c3b4a5f6e/" + dockerID + "\n",
			want: "kubepods/burstable/pod0f9c3c1e-7b0a-4a8e-9a57-1d2c3b4a5f6e/" + dockerID,
		},
		{
			name: "kubepods v2 systemd driver",
			in:   "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12.slice/cri-containerd-" + dockerID + ".scope\n",
			want: "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12.slice/cri-containerd-" + dockerID + ".scope",
		},
		{
			// A whole file as a hybrid host with Kubernetes' systemd driver
			// writes it for a CRI-O container: every v1 controller, the
			// named systemd hierarchy and the unified line.
			name: "kubepods hybrid systemd driver, whole file",
			in: "12:hugetlb:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod7d2e.slice/crio-" + dockerID + ".scope\n" +
				"11:memory:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod7d2e.slice/crio-" + dockerID + ".scope\n" +
				"10:pids:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod7d2e.slice/crio-" + dockerID + ".scope\n" +
				"9:cpu,cpuacct:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod7d2e.slice/crio-" + dockerID + ".scope\n" +
				"8:freezer:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod7d2e.slice/crio-" + dockerID + ".scope\n" +
				"1:name=systemd:/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod7d2e.slice/crio-" + dockerID + ".scope\n" +
				"0::/\n",
			want: "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod7d2e.slice/crio-" + dockerID + ".scope",
		},
		{
			// A v2-only host (no v1 hierarchy at all), systemd inside an LXC
			// container: init sits in init.scope below the payload.
			name: "v2 only, LXC with systemd init",
			in:   "0::/lxc.payload.web/init.scope\n",
			want: "lxc.payload.web/init.scope",
		},
		{
			name: "path containing a colon is kept whole",
			in:   "0::/system.slice/a:b.service\n",
			want: "system.slice/a:b.service",
		},
		{
			name: "malformed lines around a good one are skipped",
			in:   "garbage\nx:memory:/bad\n7:memory:relative\n\n4:memory:/docker/abc\n",
			want: "docker/abc",
		},
		{
			name: "empty controller list with nonzero id is not the unified line",
			in:   "3::/not/unified\n1:name=systemd:/docker/abc\n",
			want: "docker/abc",
		},
		{
			name:    "root cgroup on v2",
			in:      "0::/\n",
			wantErr: ErrRootCgroup,
		},
		{
			name:    "root cgroup on v1 memory",
			in:      "4:memory:/\n0::/user.slice\n",
			wantErr: ErrRootCgroup,
		},
		{
			name:   "only malformed lines",
			in:     "hello\nworld:\n",
			errSub: "2 malformed",
		},
		{
			name:   "no usable hierarchy",
			in:     "3:cpu:/docker/abc\n2:pids:/docker/abc\n",
			errSub: "no memory, name=systemd or unified",
		},
		{
			name:   "empty file",
			in:     "",
			errSub: "no memory, name=systemd or unified",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCgroup(strings.NewReader(tt.in))
			switch {
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ParseCgroup() = %q, %v; want error %v", got, err, tt.wantErr)
				}
			case tt.errSub != "":
				if err == nil || !strings.Contains(err.Error(), tt.errSub) {
					t.Fatalf("ParseCgroup() = %q, %v; want error containing %q", got, err, tt.errSub)
				}
			default:
				if err != nil || got != tt.want {
					t.Fatalf("ParseCgroup() = %q, %v; want %q", got, err, tt.want)
				}
			}
		})
	}
}

func TestCgroupPathOfSelfMatchesProc(t *testing.T) {
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	want, wantErr := ParseCgroup(strings.NewReader(string(data)))
	got, err := CgroupPath(os.Getpid())
	if (err == nil) != (wantErr == nil) || got != want {
		t.Fatalf("CgroupPath(self) = %q, %v; parsing /proc/self/cgroup gives %q, %v", got, err, want, wantErr)
	}
	if err == nil && strings.HasPrefix(got, "/") {
		t.Fatalf("CgroupPath(self) = %q keeps its leading slash", got)
	}
}

func TestCgroupPathNoSuchProcess(t *testing.T) {
	// A reaped child's PID is free; reuse within the test is unlikely, and
	// the check below skips rather than fails if it happened.
	cmd := exec.Command("/bin/true")
	if err := cmd.Run(); err != nil {
		t.Skipf("cannot run /bin/true: %v", err)
	}
	gone := cmd.Process.Pid
	for _, pid := range []int{0, -1, gone} {
		_, err := CgroupPath(pid)
		if pid == gone && err == nil {
			t.Skipf("pid %d was reused", pid)
		}
		if !errors.Is(err, unix.ESRCH) {
			t.Errorf("CgroupPath(%d) error = %v, want ESRCH", pid, err)
		}
	}
}

func TestParseCgroupLines(t *testing.T) {
	in := "12:pids:/docker/abc\n" +
		"2:cpu,cpuacct:/docker/abc\n" +
		"1:name=systemd:/system.slice/a:b.service\n" +
		"\n" +
		"garbage\nx:memory:/bad\n7:memory:relative\n3::/not/unified\n" +
		"0::/docker/abc"
	got, err := ParseCgroupLines([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []CgroupLine{
		{HierarchyID: "12", Controllers: []string{"pids"}, Path: "/docker/abc"},
		{HierarchyID: "2", Controllers: []string{"cpu", "cpuacct"}, Path: "/docker/abc"},
		{HierarchyID: "1", Controllers: []string{"name=systemd"}, Path: "/system.slice/a:b.service"},
		{HierarchyID: "0", Path: "/docker/abc"},
	}
	if len(got) != len(want) {
		t.Fatalf("ParseCgroupLines = %+v, want %+v", got, want)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.HierarchyID != w.HierarchyID || !slices.Equal(g.Controllers, w.Controllers) || g.Path != w.Path {
			t.Errorf("line %d = %+v, want %+v", i, g, w)
		}
		if g.Unified() != (i == len(want)-1) {
			t.Errorf("line %d (%+v): Unified() = %v", i, g, g.Unified())
		}
	}
}

func TestReadCgroupLines(t *testing.T) {
	proc := t.TempDir()
	writeFile(t, filepath.Join(proc, "42", "cgroup"), "6:freezer:/docker/"+dockerID+"\n0::/system.slice/docker-"+dockerID+".scope\n")
	writeFile(t, filepath.Join(proc, "43", "cgroup"), "0::/user.slice/session-1.scope\n")

	lines, err := ReadCgroupLines(proc, 42)
	if err != nil || len(lines) != 2 {
		t.Fatalf("ReadCgroupLines(42) = %+v, %v", lines, err)
	}
	if !AnyPathContains(lines, dockerID) {
		t.Errorf("AnyPathContains(%+v, id) = false", lines)
	}
	lines, err = ReadCgroupLines(proc, 43)
	if err != nil || AnyPathContains(lines, dockerID) {
		t.Errorf("ReadCgroupLines(43) = %+v, %v; want lines without the ID", lines, err)
	}
	if _, err := ReadCgroupLines(proc, 44); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadCgroupLines(missing pid) error = %v, want ErrNotExist", err)
	}
	for _, pid := range []int{0, -1} {
		if _, err := ReadCgroupLines(proc, pid); !errors.Is(err, unix.ESRCH) {
			t.Errorf("ReadCgroupLines(%d) error = %v, want ESRCH", pid, err)
		}
	}
}

// ParseCgroup and ParseCgroupLines share one line parser: on this host's
// own file the line ParseCgroup picks is one ParseCgroupLines returns.
func TestParseCgroupLinesOfSelf(t *testing.T) {
	lines, err := ReadCgroupLines("/proc", os.Getpid())
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	path, err := CgroupPath(os.Getpid())
	if errors.Is(err, ErrRootCgroup) {
		t.Skip("test runs in the root cgroup")
	}
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, l := range lines {
		found = found || l.Path == "/"+path
	}
	if !found {
		t.Errorf("CgroupPath = %q is on none of %+v", path, lines)
	}
}
