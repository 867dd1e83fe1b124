//go:build integration

package integration

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rootd-project/rootd/engine"
)

// rootd under the real PCP stack: PCP's own pmcd starts its agents through
// rootd, and PCP's own tools (pminfo, pmprobe, pmval) ask for metrics inside
// containers of every engine. Nothing is faked: the PCP programs come from
// Debian's pcp package (scripts/engines/pcp.sh), the containers are real.

// pcpStackWait bounds each wait for pmcd to restart or add an agent: pmcd
// restarts a dead agent on the next fetch that needs it, and waits up to 3 s
// for a new agent's first exchange.
const pcpStackWait = 30 * time.Second

// pcpQuery is one way to name a container.
type pcpQuery struct {
	form string // for the subtest's name: "name", "id", ...
	name string
}

// pcpTarget is a running container and the hostname it must report.
type pcpTarget struct {
	engine  string
	queries []pcpQuery
	host    string
}

// pcpTag makes this run's container names unique on a shared machine.
func pcpTag(t *testing.T) string {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("pcps-%d-%s", os.Getpid()%100000, hex.EncodeToString(b))
}

// pcpSetHostname sets the hostname in a container's UTS namespace from the
// host: ctr has no --hostname, and the busybox image runs without
// CAP_SYS_ADMIN.
func pcpSetHostname(t *testing.T, pid int, name string) {
	t.Helper()
	if out, err := exec.Command("nsenter", "-t", strconv.Itoa(pid), "-u", "hostname", name).CombinedOutput(); err != nil {
		t.Fatalf("nsenter -t %d -u hostname %s: %v\n%s", pid, name, err, out)
	}
}

// pcpContainers starts one running container per engine, each with its
// own hostname (not the host's) and no network but loopback, removed at
// cleanup. It also returns two names that are ambiguous by construction (a
// prefix of two IDs in two engines, and one character shared by the Docker
// ID and the Kubernetes one) and a Docker container that exists but has
// never run.
func pcpContainers(t *testing.T, tag string) (targets []pcpTarget, ambiguous []string, stopped string) {
	t.Helper()
	podmanRequire(t)
	containerdRequire(t)
	for _, tool := range []string{"nsenter", "lxc-create", "lxc-start", "lxc-info", "lxc-ls", "lxc-config"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found (run scripts/setup.sh): %v", tool, err)
		}
	}

	dockerN := tag + "-docker"
	dockerID := dockerStart(t, dockerN) // hostname dockerN-host, --network none
	stopped = tag + "-created"
	dockerRun(t, "create", "--name", stopped, "--hostname", stopped+"-host", "--network", "none", dockerImage, "sleep", "600")
	t.Cleanup(func() { exec.Command(dockerCLI(), "rm", "-f", stopped).Run() })

	podmanN := tag + "-podman"
	podmanID := podmanRunning(t, podmanN, "--hostname", podmanN+"-host", "--network", "none")

	// A ctr container's ID is its name; ctr run without --net-host gives it
	// a network namespace of its own with only lo.
	ctrID := tag + "-ctr"
	containerdRun(t, containerdTestNamespace, ctrID)
	pcpSetHostname(t, containerdTasks(t, containerdTestNamespace)[ctrID].pid, ctrID+"-host")

	// A Kubernetes container: a hex ID that shares its first character with
	// the Docker one, and the CRI labels that give it its pod name.
	k8sID := dockerID[:1] + containerdHexID(t)[1:]
	podNS, pod, podCtr := "pcps", tag+"-pod", "app"
	containerdRun(t, "k8s.io", k8sID,
		"--label", engine.LabelPodNamespace+"="+podNS,
		"--label", engine.LabelPodName+"="+pod,
		"--label", engine.LabelContainerName+"="+podCtr,
		"--label", "io.cri-containerd.kind=container")
	pcpSetHostname(t, containerdTasks(t, "k8s.io")[k8sID].pid, tag+"-k8s-host")

	lxcN := tag + "-lxc"
	mixedLXCCreate(t, lxcN)
	lxcRun(t, "lxc-start", "-n", lxcN)
	eventually(t, pcpStackWait, lxcN+" has an init PID", func() (bool, string) {
		pid := mixedLXCPID(t, lxcN)
		return pid > 0, fmt.Sprintf("pid %d", pid)
	})

	all := mixedAllIDs(t)
	prefix := func(id string) pcpQuery { return pcpQuery{"unique prefix", mixedPrefix(t, id, all)} }
	targets = []pcpTarget{
		{engine: "docker", host: dockerN + "-host", queries: []pcpQuery{
			{"name", dockerN}, {"id", dockerID}, prefix(dockerID), {"docker:NAME", "docker:" + dockerN}}},
		{engine: "podman", host: podmanN + "-host", queries: []pcpQuery{
			{"name", podmanN}, {"id", podmanID}, prefix(podmanID), {"podman:NAME", "podman:" + podmanN}}},
		{engine: "containerd " + containerdTestNamespace, host: ctrID + "-host", queries: []pcpQuery{
			{"id", ctrID}, prefix(ctrID), {"containerd:ID", "containerd:" + ctrID}}},
		{engine: "containerd k8s.io", host: tag + "-k8s-host", queries: []pcpQuery{
			{"id", k8sID}, prefix(k8sID), {"NAMESPACE/POD/CONTAINER", podNS + "/" + pod + "/" + podCtr}}},
		// An LXC container's ID is its name; its hostname is its name.
		{engine: "lxc", host: mixedLXCUTSName(t, lxcN), queries: []pcpQuery{
			{"name", lxcN}, prefix(lxcN), {"lxc:NAME", "lxc:" + lxcN}}},
	}
	// tag+"-" begins the IDs of the containerd and the LXC container.
	return targets, []string{tag + "-", dockerID[:1]}, stopped
}

