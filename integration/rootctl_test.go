//go:build integration

package integration

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rootctlInfo is the part of rootctl's JSON (wire.ContainerInfo) that both
// sides must agree on; cgroup and hostname are read at different moments
// and are compared where they are stable (the test's own container).
type rootctlInfo struct {
	Engine    string   `json:"engine"`
	ID        string   `json:"id"`
	Names     []string `json:"names"`
	State     string   `json:"state"`
	PID       int      `json:"pid"`
	Namespace string   `json:"namespace"`
	Cgroup    string   `json:"cgroup"`
	Hostname  string   `json:"hostname"`
}

func (c rootctlInfo) key() string {
	return fmt.Sprintf("%s %s %s %s pid=%d names=%v", c.Engine, c.Namespace, c.ID, c.State, c.PID, c.Names)
}

// rootctlAs runs the built rootctl under uid/gid (no supplementary
// groups), or as root for uid 0, and returns its output and exit status.
func rootctlAs(t *testing.T, uid, gid int, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var cmd *exec.Cmd
	if uid == 0 {
		cmd = exec.Command(bins.rootctl, args...)
	} else {
		cmd = exec.Command("setpriv", append([]string{"--reuid=" + strconv.Itoa(uid), "--regid=" + strconv.Itoa(gid), "--clear-groups", bins.rootctl}, args...)...)
	}
	cmd.Env = append(os.Environ(), mixedEnv()...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("rootctl %v: %v", args, err)
	}
	return out.String(), errOut.String(), code
}

