// Package lxc is rootd's engine for LXC system containers.
//
// A container is a directory under the LXC path (lxc.lxcpath) holding a
// config file; its name is also its ID. State and init PID come from the
// container's monitor (lxc-start) over LXC's command socket, the way
// lxc-info gets them, and the paused state from the freezer cgroup, so a
// refresh starts no process. PCP's pmdaroot instead runs lxc-info once per
// container on every request; --lxc-info keeps that command available for
// test setups, run on refresh only.
package lxc

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rootd-project/rootd/engine"
	"github.com/rootd-project/rootd/internal/procfs"
	"github.com/rootd-project/rootd/internal/safefile"
)

// Name is the engine's registered name.
const Name = "lxc"

// LabelUTSName carries lxc.uts.name from the container's config: the
// hostname LXC gives the container when it starts.
const LabelUTSName = "lxc.uts.name"

func init() {
	engine.Register(engine.Driver{
		Name:       Name,
		Summary:    "LXC containers under lxc.lxcpath (state from LXC's command socket)",
		Precedence: engine.PrecedenceRuntime,
		Configure:  configure,
	})
}

func configure(fs *flag.FlagSet) engine.OpenFunc {
	path := fs.String("lxc-path", "",
		"LXC container directory (default $PCP_LXC_DIR, else lxc.lxcpath in "+systemLXCConf+", else "+defaultLXCPath+")")
	info := fs.String("lxc-info", "",
		"command run as 'COMMAND -n NAME' for each container on refresh to read its State and PID "+
			"instead of asking LXC's command socket (default $PCP_LXC_INFO)")
	return func(env engine.Env) (engine.Engine, error) {
		return open(env, *path, *info, systemLXCConf)
	}
}

func open(env engine.Env, pathFlag, infoFlag, lxcConf string) (*Engine, error) {
	if env.Log == nil {
		env.Log = slog.Default()
	}
	if env.Getenv == nil {
		env.Getenv = os.Getenv
	}
	lxcpath, err := resolveLXCPath(pathFlag, env.Getenv, lxcConf)
	if err != nil {
		return nil, err
	}
	info := infoFlag
	if info == "" {
		info = env.Getenv("PCP_LXC_INFO")
	}
	infoCmd := strings.Fields(info)
	if len(infoCmd) > 0 {
		if _, err := exec.LookPath(infoCmd[0]); err != nil {
			return nil, fmt.Errorf("lxc-info command: %w", err)
		}
	}
	e := &Engine{
		log:     env.Log,
		lxcpath: lxcpath,
		infoCmd: infoCmd,
		cgroups: cgroups{procRoot: "/proc"},
		kick:    make(chan struct{}, 1),
	}
	e.commands = commandClient{timeout: time.Second, trusted: e.trustedMonitor}
	e.log.Debug("lxc engine configured", "lxcpath", lxcpath, "lxc_info", info)
	return e, nil
}

// Engine lists the LXC containers of one LXC path.
type Engine struct {
	log     *slog.Logger
	lxcpath string
	// infoCmd, when set, is run per container on List instead of asking
	// the command socket.
	infoCmd  []string
	commands commandClient
	cgroups  cgroups
	// unsettled is set by List when some container was between states
	// (starting, stopping, not answering), so that Watch asks for another
	// List even if no further file event comes.
	unsettled atomic.Bool
	// lastMu guards last and hung. last: each container's state as its
	// monitor last reported it, kept while a monitor does not answer.
	// hung: containers whose monitor did not answer; List does not ask
	// them again (so it stays fast) until awaitMonitor sees an answer.
	lastMu sync.Mutex
	last   map[string]status
	hung   map[string]bool
	// kick asks Watch for a Resync (a hung monitor answers again).
	kick chan struct{}
	// monitorRetry is how often a hung monitor is asked again
	// (defaultMonitorRetry if 0).
	monitorRetry time.Duration
	// squatted holds the command sockets found served by an untrusted
	// listener, so that each is logged once.
	squatted sync.Map
}

// trustedMonitor says whether a command socket listener running as uid
// may answer for this LXC path's containers: root, or the owner of the
// LXC path (whose own lxc-start serves an unprivileged user's containers).
func (e *Engine) trustedMonitor(uid uint32) bool {
	if uid == 0 {
		return true
	}
	var st syscall.Stat_t
	return syscall.Stat(e.lxcpath, &st) == nil && st.Uid == uid
}

// Name implements engine.Engine.
func (e *Engine) Name() string { return Name }

// LXCPath is the container directory this engine reads.
func (e *Engine) LXCPath() string { return e.lxcpath }

