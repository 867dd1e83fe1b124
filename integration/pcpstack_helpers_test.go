//go:build integration

package integration

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The real PCP stack: pmcd, its agents and PCP's own tools, unpacked by
// scripts/engines/pcp.sh into a private tree that its pcp.conf describes.

// pcpToolTimeout bounds every run of a PCP tool: a hung lookup must fail the
// test, never hang it.
const pcpToolTimeout = 20 * time.Second

// pcpInstall is where scripts/engines/pcp.sh put PCP.
type pcpInstall struct {
	conf     string // the private pcp.conf, for PCP_CONF
	binDir   string // PCP_BIN_DIR: pminfo, pmprobe, pmval
	binAdm   string // PCP_BINADM_DIR: pmcd, pmnsmerge
	pmdasAdm string // PCP_PMDASADM_DIR: the agents' programs
	pmnsDir  string // the package's PMNS files (root_linux, ...)
}

// pcpRequire finds the private PCP installation and fails (never skips)
// when it is not there.
func pcpRequire(t *testing.T) pcpInstall {
	t.Helper()
	home := os.Getenv("ROOTD_PCP_HOME")
	if home == "" {
		home = "/var/lib/rootd-ci/pcp"
	}
	conf := filepath.Join(home, "pcp.conf")
	f, err := os.Open(conf)
	if err != nil {
		t.Fatalf("PCP is not set up (run scripts/engines/pcp.sh): %v", err)
	}
	defer f.Close()
	vars := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "="); ok && !strings.HasPrefix(k, "#") {
			vars[k] = strings.Trim(v, `"'`)
		}
	}
	in := pcpInstall{
		conf:     conf,
		binDir:   vars["PCP_BIN_DIR"],
		binAdm:   vars["PCP_BINADM_DIR"],
		pmdasAdm: vars["PCP_PMDASADM_DIR"],
		pmnsDir:  filepath.Join(vars["PCP_VAR_DIR"], "pmns"),
	}
	for _, p := range []string{
		in.tool("pminfo"), in.tool("pmprobe"), in.tool("pmval"),
		filepath.Join(in.binAdm, "pmcd"), filepath.Join(in.binAdm, "pmnsmerge"),
		in.agent("linux", "pmdalinux"), in.agent("proc", "pmdaproc"),
		in.agent("sample", "pmdasample"), in.agent("pmcd", "pmda_pmcd.so"),
	} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("PCP is incomplete (run scripts/engines/pcp.sh): %v", err)
		}
	}
	return in
}

func (in pcpInstall) tool(name string) string { return filepath.Join(in.binDir, name) }

func (in pcpInstall) agent(dir, file string) string { return filepath.Join(in.pmdasAdm, dir, file) }

// pcpAgent is one line of pmcd.conf.
type pcpAgent struct {
	label  string
	domain int
	argv   []string // for a pipe agent; empty for the pmcd DSO
}

// pcpStack is a private pmcd with its agents, started through a private
// rootd. Every path is under dir: no system path of PCP is touched.
type pcpStack struct {
	in       pcpInstall
	dir      string
	env      []string // PCP_CONF and the private PCP_*_DIR variables
	socket   string   // pmcd's unix socket
	pmcdConf string
	pmns     string
	rootd    *daemon
	daemon   bool          // pmcd detached itself (no -f); its pid is in pmcd.pid
	pmcd     *exec.Cmd     // when in the foreground
	pmcdDone chan struct{} // closed when that pmcd has exited
	pmcdPID  int
}

// agents are what pmcd.conf lists (pmcd's own DSO, then pipe agents).
func (s *pcpStack) agentLine(a pcpAgent) string {
	if a.label == "pmcd" {
		return fmt.Sprintf("pmcd\t2\tdso\tpmcd_init\t%s", s.in.agent("pmcd", "pmda_pmcd.so"))
	}
	return fmt.Sprintf("%s\t%d\tpipe\tbinary\t%s", a.label, a.domain, strings.Join(a.argv, " "))
}

