package podman

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/rootd-project/rootd/engine"
)

// Watch timings. Podman touches several files per command (containers.json,
// the libpod database, pidfile, exit file), so changes are gathered for a
// short quiet period and reported as one Resync.
const (
	debounceQuiet  = 20 * time.Millisecond
	debounceMax    = 250 * time.Millisecond
	rediscoverEach = 30 * time.Second
	retryMin       = time.Second
	retryMax       = 30 * time.Second
)

// Watch implements engine.Watcher. It watches with inotify, per storage:
// the data directory (containers.json is replaced on create, rename and
// remove), the graph root and its libpod directory (podman's state
// database is written on every start, stop, pause and unpause), the run
// directory and each container's userdata (pidfiles), and conmon's exit
// directory (a container whose process ends by itself). A storage that
// appears later, such as a user's first rootless container, is found by
// rediscovery after any change and every 30 s.
func (e *Engine) Watch(ctx context.Context, events chan<- engine.Event) {
	bo := engine.Backoff{Min: retryMin, Max: retryMax}
	for {
		err := e.watch(ctx, events)
		if ctx.Err() != nil {
			return
		}
		retry := bo.Next()
		e.log.Warn("podman: watch failed, retrying", "err", err, "in", retry)
		if !engine.Sleep(ctx, retry) {
			return
		}
	}
}

func (e *Engine) watch(ctx context.Context, events chan<- engine.Event) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("inotify: %w", err)
	}
	defer w.Close()

	l := e.layout()
	e.syncWatches(w, l)
	// Whatever changed before the watches existed is picked up by a List.
	if !engine.Send(ctx, events, e.resync(l)) {
		return nil
	}

	rediscover := time.NewTicker(rediscoverEach)
	defer rediscover.Stop()
	due := engine.NewDebounce(debounceQuiet, debounceMax)
	defer due.Stop()

	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("inotify event channel closed")
			}
			if relevant(ev) {
				due.Changed()
			}
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("inotify error channel closed")
			}
			// An overflow loses events: re-List to be safe.
			e.log.Warn("podman: inotify error", "err", err)
			due.Changed()
		case <-due.C():
			due.Fired()
			l = e.layout()
			e.syncWatches(w, l)
			if !engine.Send(ctx, events, e.resync(l)) {
				return nil
			}
		case <-rediscover.C:
			nl := e.layout()
			if nl.equal(l) {
				continue
			}
			l = nl
			e.syncWatches(w, l)
			if !engine.Send(ctx, events, e.resync(l)) {
				return nil
			}
		}
	}
}

// resync is the event that tells the resolver to re-List, or that podman's
// storage is gone altogether.
func (e *Engine) resync(l layout) engine.Event {
	if len(l.roots) == 0 {
		return engine.Event{Kind: engine.Unavailable, Engine: Name,
			Err: fmt.Errorf("no podman storage on this host: %w", engine.ErrUnavailable)}
	}
	return engine.Event{Kind: engine.Resync, Engine: Name}
}

// relevant drops what podman does not change state with: lock files are
// rewritten by readers too, and attribute changes say nothing.
func relevant(ev fsnotify.Event) bool {
	if ev.Op == fsnotify.Chmod {
		return false
	}
	return !strings.HasSuffix(ev.Name, ".lock")
}

// syncWatches makes the watched directories those of layout l. The
// watcher's own list is the truth: inotify drops the watch of a directory
// that is deleted, and the same path may come back later.
func (e *Engine) syncWatches(w *fsnotify.Watcher, l layout) {
	watched := map[string]bool{}
	for _, dir := range w.WatchList() {
		watched[dir] = true
	}
	want := map[string]bool{}
	for _, r := range l.roots {
		want[r.Graph] = true
		want[filepath.Join(r.Graph, "libpod")] = true
		if r.Exits != "" {
			want[r.Exits] = true
		}
	}
	for _, s := range l.storages {
		want[s.dataDir()] = true
		run := s.runDir()
		if run == "" {
			continue
		}
		want[run] = true
		entries, err := os.ReadDir(run)
		if err != nil {
			continue
		}
		for _, ent := range entries {
			if ent.IsDir() && containerID.MatchString(ent.Name()) {
				want[filepath.Join(run, ent.Name(), "userdata")] = true
			}
		}
	}
	for dir := range watched {
		if !want[dir] {
			_ = w.Remove(dir) // the directory may already be gone
		}
	}
	for dir := range want {
		if watched[dir] {
			continue
		}
		if err := w.Add(dir); err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				e.log.Warn("podman: cannot watch", "dir", dir, "err", err)
			}
		}
	}
}
