package resolver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/rootd-project/rootd/engine"
	"github.com/rootd-project/rootd/engine/enginetest"
	"github.com/rootd-project/rootd/internal/procfs"
)

// hybrid writes a /proc/PID/cgroup file of this project's test machines
// (cgroup v1 controllers plus the unified hierarchy) with path in every
// hierarchy, the way Docker, containerd and LXC place their containers.
func hybrid(path string) string {
	return hybridSplit(path, path, path)
}

// hybridSplit puts the memory controller, name=systemd and the unified
// hierarchy in different places.
func hybridSplit(memory, systemd, unified string) string {
	return "12:blkio:" + memory + "\n" +
		"11:cpu,cpuacct:" + memory + "\n" +
		"10:freezer:" + memory + "\n" +
		"9:memory:" + memory + "\n" +
		"8:pids:" + memory + "\n" +
		"1:name=systemd:" + systemd + "\n" +
		"0::" + unified + "\n"
}

// Marks as the engines state them (engine/*: cgroupMarks).
func dockerMarks(id string) []string { return []string{id, "docker-" + id + ".scope"} }
func podmanMarks(id string) []string { return []string{"libpod-" + id, "libpod-" + id + ".scope"} }
func containerdMarks(ns, id string) []string {
	return []string{ns + "/" + id, id, "cri-containerd-" + id + ".scope", "nerdctl-" + id + ".scope"}
}
func lxcMarks(name string) []string { return []string{"lxc.payload." + name, "lxc/" + name} }

