package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/rootd-project/rootd/engine"
	"github.com/rootd-project/rootd/internal/procfs"
	"github.com/rootd-project/rootd/internal/safefile"
)

// Docker's per-container state files: config.v2.json since Docker 1.10,
// config.json before.
const (
	configV2     = "config.v2.json"
	configLegacy = "config.json"
	// maxConfigSize bounds what one corrupt or hostile file can make rootd
	// allocate; real ones are a few KiB.
	maxConfigSize = 4 << 20
)

// diskReader reads the containers that a Docker state directory describes.
type diskReader struct {
	dir string // Docker's data root; containers live in dir/containers
	log *slog.Logger

	// verifyPIDs makes running and paused containers count only when their
	// PID is a live process whose cgroup names the container: after the
	// daemon stops, its files still say "running" with stale PIDs.
	verifyPIDs bool
	procRoot   string // "/proc", replaced in tests
}

// diskConfig is the part of config.v2.json / config.json that rootd needs.
// Both formats keep these fields under the same keys.
type diskConfig struct {
	ID    string
	Name  string
	State struct {
		Running    bool
		Paused     bool
		Restarting bool
		Pid        int
	}
	Config *struct {
		Labels map[string]string
	}
}

// list reads every container under dir/containers. A container whose files
// cannot be read or parsed is skipped with a warning; only a missing or
// unreadable directory fails, with engine.ErrUnavailable.
func (r *diskReader) list(ctx context.Context) ([]engine.Container, error) {
	// The listing goes through root and every file read through
	// internal/safefile from dir, so no path (and no symlink) leads
	// outside the configured directory.
	root, err := os.OpenRoot(r.dir)
	if err != nil {
		return nil, fmt.Errorf("docker state directory: %w: %w", engine.ErrUnavailable, err)
	}
	defer root.Close()
	dir, err := os.Open(r.dir)
	if err != nil {
		return nil, fmt.Errorf("docker state directory: %w: %w", engine.ErrUnavailable, err)
	}
	defer dir.Close()
	entries, err := fs.ReadDir(root.FS(), "containers")
	if err != nil {
		return nil, fmt.Errorf("docker state directory %s: %w: %w", r.dir, engine.ErrUnavailable, err)
	}
	// Decoding thousands of config files is CPU-bound: spread it over the
	// CPUs, each worker taking every n-th directory, then keep the
	// directory order.
	found := make([]engine.Container, len(entries))
	usable := make([]bool, len(entries))
	workers := min(runtime.GOMAXPROCS(0), max(len(entries)/64, 1))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < len(entries); i += workers {
				if ctx.Err() != nil {
					return
				}
				if strings.HasPrefix(entries[i].Name(), ".") {
					continue
				}
				found[i], usable[i] = r.readContainer(dir, entries[i].Name())
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []engine.Container
	for i, c := range found {
		if usable[i] {
			out = append(out, c)
		}
	}
	return out, nil
}

// readContainer reads containers/<dirName>. ok is false when the directory
// holds no usable container; the reason is logged.
func (r *diskReader) readContainer(top *os.File, dirName string) (c engine.Container, ok bool) {
	dir := path.Join("containers", dirName)
	data, file, err := readConfig(top, dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			// Being created or removed right now, or not a container.
			r.log.Debug("docker: no container config", "dir", filepath.Join(r.dir, dir))
		} else {
			r.log.Warn("docker: skipping container", "dir", filepath.Join(r.dir, dir), "err", err)
		}
		return c, false
	}
	var cfg diskConfig
	if err := json.Unmarshal(data, &cfg); err != nil {
		r.log.Warn("docker: skipping container with a corrupt config",
			"file", filepath.Join(r.dir, dir, file), "err", err)
		return c, false
	}
	id := cfg.ID
	if id == "" {
		id = dirName
	} else if id != dirName {
		r.log.Warn("docker: container ID differs from its directory name; using the ID",
			"file", filepath.Join(r.dir, dir, file), "id", id)
	}
	c = engine.Container{
		Engine: Name,
		ID:     id,
		Names:  containerNames([]string{cfg.Name}),
		PID:    max(cfg.State.Pid, 0),
		State:  stateFromFlags(cfg.State.Running, cfg.State.Paused, cfg.State.Restarting),
		// The resolver verifies these, on-disk mode included.
		Cgroups: cgroupMarks(id),
	}
	if cfg.Config != nil {
		c.Labels = cfg.Config.Labels
	}
	c.Labels = withK8sLabels(c.Labels, c.Names)
	if r.verifyPIDs {
		r.verify(&c)
	}
	if !c.State.HasProcess() {
		c.PID = 0
	}
	return c, true
}

