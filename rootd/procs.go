package rootd

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// maxUncollected bounds the exit statuses kept for a client that never
// collects them; past it the oldest are dropped (and logged) rather than
// growing without limit.
const maxUncollected = 4096

// Exit is a child's pid and raw wait status, as waitpid(2) reports them.
type Exit struct {
	PID    int
	Status syscall.WaitStatus
}

// Supervisor starts the agent processes pmcd asks for and is the only thing
// that may signal them. It reaps each child as soon as it exits and keeps
// the exit status until a client collects it, so none is ever lost.
type Supervisor struct {
	log *slog.Logger
	// allowed, when non-nil, restricts which executables may be started.
	allowed []string
	stderr  io.Writer

	mu     sync.Mutex
	live   map[int]*os.Process
	exited []Exit
	wg     sync.WaitGroup
}

// SupervisorConfig configures a Supervisor.
type SupervisorConfig struct {
	Log *slog.Logger
	// AllowedPrograms, if not empty, lists the executables that may be
	// started: an entry ending in "/" allows every program below that
	// directory, any other entry one exact path. Paths are compared after
	// resolving symlinks, so a link cannot smuggle in another program.
	AllowedPrograms []string
	// Stderr receives the children's standard error (default os.Stderr), as
	// pmdaroot's children write to pmcd's log through it.
	Stderr io.Writer
}

// NewSupervisor returns a Supervisor with no children.
func NewSupervisor(cfg SupervisorConfig) *Supervisor {
	s := &Supervisor{log: cfg.Log, stderr: cfg.Stderr, live: map[int]*os.Process{}}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.stderr == nil {
		s.stderr = os.Stderr
	}
	for _, p := range cfg.AllowedPrograms {
		if p == "" {
			continue
		}
		clean := filepath.Clean(p)
		if strings.HasSuffix(p, "/") {
			clean += "/"
		}
		s.allowed = append(s.allowed, clean)
	}
	return s
}

// ErrNotAllowed is returned when a program is outside AllowedPrograms.
var ErrNotAllowed = errors.New("program not allowed")

func (s *Supervisor) checkAllowed(path string) error {
	if s.allowed == nil {
		return nil
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return err
	}
	real, err = filepath.Abs(real)
	if err != nil {
		return err
	}
	for _, a := range s.allowed {
		if real == a || strings.HasSuffix(a, "/") && strings.HasPrefix(real, a) {
			return nil
		}
	}
	return fmt.Errorf("%w: %s", ErrNotAllowed, real)
}

// Started is a child that Start launched. For pipe children ToChild and
// FromChild are the parent's ends of its stdin and stdout; the caller passes
// them on and must close them.
type Started struct {
	PID       int
	ToChild   *os.File
	FromChild *os.File
}

// Start launches argv as a child. With ipcPipe the child's stdin and stdout
// are pipes whose other ends are returned; otherwise its stdin is /dev/null
// and its stdout goes to stderr. The child inherits only descriptors 0-2:
// everything Go opens is close-on-exec. An exec failure returns an error and
// leaves no zombie, because os/exec reaps a child that failed to exec.
func (s *Supervisor) Start(label string, argv []string, ipcPipe bool) (Started, error) {
	if len(argv) == 0 || argv[0] == "" {
		return Started{}, errors.New("no program")
	}
	path, err := exec.LookPath(argv[0])
	if err != nil {
		return Started{}, err
	}
	if err := s.checkAllowed(path); err != nil {
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
	if ipcPipe {
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
	s.live[out.PID] = cmd.Process
	s.wg.Add(1)
	s.mu.Unlock()
	closeAll(childEnds...)

	s.log.Info("started agent", "label", label, "pid", out.PID, "argv", argv, "pipe", ipcPipe)
	go s.watch(label, cmd)
	return out, nil
}

func (s *Supervisor) watch(label string, cmd *exec.Cmd) {
	defer s.wg.Done()
	_ = cmd.Wait() // the status is in ProcessState; a non-zero exit is not our error
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	pid := cmd.Process.Pid
	s.mu.Lock()
	delete(s.live, pid)
	if len(s.exited) >= maxUncollected {
		s.log.Warn("dropping uncollected exit status", "pid", s.exited[0].PID)
		s.exited = s.exited[1:]
	}
	s.exited = append(s.exited, Exit{PID: pid, Status: ws})
	s.mu.Unlock()
	s.log.Info("agent exited", "label", label, "pid", pid, "status", cmd.ProcessState.String())
}

// Signal sends sig to a child that this Supervisor started and that has not
// exited. Any other pid, including 0, negative process groups and rootd's
// own, is refused with EPERM and nothing is signalled.
func (s *Supervisor) Signal(pid int, sig syscall.Signal) error {
	s.mu.Lock()
	p, ok := s.live[pid]
	if !ok {
		exitedUncollected := false
		for _, e := range s.exited {
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

// Collect returns the oldest exit status not yet collected.
func (s *Supervisor) Collect() (Exit, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.exited) == 0 {
		return Exit{}, false
	}
	e := s.exited[0]
	s.exited = s.exited[1:]
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