func TestVerifyRule(t *testing.T) {
	cid := id("verify")
	other := id("someone else")
	const pod = "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0f4b1c1e_6b7a_4f3c_9d21_2b8c0a1e9f77.slice/"
	tests := []struct {
		name   string
		marks  []string
		file   string // /proc/PID/cgroup
		cgroup string // what CGROUPNAME answers; "" when refused
	}{
		// Docker.
		{"docker cgroupfs on a hybrid host", dockerMarks(cid), hybrid("/docker/" + cid), "docker/" + cid},
		{"docker under systemd, v2 only", dockerMarks(cid), "0::/system.slice/docker-" + cid + ".scope\n", "system.slice/docker-" + cid + ".scope"},
		{"docker under systemd, hybrid", dockerMarks(cid), hybrid("/system.slice/docker-" + cid + ".scope"), "system.slice/docker-" + cid + ".scope"},
		{"kubernetes systemd driver, docker", dockerMarks(cid), "0::/" + pod + "docker-" + cid + ".scope\n", pod + "docker-" + cid + ".scope"},
		{"kubernetes cgroupfs driver, docker", dockerMarks(cid), hybrid("/kubepods/burstable/pod0f4b1c1e/" + cid), "kubepods/burstable/pod0f4b1c1e/" + cid},
		{"docker: another container's process", dockerMarks(cid), hybrid("/docker/" + other), ""},
		{"docker: ID only as part of a name", dockerMarks(cid), hybrid("/docker/" + cid + "x"), ""},
		{"docker: ID with another runtime's scope", dockerMarks(cid), "0::/system.slice/evil-" + cid + ".scope\n", ""},
		{"docker: host service", dockerMarks(cid), hybrid("/system.slice/ssh.service"), ""},
		{"docker: host init", dockerMarks(cid), hybridSplit("/", "/init.scope", "/init.scope"), ""},
		{"docker: root cgroup", dockerMarks(cid), hybrid("/"), ""},
		// Only the hierarchy whose path CGROUPNAME answers counts: on a
		// hybrid host, the memory controller's.
		{"hybrid: ID only in name=systemd and unified", dockerMarks(cid),
			hybridSplit("/system.slice/cron.service", "/docker/"+cid, "/docker/"+cid), ""},
		{"hybrid: ID in memory only", dockerMarks(cid),
			hybridSplit("/docker/"+cid, "/system.slice/cron.service", "/"), "docker/" + cid},
		// Podman.
		{"podman cgroupfs on a hybrid host", podmanMarks(cid), hybrid("/libpod_parent/libpod-" + cid), "libpod_parent/libpod-" + cid},
		{"podman systemd, v2, split cgroups", podmanMarks(cid), "0::/machine.slice/libpod-" + cid + ".scope/container\n", "machine.slice/libpod-" + cid + ".scope/container"},
		{"podman rootless, v2", podmanMarks(cid), "0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + cid + ".scope\n",
			"user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + cid + ".scope"},
		{"podman: conmon is not the container", podmanMarks(cid), "0::/machine.slice/libpod-conmon-" + cid + ".scope\n", ""},
		{"podman: rootless on v1, no cgroup of its own", podmanMarks(cid), hybrid("/user.slice/user-1000.slice/session-3.scope"), ""},
		// containerd.
		{"containerd standalone (ctr run), hybrid", containerdMarks("rootd-test", "web"), hybrid("/rootd-test/web"), "rootd-test/web"},
		{"containerd standalone, v2", containerdMarks("rootd-test", "web"), "0::/rootd-test/web\n", "rootd-test/web"},
		{"kubernetes systemd driver, containerd", containerdMarks("k8s.io", cid), "0::/" + pod + "cri-containerd-" + cid + ".scope\n", pod + "cri-containerd-" + cid + ".scope"},
		{"kubernetes cgroupfs driver, containerd", containerdMarks("k8s.io", cid), hybrid("/kubepods/besteffort/pod0f4b/" + cid), "kubepods/besteffort/pod0f4b/" + cid},
		{"nerdctl systemd", containerdMarks("default", cid), "0::/system.slice/nerdctl-" + cid + ".scope\n", "system.slice/nerdctl-" + cid + ".scope"},
		{"containerd: same name, other namespace", []string{"rootd-test/web"}, hybrid("/k8s.io/web"), ""},
		// LXC.
		{"lxc on a hybrid host", lxcMarks("web"), hybrid("/lxc.payload.web"), "lxc.payload.web"},
		{"lxc with systemd inside, v2", lxcMarks("web"), "0::/lxc.payload.web/init.scope\n", "lxc.payload.web/init.scope"},
		{"lxc with systemd inside, hybrid", lxcMarks("web"), hybrid("/lxc.payload.web/init.scope"), "lxc.payload.web/init.scope"},
		{"lxc below a slice", lxcMarks("web"), "0::/system.slice/lxc.payload.web\n", "system.slice/lxc.payload.web"},
		{"lxc before 4.0", lxcMarks("web"), hybrid("/lxc/web"), "lxc/web"},
		{"lxc: the monitor is not the container", lxcMarks("web"), hybrid("/lxc.monitor.web"), ""},
		{"lxc: a container whose name extends it", lxcMarks("web"), hybrid("/lxc.payload.web2"), ""},
		{"lxc: host process", lxcMarks("web"), hybrid("/user.slice/user-0.slice/session-1.scope"), ""},
		// No marks stated: the ID must be a whole component.
		{"no marks: ID as a component", nil, hybrid("/anything/" + cid), "anything/" + cid},
		{"no marks: ID elsewhere", nil, hybrid("/anything/x" + cid), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const pid = 4242
			c := engine.Container{ID: cid, Names: []string{"web"}, PID: pid, State: engine.StateRunning, Cgroups: tt.marks}
			r := New([]engine.Engine{enginetest.NewMemory("docker", []engine.Container{c})}, Options{
				Log: quietLog(),
				Cgroup: func(p int) (string, error) {
					if p != pid {
						return "", unix.ESRCH
					}
					return procfs.ParseCgroup(strings.NewReader(tt.file))
				},
				Hostname:  func(context.Context, int) (string, error) { return "h", nil },
				StartTime: func(int) (uint64, error) { return 7, nil },
				NoPidfd:   true,
			})
			ctx := context.Background()
			gotPID, cg, err := r.CgroupPath(ctx, "web")
			if tt.cgroup == "" {
				if !errors.Is(err, ErrUnverified) || !errors.Is(err, engine.ErrNotRunning) {
					t.Fatalf("CgroupPath() = %d, %q, %v; want refused (ErrUnverified, ErrNotRunning)", gotPID, cg, err)
				}
				if p, err := r.PID(ctx, "web"); !errors.Is(err, ErrUnverified) {
					t.Fatalf("PID() = %d, %v; want refused", p, err)
				}
				if p, _, err := r.Hostname(ctx, "web"); !errors.Is(err, ErrUnverified) {
					t.Fatalf("Hostname() = %d, %v; want refused", p, err)
				}
				return
			}
			if err != nil || gotPID != pid || cg != tt.cgroup {
				t.Fatalf("CgroupPath() = %d, %q, %v; want %d, %q", gotPID, cg, err, pid, tt.cgroup)
			}
			if p, err := r.PID(ctx, "web"); err != nil || p != pid {
				t.Fatalf("PID() = %d, %v", p, err)
			}
		})
	}
}