// TestPCPStackContainers: PCP's own tools, through a real pmcd and its
// agents started by rootd, report each container's hostname and network
// interfaces, for every engine and every form of name; and an unknown or
// ambiguous name, or a container that is not running, is an error, never
// the host's values.
func TestPCPStackContainers(t *testing.T) {
	tag := pcpTag(t)
	targets, ambiguous, stopped := pcpContainers(t, tag)
	s := startPCPStack(t, pcpStackOptions{})

	hostName, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	// The host's interfaces must include more than lo, or an answer from
	// the host could not be told from a container's.
	r, err := s.pminfo(t, "", "network.interface.up")
	if err != nil {
		t.Fatal(err)
	}
	hostIfaces := pcpKeys(r["network.interface.up"])
	if len(hostIfaces) < 2 {
		t.Fatalf("the host's network.interface.up lists %v: need an interface besides lo to tell the host from a container", hostIfaces)
	}
	t.Logf("host %q, interfaces %v", hostName, hostIfaces)

	for _, x := range targets {
		if x.host == hostName {
			t.Fatalf("%s: hostname %q is the host's: the test could not tell them apart", x.engine, x.host)
		}
		t.Run(x.engine, func(t *testing.T) {
			for _, q := range x.queries {
				t.Run(q.form, func(t *testing.T) {
					pcpCheckContainer(t, s, q.name, x.host)
				})
			}
		})
	}

	t.Run("errors", func(t *testing.T) {
		c := s.rootd.client(t)
		unknown := tag + "-never-created"
		// The ambiguity is the index's, checked through rootd itself before
		// PCP is asked: every other engineer's containers are in it too.
		for _, q := range ambiguous {
			if _, err := c.ProcessID(ctxT(t, 10*time.Second), q); !errors.Is(err, syscall.ENOTUNIQ) {
				t.Fatalf("rootd's own answer for %q: %v; want ENOTUNIQ", q, err)
			}
		}
		tests := []struct {
			name string
			q    string
			code int // pmprobe's status for pmdalinux's metrics
		}{
			{"unknown", unknown, codeNoContainer},
			{"ambiguous prefix of two engines' IDs", ambiguous[0], codeNotUnique},
			{"ambiguous one hex character", ambiguous[1], codeNotUnique},
			{"created, never started", stopped, codeNotRunning},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				pcpCheckError(t, s, tc.q, tc.code, hostName, hostIfaces)
			})
		}
	})
}