// The agents the tests configure. Each agent's log is in the stack's
// directory, which is also how its processes are told from other stacks'.
func (s *pcpStack) agentPMCD() pcpAgent { return pcpAgent{label: "pmcd", domain: 2} }
func (s *pcpStack) agentProc() pcpAgent {
	return pcpAgent{label: "proc", domain: 3, argv: []string{s.in.agent("proc", "pmdaproc"), "-d", "3", "-l", s.logPath("proc.log")}}
}
func (s *pcpStack) agentLinux() pcpAgent {
	return pcpAgent{label: "linux", domain: 60, argv: []string{s.in.agent("linux", "pmdalinux"), "-l", s.logPath("linux.log")}}
}
func (s *pcpStack) agentSample() pcpAgent {
	return pcpAgent{label: "sample", domain: 29, argv: []string{s.in.agent("sample", "pmdasample"), "-d", "29", "-l", s.logPath("sample.log")}}
}

func (s *pcpStack) logPath(name string) string { return filepath.Join(s.dir, "log", name) }

// writeConf (re)writes pmcd.conf with these agents. No "root" line: rootd
// is the root service, started separately.
func (s *pcpStack) writeConf(t *testing.T, agents ...pcpAgent) {
	t.Helper()
	var b strings.Builder
	for _, a := range agents {
		b.WriteString(s.agentLine(a) + "\n")
	}
	// pmcd running as pcp reads it again on SIGHUP.
	if err := os.WriteFile(s.pmcdConf, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// pcpStackOptions chooses how pmcd runs.
type pcpStackOptions struct {
	// daemon starts pmcd as in production: it detaches (no -f) and runs as
	// PCP_USER (no -U), after starting its agents as root through rootd.
	daemon bool
	agents func(s *pcpStack) []pcpAgent // default: pmcd, proc, linux
}

// pcpFreePort is a TCP port nothing listens on now. pmcd insists on one.
func pcpFreePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// pcpUser is the PCP account scripts/engines/pcp.sh creates.
func pcpUser(t *testing.T) (uid, gid int) {
	t.Helper()
	u, err := user.Lookup("pcp")
	if err != nil {
		t.Fatalf("no pcp user (run scripts/engines/pcp.sh): %v", err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid
}

// envWithout is os.Environ less the given variables: PCP_CONTAINER in the
// test's own environment would change every answer.
func envWithout(keys ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(keys, k) {
			env = append(env, kv)
		}
	}
	return env
}

// startPCPStack starts rootd, then pmcd with its agents, in a new private
// directory, and stops both (pmcd first) at cleanup, checking that no agent
// is left.
func startPCPStack(t *testing.T, opts pcpStackOptions) *pcpStack {
	t.Helper()
	in := pcpRequire(t)
	uid, gid := pcpUser(t)
	// Not t.TempDir: its parent is 0700, and pmcd running as pcp reads
	// pmcd.conf and the PMNS from here.
	dir, err := os.MkdirTemp("", "pcps-stack-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &pcpStack{
		in:  in,
		dir: dir,
		// In PCP_RUN_DIR, as by default: pmcd running as pcp unlinks it
		// at exit.
		socket:   filepath.Join(dir, "run", "pmcd.socket"),
		pmcdConf: filepath.Join(dir, "pmcd.conf"),
		pmns:     filepath.Join(dir, "pmns"),
		daemon:   opts.daemon,
	}
	vars := map[string]string{"PCP_VAR_DIR": "var", "PCP_RUN_DIR": "run", "PCP_TMP_DIR": "tmp", "PCP_LOG_DIR": "log"}
	s.env = append(envWithout("PCP_CONTAINER"), "PCP_CONF="+in.conf)
	for k, sub := range vars {
		p := filepath.Join(dir, sub)
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
		// As pcp's post-install does for /var/log/pcp, /var/lib/pcp/tmp
		// and /run/pcp: the daemons write there after dropping to pcp.
		// PCP_VAR_DIR stays root's, and rootd makes its pmcd/ 0700 as the
		// package does.
		if k != "PCP_VAR_DIR" {
			if err := os.Chown(p, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
		s.env = append(s.env, k+"="+p)
	}

	// The PMNS: the package's own files, and sample's (whose "root" file
	// needs a generated header, so its subtree is included directly).
	sampleRoot := filepath.Join(dir, "root_sample")
	if err := os.WriteFile(sampleRoot, []byte(fmt.Sprintf("root {\n\tsample\n}\n#define SAMPLE 29\n#include %q\n",
		in.agent("sample", "pmns"))), 0o644); err != nil {
		t.Fatal(err)
	}
	merge := exec.Command(filepath.Join(in.binAdm, "pmnsmerge"), "-f",
		filepath.Join(in.pmnsDir, "root_root"), filepath.Join(in.pmnsDir, "root_pmcd"),
		filepath.Join(in.pmnsDir, "root_linux"), filepath.Join(in.pmnsDir, "root_proc"),
		sampleRoot, s.pmns)
	merge.Env = append(envWithout("PCP_CONTAINER"), "PCP_CONF="+in.conf)
	if out, err := merge.CombinedOutput(); err != nil {
		t.Fatalf("pmnsmerge: %v\n%s", err, out)
	}
	agents := []pcpAgent{s.agentPMCD(), s.agentProc(), s.agentLinux()}
	if opts.agents != nil {
		agents = opts.agents(s)
	}
	s.writeConf(t, agents...)

	s.rootd = s.startRootd(t)
	s.startPMCD(t)
	// pmcd answers before its agents have finished their first exchange;
	// a fetch of the host's nodename needs pmdalinux.
	eventually(t, 30*time.Second, "pmcd and pmdalinux answer", func() (bool, string) {
		r, err := s.pminfo(t, "", "kernel.uname.nodename")
		if err != nil {
			return false, err.Error()
		}
		v := r["kernel.uname.nodename"]
		return v.err == "" && v.values[""] != "", fmt.Sprintf("%+v", v)
	})
	return s
}

// startRootd starts rootd as the service pmcd finds: with no -s, so that it
// takes its socket from PCP_VAR_DIR in its environment as in production.
// The harness's daemon type stops it at cleanup (SIGTERM, exit 0, socket
// gone).
func (s *pcpStack) startRootd(t *testing.T) *daemon {
	t.Helper()
	socket := filepath.Join(s.dir, "var", "pmcd", "root.socket")
	return launchRootd(t, socket, append(slices.Clone(s.env), mixedEnv()...),
		"--log-level", "debug", "--containerd-address", containerdSocket())
}

// startPMCD starts pmcd on the stack's unix socket and a free loopback
// port. In the foreground it runs as root (-U root); as a daemon it detaches
// and drops to PCP_USER, as pmcd's init script starts it.
func (s *pcpStack) startPMCD(t *testing.T) {
	t.Helper()
	args := []string{"-c", s.pmcdConf, "-n", s.pmns, "-s", s.socket,
		"-p", strconv.Itoa(pcpFreePort(t)), "-i", "127.0.0.1", "-l", s.logPath("pmcd.log")}
	if !s.daemon {
		args = append([]string{"-f", "-U", "root"}, args...)
	}
	cmd := exec.Command(filepath.Join(s.in.binAdm, "pmcd"), args...)
	cmd.Env = s.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if s.daemon {
		// pmcd forks, and the parent exits once the child runs.
		if err := cmd.Run(); err != nil {
			t.Fatalf("pmcd %s: %v\n%s\n%s", strings.Join(args, " "), err, out.String(), s.pmcdLog())
		}
		pidFile := filepath.Join(s.dir, "run", "pmcd.pid")
		eventually(t, 15*time.Second, "pmcd writes "+pidFile, func() (bool, string) {
			b, err := os.ReadFile(pidFile)
			if err != nil {
				return false, err.Error()
			}
			s.pmcdPID, err = strconv.Atoi(strings.TrimSpace(string(b)))
			return err == nil && s.pmcdPID > 0, string(b)
		})
	} else {
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		s.pmcd = cmd
		s.pmcdPID = cmd.Process.Pid
		s.pmcdDone = make(chan struct{})
		go func() { cmd.Wait(); close(s.pmcdDone) }()
	}
	t.Cleanup(func() { s.stopPMCD(t) })
	eventually(t, 15*time.Second, "pmcd listens on "+s.socket, func() (bool, string) {
		c, err := net.Dial("unix", s.socket)
		if err != nil {
			if s.exited() {
				t.Fatalf("pmcd exited at start: %s\n%s", out.String(), s.pmcdLog())
			}
			return false, err.Error()
		}
		c.Close()
		return true, ""
	})
}

// stopPMCD sends pmcd SIGTERM and waits for it and for every agent of this
// stack to be gone. pmcd tells its agents to go by closing their pipes;
// rootd reaps them.
func (s *pcpStack) stopPMCD(t *testing.T) {
	t.Helper()
	if s.pmcdPID > 0 {
		syscall.Kill(s.pmcdPID, syscall.SIGTERM)
		deadline := time.Now().Add(10 * time.Second)
		for !s.exited() && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if !s.exited() {
			syscall.Kill(s.pmcdPID, syscall.SIGKILL)
			t.Errorf("pmcd (pid %d) ignored SIGTERM", s.pmcdPID)
		} else if _, err := os.Lstat(s.socket); err == nil {
			t.Errorf("pmcd left its socket %s behind", s.socket)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	left := s.agentPIDs("")
	for len(left) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		left = s.agentPIDs("")
	}
	for _, pid := range left {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Errorf("agent pid %d (%s) still running after pmcd stopped", pid, pcpCmdline(pid))
	}
	if t.Failed() {
		t.Logf("pmcd log:\n%s", s.pmcdLog())
		for _, name := range []string{"linux.log", "proc.log", "sample.log"} {
			if b, err := os.ReadFile(s.logPath(name)); err == nil {
				t.Logf("%s:\n%s", name, b)
			}
		}
	}
}

// exited tells whether pmcd is gone: the foreground one has been waited
// for; the daemon, reparented to init, has no /proc entry.
func (s *pcpStack) exited() bool {
	if s.pmcdDone != nil {
		select {
		case <-s.pmcdDone:
			return true
		default:
			return false
		}
	}
	_, err := os.Stat(fmt.Sprintf("/proc/%d", s.pmcdPID))
	return err != nil
}

func (s *pcpStack) pmcdLog() string {
	b, _ := os.ReadFile(s.logPath("pmcd.log"))
	return string(b)
}

// pcpCmdline is a process's command line, spaces between the words.
func pcpCmdline(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}

// agentPIDs lists the running processes of this stack's agent with that
// label ("" for any): its program with its log in this stack's directory.
func (s *pcpStack) agentPIDs(label string) []int {
	programs := map[string]string{
		"linux":  s.in.agent("linux", "pmdalinux"),
		"proc":   s.in.agent("proc", "pmdaproc"),
		"sample": s.in.agent("sample", "pmdasample"),
	}
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd := pcpCmdline(pid)
		if !strings.Contains(cmd, filepath.Join(s.dir, "log")+"/") {
			continue
		}
		for l, prog := range programs {
			if (label == "" || l == label) && strings.HasPrefix(cmd, prog+" ") {
				if st, _ := pcpProcStatus(pid); st["State"] != "" && !strings.HasPrefix(st["State"], "Z") {
					pids = append(pids, pid)
				}
			}
		}
	}
	return pids
}

// agentPID is the one running process of the agent, or an error saying
// what there is instead.
func (s *pcpStack) agentPID(label string) (int, error) {
	pids := s.agentPIDs(label)
	if len(pids) != 1 {
		return 0, fmt.Errorf("%d processes of agent %s: %v", len(pids), label, pids)
	}
	return pids[0], nil
}

// pcpProcStatus reads /proc/PID/status into a map.
func pcpProcStatus(pid int) (map[string]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	st := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			st[k] = strings.TrimSpace(v)
		}
	}
	return st, nil
}

// pcpParent is a process's parent pid.
func pcpParent(pid int) (int, error) {
	st, err := pcpProcStatus(pid)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(st["PPid"])
}

// agentOfRootd checks that the agent runs, once, as a child of rootd, and
// returns its pid.
func (s *pcpStack) agentOfRootd(label string) (int, error) {
	pid, err := s.agentPID(label)
	if err != nil {
		return 0, err
	}
	ppid, err := pcpParent(pid)
	if err != nil {
		return 0, fmt.Errorf("agent %s pid %d: %w", label, pid, err)
	}
	if ppid != s.rootd.cmd.Process.Pid {
		return 0, fmt.Errorf("agent %s pid %d has parent %d (%s), not rootd (%d)",
			label, pid, ppid, pcpCmdline(ppid), s.rootd.cmd.Process.Pid)
	}
	return pid, nil
}

// hup makes pmcd reread pmcd.conf.
func (s *pcpStack) hup(t *testing.T) {
	t.Helper()
	if err := syscall.Kill(s.pmcdPID, syscall.SIGHUP); err != nil {
		t.Fatalf("SIGHUP pmcd %d: %v", s.pmcdPID, err)
	}
}

// poke wakes pmcd with a connection. pmcd's SIGHUP handler only sets a
// flag that its main loop reads after select returns: a SIGHUP that lands
// while pmcd is busy (say, cleaning up an agent that just exited) is acted
// on at the next client activity, however long that takes (seen: 30 s of
// nothing until the test gave up). A production pmcd has clients; this
// test's pmcd has only the test.
func (s *pcpStack) poke() {
	if c, err := net.Dial("unix", s.socket); err == nil {
		c.Close()
	}
}

// pcpRun runs a PCP tool against the stack with a timeout. extraEnv comes
// last, so it wins.
func (s *pcpStack) run(tool string, extraEnv []string, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), pcpToolTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.in.tool(tool), append([]string{"-h", "unix:" + s.socket}, args...)...)
	cmd.Env = append(slices.Clone(s.env), extraEnv...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	if ctx.Err() != nil {
		err = fmt.Errorf("%s %s: timed out after %v: %w", tool, strings.Join(args, " "), pcpToolTimeout, ctx.Err())
	} else if err != nil {
		err = fmt.Errorf("%s %s: %w: %s", tool, strings.Join(args, " "), err, e.String())
	}
	return o.String(), e.String(), err
}

// pcpMetric is what a tool reported for one metric: values by instance
// name ("" for a metric without instances), or an error message.
type pcpMetric struct {
	values map[string]string
	err    string
}

// pcpContainerArgs selects the container the way the tool's user would:
// --container=NAME, or the PCP_CONTAINER variable when viaEnv.
func pcpContainerArgs(container string, viaEnv bool) (args, env []string) {
	switch {
	case container == "":
	case viaEnv:
		env = []string{"PCP_CONTAINER=" + container}
	default:
		args = []string{"--container=" + container}
	}
	return args, env
}

var (
	pminfoInst  = regexp.MustCompile(`^\s+inst \[\d+ or "(.*)"\] value (.*)$`)
	pminfoValue = regexp.MustCompile(`^\s+value (.*)$`)
	pminfoError = regexp.MustCompile(`^\s*Error: (.*)$`)
)

// pminfo runs `pminfo -f` for metrics in container ("" for the host)
// and parses its report:
//
//	kernel.uname.nodename
//	    value "web1-host"
//
//	network.interface.up
//	    inst [0 or "lo"] value 1
//	    Error: Container not found        (or on the name's line)
func (s *pcpStack) pminfo(t *testing.T, container string, metrics ...string) (map[string]pcpMetric, error) {
	res, _, err := s.pminfoVia(t, container, false, metrics...)
	return res, err
}

// pminfoVia is pminfo with the container given by PCP_CONTAINER when
// viaEnv; it also returns the command and its output, for the log.
func (s *pcpStack) pminfoVia(t *testing.T, container string, viaEnv bool, metrics ...string) (map[string]pcpMetric, string, error) {
	t.Helper()
	args, env := pcpContainerArgs(container, viaEnv)
	args = append(append(args, "-f"), metrics...)
	out, stderr, err := s.run("pminfo", env, args...)
	raw := strings.TrimSpace(fmt.Sprintf("%s pminfo -h unix:%s %s", strings.Join(env, " "), s.socket, strings.Join(args, " "))) + "\n" + out + stderr
	// pminfo exits non-zero when a metric has an error; the report still
	// says which.
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return nil, raw, err
	}
	res := map[string]pcpMetric{}
	cur := ""
	// Only standard output: pminfo reports per-metric errors there, in
	// place; standard error (in raw) has whole-command failures.
	for _, line := range strings.Split(out, "\n") {
		if line == "" {
			continue
		}
		if m := pminfoError.FindStringSubmatch(line); m != nil && cur != "" {
			r := res[cur]
			r.err = m[1]
			res[cur] = r
			continue
		}
		if !strings.HasPrefix(line, " ") {
			// "metric" or "metric: Error ..." when the fetch failed as a whole.
			name, msg, _ := strings.Cut(line, ": ")
			name = strings.TrimSpace(name)
			if slices.Contains(metrics, name) {
				cur = name
				res[cur] = pcpMetric{values: map[string]string{}, err: msg}
			}
			continue
		}
		if cur == "" {
			continue
		}
		if m := pminfoInst.FindStringSubmatch(line); m != nil {
			res[cur].values[m[1]] = pcpUnquote(m[2])
		} else if m := pminfoValue.FindStringSubmatch(line); m != nil {
			res[cur].values[""] = pcpUnquote(m[1])
		}
	}
	for _, m := range metrics {
		if _, ok := res[m]; !ok {
			return res, raw, fmt.Errorf("no report for %s in:\n%s", m, raw)
		}
	}
	return res, raw, nil
}

func pcpUnquote(v string) string {
	if u, err := strconv.Unquote(v); err == nil {
		return u
	}
	return v
}

// pmprobe runs `pmprobe FLAG` (-v for values, -I for instance names; it
// takes one of them at a time) and returns, per metric, the words after
// the count, or the negative status as code:
//
//	kernel.uname.nodename 1 "web1-host"              (-v)
//	network.interface.up 1 "lo"                       (-I)
//	kernel.uname.nodename -12399 Container not found
func (s *pcpStack) pmprobe(t *testing.T, container, flag string, metrics ...string) (words map[string][]string, codes map[string]int, err error) {
	t.Helper()
	args, env := pcpContainerArgs(container, false)
	out, _, err := s.run("pmprobe", env, append(append(args, flag), metrics...)...)
	if err != nil {
		return nil, nil, err
	}
	words = map[string][]string{}
	codes = map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		name, rest, _ := strings.Cut(line, " ")
		nstr, rest, _ := strings.Cut(rest, " ")
		n, err := strconv.Atoi(nstr)
		if err != nil {
			return nil, nil, fmt.Errorf("pmprobe: bad line %q", line)
		}
		codes[name] = n
		if n < 0 {
			continue
		}
		w, err := pcpWords(rest)
		if err != nil || len(w) != n {
			return nil, nil, fmt.Errorf("pmprobe: bad line %q (%v)", line, err)
		}
		words[name] = w
	}
	return words, codes, nil
}