// TestRootctlThroughSocket: the built rootctl, run as the PCP user (no
// root, only the PCP account rootd allows), lists through the socket exactly
// what a real rootd on live engines indexes, which is what the same engines
// read in-process (rootctl --in-process, as root) show. Both programs read
// one configuration file, which names the engines once.
func TestRootctlThroughSocket(t *testing.T) {
	uid, gid := pcpUser(t)
	name := dockerName(t, "rootctl")
	id := dockerStart(t, name)
	want := dockerInspect(t, id)

	dir, err := os.MkdirTemp("", "rootctl-it-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	conf := filepath.Join(dir, "rootd.conf")
	text := fmt.Sprintf("engines = [\"docker\", \"podman\", \"containerd\", \"lxc\"]\n\n[containerd]\naddress = [%q]\n\n[rootctl]\ntimeout = \"20s\"\n", containerdSocket())
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startRootd(t, mixedEnv(), "--config", conf)
	// The PCP user reaches the socket through the group-owned 0660 socket
	// rootd made; the test's private directories must let it walk there
	// and run the binary.
	for _, p := range []string{dir, bins.dir, filepath.Dir(filepath.Dir(d.socket)), filepath.Dir(d.socket)} {
		os.Chmod(p, 0o755)
	}
	os.Chmod(bins.rootctl, 0o755)
	base := []string{"--config", conf, "-s", d.socket}

	t.Run("ls -o json matches the engines read in-process", func(t *testing.T) {
		// The two listings are taken a moment apart on live engines that
		// other tests' leftovers may still be leaving: retry until they
		// agree, for a short while.
		var diff string
		for try := 0; try < 5; try++ {
			out, errOut, code := rootctlAs(t, uid, gid, append(base, "ls", "-o", "json")...)
			if code != 0 {
				t.Fatalf("rootctl ls -o json as pcp: exit %d: %s", code, errOut)
			}
			var viaSocket, inProcess []rootctlInfo
			if err := json.Unmarshal([]byte(out), &viaSocket); err != nil {
				t.Fatalf("%v:\n%s", err, out)
			}
			out, errOut, code = rootctlAs(t, 0, 0, "--config", conf, "--in-process", "ls", "-o", "json")
			if code != 0 {
				t.Fatalf("rootctl --in-process ls -o json: exit %d: %s", code, errOut)
			}
			if err := json.Unmarshal([]byte(out), &inProcess); err != nil {
				t.Fatalf("%v:\n%s", err, out)
			}
			a, b := keys(viaSocket), keys(inProcess)
			if slices.Equal(a, b) {
				diff = ""
				var mine *rootctlInfo
				for i := range viaSocket {
					if viaSocket[i].ID == want.id && viaSocket[i].Engine == "docker" {
						mine = &viaSocket[i]
					}
				}
				wantCG, _ := expectedCgroup(want.pid)
				// A listing carries no hostnames (each would mean entering a
				// UTS namespace: docs/protocol.md); resolve does, below.
				if mine == nil || mine.PID != want.pid || mine.State != "running" || mine.Cgroup != wantCG {
					t.Errorf("the test's container through the socket: %+v; docker says pid %d, cgroup %s", mine, want.pid, wantCG)
				}
				break
			}
			diff = fmt.Sprintf("through the socket:\n  %s\nin-process:\n  %s", strings.Join(a, "\n  "), strings.Join(b, "\n  "))
			time.Sleep(time.Second)
		}
		if diff != "" {
			t.Fatalf("rootctl ls -o json differs from the engines' own list:\n%s", diff)
		}
	})

	t.Run("the other commands as pcp", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			code int
			out  string // stdout, trimmed; "" = not checked
		}{
			{[]string{"pid", name}, 0, strconv.Itoa(want.pid)},
			{[]string{"hostname", name}, 0, name + "-host"},
			{[]string{"ls", "-o", "name", "--filter", "engine=docker", "--filter", "name=" + name}, 0, name},
			{[]string{"ls", "-q", "--filter", "name=" + name}, 0, want.id},
			{[]string{"resolve", "-o", "name", id[:16]}, 0, name},
			{[]string{"which", "-o", "name", strconv.Itoa(want.pid)}, 0, name},
			{[]string{"status"}, 0, ""},
			{[]string{"pid", "rootd-it-no-such-container"}, 3, ""},
			{[]string{"--in-process", "ls"}, 1, ""}, // not root
		} {
			out, errOut, code := rootctlAs(t, uid, gid, append(base, tc.args...)...)
			if code != tc.code || tc.out != "" && strings.TrimSpace(out) != tc.out {
				t.Errorf("rootctl %v as pcp: exit %d, %q, %s; want exit %d, %q", tc.args, code, out, errOut, tc.code, tc.out)
			}
		}
		out, errOut, code := rootctlAs(t, uid, gid, append(base, "resolve", "-o", "json", name)...)
		var one rootctlInfo
		if err := json.Unmarshal([]byte(out), &one); code != 0 || err != nil || one.ID != want.id || one.PID != want.pid || one.Hostname != name+"-host" {
			t.Errorf("resolve -o json %s as pcp: exit %d, %+v, %v, %s; want pid %d, hostname %s-host", name, code, one, err, errOut, want.pid, name)
		}
		out, _, _ = rootctlAs(t, uid, gid, append(base, "status", "-o", "json")...)
		var st struct {
			Ready   bool `json:"ready"`
			Engines []struct {
				Name string `json:"name"`
			} `json:"engines"`
		}
		if err := json.Unmarshal([]byte(out), &st); err != nil || !st.Ready || len(st.Engines) != 4 {
			t.Errorf("status -o json: %+v %v\n%s", st, err, out)
		}
	})

	t.Run("a user rootd does not allow is told so", func(t *testing.T) {
		tuid, tgid := throwaway(t)
		os.Chmod(d.socket, 0o666) // only SO_PEERCRED stands in the way
		_, errOut, code := rootctlAs(t, tuid, tgid, append(base, "pid", name)...)
		if code != 6 || !strings.Contains(errOut, "refuses this user") {
			t.Errorf("stranger: exit %d, %s; want 6 and the refusal named", code, errOut)
		}
		_, errOut, code = rootctlAs(t, uid, gid, "--config", conf, "-s", filepath.Join(dir, "absent.socket"), "ls")
		if code != 7 || !strings.Contains(errOut, "rootd is not running") {
			t.Errorf("no daemon: exit %d, %s; want 7", code, errOut)
		}
	})
}

func keys(l []rootctlInfo) []string {
	out := make([]string, len(l))
	for i, c := range l {
		out[i] = c.key()
	}
	slices.Sort(out)
	return out
}
