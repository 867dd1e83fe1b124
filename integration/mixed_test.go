//go:build integration

package integration

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rootd-project/rootd/client"
	"github.com/rootd-project/rootd/engine"
	"github.com/rootd-project/rootd/wire"
)

// mixedWait bounds each wait for rootd to see a change made by an engine.
const mixedWait = 30 * time.Second

// mixedTarget is one container and the queries that must find it.
type mixedTarget struct {
	label  string // for messages
	engine string
	id     string
	name   string // "" when the container has no name (Kubernetes)
	// display is rootctl ls's NAME when it is not name:
	// NAMESPACE/POD/CONTAINER for a Kubernetes container without a name.
	display string
	queries []string
	// pid returns the engine's own idea of the init PID.
	pid func(t *testing.T) int
	// host returns the hostname the container must report for pid.
	host  func(t *testing.T, pid int) string
	state engine.State
}

// mixedExpect is one expected answer for a set of queries: success with
// the engine's PID (and /proc's cgroup, and host), or a failure status.
type mixedExpect struct {
	pid  int
	host string
	// code, when non-zero, is the failure expected instead: a negative
	// errno or wire.StatusNoContainer.
	code int
}

// mixedUTSHostname is the nodename in process pid's UTS namespace.
func mixedUTSHostname(t *testing.T, pid int) string {
	t.Helper()
	out, err := exec.Command("nsenter", "-t", strconv.Itoa(pid), "-u", "hostname").Output()
	if err != nil {
		t.Fatalf("nsenter -t %d -u hostname: %v", pid, err)
	}
	return strings.TrimSpace(string(out))
}

// mixedCodeOf returns the status a Go client error stands for, 0 for none.
func mixedCodeOf(err error) int {
	var st wire.StatusError
	if errors.As(err, &st) {
		return int(st)
	}
	if err != nil {
		return 1 // not a status at all: never what a test expects
	}
	return 0
}

// mixedCheck asks every query through both clients for PID, cgroup and
// hostname and returns what differs from want.
func mixedCheck(t *testing.T, c *client.Client, socket string, queries []string, want mixedExpect) []string {
	t.Helper()
	var bad []string
	wantCgroup := ""
	if want.code == 0 {
		cg, err := expectedCgroup(want.pid)
		if err != nil {
			return []string{fmt.Sprintf("expected pid %d: %v", want.pid, err)}
		}
		wantCgroup = cg
	}
	wantOf := map[string]string{"pid": strconv.Itoa(want.pid), "cgroup": wantCgroup, "hostname": want.host}
	compare := func(who, op, q, got string, code int) {
		switch {
		case want.code != 0 && code != want.code:
			bad = append(bad, fmt.Sprintf("%s %s %q: got %q status %d, want status %d", who, op, q, got, code, want.code))
		case want.code == 0 && (code != 0 || got != wantOf[op]):
			bad = append(bad, fmt.Sprintf("%s %s %q: got %q status %d, want %q", who, op, q, got, code, wantOf[op]))
		}
	}
	for _, q := range queries {
		ctx := ctxT(t, 10*time.Second)
		pid, err := c.ProcessID(ctx, q)
		compare("Go", "pid", q, strconv.Itoa(pid), mixedCodeOf(err))
		cg, err := c.CgroupName(ctx, q)
		compare("Go", "cgroup", q, cg, mixedCodeOf(err))
		host, err := c.HostName(ctx, q)
		compare("Go", "hostname", q, host, mixedCodeOf(err))
	}
	for _, op := range []string{"pid", "cgroup", "hostname"} {
		for i, r := range cLookup(t, socket, op, queries...) {
			if r.OK {
				compare("C", op, queries[i], r.Value, 0)
			} else {
				compare("C", op, queries[i], r.Value, r.Code)
			}
		}
	}
	return bad
}

// mixedMust checks queries now.
func mixedMust(t *testing.T, c *client.Client, socket string, queries []string, want mixedExpect) {
	t.Helper()
	for _, m := range mixedCheck(t, c, socket, queries, want) {
		t.Error(m)
	}
}