// List implements engine.Engine.
func (e *Engine) List(ctx context.Context) ([]engine.Container, error) {
	dir, err := os.Open(e.lxcpath)
	if err != nil {
		return nil, fmt.Errorf("lxc path %s: %w: %w", e.lxcpath, engine.ErrUnavailable, err)
	}
	defer dir.Close()
	entries, err := dir.ReadDir(-1)
	if err != nil {
		return nil, fmt.Errorf("lxc path %s: %w: %w", e.lxcpath, engine.ErrUnavailable, err)
	}
	var mounts []procfs.CgroupMount
	if len(e.infoCmd) == 0 {
		if mounts, err = e.cgroups.mounts(); err != nil {
			e.log.Warn("cannot read cgroup mounts; paused containers show as running", "err", err)
		}
	}
	unsettled := false
	var out []engine.Container
	seen := make(map[string]status, len(entries))
	for _, ent := range entries {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		name := ent.Name()
		if !ent.IsDir() && ent.Type()&os.ModeSymlink == 0 {
			continue // plain files (lxc-monitord's fifo, notes, ...)
		}
		cfg, err := e.readConfig(dir, name)
		if err != nil {
			if !errors.Is(err, errNotContainer) {
				e.log.Warn("skipping lxc container", "name", name, "err", err)
			}
			continue
		}
		c := engine.Container{
			Engine:  Name,
			ID:      name,
			Names:   []string{name},
			State:   engine.StateStopped,
			Cgroups: cgroupMarks(name, false), // numbered below, once all names are known
		}
		if cfg.utsName != "" {
			c.Labels = map[string]string{LabelUTSName: cfg.utsName}
		}
		var st status
		if len(e.infoCmd) > 0 {
			st = e.infoStatus(ctx, name)
		} else {
			st = e.socketStatus(ctx, name, mounts)
		}
		seen[name] = st
		e.log.Debug("lxc container", "name", name, "state", st.state, "pid", st.pid, "unsettled", st.unsettled)
		c.State, c.PID = st.state, st.pid
		unsettled = unsettled || st.unsettled
		out = append(out, c)
	}
	names := make(map[string]bool, len(out))
	for _, c := range out {
		names[c.ID] = true
	}
	for i := range out {
		if !numberedSibling(out[i].ID, names) {
			out[i].Cgroups = cgroupMarks(out[i].ID, true)
		}
	}
	e.lastMu.Lock()
	e.last = seen
	e.lastMu.Unlock()
	e.unsettled.Store(unsettled)
	return out, nil
}

var errNotContainer = errors.New("not a container directory")

// maxConfigFile bounds what is read of a container's config; real ones
// are a few KiB.
const maxConfigFile = 1 << 20

// readConfig reads NAME/config without leaving the LXC path, whatever
// symlinks it meets (safefile: symlinks that stay inside are followed, as
// LXC follows them, except config itself).
func (e *Engine) readConfig(dir *os.File, name string) (containerConfig, error) {
	data, err := safefile.ReadFileIn(dir, name+"/config", maxConfigFile)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ENOTDIR) {
			return containerConfig{}, errNotContainer
		}
		return containerConfig{}, err
	}
	cfg, err := parseContainerConfig(bytes.NewReader(data))
	if err != nil {
		return containerConfig{}, fmt.Errorf("%s/config: %w", name, err)
	}
	return cfg, nil
}

// status is a container's state as one refresh found it.
type status struct {
	state engine.State
	pid   int
	// unsettled: the container was changing state or did not answer.
	unsettled bool
}

var stopped = status{state: engine.StateStopped}

// socketStatus asks the container's monitor over the command socket.
func (e *Engine) socketStatus(ctx context.Context, name string, mounts []procfs.CgroupMount) status {
	sock := commandSocketName(e.lxcpath, name)
	if prev, hung := e.stillHung(name); hung {
		return prev
	}
	st, err := e.commands.state(ctx, sock)
	if errors.Is(err, errNoMonitor) {
		e.squatted.Delete(sock)
		return stopped
	}
	if errors.Is(err, errUntrustedMonitor) {
		return e.cgroupStatus(name, sock, mounts, err)
	}
	if err != nil {
		return e.hungMonitor(name, sock, err)
	}
	if !lxcHasInit(st) {
		return status{state: engine.StateStopped, unsettled: st != lxcStopped}
	}
	pid, err := e.commands.initPID(ctx, sock)
	if err != nil {
		if !errors.Is(err, errNoMonitor) {
			return e.hungMonitor(name, sock, err)
		}
		return status{state: engine.StateStopped, unsettled: true}
	}
	// The monitor's own state never says FROZEN: lxc-freeze only writes
	// the freezer cgroup, which is where lxc-info looks too.
	state := engine.StateRunning
	if st == lxcFreezing || st == lxcFrozen {
		state = engine.StatePaused
	} else if mounts != nil {
		frozen, err := e.cgroups.frozen(mounts, pid)
		if err != nil {
			e.log.Debug("cannot read freezer state", "name", name, "pid", pid, "err", err)
		}
		if frozen {
			state = engine.StatePaused
		}
	}
	return status{state: state, pid: pid}
}