// pcpWords splits pmprobe's values: bare words and "quoted strings".
func pcpWords(s string) ([]string, error) {
	var words []string
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		if s[0] == '"' {
			q, err := strconv.QuotedPrefix(s)
			if err != nil {
				return nil, err
			}
			words = append(words, pcpUnquote(q))
			s = s[len(q):]
			continue
		}
		w, rest, _ := strings.Cut(s, " ")
		words = append(words, w)
		s = rest
	}
	return words, nil
}

// pmval runs `pmval -s 1` for one metric without instances and returns the
// sample it printed ("" if none) and its standard error.
//
//	metric:    kernel.uname.nodename
//	host:      web1-host
//	...
//	samples:   1
//	   "web1-host"
func (s *pcpStack) pmval(t *testing.T, container, metric string) (sample, stderr string, err error) {
	t.Helper()
	args, env := pcpContainerArgs(container, false)
	out, stderr, err := s.run("pmval", env, append(args, "-s", "1", metric)...)
	if err != nil {
		return "", stderr, err
	}
	after := false
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "samples:") {
			after = true
			continue
		}
		if after && strings.TrimSpace(line) != "" {
			return pcpUnquote(strings.TrimSpace(line)), stderr, nil
		}
	}
	return "", stderr, nil
}

// pcpKeys are a metric's instance names, sorted.
func pcpKeys(m pcpMetric) []string {
	var k []string
	for n := range m.values {
		k = append(k, n)
	}
	slices.Sort(k)
	return k
}