// mixedEventually waits until queries answer as want() says; want is
// evaluated afresh each time, since the engine's PID may change.
func mixedEventually(t *testing.T, c *client.Client, socket, what string, queries []string, want func() mixedExpect) {
	t.Helper()
	eventually(t, mixedWait, what, func() (bool, string) {
		bad := mixedCheck(t, c, socket, queries, want())
		return len(bad) == 0, strings.Join(bad, "; ")
	})
}

func mixedExpectRunning(t *testing.T, x mixedTarget) mixedExpect {
	t.Helper()
	pid := x.pid(t)
	if pid <= 0 {
		t.Fatalf("%s: the engine reports no PID", x.label)
	}
	return mixedExpect{pid: pid, host: x.host(t, pid)}
}

// mixedLXCPID asks lxc-info for a container's init PID (0 when stopped).
func mixedLXCPID(t *testing.T, name string) int {
	t.Helper()
	out, err := exec.Command("lxc-info", "-n", name, "-p").CombinedOutput()
	if err != nil {
		t.Fatalf("lxc-info -n %s -p: %v\n%s", name, err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(line, "PID:"); ok {
			pid, _ := strconv.Atoi(strings.TrimSpace(v))
			return pid
		}
	}
	return 0
}

// mixedLXCUTSName is the hostname an LXC container is configured with.
func mixedLXCUTSName(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.Command("lxc-config", "lxc.lxcpath").Output()
	if err != nil {
		t.Fatalf("lxc-config lxc.lxcpath: %v", err)
	}
	cfg, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(path)), name, "config"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(cfg), "\n") {
		k, v, ok := strings.Cut(line, "=")
		if ok && (strings.TrimSpace(k) == "lxc.uts.name" || strings.TrimSpace(k) == "lxc.utsname") {
			// LXC drops matching quotes around a value.
			v = strings.TrimSpace(v)
			if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
				v = v[1 : len(v)-1]
			}
			return v
		}
	}
	t.Fatalf("%s: no lxc.uts.name in its config", name)
	return ""
}

// mixedLXCCreate creates an LXC container (stopped) and destroys it at
// cleanup.
func mixedLXCCreate(t *testing.T, name string) {
	t.Helper()
	t.Cleanup(func() {
		exec.Command("lxc-stop", "-k", "-n", name).Run()
		if out, err := exec.Command("lxc-destroy", "-f", "-n", name).CombinedOutput(); err != nil &&
			!bytes.Contains(out, []byte("does not exist")) && !bytes.Contains(out, []byte("not defined")) {
			t.Logf("lxc-destroy %s: %v: %s", name, err, out)
		}
	})
	lxcRun(t, "../scripts/engines/lxc.sh", "create", name)
}

// mixedPrefix returns a prefix of id that no other ID known to the
// engines' own tools shares, shorter than id itself.
func mixedPrefix(t *testing.T, id string, all []string) string {
	t.Helper()
	for n := min(12, len(id)-1); n < len(id); n++ {
		p := id[:n]
		unique := true
		for _, other := range all {
			if other != id && strings.HasPrefix(other, p) {
				unique = false
				break
			}
		}
		if unique {
			return p
		}
	}
	t.Fatalf("no unique proper prefix for %s", id)
	return ""
}

// mixedAllIDs lists every container ID the engines' own tools know, so that
// the prefixes the test uses are unique whatever else is on the machine.
func mixedAllIDs(t *testing.T) []string {
	t.Helper()
	var ids []string
	add := func(out string) { ids = append(ids, strings.Fields(out)...) }
	add(dockerRun(t, "ps", "-aq", "--no-trunc"))
	add(podmanCLI(t, "ps", "-aq", "--no-trunc"))
	for _, ns := range strings.Fields(containerdMustCtr(t, "default", "namespaces", "ls", "-q")) {
		add(containerdMustCtr(t, ns, "containers", "ls", "-q"))
	}
	out, err := exec.Command("lxc-ls", "-1").Output()
	if err != nil {
		t.Fatalf("lxc-ls: %v", err)
	}
	add(string(out))
	return ids
}

