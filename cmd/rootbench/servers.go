package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rootd-project/rootd/client"
	"github.com/rootd-project/rootd/internal/procfs"
)

// Sleepers are the long-lived processes the synthetic containers that
// are never asked about point at: each in a UTS namespace of its own with
// its own hostname, and in a cgroup other than the root one. They are not
// in cgroups named after those containers, so rootd would refuse to answer
// with them (resolver/verify.go); rootd verifies a container's PID only
// when it is asked about, and the benchmark asks only about the containers
// whose init processes are Inits.
type Sleepers struct {
	cmds      []*exec.Cmd
	Hostnames []string
	tree      *CgroupTree
	placed    bool // moved into tree's "shared" cgroup: remove it on Stop
}

// startSleeper starts one sleeper: a process in a UTS namespace of its own
// whose hostname is host. waitSleeping waits until it has set it.
func startSleeper(host string) (*exec.Cmd, error) {
	// Writing /proc/sys/kernel/hostname sets the hostname of the UTS
	// namespace the shell was started in: its own.
	cmd := exec.Command("/bin/sh", "-c", "echo "+host+" > /proc/sys/kernel/hostname && exec sleep 2147483647")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUTS, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start sleeper: %w", err)
	}
	return cmd, nil
}

// waitSleeping waits until each of cmds has set its hostname and become
// sleep.
func waitSleeping(cmds []*exec.Cmd) error {
	deadline := time.Now().Add(5 * time.Second)
	for _, c := range cmds {
		for {
			comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", c.Process.Pid))
			if strings.TrimSpace(string(comm)) == "sleep" {
				break
			}
			if time.Now().After(deadline) {
				return errors.New("sleepers did not start")
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return nil
}

// killAll kills and reaps cmds.
func killAll(cmds []*exec.Cmd) {
	for _, c := range cmds {
		c.Process.Kill()
		c.Wait()
	}
}

// StartSleepers starts n sleepers. If they would sit in the root cgroup
// (a container never does, and rootd refuses to name it) they are moved
// into the cgroup "shared" of tree.
func StartSleepers(n int, tree *CgroupTree) (*Sleepers, error) {
	s := &Sleepers{tree: tree}
	for i := range n {
		host := fmt.Sprintf("rootbench-ctr%d", i)
		cmd, err := startSleeper(host)
		if err != nil {
			s.Stop()
			return nil, err
		}
		s.cmds = append(s.cmds, cmd)
		s.Hostnames = append(s.Hostnames, host)
	}
	if err := waitSleeping(s.cmds); err != nil {
		s.Stop()
		return nil, err
	}
	if _, err := procfs.CgroupPath(s.cmds[0].Process.Pid); errors.Is(err, procfs.ErrRootCgroup) {
		s.placed = true
		for _, c := range s.cmds {
			if _, err := tree.Place("shared", c.Process.Pid); err != nil {
				s.Stop()
				return nil, err
			}
		}
	}
	return s, nil
}

// PIDs returns the sleepers' process IDs.
func (s *Sleepers) PIDs() []int {
	var pids []int
	for _, c := range s.cmds {
		pids = append(pids, c.Process.Pid)
	}
	return pids
}

// Stop kills the sleepers and removes their cgroup.
func (s *Sleepers) Stop() {
	killAll(s.cmds)
	if s.placed {
		if err := s.tree.RemoveUnder("shared"); err != nil {
			log.Printf("remove the sleepers' cgroup: %v", err)
		}
	}
}

// Init is the init process of one synthetic container the benchmark asks
// about, and what both servers must answer for it.
type Init struct {
	PID      int
	Cgroup   string // its cgroup path as rootd answers it: no leading slash
	Hostname string // its UTS namespace's hostname: the ID's first 12 digits, as Docker's default
}

// Inits are the init processes of the containers a synthetic set's
// queries name (set.Positions): one process per container, each in a UTS
// namespace of its own and in a cgroup of its own, BASE/docker/<id> on the
// hierarchy rootd reads, named as Docker's cgroupfs driver names a
// container's cgroup (/docker/<id>; Kubernetes: /kubepods/.../<id>). The
// container's state file is rewritten to point at it, so rootd finds it
// there exactly as it finds a real container's init, and verifies it the
// same way: its cgroup path holds the ID as a whole component, one of the
// Docker engine's cgroup marks. The reference reads the same state file.
type Inits struct {
	tree    *CgroupTree
	cmds    []*exec.Cmd
	cgroups []string // relative to tree's base, to remove
	ByIndex map[int]Init
}

// StartInits starts the init processes of set's queried containers and
// points their state files at them.
func StartInits(tree *CgroupTree, set *SyntheticSet) (*Inits, error) {
	in := &Inits{tree: tree, ByIndex: map[int]Init{}}
	var indexes []int
	for _, i := range set.Positions {
		if !slices.Contains(indexes, i) {
			indexes = append(indexes, i)
		}
	}
	for _, i := range indexes {
		cmd, err := startSleeper(set.IDs[i][:12])
		if err != nil {
			in.Stop()
			return nil, err
		}
		in.cmds = append(in.cmds, cmd)
	}
	if err := waitSleeping(in.cmds); err != nil {
		in.Stop()
		return nil, err
	}
	for k, i := range indexes {
		id, pid := set.IDs[i], in.cmds[k].Process.Pid
		rel := "docker/" + id
		in.cgroups = append(in.cgroups, rel)
		cg, err := tree.Place(rel, pid)
		if err == nil {
			err = set.SetPID(i, pid)
		}
		if err != nil {
			in.Stop()
			return nil, err
		}
		in.ByIndex[i] = Init{PID: pid, Cgroup: cg, Hostname: id[:12]}
	}
	return in, nil
}

// Stop kills the init processes and removes their cgroups.
func (in *Inits) Stop() {
	killAll(in.cmds)
	for _, rel := range in.cgroups {
		if err := in.tree.RemoveUnder(rel); err != nil {
			log.Printf("remove a container's cgroup: %v", err)
		}
	}
}

// Server is one running root-socket server.
type Server struct {
	Label  string // "rootd" or "reference"
	Socket string
	cmd    *exec.Cmd
	done   chan struct{} // closed when the started process has exited
	// pidOf finds the process that answers the socket (pmdaroot is pmcd's
	// child, not the process started here).
	pidOf func() int
}

// PID returns the process that serves the socket, 0 if unknown.
func (s *Server) PID() int { return s.pidOf() }

// Stop terminates the server and waits for it.
func (s *Server) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

// newServer starts cmd and returns it as a Server.
func newServer(label, socket string, cmd *exec.Cmd, pidOf func() int) (*Server, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", label, err)
	}
	s := &Server{Label: label, Socket: socket, cmd: cmd, done: make(chan struct{}), pidOf: pidOf}
	if s.pidOf == nil {
		s.pidOf = func() int { return cmd.Process.Pid }
	}
	go func() { cmd.Wait(); close(s.done) }()
	return s, nil
}

// Tools locates the programs the benchmark runs.
type Tools struct {
	Rootd    string
	Driver   string
	Pmcd     string
	Pmdaroot string
	Floor    string
}

// StartRootd starts rootd on socket with env added to its environment.
// engines is its --engines value ("" for all).
func StartRootd(t Tools, work, socket, engines string, env []string) (*Server, error) {
	// --config /dev/null: the host's /etc/rootd/rootd.conf must not change
	// what is measured.
	args := []string{"--config", os.DevNull, "-s", socket, "-l", filepath.Join(work, "rootd.log"), "--log-level", "warn"}
	if engines != "" {
		args = append(args, "--engines", engines)
	}
	cmd := exec.Command(t.Rootd, args...)
	cmd.Env = append(cleanEnv(), env...)
	return newServer("rootd", socket, cmd, nil)
}

// cleanEnv is this process's environment without the variables that steer
// the servers' engines: each server gets exactly what the run gives it.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "PCP_DOCKER_DIR", "PCP_PODMAN_DATADIR", "PCP_PODMAN_RUNDIR", "PCP_LXC_DIR", "PCP_TMP_DIR", "DOCKER_HOST":
			continue
		}
		out = append(out, kv)
	}
	return out
}