// TestVerifyRefusesRootdAndInit: rootd's own process and PID 1 are never a
// container's init, whatever their cgroup.
func TestVerifyRefusesRootdAndInit(t *testing.T) {
	for _, pid := range []int{os.Getpid(), 1} {
		t.Run(fmt.Sprint(pid), func(t *testing.T) {
			proc := newFakeProc()
			proc.setCgroup(pid, "docker/"+idA) // as if it were in the container
			r := newTestResolver(t, proc, enginetest.NewMemory("docker", []engine.Container{running(idA, pid, "web")}))
			if p, err := r.PID(context.Background(), "web"); !errors.Is(err, ErrUnverified) {
				t.Fatalf("PID() = %d, %v; want refused", p, err)
			}
		})
	}
}

// TestVerifyNoticesPIDReuse: the init exits and its PID goes to another
// process before the engine's event arrives.
func TestVerifyNoticesPIDReuse(t *testing.T) {
	proc := newFakeProc()
	proc.setCgroup(100, "docker/"+idA)
	proc.setStart(100, 5000)
	var logs logBuffer
	opts := proc.options()
	opts.Log = slog.New(slog.NewTextHandler(&logs, nil))
	r := New([]engine.Engine{enginetest.NewMemory("docker", []engine.Container{running(idA, 100, "web")})}, opts)
	ctx := context.Background()
	if p, err := r.PID(ctx, "web"); err != nil || p != 100 {
		t.Fatalf("PID() = %d, %v", p, err)
	}
	// Same PID, new process (even one placed in the same cgroup).
	proc.setStart(100, 9000)
	for range 3 {
		if p, err := r.PID(ctx, "web"); !errors.Is(err, engine.ErrNotRunning) {
			t.Fatalf("PID() after reuse = %d, %v; want ErrNotRunning", p, err)
		}
		if _, _, err := r.CgroupPath(ctx, "web"); !errors.Is(err, engine.ErrNotRunning) {
			t.Fatalf("CgroupPath() after reuse = %v; want ErrNotRunning", err)
		}
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 {
		t.Fatalf("%d warnings for one reused pid, want 1:\n%s", n, logs.String())
	}
	// Gone altogether.
	delete(proc.cgroups, 100)
	delete(proc.starts, 100)
	if _, err := r.PID(ctx, "web"); !errors.Is(err, engine.ErrNotRunning) {
		t.Fatalf("PID() of an exited init = %v; want ErrNotRunning", err)
	}
}

// TestVerifyReuseDuringCheck: the start time changes between the two reads
// that bracket the cgroup read.
func TestVerifyReuseDuringCheck(t *testing.T) {
	proc := newFakeProc()
	proc.setCgroup(100, "docker/"+idA)
	n := 0
	opts := proc.options()
	opts.StartTime = func(int) (uint64, error) { n++; return uint64(n), nil }
	r := New([]engine.Engine{enginetest.NewMemory("docker", []engine.Container{running(idA, 100, "web")})}, opts)
	if p, err := r.PID(context.Background(), "web"); !errors.Is(err, engine.ErrNotRunning) {
		t.Fatalf("PID() = %d, %v; want ErrNotRunning", p, err)
	}
}

// TestVerifyWarnsOncePerContainerAndPID: a refused PID is logged once, is
// checked again on every request (not cached), and a new PID is logged
// again.
func TestVerifyWarnsOncePerContainerAndPID(t *testing.T) {
	proc := newFakeProc()
	proc.setCgroup(100, "system.slice/ssh.service")
	proc.setCgroup(101, "system.slice/cron.service")
	var logs logBuffer
	opts := proc.options()
	opts.Log = slog.New(slog.NewTextHandler(&logs, nil))
	docker := enginetest.NewMemory("docker", []engine.Container{running(idA, 100, "web")})
	r := New([]engine.Engine{docker}, opts)
	ctx := context.Background()
	for range 3 {
		if _, err := r.PID(ctx, "web"); !errors.Is(err, ErrUnverified) {
			t.Fatalf("PID() = %v; want refused", err)
		}
	}
	if err := r.Refresh(ctx); err != nil { // same container, same PID
		t.Fatal(err)
	}
	r.PID(ctx, "web")
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 {
		t.Fatalf("%d warnings, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "pid=100") || !strings.Contains(logs.String(), "system.slice/ssh.service") {
		t.Fatalf("warning lacks the pid or cgroup:\n%s", logs.String())
	}
	// The process moves into the container's cgroup (as a runtime does
	// right after starting it): a refusal is not cached.
	proc.setCgroup(100, "docker/"+idA)
	if p, err := r.PID(ctx, "web"); err != nil || p != 100 {
		t.Fatalf("PID() once in the container's cgroup = %d, %v", p, err)
	}
	docker.Set([]engine.Container{running(idA, 101, "web")})
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	r.PID(ctx, "web")
	if n := strings.Count(logs.String(), "level=WARN"); n != 2 {
		t.Fatalf("%d warnings after a new pid, want 2:\n%s", n, logs.String())
	}
}

// TestByPIDIgnoresUnverifiedInit: a container whose engine names a host
// process as its init must not claim that process's cgroup, and with it
// every host process in it.
func TestByPIDIgnoresUnverifiedInit(t *testing.T) {
	proc := newFakeProc()
	proc.setCgroup(100, "system.slice/ssh.service")
	proc.setCgroup(555, "system.slice/ssh.service")
	r := newTestResolver(t, proc, enginetest.NewMemory("docker", []engine.Container{running(idA, 100, "web")}))
	ctx := context.Background()
	for _, pid := range []int{100, 555} {
		if c, err := r.ByPID(ctx, pid); !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("ByPID(%d) = %s, %v; want no container", pid, c.ID, err)
		}
	}
}

// TestVerifyRealProcessExit: with the real /proc readers (and a pidfd, or
// the start time without one), an init process that exits stops being
// answered at once, before any engine reports it.
func TestVerifyRealProcessExit(t *testing.T) {
	for _, noPidfd := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoPidfd=%v", noPidfd), func(t *testing.T) {
			cmd := exec.Command("sleep", "600")
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { cmd.Process.Kill(); cmd.Wait() }()
			pid := cmd.Process.Pid
			path, err := procfs.CgroupPath(pid)
			if err != nil {
				t.Skipf("cgroup of a child: %v", err)
			}
			c := running(idA, pid, "web")
			c.Cgroups = []string{path}
			r := New([]engine.Engine{enginetest.NewMemory("docker", []engine.Container{c})}, Options{Log: quietLog(), NoPidfd: noPidfd})
			ctx := context.Background()
			for range 2 {
				if got, err := r.PID(ctx, "web"); err != nil || got != pid {
					t.Fatalf("PID() = %d, %v; want %d", got, err, pid)
				}
			}
			if e, _, _ := r.verifiedEntry(ctx, "web"); e != nil && (e.proof.Load().pidfd == nil) != noPidfd {
				t.Errorf("pidfd held: %v, want %v", e.proof.Load().pidfd != nil, !noPidfd)
			}
			cmd.Process.Kill()
			cmd.Wait() // reaped: the PID is free for anyone
			if got, err := r.PID(ctx, "web"); !errors.Is(err, engine.ErrNotRunning) {
				t.Fatalf("PID() after the init exited = %d, %v; want ErrNotRunning", got, err)
			}
		})
	}
}