// cgroupStatus answers for a container whose command socket is served by
// someone rootd does not trust: not that listener, but the container's
// cgroup, which only root can put processes in. The real monitor cannot
// be listening (the name is taken), so this normally finds no process and
// reports the container stopped.
func (e *Engine) cgroupStatus(name, sock string, mounts []procfs.CgroupMount, why error) status {
	if _, seen := e.squatted.LoadOrStore(sock, true); !seen {
		e.log.Warn("lxc command socket is served by an untrusted process; ignoring it and reading the container's cgroup",
			"name", name, "socket", sock, "err", why)
	}
	if mounts == nil {
		return stopped
	}
	pid, err := e.cgroups.payloadInit(mounts, name)
	if err != nil {
		if !errors.Is(err, errNoPayload) {
			e.log.Warn("cannot find the container's init in its cgroup; shown as stopped", "name", name, "err", err)
		}
		return stopped
	}
	state := engine.StateRunning
	if frozen, _ := e.cgroups.frozen(mounts, pid); frozen {
		state = engine.StatePaused
	}
	return status{state: state, pid: pid}
}

// hungMonitor is the status of a container whose monitor is listening but
// did not answer (a hung or stopped monitor, or one busy starting or
// stopping): the state the monitor last reported, if it had an init
// process, else stopped. Either way the container is unsettled, so Watch
// asks again. A hung monitor says nothing about the container's init, which
// keeps running; an init that has exited is caught by the resolver's reads
// of /proc. Until the monitor answers again (awaitMonitor), List does not
// ask it, so one hung monitor costs one command timeout, not one per List.
func (e *Engine) hungMonitor(name, sock string, err error) status {
	e.lastMu.Lock()
	prev, ok := e.last[name]
	if e.hung == nil {
		e.hung = map[string]bool{}
	}
	first := !e.hung[name]
	e.hung[name] = true
	e.lastMu.Unlock()
	if first {
		go e.awaitMonitor(name, sock)
	}
	if ok && prev.state.HasProcess() && prev.pid > 0 {
		e.log.Warn("lxc monitor did not answer; keeping its last known state", "name", name, "pid", prev.pid, "err", err)
		prev.unsettled = true
		return prev
	}
	e.log.Warn("lxc monitor did not answer; container shown as stopped", "name", name, "err", err)
	return status{state: engine.StateStopped, unsettled: true}
}

// stillHung returns the status to report, without asking, for a container
// whose monitor has not answered since it hung.
func (e *Engine) stillHung(name string) (status, bool) {
	e.lastMu.Lock()
	defer e.lastMu.Unlock()
	if !e.hung[name] {
		return status{}, false
	}
	prev, ok := e.last[name]
	if ok && prev.state.HasProcess() && prev.pid > 0 {
		prev.unsettled = true
		return prev, true
	}
	return status{state: engine.StateStopped, unsettled: true}, true
}

// defaultMonitorRetry is how often a hung monitor is asked again.
const defaultMonitorRetry = 500 * time.Millisecond

// awaitMonitor asks a hung monitor again every monitorRetry until it answers
// or is gone (or its container is), then lets List ask it again and asks
// Watch for a Resync.
func (e *Engine) awaitMonitor(name, sock string) {
	retry := cmp.Or(e.monitorRetry, defaultMonitorRetry)
	for {
		time.Sleep(retry)
		if _, err := os.Stat(filepath.Join(e.lxcpath, name)); err != nil {
			break
		}
		_, err := e.commands.state(context.Background(), sock)
		if err == nil || errors.Is(err, errNoMonitor) {
			break
		}
	}
	e.lastMu.Lock()
	delete(e.hung, name)
	e.lastMu.Unlock()
	e.log.Info("lxc monitor answers again", "name", name)
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// lxcHasInit reports whether a container in state s has an init process
// that rootd may hand out.
func lxcHasInit(s lxcState) bool {
	switch s {
	case lxcRunning, lxcFreezing, lxcFrozen, lxcThawed:
		return true
	}
	return false
}

func lxcToState(s lxcState) engine.State {
	switch s {
	case lxcRunning, lxcThawed:
		return engine.StateRunning
	case lxcFreezing, lxcFrozen:
		return engine.StatePaused
	}
	return engine.StateStopped
}