// pcpCheckContainer asks for container q's hostname and interfaces with
// pminfo --container, pmprobe -v, pmval -s 1 and PCP_CONTAINER=.
func pcpCheckContainer(t *testing.T, s *pcpStack, q, host string) {
	t.Helper()
	metrics := []string{"pmcd.hostname", "kernel.uname.nodename", "network.interface.up"}
	r, raw, err := s.pminfoVia(t, q, false, metrics...)
	t.Logf("%s", raw)
	if err != nil {
		t.Fatal(err)
	}
	pcpWant(t, "pminfo --container="+q, r, host, raw)

	values, codes, err := s.pmprobe(t, q, "-v", metrics...)
	if err != nil {
		t.Fatal(err)
	}
	names, _, err := s.pmprobe(t, q, "-I", "network.interface.up")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range metrics[:2] {
		if !slices.Equal(values[m], []string{host}) {
			t.Errorf("pmprobe -v --container=%s %s = %q (status %d), want %q", q, m, values[m], codes[m], host)
		}
	}
	if len(values["network.interface.up"]) != 1 || !slices.Equal(names["network.interface.up"], []string{"lo"}) {
		t.Errorf("pmprobe -v/-I --container=%s network.interface.up: values %q for instances %q, want one, lo",
			q, values["network.interface.up"], names["network.interface.up"])
	}

	if v, stderr, err := s.pmval(t, q, "kernel.uname.nodename"); err != nil || v != host {
		t.Errorf("pmval -s 1 --container=%s kernel.uname.nodename = %q (%v; %s), want %q", q, v, err, stderr, host)
	}

	env, raw, err := s.pminfoVia(t, q, true, "pmcd.hostname", "kernel.uname.nodename")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"pmcd.hostname", "kernel.uname.nodename"} {
		if got := env[m]; got.err != "" || got.values[""] != host {
			t.Errorf("PCP_CONTAINER=%s pminfo %s = %+v, want %q\n%s", q, m, got, host, raw)
		}
	}
}

// pcpWant checks one tool's report: both hostnames are the container's and
// its only interface is lo.
func pcpWant(t *testing.T, what string, r map[string]pcpMetric, host, raw string) {
	t.Helper()
	for _, m := range []string{"pmcd.hostname", "kernel.uname.nodename"} {
		if got := r[m]; got.err != "" || len(got.values) != 1 || got.values[""] != host {
			t.Errorf("%s: %s = %+v, want %q\n%s", what, m, got, host, raw)
		}
	}
	if got := r["network.interface.up"]; got.err != "" || !slices.Equal(pcpKeys(got), []string{"lo"}) {
		t.Errorf("%s: network.interface.up = %+v, want only lo\n%s", what, got, raw)
	}
}