// mixedEnv hides the PCP variables that would switch engines to other
// sources (on-disk Docker state, a fake lxc-info, ...).
func mixedEnv() []string {
	var env []string
	for _, k := range []string{"PCP_DOCKER_DIR", "PCP_PODMAN_DATADIR", "PCP_PODMAN_RUNDIR", "PCP_LXC_DIR", "PCP_LXC_INFO", "DOCKER_HOST"} {
		env = append(env, k+"=")
	}
	return env
}

// mixedRootctl runs rootctl in-process (the engines read by rootctl
// itself) with rootd's engine flags.
func mixedRootctl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(bins.rootctl, append([]string{"--config", "/dev/null", "--in-process", "--containerd-address", containerdSocket()}, args...)...)
	cmd.Env = append(os.Environ(), mixedEnv()...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("rootctl %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out), nil
}

// mixedTaskRemove deletes a containerd task once its exit is processed.
func mixedTaskRemove(t *testing.T, ns, id string) {
	t.Helper()
	containerdMustCtr(t, ns, "task", "kill", "-s", "KILL", id)
	deadline := time.Now().Add(containerdWait)
	for {
		_, err := containerdCtr(t, ns, "task", "rm", id)
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestMixedEngines runs one rootd over Docker, Podman, containerd and LXC
// containers at the same time and checks every answer, through rootd's Go
// client and through PCP's C client, against what each engine's own tools
// and /proc say. It needs every engine set up (scripts/setup.sh).
func TestMixedEngines(t *testing.T) {
	for _, tool := range []string{"nsenter", "lxc-create", "lxc-start", "lxc-info", "lxc-ls", "lxc-config"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found (run scripts/setup.sh): %v", tool, err)
		}
	}
	podmanRequire(t)
	containerdRequire(t)
	dockerRun(t, "version", "--format", "{{.Server.Version}}")

	tag := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	name := func(what string) string { return "rootd-mx-" + tag + "-" + what }
	ctrNS := containerdTestNamespace

	// Docker: two containers.
	dockerA, dockerB := name("docker-a"), name("docker-b")
	dockerAID := dockerStart(t, dockerA)
	dockerBID := dockerStart(t, dockerB)

	// Podman: two, one of them paused.
	podmanA, podmanP := name("podman-a"), name("podman-paused")
	podmanAID := podmanRunning(t, podmanA, "--hostname", podmanA+"-host", "--network", "none")
	podmanPausedID := podmanRunning(t, podmanP, "--hostname", podmanP+"-host", "--network", "none")
	podmanCLI(t, "pause", podmanP)

	// One name in Docker and in Podman.
	shared := name("shared")
	sharedDockerID := dockerStart(t, shared)
	sharedPodmanID := podmanRunning(t, shared, "--hostname", shared+"-host", "--network", "none")

	// containerd: one in a custom namespace, one Kubernetes container.
	ctrID := name("ctr")
	containerdRun(t, ctrNS, ctrID)
	k8sID := containerdHexID(t)
	podNS, pod, podCtr := "rootd-mx", "web-"+tag, "app"
	containerdRun(t, "k8s.io", k8sID,
		"--label", engine.LabelPodName+"="+pod,
		"--label", engine.LabelPodNamespace+"="+podNS,
		"--label", engine.LabelContainerName+"="+podCtr,
		"--label", "io.cri-containerd.kind=container")

	// LXC: one running, one stopped.
	lxcA, lxcStopped := name("lxc-run"), name("lxc-stopped")
	mixedLXCCreate(t, lxcA)
	mixedLXCCreate(t, lxcStopped)
	lxcRun(t, "lxc-start", "-n", lxcA)
	eventually(t, mixedWait, lxcA+" has an init PID", func() (bool, string) {
		pid := mixedLXCPID(t, lxcA)
		return pid > 0, fmt.Sprintf("pid %d", pid)
	})

	all := mixedAllIDs(t)
	dockerPID := func(id string) func(*testing.T) int {
		return func(t *testing.T) int { return dockerInspect(t, id).pid }
	}
	podmanPIDOf := func(name string) func(*testing.T) int {
		return func(t *testing.T) int { return podmanInspect(t, name).State.Pid }
	}
	ctrPID := func(ns, id string) func(*testing.T) int {
		return func(t *testing.T) int { return containerdTasks(t, ns)[id].pid }
	}
	fixedHost := func(h string) func(*testing.T, int) string {
		return func(*testing.T, int) string { return h }
	}
	named := func(label, eng, id, n string, state engine.State, pid func(*testing.T) int, host func(*testing.T, int) string) mixedTarget {
		return mixedTarget{label: label, engine: eng, id: id, name: n, state: state, pid: pid, host: host,
			queries: []string{n, id, mixedPrefix(t, id, all)}}
	}
	podmanPaused := named("podman paused", "podman", podmanPausedID, podmanP, engine.StatePaused, podmanPIDOf(podmanP), fixedHost(podmanP+"-host"))
	lxcRunning := named("lxc running", "lxc", lxcA, lxcA, engine.StateRunning,
		func(t *testing.T) int { return mixedLXCPID(t, lxcA) }, fixedHost(mixedLXCUTSName(t, lxcA)))
	targets := []mixedTarget{
		named("docker A", "docker", dockerAID, dockerA, engine.StateRunning, dockerPID(dockerAID), fixedHost(dockerA+"-host")),
		named("docker B", "docker", dockerBID, dockerB, engine.StateRunning, dockerPID(dockerBID), fixedHost(dockerB+"-host")),
		named("podman A", "podman", podmanAID, podmanA, engine.StateRunning, podmanPIDOf(podmanA), fixedHost(podmanA+"-host")),
		podmanPaused,
		// A ctr container's ID is its name.
		{label: "containerd " + ctrNS, engine: "containerd", id: ctrID, name: ctrID, state: engine.StateRunning,
			pid: ctrPID(ctrNS, ctrID), host: mixedUTSHostname,
			queries: []string{ctrID, mixedPrefix(t, ctrID, all)}},
		{label: "containerd k8s.io", engine: "containerd", id: k8sID, state: engine.StateRunning,
			display: podNS + "/" + pod + "/" + podCtr,
			pid:     ctrPID("k8s.io", k8sID), host: mixedUTSHostname,
			queries: []string{k8sID, mixedPrefix(t, k8sID, all), podNS + "/" + pod + "/" + podCtr}},
		lxcRunning,
	}
	sharedDocker := named("shared docker", "docker", sharedDockerID, shared, engine.StateRunning, dockerPID(sharedDockerID), fixedHost(shared+"-host"))
	sharedPodman := named("shared podman", "podman", sharedPodmanID, shared, engine.StateRunning, podmanPIDOf(shared), fixedHost(shared+"-host"))

	d := startRootd(t, mixedEnv(), "--containerd-address", containerdSocket())
	c := d.client(t)

	t.Run("lookups", func(t *testing.T) {
		for _, x := range targets {
			want := mixedExpectRunning(t, x)
			t.Logf("%s: %q -> pid %d host %q", x.label, x.queries, want.pid, want.host)
			mixedMust(t, c, d.socket, x.queries, want)
		}
		// The IDs and prefixes of the shared-name containers are theirs.
		mixedMust(t, c, d.socket, sharedDocker.queries[1:], mixedExpectRunning(t, sharedDocker))
		mixedMust(t, c, d.socket, sharedPodman.queries[1:], mixedExpectRunning(t, sharedPodman))
	})

	t.Run("ambiguous", func(t *testing.T) {
		for _, q := range []string{shared, "/" + shared} {
			mixedMust(t, c, d.socket, []string{q}, mixedExpect{code: codeNotUnique})
			if _, err := c.ProcessID(ctxT(t, 10*time.Second), q); !errors.Is(err, syscall.ENOTUNIQ) {
				t.Errorf("Go client %q: %v, want ENOTUNIQ", q, err)
			}
		}
		// ENGINE:NAME picks one. PCP's collectors would not pass ':' on,
		// but the library itself does, so the C client gets the same answer.
		mixedMust(t, c, d.socket, []string{"docker:" + shared}, mixedExpectRunning(t, sharedDocker))
		mixedMust(t, c, d.socket, []string{"podman:" + shared}, mixedExpectRunning(t, sharedPodman))
		// An engine qualifier searches only that engine.
		mixedMust(t, c, d.socket, []string{"lxc:" + shared, "podman:" + dockerA},
			mixedExpect{code: codeNoContainer})
		out, err := mixedRootctl(t, "resolve", shared)
		if err == nil || !strings.Contains(err.Error(), sharedDockerID[:12]) || !strings.Contains(err.Error(), sharedPodmanID[:12]) {
			t.Errorf("rootctl resolve %s: want an ambiguity naming both containers; got %v\n%s", shared, err, out)
		}
	})

	t.Run("paused", func(t *testing.T) {
		out, err := mixedRootctl(t, "resolve", "-o", "json", podmanP)
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Engine string `json:"engine"`
			ID     string `json:"id"`
			State  string `json:"state"`
			PID    int    `json:"pid"`
			Cgroup string `json:"cgroup"`
		}
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("rootctl resolve -o json: %v\n%s", err, out)
		}
		wantPID := podmanInspect(t, podmanP).State.Pid
		wantCG, _ := expectedCgroup(wantPID)
		if got.Engine != "podman" || got.ID != podmanPausedID || got.State != string(engine.StatePaused) || got.PID != wantPID || got.Cgroup != wantCG {
			t.Errorf("rootctl resolve -o json %s = %+v; podman says pid %d status %s, cgroup %q",
				podmanP, got, wantPID, podmanInspect(t, podmanP).State.Status, wantCG)
		}
	})

	t.Run("stopped", func(t *testing.T) {
		mixedMust(t, c, d.socket, []string{lxcStopped, "lxc:" + lxcStopped}, mixedExpect{code: codeNotRunning})
		if _, err := c.ProcessID(ctxT(t, 10*time.Second), lxcStopped); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("Go client %q: %v, want ESRCH", lxcStopped, err)
		}
		mixedMust(t, c, d.socket, []string{name("never-created")}, mixedExpect{code: codeNoContainer})
	})

	t.Run("rootctl ls", func(t *testing.T) {
		out, err := mixedRootctl(t, "ls")
		t.Logf("rootctl ls:\n%s", out)
		if err != nil {
			t.Fatal(err)
		}
		type row struct{ engine, id, name, state string }
		var rows []row
		for _, line := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
			f := strings.Fields(line)
			if len(f) != 6 {
				t.Errorf("rootctl ls: bad line %q", line)
				continue
			}
			rows = append(rows, row{f[0], f[1], f[2], f[3]})
		}
		short := func(id string) string { return (engine.Container{ID: id}).ShortID() }
		want := append([]mixedTarget{sharedDocker, sharedPodman}, targets...)
		want = append(want, mixedTarget{label: "lxc stopped", engine: "lxc", id: lxcStopped, name: lxcStopped, state: engine.StateStopped})
		for _, x := range want {
			wantName := cmp.Or(x.display, x.name, "-")
			found := false
			for _, r := range rows {
				if r.engine == x.engine && r.id == short(x.id) && r.name == wantName {
					found = true
					if r.state != string(x.state) {
						t.Errorf("rootctl ls: %s is %s, want %s", x.label, r.state, x.state)
					}
				}
			}
			if !found {
				t.Errorf("rootctl ls lacks %s (%s %s %s)", x.label, x.engine, short(x.id), wantName)
			}
		}
	})

	t.Run("no process per request", func(t *testing.T) {
		// The expected answers come from lxc-info, before the scan starts.
		want := mixedExpectRunning(t, lxcRunning)
		wantCG, err := expectedCgroup(want.pid)
		if err != nil {
			t.Fatal(err)
		}
		rootdPID := d.cmd.Process.Pid
		var (
			mu   sync.Mutex
			seen []string
		)
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				default:
				}
				if what := mixedSpawned(rootdPID); what != "" {
					mu.Lock()
					seen = append(seen, what)
					mu.Unlock()
				}
			}
		}()
		var wrong int
		for i := 0; i < 400; i++ {
			ctx := ctxT(t, 10*time.Second)
			var got, wantGot string
			var err error
			switch i % 3 {
			case 0:
				var pid int
				pid, err = c.ProcessID(ctx, lxcA)
				got, wantGot = strconv.Itoa(pid), strconv.Itoa(want.pid)
			case 1:
				got, err = c.CgroupName(ctx, "lxc:"+lxcA)
				wantGot = wantCG
			default:
				got, err = c.HostName(ctx, lxcA)
				wantGot = want.host
			}
			if err != nil || got != wantGot {
				wrong++
			}
		}
		names := make([]string, 100)
		for i := range names {
			names[i] = lxcA
		}
		for _, r := range cLookup(t, d.socket, "pid", names...) {
			if !r.OK || r.Value != strconv.Itoa(want.pid) {
				wrong++
			}
		}
		close(stop)
		<-done
		if wrong > 0 {
			t.Errorf("%d of 500 requests for %s did not answer pid %d", wrong, lxcA, want.pid)
		}
		if len(seen) > 0 {
			t.Errorf("processes appeared while rootd served 500 requests for %s: %q", lxcA, seen)
		}
	})

	t.Run("lifecycle", func(t *testing.T) {
		notRunning := func() mixedExpect { return mixedExpect{code: codeNotRunning} }
		gone := func() mixedExpect { return mixedExpect{code: codeNoContainer} }

		t.Run("docker", func(t *testing.T) {
			n := name("docker-late")
			id := dockerStart(t, n)
			x := named("docker late", "docker", id, n, engine.StateRunning, dockerPID(id), fixedHost(n+"-host"))
			mixedEventually(t, c, d.socket, "docker run", x.queries, func() mixedExpect { return mixedExpectRunning(t, x) })
			dockerRun(t, "stop", "-t", "0", id)
			mixedEventually(t, c, d.socket, "docker stop", x.queries, notRunning)
			dockerRun(t, "start", id)
			mixedEventually(t, c, d.socket, "docker start", x.queries, func() mixedExpect { return mixedExpectRunning(t, x) })
			dockerRun(t, "rm", "-f", id)
			mixedEventually(t, c, d.socket, "docker rm", x.queries, gone)
			// With the Docker one gone, the shared name is Podman's alone.
			dockerRun(t, "rm", "-f", sharedDockerID)
			mixedEventually(t, c, d.socket, "shared name after docker rm", []string{shared},
				func() mixedExpect { return mixedExpectRunning(t, sharedPodman) })
		})

		t.Run("podman", func(t *testing.T) {
			n := name("podman-late")
			id := podmanRunning(t, n, "--hostname", n+"-host", "--network", "none")
			x := named("podman late", "podman", id, n, engine.StateRunning, podmanPIDOf(n), fixedHost(n+"-host"))
			mixedEventually(t, c, d.socket, "podman run", x.queries, func() mixedExpect { return mixedExpectRunning(t, x) })
			podmanCLI(t, "stop", "-t", "0", n)
			mixedEventually(t, c, d.socket, "podman stop", x.queries, notRunning)
			podmanCLI(t, "start", n)
			mixedEventually(t, c, d.socket, "podman start", x.queries, func() mixedExpect { return mixedExpectRunning(t, x) })
			podmanCLI(t, "unpause", podmanP)
			mixedEventually(t, c, d.socket, "podman unpause", podmanPaused.queries, func() mixedExpect { return mixedExpectRunning(t, podmanPaused) })
			podmanCLI(t, "rm", "-f", "-t", "0", n)
			mixedEventually(t, c, d.socket, "podman rm", x.queries, gone)
		})

		t.Run("containerd", func(t *testing.T) {
			id := name("ctr-late")
			containerdRun(t, ctrNS, id)
			x := mixedTarget{label: "containerd late", id: id, pid: ctrPID(ctrNS, id), host: mixedUTSHostname,
				queries: []string{id, "containerd:" + id}}
			mixedEventually(t, c, d.socket, "ctr run", x.queries, func() mixedExpect { return mixedExpectRunning(t, x) })
			mixedTaskRemove(t, ctrNS, id)
			mixedEventually(t, c, d.socket, "ctr task kill and rm", x.queries, notRunning)
			containerdMustCtr(t, ctrNS, "task", "start", "-d", "--null-io", id)
			mixedEventually(t, c, d.socket, "ctr task start", x.queries, func() mixedExpect { return mixedExpectRunning(t, x) })
			mixedTaskRemove(t, ctrNS, id)
			containerdMustCtr(t, ctrNS, "containers", "rm", id)
			mixedEventually(t, c, d.socket, "ctr containers rm", x.queries, gone)
		})

		t.Run("lxc", func(t *testing.T) {
			x := mixedTarget{label: "lxc late", id: lxcStopped, pid: func(t *testing.T) int { return mixedLXCPID(t, lxcStopped) },
				host: fixedHost(mixedLXCUTSName(t, lxcStopped)), queries: []string{lxcStopped, "lxc:" + lxcStopped}}
			lxcRun(t, "lxc-start", "-n", lxcStopped)
			eventually(t, mixedWait, lxcStopped+" has an init PID", func() (bool, string) {
				pid := mixedLXCPID(t, lxcStopped)
				return pid > 0, fmt.Sprintf("pid %d", pid)
			})
			mixedEventually(t, c, d.socket, "lxc-start", x.queries, func() mixedExpect { return mixedExpectRunning(t, x) })
			lxcRun(t, "lxc-stop", "-k", "-n", lxcStopped)
			mixedEventually(t, c, d.socket, "lxc-stop", x.queries, notRunning)
			lxcRun(t, "lxc-destroy", "-n", lxcStopped)
			mixedEventually(t, c, d.socket, "lxc-destroy", x.queries, gone)
		})
	})
}