// verify demotes a container whose recorded process is gone (or is now some
// other process) to stopped. A restarting container is waiting for the daemon
// that is not there, so it is stopped too.
func (r *diskReader) verify(c *engine.Container) {
	if c.State == engine.StateRestarting {
		c.State = engine.StateStopped
		return
	}
	if !c.State.HasProcess() {
		return
	}
	if c.PID > 0 && isFullID(c.ID) {
		lines, err := procfs.ReadCgroupLines(r.procRoot, c.PID)
		if err == nil && anyLineMatches(lines, c.Cgroups) {
			return
		}
	}
	r.log.Debug("docker: recorded process is gone; reporting the container stopped",
		"id", c.ID, "pid", c.PID)
	c.State = engine.StateStopped
}

// anyLineMatches reports whether the cgroup path of some hierarchy holds
// one of marks (engine.CgroupMatches); the resolver checks the hierarchy
// it answers with again before handing the PID out.
func anyLineMatches(lines []procfs.CgroupLine, marks []string) bool {
	for _, l := range lines {
		if engine.CgroupMatches(l.Path, marks) {
			return true
		}
	}
	return false
}

// isFullID reports whether id is a 64-hex-digit Docker ID, long enough that
// finding it in a cgroup path identifies the container.
func isFullID(id string) bool {
	if len(id) != 64 {
		return false
	}
	for _, ch := range id {
		if !strings.ContainsRune("0123456789abcdef", ch) {
			return false
		}
	}
	return true
}

// readConfig returns the contents and base name of dir's config.v2.json,
// or of its legacy config.json when there is no config.v2.json. Each must
// be a regular file of at most maxConfigSize bytes, reached from top
// without leaving it (internal/safefile: the file itself is never a
// symlink; FIFOs and devices are refused without blocking).
func readConfig(top *os.File, dir string) ([]byte, string, error) {
	data, err := safefile.ReadFileIn(top, path.Join(dir, configV2), maxConfigSize)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return data, configV2, err
	}
	data, err = safefile.ReadFileIn(top, path.Join(dir, configLegacy), maxConfigSize)
	return data, configLegacy, err
}

// diskEngine serves a Docker state directory as the only truth.
type diskEngine struct {
	disk *diskReader
	log  *slog.Logger
}

func (e *diskEngine) Name() string { return Name }

func (e *diskEngine) List(ctx context.Context) ([]engine.Container, error) {
	return e.disk.list(ctx)
}

// Settle time between a burst of file changes and the Resync it causes:
// Docker writes a container's files several times while creating it. A
// steady stream of changes still resyncs every diskDebounceMax.
const (
	diskDebounce    = 20 * time.Millisecond
	diskDebounceMax = 250 * time.Millisecond
)

