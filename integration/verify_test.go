//go:build integration

package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rootd-project/rootd/engine"
	"github.com/rootd-project/rootd/resolver"
)

// The LXC command protocol, as engine/lxc/cmdsock.go speaks it.
const (
	vfyCmdGetState   = 3
	vfyCmdGetInitPID = 4
	vfyLXCRunning    = 2
)

// A copy of this test binary run with these variables set is a fake LXC
// monitor (see vfyFakeMonitor), not a test run. init runs before TestMain.
const (
	vfyEnvSocket = "ROOTD_VFY_FAKE_MONITOR"
	vfyEnvPID    = "ROOTD_VFY_FAKE_PID"
)

func init() {
	if sock := os.Getenv(vfyEnvSocket); sock != "" {
		pid, _ := strconv.Atoi(os.Getenv(vfyEnvPID))
		if err := vfyFakeMonitor(sock, pid); err != nil {
			fmt.Fprintln(os.Stderr, "fake monitor:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

// vfyFakeMonitor binds LXC's abstract command socket name and answers
// every GET_STATE with RUNNING and every GET_INIT_PID with pid, as an
// attacker who is not root can while the container's real monitor is not
// running. It prints "listening UID" once bound, and serves until killed.
func vfyFakeMonitor(sock string, pid int) error {
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return err
	}
	fmt.Printf("listening %d\n", os.Getuid())
	for {
		c, err := l.AcceptUnix()
		if err != nil {
			return err
		}
		go func() {
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			var req [16]byte
			if _, err := io.ReadFull(c, req[:]); err != nil {
				return
			}
			var rsp [16]byte
			switch binary.NativeEndian.Uint32(req[:]) {
			case vfyCmdGetState:
				binary.NativeEndian.PutUint64(rsp[8:], vfyLXCRunning)
			case vfyCmdGetInitPID:
				binary.NativeEndian.PutUint64(rsp[8:], uint64(pid))
			}
			c.Write(rsp[:])
		}()
	}
}

// vfyRootSleep starts `sleep` as root, a host process no container owns.
func vfyRootSleep(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid
}

// vfyLXCCreate creates a stopped LXC container and destroys it at cleanup.
func vfyLXCCreate(t *testing.T, name string) {
	t.Helper()
	t.Cleanup(func() {
		exec.Command("lxc-stop", "-k", "-n", name).Run()
		exec.Command("lxc-destroy", "-f", "-n", name).Run()
	})
	lxcRun(t, "../scripts/engines/lxc.sh", "create", name)
}

// vfyStartSquatter runs the fake monitor as nobody (uid and gid 65534)
// from a copy of this test binary that nobody may execute.
func vfyStartSquatter(t *testing.T, sock string, pid int) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "vfy-squatter")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Chmod(dir, 0o755))
	bin := filepath.Join(dir, "squatter")
	data, err := os.ReadFile(self)
	must(err)
	must(os.WriteFile(bin, data, 0o755))

	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), vfyEnvSocket+"="+sock, vfyEnvPID+"="+strconv.Itoa(pid))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	must(err)
	must(cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "listening 65534" {
		t.Fatalf("squatter did not start as nobody: %q, %v", line, err)
	}
}

// TestVerifyLXCSquattedCommandSocket is the attack of issue 10: user
// nobody binds the abstract command socket of an LXC container that
// exists but is stopped, answers LXC's protocol, and claims that the
// container runs with a root-owned host process as its init. rootd must
// not answer with that process, through the Go client or PCP's C client.
// (ROOTD_VFY_ROOTD names another rootd binary to try, such as one built
// from before the fix, which answers with the victim's PID.)
func TestVerifyLXCSquattedCommandSocket(t *testing.T) {
	lxcpath := "/var/lib/lxc"
	name := fmt.Sprintf("vfy-squat-%d", os.Getpid())
	vfyLXCCreate(t, name)
	victims := map[string]int{"a root sleep": vfyRootSleep(t), "pid 1": 1, "rootd's parent (this test)": os.Getpid()}
	for what, victim := range victims {
		t.Run(what, func(t *testing.T) {
			vfyStartSquatter(t, "@"+lxcpath+"/"+name+"/command", victim)
			rootdBin := bins.rootd
			if alt := os.Getenv("ROOTD_VFY_ROOTD"); alt != "" {
				bins.rootd = alt
				t.Cleanup(func() { bins.rootd = rootdBin })
			}
			d := startRootd(t, []string{"PCP_LXC_DIR=" + lxcpath, "PCP_LXC_INFO="}, "--engines", "lxc")
			c := d.client(t)
			pid, err := c.ProcessID(ctxT(t, 10*time.Second), name)
			if err == nil || !errors.Is(err, syscall.ESRCH) {
				t.Errorf("Go client pid %s = %d, %v; want ESRCH (victim pid %d)", name, pid, err, victim)
			}
			if cg, err := c.CgroupName(ctxT(t, 10*time.Second), name); err == nil {
				t.Errorf("Go client cgroup %s = %q; want an error", name, cg)
			}
			if h, err := c.HostName(ctxT(t, 10*time.Second), name); err == nil {
				t.Errorf("Go client hostname %s = %q; want an error", name, h)
			}
			for _, op := range []string{"pid", "cgroup", "hostname"} {
				if r := cLookup(t, d.socket, op, name)[0]; r.OK || r.Code != codeNotRunning {
					t.Errorf("C %s %s = %+v; want %d (victim pid %d)", op, name, r, codeNotRunning, victim)
				}
			}
			if !strings.Contains(d.Log(), "untrusted") {
				t.Errorf("the squatted socket was not logged:\n%s", d.Log())
			}
		})
	}
}

