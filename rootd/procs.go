package rootd

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// maxUncollected bounds the exit statuses kept per owner that never
// collects them; past it that owner's oldest are dropped (and logged)
// rather than growing without limit. Per owner, so that one client cannot
// push out another's statuses.
const maxUncollected = 4096

// Exit is a child's pid and raw wait status, as waitpid(2) reports them.
type Exit struct {
	PID    int
	Status syscall.WaitStatus
	Label  string
}

// child is an agent still running.
type child struct {
	proc  *os.Process
	owner Owner
	label string
}

// Supervisor starts the agent processes pmcd asks for and is the only thing
// that may signal them. It reaps each child as soon as it exits and keeps
// the exit status until its owner collects it, so none is ever lost. Every
// agent belongs to the client process that started it (see Owner): only that
// process may signal it or collect its status.
type Supervisor struct {
	log    *slog.Logger
	policy *ExecPolicy
	stderr io.Writer

	mu     sync.Mutex
	live   map[int]*child
	exited map[Owner][]Exit
	wg     sync.WaitGroup

	started, reaped atomic.Uint64 // agents started and exited, ever
}

// SupervisorConfig configures a Supervisor.
type SupervisorConfig struct {
	Log *slog.Logger
	// Policy decides what each peer may start. When nil, one is made from
	// PMCDConf and AllowedPrograms.
	Policy *ExecPolicy
	// PMCDConf is pmcd's configuration: the command lines of its agents
	// are what non-root peers may start (see ExecPolicy).
	PMCDConf string
	// AllowedPrograms lists further executables non-root peers may start:
	// an entry ending in "/" allows every program below that directory,
	// any other entry one exact path. Root peers may start anything.
	AllowedPrograms []string
	// Stderr receives the children's standard error (default os.Stderr), as
	// pmdaroot's children write to pmcd's log through it.
	Stderr io.Writer
}

// NewSupervisor returns a Supervisor with no children.
func NewSupervisor(cfg SupervisorConfig) *Supervisor {
	s := &Supervisor{log: cfg.Log, policy: cfg.Policy, stderr: cfg.Stderr, live: map[int]*child{}, exited: map[Owner][]Exit{}}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.stderr == nil {
		s.stderr = os.Stderr
	}
	if s.policy == nil {
		s.policy = NewExecPolicy(ExecPolicyConfig{Log: s.log, PMCDConf: cfg.PMCDConf, AllowedPrograms: cfg.AllowedPrograms})
	}
	return s
}

// Started is a child that Start launched. For pipe children ToChild and
// FromChild are the parent's ends of its stdin and stdout; the caller passes
// them on and must close them.
type Started struct {
	PID       int
	ToChild   *os.File
	FromChild *os.File
}

// StartRequest is one STARTPMDA request.
type StartRequest struct {
	Peer  Peer  // who asks, which decides what it may start
	Owner Owner // who the agent will belong to
	Label string
	Argv  []string
	Pipe  bool
}

// Start launches req.Argv as a child, if the policy lets req.Peer start it
// (else an error matching ErrNotAllowed). With Pipe the child's stdin and
// stdout are pipes whose other ends are returned; otherwise its stdin is
// /dev/null and its stdout goes to stderr. The child inherits only
// descriptors 0-2: everything Go opens is close-on-exec. An exec failure
// returns an error and leaves no zombie, because os/exec reaps a child that
// failed to exec.
func (s *Supervisor) Start(req StartRequest) (Started, error) {
	argv := req.Argv
	if len(argv) == 0 || argv[0] == "" {
		return Started{}, errors.New("no program")
	}
	path, err := s.policy.resolve(req.Peer, argv, req.Pipe)
	if err != nil {
		return Started{}, err
	}
	cmd := exec.Command(path, argv[1:]...)
	cmd.Args[0] = argv[0]
	cmd.Stderr = s.stderr

	var out Started
	var childEnds []*os.File
	closeAll := func(fs ...*os.File) {
		for _, f := range fs {
			if f != nil {
				f.Close()
			}
		}
	}
	if req.Pipe {
		inR, inW, err := os.Pipe()
		if err != nil {
			return Started{}, err
		}
		outR, outW, err := os.Pipe()
		if err != nil {
			closeAll(inR, inW)
			return Started{}, err
		}
		cmd.Stdin, cmd.Stdout = inR, outW
		out.ToChild, out.FromChild = inW, outR
		childEnds = []*os.File{inR, outW}
	} else {
		cmd.Stdout = s.stderr
	}

	markInheritedCloseOnExec()

	// Registering under the lock keeps the exit watcher from reporting the
	// child before it is known to be ours.
	s.mu.Lock()
	err = cmd.Start()
	if err != nil {
		s.mu.Unlock()
		closeAll(childEnds...)
		closeAll(out.ToChild, out.FromChild)
		return Started{}, err
	}
	out.PID = cmd.Process.Pid
	s.live[out.PID] = &child{proc: cmd.Process, owner: req.Owner, label: req.Label}
	s.wg.Add(1)
	s.mu.Unlock()
	closeAll(childEnds...)

	s.started.Add(1)
	s.log.Info("started agent", "label", req.Label, "pid", out.PID, "argv", argv, "path", path, "pipe", req.Pipe,
		"owner", req.Owner.String(), "peer_uid", req.Peer.UID)
	go s.watch(req.Label, req.Owner, cmd)
	return out, nil
}

