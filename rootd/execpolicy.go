package rootd

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/rootd-project/rootd/internal/pcpconf"
	"github.com/rootd-project/rootd/wire"
	"golang.org/x/sys/unix"
)

// ErrNotAllowed is returned when a peer may not start a program: it is not
// one of pmcd's configured agents nor under --allow-exec, or its path is
// not one only root can change. Refusals reach the client as -EPERM.
var ErrNotAllowed = errors.New("program not allowed")

// maxRefusalsRemembered bounds the set of refusals already logged.
const maxRefusalsRemembered = 4096

// interpreters are programs that run the file named by their first
// argument: for them that file must be trusted too, or whoever could write
// it would run code as root.
var interpreters = regexp.MustCompile(`^(python[0-9.]*|perl[0-9.]*|ruby[0-9.]*|sh|bash|dash|ksh|mksh|zsh|node|nodejs|php[0-9.]*|lua[0-9.]*|tclsh[0-9.]*|wish[0-9.]*|awk|gawk|mawk|pmpython)$`)

// ExecPolicy decides which programs a peer may have rootd start.
//
// A root peer may start anything: it could run it itself. Any other peer
// (the PCP account, --allow-uid/--allow-gid users) may start only
//
//   - exactly the command line, word for word, of a pipe or socket agent in
//     pmcd's configuration, for that kind of agent; or
//   - a program under --allow-exec (with any arguments).
//
// Either way the program, the "#!" interpreter of a script and the script
// an interpreter is given must lie on paths only root can change (see
// resolveTrusted), and rootd executes the canonical, symlink-free path it
// checked, so nothing can be swapped in between check and exec.
type ExecPolicy struct {
	log      *slog.Logger
	confPath string
	allowed  []string

	mu      sync.Mutex
	conf    fileID // the pmcd.conf the agents were read from
	loaded  bool
	agents  []pcpconf.Agent
	refused map[string]struct{}
}

// fileID is what changes when a file is replaced or rewritten.
type fileID struct {
	dev, ino   uint64
	size       int64
	mtime      unix.Timespec
	ctime      unix.Timespec
	mode, uid  uint32
	missing    bool
	statFailed bool
}

func fileIDOf(st *unix.Stat_t) fileID {
	return fileID{dev: st.Dev, ino: st.Ino, size: st.Size, mtime: st.Mtim, ctime: st.Ctim, mode: st.Mode, uid: st.Uid}
}

// ExecPolicyConfig configures an ExecPolicy.
type ExecPolicyConfig struct {
	Log *slog.Logger
	// PMCDConf is pmcd's configuration: its agents' command lines are what
	// a non-root peer may start. "" or a missing file allows none.
	PMCDConf string
	// AllowedPrograms are further programs non-root peers may start: an
	// entry ending in "/" allows every program below that directory, any
	// other entry one file. Compared with the program's canonical path.
	AllowedPrograms []string
}

// NewExecPolicy reads pmcd's configuration once (warning if it still
// starts pmdaroot) and returns the policy.
func NewExecPolicy(cfg ExecPolicyConfig) *ExecPolicy {
	p := &ExecPolicy{log: cfg.Log, confPath: cfg.PMCDConf, refused: map[string]struct{}{}}
	if p.log == nil {
		p.log = slog.Default()
	}
	for _, a := range cfg.AllowedPrograms {
		if a == "" {
			continue
		}
		dir := strings.HasSuffix(a, "/")
		clean := filepath.Clean(a)
		if real, err := filepath.EvalSymlinks(clean); err == nil {
			clean = real
		}
		if dir && clean != "/" {
			clean += "/"
		}
		p.allowed = append(p.allowed, clean)
	}
	p.mu.Lock()
	p.refreshLocked()
	p.mu.Unlock()
	return p
}

// Agents returns the agents currently read from pmcd's configuration.
func (p *ExecPolicy) Agents() []pcpconf.Agent {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.refreshLocked()
	return slices.Clone(p.agents)
}

// refreshLocked re-reads pmcd.conf if it changed. A stat per start request
// from a non-root peer is far cheaper than the fork and exec that follow,
// needs no watcher goroutine, and sees every kind of change inotify can
// miss (the file replaced by rename, its directory or a bind mount swapped,
// a change made while rootd was not watching).
func (p *ExecPolicy) refreshLocked() {
	if p.confPath == "" {
		if !p.loaded {
			p.log.Warn("no pmcd configuration: only root may start agents")
			p.loaded = true
		}
		return
	}
	var st unix.Stat_t
	var id fileID
	if err := unix.Stat(p.confPath, &st); err != nil {
		id = fileID{missing: errors.Is(err, unix.ENOENT), statFailed: true}
	} else {
		id = fileIDOf(&st)
	}
	if p.loaded && id == p.conf {
		return
	}
	p.loaded = true
	p.conf = id
	p.agents = nil
	if id.statFailed {
		p.log.Warn("pmcd configuration not readable: only root may start agents", "path", p.confPath, "missing", id.missing)
		return
	}
	t, err := resolveTrusted(p.confPath, false)
	if err != nil {
		p.log.Error("ignoring pmcd configuration: only root may start agents", "path", p.confPath, "err", err)
		return
	}
	// Read it through its canonical path, which only root can change, and
	// remember the identity of the file actually read.
	f, err := os.OpenFile(t.Path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		p.log.Error("ignoring pmcd configuration: only root may start agents", "path", p.confPath, "err", err)
		return
	}
	defer f.Close()
	if err := unix.Fstat(int(f.Fd()), &st); err == nil {
		p.conf = fileIDOf(&st)
	}
	agents, err := pcpconf.ParsePMCDConf(f)
	if err != nil {
		p.log.Warn("pmcd configuration has errors; those lines allow nothing", "path", p.confPath, "err", err)
	}
	p.agents = agents
	n := 0
	for _, a := range agents {
		if a.Argv != nil {
			n++
		}
	}
	p.log.Info("read pmcd configuration", "path", p.confPath, "agents", len(agents), "startable", n)
	if a, ok := pcpconf.StartsPMDARoot(agents); ok {
		p.log.Warn("pmcd configuration still starts pmdaroot: pmcd will ask rootd to start it as root, "+
			"and pmdaroot will then replace rootd's socket with its own, so PCP's clients reach pmdaroot instead of rootd; "+
			"remove or comment out that line and restart pmcd",
			"path", p.confPath, "line", a.Line, "label", a.Label, "command", wire.JoinArgs(a.Argv))
	}
}