// StartReference starts PCP's pmdaroot under a private pmcd in work, with
// env added to pmcd's environment (pmcd passes it on to pmdaroot).
func StartReference(t Tools, work string, env []string) (*Server, error) {
	if err := os.MkdirAll(filepath.Join(work, "tmp"), 0o700); err != nil {
		return nil, err
	}
	socket := filepath.Join(work, "root.socket")
	conf := fmt.Sprintf("root 1 pipe binary %s -s %s -l %s\n", t.Pmdaroot, socket, filepath.Join(work, "root.log"))
	if err := os.WriteFile(filepath.Join(work, "pmcd.conf"), []byte(conf), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(work, "pmns"), []byte(referencePMNS), 0o644); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(t.Pmcd, "-f", "-c", filepath.Join(work, "pmcd.conf"), "-n", filepath.Join(work, "pmns"),
		"-U", "root", "-s", filepath.Join(work, "pmcd.socket"), "-p", strconv.Itoa(port), "-i", "127.0.0.1",
		"-l", filepath.Join(work, "pmcd.log"))
	// A private PCP_TMP_DIR: pmcd looks for a root service under it at
	// start-up, and must not find a rootd that something else runs.
	// PCP_BINADM_DIR: pmcd runs pmcpp on the namespace from there, and an
	// extracted (not installed) pcp package has it beside pmcd.
	cmd.Env = append(cleanEnv(), append([]string{
		"PCP_TMP_DIR=" + filepath.Join(work, "tmp"),
		"PCP_BINADM_DIR=" + filepath.Dir(t.Pmcd),
	}, env...)...)
	var srv *Server
	srv, err = newServer("reference", socket, cmd, func() int { return childOf(srv.cmd.Process.Pid, "pmdaroot") })
	return srv, err
}