func (s *Supervisor) watch(label string, owner Owner, cmd *exec.Cmd) {
	defer s.wg.Done()
	_ = cmd.Wait() // the status is in ProcessState; a non-zero exit is not our error
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	pid := cmd.Process.Pid
	s.mu.Lock()
	delete(s.live, pid)
	q := s.exited[owner]
	if len(q) >= maxUncollected {
		s.log.Warn("dropping uncollected exit status", "pid", q[0].PID, "owner", owner.String())
		q = q[1:]
	}
	s.exited[owner] = append(q, Exit{PID: pid, Status: ws, Label: label})
	s.mu.Unlock()
	s.reaped.Add(1)
	s.log.Info("agent exited", "label", label, "pid", pid, "status", cmd.ProcessState.String(), "owner", owner.String())
}

// ErrNotOwner is returned when a client asks to signal an agent another
// client process started. It matches syscall.EPERM.
var ErrNotOwner = fmt.Errorf("agent belongs to another client: %w", syscall.EPERM)

// Signal sends sig to a child that owner started and that has not exited.
// Any other pid, including 0, negative process groups, rootd's own and
// another client's agents, is refused with EPERM and nothing is signalled.
func (s *Supervisor) Signal(owner Owner, pid int, sig syscall.Signal) error {
	s.mu.Lock()
	c, ok := s.live[pid]
	if !ok {
		exitedUncollected := false
		for _, e := range s.exited[owner] {
			if e.PID == pid {
				exitedUncollected = true
			}
		}
		s.mu.Unlock()
		if exitedUncollected && pid > 0 {
			return syscall.ESRCH
		}
		return syscall.EPERM
	}
	s.mu.Unlock()
	if c.owner != owner {
		return fmt.Errorf("pid %d started by %s: %w", pid, c.owner, ErrNotOwner)
	}
	return signalProcess(c.proc, sig)
}

// kill sends SIGKILL to a live child whoever owns it: for rootd's own use
// (an agent whose client vanished before learning of it).
func (s *Supervisor) kill(pid int) error {
	s.mu.Lock()
	c, ok := s.live[pid]
	s.mu.Unlock()
	if !ok {
		return syscall.ESRCH
	}
	return signalProcess(c.proc, syscall.SIGKILL)
}

func signalProcess(p *os.Process, sig syscall.Signal) error {
	// os.Process signals through a pidfd, so even a child that exits right
	// now cannot have its pid reused under us.
	if err := p.Signal(sig); err != nil {
		if errors.Is(err, os.ErrProcessDone) {
			return syscall.ESRCH
		}
		return err
	}
	return nil
}

// Collect returns the oldest exit status not yet collected among owner's
// agents. Other owners' statuses are never returned, as waitpid(-1) returns
// only the caller's own children.
func (s *Supervisor) Collect(owner Owner) (Exit, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.exited[owner]
	if len(q) == 0 {
		return Exit{}, false
	}
	e := q[0]
	if len(q) == 1 {
		delete(s.exited, owner)
	} else {
		s.exited[owner] = q[1:]
	}
	return e, true
}

// Live returns the pids of children still running.
func (s *Supervisor) Live() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	pids := make([]int, 0, len(s.live))
	for pid := range s.live {
		pids = append(pids, pid)
	}
	return pids
}

// LogUncollected logs every exit status nobody collected and every agent
// still running: called at shutdown, when the statuses would otherwise be
// lost without a trace. The agents keep running.
func (s *Supervisor) LogUncollected() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for owner, q := range s.exited {
		for _, e := range q {
			s.log.Info("exit status never collected", "owner", owner.String(), "label", e.Label, "pid", e.PID, "status", fmt.Sprintf("%#x", int(e.Status)))
		}
	}
	for pid, c := range s.live {
		s.log.Info("agent left running", "owner", c.owner.String(), "label", c.label, "pid", pid)
	}
}

// Counts returns how many agents s has started and how many of them have
// exited, since it was made.
func (s *Supervisor) Counts() (started, exited uint64) {
	return s.started.Load(), s.reaped.Load()
}

// Wait blocks until every child started so far has exited and been reaped.
// The daemon does not call it on shutdown: pmcd's agents outlive a restart
// of rootd. Tests use it to prove nothing is left behind.
func (s *Supervisor) Wait() { s.wg.Wait() }

// markInheritedCloseOnExec sets close-on-exec on every descriptor above
// stderr. Go opens its own descriptors that way, but rootd may have
// inherited others from whoever started it, and an agent must not get them.
func markInheritedCloseOnExec() {
	if err := unix.CloseRange(3, ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err == nil {
		return
	}
	// Kernels before 5.11 lack CLOSE_RANGE_CLOEXEC.
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
	for _, e := range entries {
		if fd, err := strconv.Atoi(e.Name()); err == nil && fd > 2 {
			unix.CloseOnExec(fd)
		}
	}
}