// resolve decides whether peer may start argv as an agent of the given
// kind, and returns the path to execute. Root peers get exec.LookPath's
// answer, as pmcd's execvp would. For other peers the path is the
// canonical path resolveTrusted checked.
func (p *ExecPolicy) resolve(peer Peer, argv []string, pipe bool) (string, error) {
	if peer.UID == 0 {
		return exec.LookPath(argv[0])
	}
	path, err := p.check(argv, pipe)
	if err != nil && errors.Is(err, ErrNotAllowed) {
		p.logRefusal(peer, argv, err)
	}
	return path, err
}

func (p *ExecPolicy) check(argv []string, pipe bool) (string, error) {
	ipc := pcpconf.IPCSocket
	if pipe {
		ipc = pcpconf.IPCPipe
	}
	p.mu.Lock()
	p.refreshLocked()
	configured := false
	for _, a := range p.agents {
		if a.IPC == ipc && slices.Equal(a.Argv, argv) {
			configured = true
			break
		}
	}
	p.mu.Unlock()

	lookedUp := argv[0]
	if !strings.Contains(lookedUp, "/") {
		// pmcd runs agents with execvp: a bare name is looked up in
		// rootd's PATH, and the result must be trusted like any path.
		found, err := exec.LookPath(lookedUp)
		if err != nil {
			if configured {
				return "", err
			}
			return "", fmt.Errorf("%w: %q", ErrNotAllowed, lookedUp)
		}
		lookedUp = found
	}
	t, err := resolveTrusted(lookedUp, true)
	if err != nil {
		if configured && !errors.Is(err, ErrUntrusted) {
			return "", err // a configured agent that is missing: a start failure
		}
		return "", fmt.Errorf("%w: %w", ErrNotAllowed, err)
	}
	if !configured && !p.allowedPath(t.Path) {
		return "", fmt.Errorf("%w: %s is neither a pmcd.conf agent command line nor under --allow-exec", ErrNotAllowed, t.Path)
	}
	if err := checkInterpreters(t.Path, argv, configured); err != nil {
		return "", fmt.Errorf("%w: %w", ErrNotAllowed, err)
	}
	return t.Path, nil
}

// checkInterpreters requires a script's "#!" interpreter (and its own, up to
// the kernel's four levels) and, when the program is an interpreter, the
// script it is given (its first argument that is not an option or a
// directory), to be trusted as well. Code given inline (sh -c '...') is
// accepted only from pmcd's configuration, which root wrote.
func checkInterpreters(path string, argv []string, configured bool) error {
	prog := path
	for range 4 {
		interp, err := interpreterOf(prog)
		if err != nil {
			return err
		}
		if interp == "" {
			break
		}
		t, err := resolveTrusted(interp, true)
		if err != nil {
			return fmt.Errorf("interpreter of %s: %w", prog, err)
		}
		prog = t.Path
	}
	if !interpreters.MatchString(filepath.Base(path)) && !interpreters.MatchString(filepath.Base(argv[0])) {
		return nil
	}
	for _, a := range argv[1:] {
		if strings.HasPrefix(a, "-") {
			continue
		}
		if !strings.HasPrefix(a, "/") {
			if configured {
				return nil
			}
			return fmt.Errorf("%w: interpreter %s runs %q, not an absolute path", ErrUntrusted, argv[0], a)
		}
		if _, err := resolveTrusted(a, false); err != nil {
			if errors.Is(err, unix.EISDIR) {
				continue // an option's value, such as perl -I DIR
			}
			return fmt.Errorf("script of %s: %w", argv[0], err)
		}
		return nil
	}
	return nil
}

func (p *ExecPolicy) allowedPath(real string) bool {
	for _, a := range p.allowed {
		if real == a || strings.HasSuffix(a, "/") && strings.HasPrefix(real, a) {
			return true
		}
	}
	return false
}

// logRefusal logs a refusal once per peer and command line: a client
// retrying in a loop must not flood the log.
func (p *ExecPolicy) logRefusal(peer Peer, argv []string, err error) {
	cmd := wire.JoinArgs(argv)
	key := fmt.Sprintf("%d/%d/%s", peer.PID, peer.UID, cmd)
	p.mu.Lock()
	_, seen := p.refused[key]
	if !seen {
		if len(p.refused) >= maxRefusalsRemembered {
			clear(p.refused)
		}
		p.refused[key] = struct{}{}
	}
	p.mu.Unlock()
	if !seen {
		p.log.Warn("refused to start agent for a non-root client (logged once per client and command)",
			"peer_pid", peer.PID, "peer_uid", peer.UID, "command", cmd, "err", err)
	}
}
