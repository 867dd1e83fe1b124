//go:build integration

package integration

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pmcdStack is a private pmcd whose root agent is rootd --pmda, beside
// pmda_pmcd (dso), pmdaproc and pmdalinux. Every PCP path it uses is under
// dir; nothing of the system's PCP is touched.
type pmcdStack struct {
	pcp      pcpInstall
	dir      string
	conf     string // PCP_CONF
	socket   string // pmcd's unix socket
	rootSock string // the root socket, $PCP_VAR_DIR/pmcd/root.socket
	rootLog  string
	rootArgs []string
	cmd      *exec.Cmd
	done     chan error
	out      bytes.Buffer
}

// pmcdConfLine is the pmcd.conf line that makes rootd the root agent.
func pmcdConfLine(rootd string, args ...string) string {
	return strings.Join(append([]string{"root", "1", "pipe", "binary", rootd, "--pmda"}, args...), "\t")
}

func newPMCDStack(t *testing.T, rootdArgs ...string) *pmcdStack {
	t.Helper()
	pcp := pcpRequire(t)
	dir := t.TempDir()
	s := &pmcdStack{pcp: pcp, dir: dir, conf: filepath.Join(dir, "pcp.conf"), socket: filepath.Join(dir, "pmcd.socket"),
		rootSock: filepath.Join(dir, "var", "pmcd", "root.socket"), rootLog: filepath.Join(dir, "log", "pmcd", "root.log")}
	s.rootArgs = noHostConfig(append([]string{"--log-level", "debug"}, rootdArgs...))
	for _, d := range []string{"var/pmcd", "log/pmcd", "run", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sys, err := os.ReadFile(pcp.conf) // scripts/engines/pcp.sh's, pointing into its tree
	if err != nil {
		t.Fatal(err)
	}
	set := map[string]string{
		"PCP_VAR_DIR": filepath.Join(dir, "var"), "PCP_LOG_DIR": filepath.Join(dir, "log"),
		"PCP_RUN_DIR": filepath.Join(dir, "run"), "PCP_TMP_DIR": filepath.Join(dir, "tmp"),
		"PCP_PMCDCONF_PATH": filepath.Join(dir, "pmcd.conf"),
	}
	var conf strings.Builder
	for _, line := range strings.Split(string(sys), "\n") {
		if k, _, ok := strings.Cut(line, "="); ok && set[k] != "" {
			line = k + "=" + set[k]
		}
		conf.WriteString(line + "\n")
	}
	if err := os.WriteFile(s.conf, []byte(conf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	pmcdConf := strings.Join([]string{
		pmcdConfLine(bins.rootd, s.rootArgs...),
		"pmcd\t2\tdso\tpmcd_init\t" + pcp.agent("pmcd", "pmda_pmcd.so"),
		"proc\t3\tpipe\tbinary\t" + pcp.agent("proc", "pmdaproc") + " -d 3 -l " + filepath.Join(dir, "proc.log"),
		"linux\t60\tpipe\tbinary\t" + pcp.agent("linux", "pmdalinux") + " -l " + filepath.Join(dir, "linux.log"),
	}, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(dir, "pmcd.conf"), []byte(pmcdConf), 0o644); err != nil {
		t.Fatal(err)
	}
	merge := exec.Command(filepath.Join(pcp.binAdm, "pmnsmerge"), "-f")
	for _, p := range []string{"root_root", "root_pmcd", "root_linux", "root_proc"} {
		merge.Args = append(merge.Args, filepath.Join(pcp.pmnsDir, p))
	}
	merge.Args = append(merge.Args, filepath.Join(dir, "pmns"))
	merge.Env = s.env()
	if out, err := merge.CombinedOutput(); err != nil {
		t.Fatalf("pmnsmerge: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		s.stop(t)
		if t.Failed() {
			for _, f := range []string{"pmcd.log", "log/pmcd/root.log"} {
				b, _ := os.ReadFile(filepath.Join(dir, f))
				t.Logf("%s:\n%s", f, b)
			}
		}
	})
	return s
}

func (s *pmcdStack) env() []string {
	return append(os.Environ(), append(mixedEnv(), "PCP_CONF="+s.conf)...)
}

// start runs pmcd and waits until the root agent answers through it.
func (s *pmcdStack) start(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s.out.Reset()
	s.cmd = exec.Command(filepath.Join(s.pcp.binAdm, "pmcd"), "-f", "-c", filepath.Join(s.dir, "pmcd.conf"), "-n", filepath.Join(s.dir, "pmns"),
		"-U", "root", "-s", s.socket, "-p", strconv.Itoa(port), "-i", "127.0.0.1", "-l", filepath.Join(s.dir, "pmcd.log"))
	s.cmd.Env = s.env()
	s.cmd.Stdout, s.cmd.Stderr = &s.out, &s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.done = make(chan error, 1)
	go func() { s.done <- s.cmd.Wait() }()
	eventually(t, 20*time.Second, "pmcd answers with its agents up", func() (bool, string) {
		out, err := s.pminfo("-f", "pmcd.agent.status")
		// 0 is "running" for each of root, pmcd, proc and linux.
		return err == nil && strings.Count(out, "value 0") == 4, out
	})
}

// stop stops pmcd with SIGTERM, as systemd does.
func (s *pmcdStack) stop(t *testing.T) {
	t.Helper()
	if s.cmd == nil || s.cmd.ProcessState != nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(20 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
		t.Errorf("pmcd ignored SIGTERM:\n%s", s.out.String())
	}
}

func (s *pmcdStack) pminfo(args ...string) (string, error) {
	cmd := exec.Command(s.pcp.tool("pminfo"), append([]string{"-h", "unix:" + s.socket}, args...)...)
	cmd.Env = s.env()
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("pminfo %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func (s *pmcdStack) mustPminfo(t *testing.T, args ...string) string {
	t.Helper()
	out, err := s.pminfo(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// procsWith lists the processes whose command line holds every word.
func procsWith(words ...string) map[int]string {
	out := map[int]string{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		line := strings.ReplaceAll(string(bytes.TrimRight(b, "\x00")), "\x00", " ")
		all := true
		for _, w := range words {
			all = all && strings.Contains(line, w)
		}
		if all {
			out[pid] = line
		}
	}
	return out
}

func ppidOf(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	n, _ := strconv.Atoi(f[1])
	return n
}

// rootdPIDs finds this stack's rootd (its pmcd.conf line names our log dir
// only through PCP_LOG_DIR, so look for the binary and --pmda, and confirm
// by the environment).
func (s *pmcdStack) rootdPIDs() []int {
	var pids []int
	for pid := range procsWith(bins.rootd, "--pmda") {
		env, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err == nil && bytes.Contains(env, []byte("PCP_CONF="+s.conf+"\x00")) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// fetched is pminfo -f output: metric -> instance name -> value.
type fetched map[string]map[string]string

var instLine = regexp.MustCompile(`^\s+inst \[(\d+) or "([^"]*)"\] value (.*)$`)

func parseFetch(out string) fetched {
	res := fetched{}
	var metric string
	for _, line := range strings.Split(out, "\n") {
		if line == "" {
			continue
		}
		if !strings.HasPrefix(line, " ") {
			metric = strings.TrimSpace(line)
			res[metric] = map[string]string{}
			continue
		}
		if m := instLine.FindStringSubmatch(line); m != nil {
			res[metric][m[2]] = strings.Trim(m[3], `"`)
		}
	}
	return res
}

// fetchAll fetches containers.* once every wanted container is listed
// (a freshly started rootd answers before its first index is built).
func (s *pmcdStack) fetchAll(t *testing.T, wants []pmdaWant) fetched {
	t.Helper()
	var f fetched
	eventually(t, 20*time.Second, "every container listed", func() (bool, string) {
		out, err := s.pminfo("-f", "containers")
		f = parseFetch(out)
		for _, w := range wants {
			if _, ok := f["containers.engine"][w.id]; !ok || err != nil {
				return false, out
			}
		}
		return true, ""
	})
	return f
}

// pmdaWant is what containers.* must say about one container.
type pmdaWant struct {
	engine, id, name string
	pid              func(t *testing.T) int
}

// TestPMDA runs the real pmcd with rootd --pmda on its root line and checks
// PCP's own tools against what the engines and /proc say.
func TestPMDA(t *testing.T) {
	podmanRequire(t)
	containerdRequire(t)
	dockerRun(t, "version", "--format", "{{.Server.Version}}")

	tag := fmt.Sprintf("%d-%d", os.Getpid(), time.Now().UnixNano()%1e6)
	name := func(what string) string { return "pmda-" + what + "-" + tag }

	dockerN, podmanN, ctrN, lxcN := name("docker"), name("podman"), name("ctr"), name("lxc")
	dockerID := dockerStart(t, dockerN)
	podmanID := podmanRunning(t, podmanN, "--hostname", podmanN+"-host", "--network", "none")
	containerdRun(t, containerdTestNamespace, ctrN)
	mixedLXCCreate(t, lxcN)
	lxcRun(t, "lxc-start", "-n", lxcN)
	eventually(t, mixedWait, lxcN+" has an init PID", func() (bool, string) {
		pid := mixedLXCPID(t, lxcN)
		return pid > 0, fmt.Sprintf("pid %d", pid)
	})
	wants := []pmdaWant{
		{"docker", dockerID, dockerN, func(t *testing.T) int { return dockerInspect(t, dockerID).pid }},
		{"podman", podmanID, podmanN, func(t *testing.T) int { return podmanInspect(t, podmanN).State.Pid }},
		{"containerd", ctrN, ctrN, func(t *testing.T) int { return containerdTasks(t, containerdTestNamespace)[ctrN].pid }},
		{"lxc", lxcN, lxcN, func(t *testing.T) int { return mixedLXCPID(t, lxcN) }},
	}

	s := newPMCDStack(t, "--containerd-address", containerdSocket())
	s.start(t)

	t.Run("descriptors", func(t *testing.T) {
		got := s.mustPminfo(t, "-d", "containers")
		// pmdaroot's descriptors (PCP 6.0.3, src/pmdas/root/root.c).
		want := `
containers.engine
    Data Type: string  InDom: 1.0 0x400000
    Semantics: discrete  Units: none

containers.name
    Data Type: string  InDom: 1.0 0x400000
    Semantics: instant  Units: none

containers.pid
    Data Type: 32-bit unsigned int  InDom: 1.0 0x400000
    Semantics: instant  Units: none

containers.state.running
    Data Type: 32-bit unsigned int  InDom: 1.0 0x400000
    Semantics: instant  Units: none

containers.state.paused
    Data Type: 32-bit unsigned int  InDom: 1.0 0x400000
    Semantics: instant  Units: none

containers.state.restarting
    Data Type: 32-bit unsigned int  InDom: 1.0 0x400000
    Semantics: instant  Units: none

containers.cgroup
    Data Type: string  InDom: 1.0 0x400000
    Semantics: discrete  Units: none
`
		if got != want {
			t.Errorf("pminfo -d containers:\n%s\nwant:\n%s", got, want)
		}
		t.Logf("pminfo -d containers:%s", got)
		ids := s.mustPminfo(t, "-m", "containers")
		for i, m := range []string{"engine", "name", "pid", "state.running", "state.paused", "state.restarting", "cgroup"} {
			if !strings.Contains(ids, fmt.Sprintf("containers.%s PMID: 1.0.%d\n", m, i)) {
				t.Errorf("containers.%s is not 1.0.%d:\n%s", m, i, ids)
			}
		}
		help := s.mustPminfo(t, "-tT", "containers")
		if n := strings.Count(help, "\nHelp:\n"); n != 7 || strings.Contains(help, "<none>") || strings.Contains(help, "Error") {
			t.Errorf("pminfo -tT containers: %d metrics with help:\n%s", n, help)
		}
		// Labels: the agent's name, as every interface-7 agent gives.
		if out := s.mustPminfo(t, "-l", "containers.name"); !strings.Contains(out, `{"agent":"root",`) {
			t.Errorf("pminfo -l containers.name:\n%s", out)
		}
	})

	check := func(t *testing.T, f fetched, w pmdaWant) {
		t.Helper()
		pid := w.pid(t)
		cg, err := expectedCgroup(pid)
		if err != nil {
			t.Fatal(err)
		}
		for metric, want := range map[string]string{
			"containers.engine": w.engine, "containers.name": w.name, "containers.pid": strconv.Itoa(pid),
			"containers.state.running": "1", "containers.state.paused": "0", "containers.state.restarting": "0",
			"containers.cgroup": cg,
		} {
			if got, ok := f[metric][w.id]; !ok || got != want {
				t.Errorf("%s[%s] = %q (present %v), want %q", metric, w.id, got, ok, want)
			}
		}
	}

	t.Run("values", func(t *testing.T) {
		f := s.fetchAll(t, wants)
		out := s.mustPminfo(t, "-f", "containers")
		t.Logf("pminfo -f containers:\n%s", out)
		for _, w := range wants {
			check(t, f, w)
		}
		// One instance per container: each instance name once.
		seen := map[string]int{}
		for inst := range f["containers.engine"] {
			seen[inst]++
		}
		for _, w := range wants {
			if seen[w.id] != 1 {
				t.Errorf("%s appears %d times", w.id, seen[w.id])
			}
		}
	})

	t.Run("live", func(t *testing.T) {
		lateN := name("docker-late")
		lateID := dockerStart(t, lateN)
		eventually(t, mixedWait, lateN+" appears", func() (bool, string) {
			out, _ := s.pminfo("-f", "containers.name")
			return parseFetch(out)["containers.name"][lateID] == lateN, out
		})
		check(t, parseFetch(s.mustPminfo(t, "-f", "containers")), pmdaWant{"docker", lateID, lateN,
			func(t *testing.T) int { return dockerInspect(t, lateID).pid }})
		dockerRun(t, "rm", "-f", lateID)
		eventually(t, mixedWait, lateN+" disappears", func() (bool, string) {
			out, _ := s.pminfo("-f", "containers.name")
			_, there := parseFetch(out)["containers.name"][lateID]
			return !there, out
		})
	})

	t.Run("container context", func(t *testing.T) {
		for _, w := range []struct{ query, host string }{
			{dockerN, dockerN + "-host"},
			{podmanN, podmanN + "-host"},
			{ctrN, mixedUTSHostname(t, wants[2].pid(t))},
			{lxcN, mixedLXCUTSName(t, lxcN)},
		} {
			out := s.mustPminfo(t, "--container="+w.query, "-f", "kernel.uname.nodename", "pmcd.hostname")
			f := parseFetch(out)
			_ = f
			if strings.Count(out, `value "`+w.host+`"`) != 2 {
				t.Errorf("--container=%s: want hostname %q twice:\n%s", w.query, w.host, out)
			}
		}
	})

	t.Run("agents are rootd's children", func(t *testing.T) {
		roots := s.rootdPIDs()
		if len(roots) != 1 {
			t.Fatalf("rootd processes of this stack: %v", roots)
		}
		for _, agent := range []string{"linux/pmdalinux", "proc/pmdaproc"} {
			ps := procsWith(filepath.Join(s.pcp.pmdasAdm, agent), s.dir)
			if len(ps) != 1 {
				t.Fatalf("%s processes: %v", agent, ps)
			}
			for pid := range ps {
				if pp := ppidOf(pid); pp != roots[0] {
					t.Errorf("%s (pid %d) has parent %d, want rootd %d", agent, pid, pp, roots[0])
				}
			}
		}
		log, _ := os.ReadFile(s.rootLog)
		for _, want := range []string{"pmcd handshake done", "rootd listening", "started agent"} {
			if !bytes.Contains(log, []byte(want)) {
				t.Errorf("root.log lacks %q:\n%s", want, log)
			}
		}
	})

	t.Run("stop and start again", func(t *testing.T) {
		s.stop(t)
		eventually(t, 10*time.Second, "no rootd left", func() (bool, string) {
			left := s.rootdPIDs()
			return len(left) == 0, fmt.Sprint(left)
		})
		if ps := procsWith(s.dir, "pmda"); len(ps) != 0 {
			t.Errorf("processes left: %v", ps)
		}
		// A killed process's command line is gone (its memory released)
		// a moment before its descriptors are closed: allow for that.
		eventually(t, 10*time.Second, "the root socket stops answering after pmcd stopped", func() (bool, string) {
			c, err := net.Dial("unix", s.rootSock)
			if err == nil {
				c.Close()
				return false, s.rootSock + " still answers"
			}
			return true, ""
		})
		start := time.Now()
		s.start(t)
		t.Logf("pmcd with its four agents up again in %s", time.Since(start).Round(time.Millisecond))
		f := s.fetchAll(t, wants)
		for _, w := range wants {
			check(t, f, w)
		}
		s.stop(t)
	})

	// A standalone rootd already owns the socket: pmcd starts the PMDA-mode
	// rootd through it, and that one answers containers.* without
	// touching the socket.
	t.Run("socket owned by a standalone rootd", func(t *testing.T) {
		owner := exec.Command(bins.rootd, "--config", os.DevNull, "-s", s.rootSock, "--containerd-address", containerdSocket())
		owner.Env = s.env()
		var ownerLog bytes.Buffer
		owner.Stdout, owner.Stderr = &ownerLog, &ownerLog
		if err := owner.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			owner.Process.Signal(syscall.SIGTERM)
			owner.Wait()
			if t.Failed() {
				t.Logf("standalone rootd:\n%s", ownerLog.String())
			}
		}()
		eventually(t, 10*time.Second, "standalone rootd listening", func() (bool, string) {
			c, err := net.Dial("unix", s.rootSock)
			if err == nil {
				c.Close()
			}
			return err == nil, fmt.Sprint(err)
		})
		before, _ := os.ReadFile(s.rootLog)
		s.start(t)
		f := s.fetchAll(t, wants)
		for _, w := range wants {
			check(t, f, w)
		}
		out := s.mustPminfo(t, "--container="+dockerN, "-f", "kernel.uname.nodename")
		if !strings.Contains(out, `value "`+dockerN+`-host"`) {
			t.Errorf("--container through the standalone rootd:\n%s", out)
		}
		roots := s.rootdPIDs()
		if len(roots) != 1 || ppidOf(roots[0]) != owner.Process.Pid {
			t.Errorf("PMDA-mode rootd %v, want one child of the standalone rootd %d", roots, owner.Process.Pid)
		}
		log, _ := os.ReadFile(s.rootLog)
		if log = log[min(len(before), len(log)):]; !bytes.Contains(log, []byte("NOT serving the root socket")) {
			t.Errorf("root.log does not say the socket is someone else's:\n%s", log)
		}
		s.stop(t)
		eventually(t, 10*time.Second, "no PMDA-mode rootd left", func() (bool, string) {
			left := s.rootdPIDs()
			return len(left) == 0, fmt.Sprint(left)
		})
		if c, err := net.Dial("unix", s.rootSock); err != nil {
			t.Errorf("the standalone rootd's socket is gone: %v", err)
		} else {
			c.Close()
		}
	})
}