// pcpCheckError: for a name rootd cannot resolve, pmdalinux's metrics are
// an error in every tool, never the host's values. pmcd.hostname is not
// checked: pmda_pmcd falls back to the host's name on any error, by design.
func pcpCheckError(t *testing.T, s *pcpStack, q string, code int, hostName string, hostIfaces []string) {
	t.Helper()
	linuxMetrics := []string{"kernel.uname.nodename", "network.interface.up"}
	r, raw, err := s.pminfoVia(t, q, false, linuxMetrics...)
	t.Logf("%s", raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range linuxMetrics {
		if got := r[m]; got.err == "" || len(got.values) != 0 {
			t.Errorf("pminfo --container=%s %s = %+v, want an error and no value (host: %q, %v)", q, m, got, hostName, hostIfaces)
		}
	}
	for _, flag := range []string{"-v", "-I"} {
		words, codes, err := s.pmprobe(t, q, flag, linuxMetrics...)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range linuxMetrics {
			if codes[m] != code {
				t.Errorf("pmprobe %s --container=%s %s: status %d %q, want status %d", flag, q, m, codes[m], words[m], code)
			}
		}
	}
	if v, stderr, err := s.pmval(t, q, "kernel.uname.nodename"); err != nil || v != "" || stderr == "" {
		t.Errorf("pmval -s 1 --container=%s kernel.uname.nodename: value %q, stderr %q, %v; want no value and an error", q, v, stderr, err)
	}
	env, raw, err := s.pminfoVia(t, q, true, "kernel.uname.nodename")
	if err != nil {
		t.Fatal(err)
	}
	if got := env["kernel.uname.nodename"]; got.err == "" || len(got.values) != 0 {
		t.Errorf("PCP_CONTAINER=%s pminfo kernel.uname.nodename = %+v, want an error\n%s", q, got, raw)
	}
}

// TestPCPStackAgents: pmcd starts, restarts, adds and removes its agents
// through rootd, with pmcd in the foreground as root and as a daemon that
// drops to the PCP user as in production; a container lookup works through
// each.
func TestPCPStackAgents(t *testing.T) {
	uid, _ := pcpUser(t)
	tests := []struct {
		name    string
		daemon  bool
		pmcdUID int
	}{
		{"foreground as root", false, 0},
		{"daemon as pcp", true, uid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tag := pcpTag(t)
			dockerN := tag + "-docker"
			dockerStart(t, dockerN)
			s := startPCPStack(t, pcpStackOptions{daemon: tc.daemon})

			st, err := pcpProcStatus(s.pmcdPID)
			if err != nil {
				t.Fatal(err)
			}
			if f := strings.Fields(st["Uid"]); len(f) == 0 || f[0] != strconv.Itoa(tc.pmcdUID) {
				t.Errorf("pmcd (pid %d) runs as uid %q, want %d", s.pmcdPID, st["Uid"], tc.pmcdUID)
			}
			// SO_PEERCRED is taken at connect(): pmcd connects to rootd
			// before it drops to PCP_USER, so rootd sees root either way.
			for _, m := range regexp.MustCompile(`client connected" peer_pid=`+strconv.Itoa(s.pmcdPID)+` peer_uid=(\d+)`).FindAllStringSubmatch(s.rootd.Log(), -1) {
				t.Logf("pmcd (pid %d, now uid %s) connected to rootd as peer uid %s", s.pmcdPID, strings.Fields(st["Uid"])[0], m[1])
			}

			t.Run("agents are rootd's children", func(t *testing.T) {
				for _, label := range []string{"linux", "proc"} {
					pid, err := s.agentOfRootd(label)
					if err != nil {
						t.Fatal(err)
					}
					if !strings.Contains(s.rootd.Log(), fmt.Sprintf("msg=\"started agent\" label=%s pid=%d", label, pid)) {
						t.Errorf("rootd did not log starting %s (pid %d)", label, pid)
					}
				}
			})

			t.Run("container lookup", func(t *testing.T) {
				r, raw, err := s.pminfoVia(t, dockerN, false, "pmcd.hostname", "kernel.uname.nodename")
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range []string{"pmcd.hostname", "kernel.uname.nodename"} {
					if got := r[m]; got.values[""] != dockerN+"-host" {
						t.Errorf("%s = %+v, want %q\n%s", m, got, dockerN+"-host", raw)
					}
				}
			})

			t.Run("pmdalinux killed and restarted", func(t *testing.T) {
				old, err := s.agentOfRootd("linux")
				if err != nil {
					t.Fatal(err)
				}
				if err := syscall.Kill(old, syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				eventually(t, pcpStackWait, "rootd reaps the killed pmdalinux", func() (bool, string) {
					return strings.Contains(s.rootd.Log(), fmt.Sprintf("msg=\"agent exited\" label=linux pid=%d", old)), ""
				})
				// pmcd notices the dead agent and starts a new one on a
				// later fetch that needs it. (It auto-restarts agents at
				// most once a minute, so a second kill would wait.)
				var last string
				eventually(t, pcpStackWait, "pmcd restarts pmdalinux through rootd", func() (bool, string) {
					r, err := s.pminfo(t, "", "kernel.uname.nodename")
					if err != nil {
						return false, err.Error()
					}
					pid, err := s.agentOfRootd("linux")
					last = fmt.Sprintf("%+v, %v", r["kernel.uname.nodename"], err)
					return err == nil && pid != old && r["kernel.uname.nodename"].values[""] != "", last
				})
				// The new one serves containers too.
				r, err := s.pminfo(t, dockerN, "kernel.uname.nodename")
				if err != nil || r["kernel.uname.nodename"].values[""] != dockerN+"-host" {
					t.Errorf("after the restart, kernel.uname.nodename in %s = %+v, %v", dockerN, r["kernel.uname.nodename"], err)
				}
			})

			t.Run("SIGHUP removes and adds agents", func(t *testing.T) {
				oldProc, err := s.agentOfRootd("proc")
				if err != nil {
					t.Fatal(err)
				}
				s.writeConf(t, s.agentPMCD(), s.agentLinux())
				s.hup(t)
				eventually(t, pcpStackWait, "pmdaproc gone after its line is removed", func() (bool, string) {
					s.poke()
					pids := s.agentPIDs("proc")
					return len(pids) == 0 && strings.Contains(s.rootd.Log(), fmt.Sprintf("msg=\"agent exited\" label=proc pid=%d", oldProc)),
						fmt.Sprintf("proc agents %v", pids)
				})

				s.writeConf(t, s.agentPMCD(), s.agentProc(), s.agentLinux(), s.agentSample())
				s.hup(t)
				for _, label := range []string{"proc", "sample"} {
					eventually(t, pcpStackWait, label+" started through rootd", func() (bool, string) {
						s.poke()
						pid, err := s.agentOfRootd(label)
						if err != nil {
							return false, err.Error()
						}
						return strings.Contains(s.rootd.Log(), fmt.Sprintf("msg=\"started agent\" label=%s pid=%d", label, pid)), ""
					})
				}
				if pid, _ := s.agentPID("proc"); pid == oldProc {
					t.Errorf("pmdaproc pid %d was not replaced", pid)
				}
				// Both serve metrics: sample.long.one is always 1.
				eventually(t, pcpStackWait, "the new agents answer", func() (bool, string) {
					r, err := s.pminfo(t, "", "sample.long.one", "proc.nprocs")
					if err != nil {
						return false, err.Error()
					}
					return r["sample.long.one"].values[""] == "1" && r["proc.nprocs"].values[""] != "", fmt.Sprintf("%+v", r)
				})
			})
		})
	}
}

// TestPCPStackPCPUserPeer: rootd serves the PCP account by default. pmcd
// 6.0.3 connects to the root socket before it drops to PCP_USER, so in the
// stack rootd sees root (TestPCPStackAgents logs the peer uid); this drives
// the same requests through PCP's own client library from a process that
// really is the pcp user: a lookup, and an agent started, used, stopped
// and reaped.
func TestPCPStackPCPUserPeer(t *testing.T) {
	uid, gid := pcpUser(t)
	name := pcpTag(t) + "-docker"
	dockerStart(t, name)
	// A non-root client may start only what pmcd's configuration names: a
	// root-owned pmcd.conf that names the C client's agent, /bin/cat.
	conf := filepath.Join(t.TempDir(), "pmcd.conf")
	writeConf := func(agents string) {
		t.Helper()
		if err := os.WriteFile(conf+".new", []byte("# rootd integration test\n"+agents+"\n[access]\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(conf+".new", conf); err != nil {
			t.Fatal(err)
		}
	}
	writeConf("cat\t99\tpipe\tbinary\t/bin/cat")
	// PCP_USER and PCP_GROUP as pcp.conf says, whatever the environment.
	d := startRootd(t, append(mixedEnv(), "PCP_USER=", "PCP_GROUP="), "--engines", "docker", "--pmcd-conf", conf)

	// The socket itself is left as rootd made it: 0660, group pcp. Only
	// the directories above it (private to the test) are opened, and the
	// C client made executable for pcp.
	fi, err := os.Stat(d.socket)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != 0o660 || int(st.Gid) != gid {
		t.Fatalf("socket %s: mode %v group %d, want 0660 group pcp (%d)", d.socket, fi.Mode().Perm(), st.Gid, gid)
	}
	for _, p := range []string{filepath.Dir(filepath.Dir(d.socket)), filepath.Dir(d.socket), bins.dir} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	tests := []struct {
		args []string
		want string
	}{
		{[]string{"hostname", name}, "ok " + name + "-host\n"},
		{[]string{"agent"}, ""}, // every step "ok"; the exit status says so
	}
	for _, tc := range tests {
		out, err := asUser(uid, gid, append([]string{d.socket}, tc.args...)...)
		if err != nil || !strings.HasPrefix(out, tc.want) || strings.Contains(out, "fail") {
			t.Errorf("C client as pcp (uid %d) %v: %v\n%s", uid, tc.args, err, out)
		}
		t.Logf("C client as pcp %v:\n%s", tc.args, out)
	}
	// The same request once pmcd.conf no longer names the agent: refused
	// (EPERM, which PCP's client reports as -1), and logged.
	writeConf("simple\t253\tpipe\tbinary\t/var/lib/pcp/pmdas/simple/pmdasimple -d 253")
	out, err := asUser(uid, gid, d.socket, "agent")
	if err == nil || !strings.Contains(out, "fail start sts=-1 ") {
		t.Errorf("C client as pcp started an agent pmcd.conf does not name: %v\n%s", err, out)
	}
	if !strings.Contains(d.Log(), "refused to start agent for a non-root client") {
		t.Errorf("rootd's log does not show the refusal:\n%s", d.Log())
	}
	if strings.Contains(d.Log(), "refusing client") {
		t.Errorf("rootd refused a client:\n%s", d.Log())
	}
	if !regexp.MustCompile(`client connected" peer_pid=\d+ peer_uid=` + strconv.Itoa(uid) + `\b`).MatchString(d.Log()) {
		t.Errorf("rootd's log shows no client with uid %d:\n%s", uid, d.Log())
	}
}