// Watch turns changes under dir/containers into Resync events. It watches
// the containers directory (containers appear and disappear) and every
// container's directory (Docker replaces config.v2.json by renaming a new
// file over it, so a watch on the file itself would be lost).
//
// While the directory cannot be read it reports Unavailable once, and
// Resync when the directory is back. If the directory is readable but
// cannot be watched (inotify limits), it falls back to a Resync every few
// seconds.
func (e *diskEngine) Watch(ctx context.Context, events chan<- engine.Event) {
	top := filepath.Join(e.disk.dir, "containers")
	bo := engine.Backoff{Min: 100 * time.Millisecond, Max: 2 * time.Second}
	// The first watch starts with a Resync too: whatever changed between the
	// resolver's first List and the watch being in place would be missed.
	resync, down, polling := true, false, false
	for {
		established, err := e.watchOnce(ctx, events, top, resync)
		if ctx.Err() != nil {
			return
		}
		resync = true
		if established {
			bo.Reset()
			down, polling = false, false
		}
		if _, readErr := os.ReadDir(top); readErr != nil {
			if !down {
				down = true
				e.log.Warn("docker: state directory unavailable", "dir", top, "err", readErr)
				if !engine.Send(ctx, events, engine.Event{Kind: engine.Unavailable, Engine: Name, Err: readErr}) {
					return
				}
			}
		} else if !established {
			if !polling {
				polling = true
				e.log.Warn("docker: cannot watch the state directory; polling it", "dir", top, "err", err)
			}
			if !engine.Send(ctx, events, engine.Event{Kind: engine.Resync, Engine: Name}) {
				return
			}
		}
		if !bo.Wait(ctx) {
			return
		}
	}
}

// watchOnce watches top until it goes away or the watch fails, sending
// Resync (first, if resync is set, then for every change). established
// reports whether the watch was set up.
func (e *diskEngine) watchOnce(ctx context.Context, events chan<- engine.Event, top string, resync bool) (established bool, err error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return false, fmt.Errorf("inotify: %w", err)
	}
	defer w.Close()
	if err := e.addWatches(w, top); err != nil {
		return false, err
	}
	if resync && !engine.Send(ctx, events, engine.Event{Kind: engine.Resync, Engine: Name}) {
		return true, ctx.Err()
	}
	due := engine.NewDebounce(diskDebounce, diskDebounceMax)
	defer due.Stop()
	for {
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case err, ok := <-w.Errors:
			if !ok {
				return true, errors.New("inotify watch closed")
			}
			// Most likely an overflowed queue: changes were lost.
			e.log.Warn("docker: inotify error; resyncing", "err", err)
			due.Changed()
		case ev, ok := <-w.Events:
			if !ok {
				return true, errors.New("inotify watch closed")
			}
			if filepath.Clean(ev.Name) == top && ev.Has(fsnotify.Remove|fsnotify.Rename) {
				return true, fmt.Errorf("%s was removed", top)
			}
			if e.relevant(w, top, ev) {
				due.Changed()
			}
		case <-due.C():
			due.Fired()
			if !engine.Send(ctx, events, engine.Event{Kind: engine.Resync, Engine: Name}) {
				return true, ctx.Err()
			}
		}
	}
}

// addWatches watches top and each directory directly below it. Symlinks are
// not followed: only the configured directory's own entries are watched.
func (e *diskEngine) addWatches(w *fsnotify.Watcher, top string) error {
	if err := w.Add(top); err != nil {
		return fmt.Errorf("watch %s: %w", top, err)
	}
	entries, err := os.ReadDir(top)
	if err != nil {
		return fmt.Errorf("read %s: %w", top, err)
	}
	for _, ent := range entries {
		if ent.IsDir() && !strings.HasPrefix(ent.Name(), ".") {
			e.watchContainerDir(w, filepath.Join(top, ent.Name()))
		}
	}
	return nil
}

func (e *diskEngine) watchContainerDir(w *fsnotify.Watcher, dir string) {
	if err := w.Add(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		e.log.Warn("docker: cannot watch container directory", "dir", dir, "err", err)
	}
}

// relevant reports whether ev can change what List returns, starting to
// watch new container directories on the way. Inside a container directory
// only the config files matter: the log file there changes all the time.
func (e *diskEngine) relevant(w *fsnotify.Watcher, top string, ev fsnotify.Event) bool {
	name := filepath.Clean(ev.Name)
	parent := filepath.Dir(name)
	switch {
	case name == top:
		return true
	case parent == top:
		if ev.Has(fsnotify.Create) {
			if st, err := os.Lstat(name); err == nil && st.IsDir() {
				e.watchContainerDir(w, name)
			}
		}
		return true
	case filepath.Dir(parent) == top:
		base := filepath.Base(name)
		return base == configV2 || base == configLegacy
	}
	return false
}