// The reference's namespace: only its containers subtree, as domain 1.
const referencePMNS = `root {
    containers
}
containers {
    engine      1:0:0
    name        1:0:1
    pid         1:0:2
    state
    cgroup      1:0:6
}
containers.state {
    running     1:0:3
    paused      1:0:4
    restarting  1:0:5
}
`

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// childOf returns the first child of parent whose command is comm.
func childOf(parent int, comm string) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		c, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if strings.TrimSpace(string(c)) != comm {
			continue
		}
		if ppid, _ := statusField(pid, "PPid"); ppid == parent {
			return pid
		}
	}
	return 0
}

// statusField reads a numeric field (kB for sizes) of /proc/PID/status.
func statusField(pid int, field string) (int, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && k == field {
			return strconv.Atoi(strings.Fields(v)[0])
		}
	}
	return 0, fmt.Errorf("pid %d: no %s in status", pid, field)
}

// WaitAnswer polls socket until a PROCESSID request for name succeeds and
// returns how long that took from since. Only a connection refused or a
// missing socket (not up yet) or not-found answer (not indexed yet) is
// retried.
func WaitAnswer(ctx context.Context, srv *Server, name string, since time.Time, limit time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var last error
	for {
		cl, err := client.Connect(ctx, srv.Socket)
		if err == nil {
			_, err = cl.ProcessID(ctx, name)
			cl.Close()
			if err == nil {
				return time.Since(since), nil
			}
		}
		last = err
		select {
		case <-ctx.Done():
			return 0, fmt.Errorf("no answer for %q on %s within %v: %w", name, srv.Socket, limit, last)
		case <-srv.done:
			return 0, fmt.Errorf("%s exited before answering (%v); see its log", srv.Label, srv.cmd.ProcessState)
		case <-time.After(200 * time.Microsecond):
		}
	}
}

// waitSocket waits until srv accepts a connection and greets it.
func waitSocket(ctx context.Context, srv *Server, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		cl, err := client.Connect(ctx, srv.Socket)
		if err == nil {
			cl.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not answer on %s: %w", srv.Label, srv.Socket, err)
		case <-srv.done:
			return fmt.Errorf("%s exited (%v)", srv.Label, srv.cmd.ProcessState)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// synthHost is what the synthetic container sets of every size share: the
// benchmark's cgroup tree, the sleepers in it, and an empty directory for
// the engines that must find nothing.
type synthHost struct {
	tree  *CgroupTree
	sl    *Sleepers
	empty string
}

// startSynthHost makes the tree, starts n sleepers in it and makes
// work/empty; stop removes what it made.
func startSynthHost(n int, work string) (*synthHost, error) {
	tree, err := NewCgroupTree()
	if err != nil {
		return nil, err
	}
	h := &synthHost{tree: tree, empty: filepath.Join(work, "empty")}
	if h.sl, err = StartSleepers(n, tree); err != nil {
		h.stop()
		return nil, err
	}
	if err := os.MkdirAll(h.empty, 0o755); err != nil {
		h.stop()
		return nil, err
	}
	return h, nil
}

func (h *synthHost) stop() {
	if h.sl != nil {
		h.sl.Stop()
	}
	if err := h.tree.Remove(); err != nil {
		log.Printf("remove the benchmark's cgroups: %v", err)
	}
}