// vfySpoof reports one container's PID as another process's: an engine
// that is wrong (stale state, a spoofed answer). It hides Watch.
type vfySpoof struct {
	engine.Engine
	id  string
	pid int
}

func (s vfySpoof) List(ctx context.Context) ([]engine.Container, error) {
	cs, err := s.Engine.List(ctx)
	for i := range cs {
		if cs[i].ID == s.id {
			cs[i].PID = s.pid
		}
	}
	return cs, err
}

// TestVerifyLiveEngines: for a live container of each engine, the PID its
// engine reports passes verification (PID, cgroup path, hostname come
// back as /proc has them), and the same container reported with the PID
// of rootd itself, of PID 1 or of a root-owned host process is refused.
func TestVerifyLiveEngines(t *testing.T) {
	victim := vfyRootSleep(t)
	tests := []struct {
		engine string
		setup  func(t *testing.T) (eng engine.Engine, id, query string)
	}{
		{"docker", func(t *testing.T) (engine.Engine, string, string) {
			name := fmt.Sprintf("vfy-docker-%d", os.Getpid())
			return dockerOpen(t), dockerStart(t, name), name
		}},
		{"podman", func(t *testing.T) (engine.Engine, string, string) {
			podmanRequire(t)
			name := fmt.Sprintf("vfy-podman-%d", os.Getpid())
			return podmanOpen(t), podmanRunning(t, name), name
		}},
		{"containerd", func(t *testing.T) (engine.Engine, string, string) {
			containerdRequire(t)
			name := fmt.Sprintf("vfy-ctr-%d", os.Getpid())
			containerdRun(t, "rootd-test", name)
			return containerdOpen(t, containerdSocket()), name, "containerd:" + name
		}},
		{"lxc", func(t *testing.T) (engine.Engine, string, string) {
			name := fmt.Sprintf("vfy-lxc-%d", os.Getpid())
			vfyLXCCreate(t, name)
			lxcRun(t, "lxc-start", "-n", name)
			return vfyOpenEngine(t, "lxc"), name, name
		}},
	}
	for _, tt := range tests {
		t.Run(tt.engine, func(t *testing.T) {
			eng, id, query := tt.setup(t)
			var listed engine.Container
			eventually(t, 20*time.Second, "the engine lists the container running", func() (bool, string) {
				cs, err := eng.List(context.Background())
				for _, c := range cs {
					if c.ID == id {
						listed = c
						return c.State == engine.StateRunning && c.PID > 0, fmt.Sprintf("%+v", c)
					}
				}
				return false, fmt.Sprint(err)
			})
			procCgroup, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", listed.PID))
			t.Logf("%s %s: pid %d, engine's marks %q, /proc/%d/cgroup:\n%s", tt.engine, query, listed.PID, listed.CgroupMarks(), listed.PID, procCgroup)

			var logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			ctx := ctxT(t, 30*time.Second)
			r := resolver.New([]engine.Engine{eng}, resolver.Options{Log: log})
			pid, cg, err := r.CgroupPath(ctx, query)
			if err != nil || pid != listed.PID {
				t.Fatalf("CgroupPath(%s) = %d, %q, %v; want pid %d\n%s", query, pid, cg, err, listed.PID, logs.String())
			}
			want, err := expectedCgroup(pid)
			if err != nil || cg != want {
				t.Errorf("CgroupPath(%s) = %q; /proc says %q (%v)", query, cg, want, err)
			}
			if _, _, err := r.Hostname(ctx, query); err != nil {
				t.Errorf("Hostname(%s): %v", query, err)
			}
			if strings.Contains(logs.String(), "level=WARN") {
				t.Errorf("warnings for a real container:\n%s", logs.String())
			}

			for what, spoof := range map[string]int{"rootd itself": os.Getpid(), "pid 1": 1, "a root sleep": victim} {
				logs.Reset()
				r := resolver.New([]engine.Engine{vfySpoof{Engine: eng, id: id, pid: spoof}}, resolver.Options{Log: log})
				if got, err := r.PID(ctx, query); !errors.Is(err, resolver.ErrUnverified) || !errors.Is(err, engine.ErrNotRunning) {
					t.Errorf("PID(%s) reported as %s (%d) = %d, %v; want ErrUnverified", query, what, spoof, got, err)
				}
				if _, cg, err := r.CgroupPath(ctx, query); err == nil {
					t.Errorf("CgroupPath(%s) reported as %s = %q; want refused", query, what, cg)
				}
				if n := strings.Count(logs.String(), "level=WARN"); n != 1 {
					t.Errorf("%d warnings for %s, want 1:\n%s", n, what, logs.String())
				}
			}
		})
	}
}

// vfyOpenEngine opens a registered engine with its defaults, the PCP
// variables hidden.
func vfyOpenEngine(t *testing.T, name string) engine.Engine {
	t.Helper()
	fs := flag.NewFlagSet("vfy", flag.ContinueOnError)
	set := engine.Configure(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	getenv := func(k string) string {
		if strings.HasPrefix(k, "PCP_") {
			return ""
		}
		return os.Getenv(k)
	}
	engines, err := set.Open(engine.Env{Log: slog.New(slog.NewTextHandler(t.Output(), nil)), Getenv: getenv}, []string{name})
	if err != nil {
		t.Fatal(err)
	}
	return engines[0]
}