// mixedSpawned describes an lxc-info process or a child of rootd, if any
// exists now.
func mixedSpawned(rootdPID int) string {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return ""
	}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		status, err := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue
		}
		var comm string
		ppid := -1
		for _, line := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, "Name:"); ok {
				comm = strings.TrimSpace(v)
			}
			if v, ok := strings.CutPrefix(line, "PPid:"); ok {
				ppid, _ = strconv.Atoi(strings.TrimSpace(v))
			}
		}
		if comm == "lxc-info" || ppid == rootdPID {
			return fmt.Sprintf("%s (pid %s, parent %d)", comm, e.Name(), ppid)
		}
	}
	return ""
}

// TestMixedContainerdSameIDInTwoNamespaces: containerd IDs are unique only
// within a namespace, so `ctr -n A run IMG web` and `ctr -n B run IMG web`
// are two containers. rootd never guesses: "web" must be ambiguous, and
// both must be listed.
func TestMixedContainerdSameIDInTwoNamespaces(t *testing.T) {
	containerdRequire(t)
	id := "rootd-mx-dup-" + fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	containerdRun(t, containerdTestNamespace, id)
	containerdRun(t, "k8s.io", id)
	pids := map[string]int{
		containerdTestNamespace: containerdTasks(t, containerdTestNamespace)[id].pid,
		"k8s.io":                containerdTasks(t, "k8s.io")[id].pid,
	}

	d := startRootd(t, mixedEnv(), "--containerd-address", containerdSocket())
	c := d.client(t)
	for _, q := range []string{id, "containerd:" + id} {
		pid, err := c.ProcessID(ctxT(t, 10*time.Second), q)
		if !errors.Is(err, syscall.ENOTUNIQ) {
			t.Errorf("%q names containers in namespaces %s (pid %d) and k8s.io (pid %d): got pid %d, err %v; want ENOTUNIQ "+
				"(the resolver indexes containers by ID alone and keeps one of the two)",
				q, containerdTestNamespace, pids[containerdTestNamespace], pids["k8s.io"], pid, err)
		}
	}
	if r := cLookup(t, d.socket, "pid", id)[0]; r.OK || r.Code != codeNotUnique {
		t.Errorf("C client pid %q: %+v, want status %d", id, r, codeNotUnique)
	}
	out, err := mixedRootctl(t, "--engines", "containerd", "ls", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var rows []engine.Container
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("rootctl ls -o json: %v", err)
	}
	seen := map[string]int{}
	for _, r := range rows {
		if r.ID == id {
			seen[r.Namespace] = r.PID
		}
	}
	if seen[containerdTestNamespace] != pids[containerdTestNamespace] || seen["k8s.io"] != pids["k8s.io"] {
		t.Errorf("rootctl ls lists %s as %v (namespace: pid); ctr says %v", id, seen, pids)
	}
}
