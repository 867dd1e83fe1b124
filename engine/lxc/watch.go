package lxc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/rootd-project/rootd/engine"
)

// Timings of Watch. A burst of events (lxc-start makes a dozen cgroup
// directories) becomes one Resync.
const (
	debounce     = 100 * time.Millisecond
	maxDelay     = time.Second // a steady stream of events still resyncs this often
	recheckFirst = time.Second // List saw a container between states: ask again
	recheckMax   = 30 * time.Second
	retryWatch   = 2 * time.Second // the LXC path is missing or inotify failed
)

// What a watched directory is to the watcher.
type watchKind int

const (
	watchLXCPath      watchKind = iota + 1 // containers appear and vanish here
	watchContainerDir                      // its config may change
	watchCgroupParent                      // lxc-start makes lxc.payload.NAME here
	watchLegacyParent                      // LXC < 4: lxc/NAME
	watchPayload                           // a running container's cgroup: frozen, emptied
)

// Watch implements engine.Watcher with inotify: on the LXC path for
// containers created and destroyed, on each container's directory for
// config changes, and on the cgroup directories where lxc-start creates and
// removes the container's cgroups for starts and stops (and their
// cgroup.events / freezer.state files for freezes). It sends Resync; it
// never starts a process.
func (e *Engine) Watch(ctx context.Context, events chan<- engine.Event) {
	wasUp := true
	// Every session starts with a Resync, the first included: whatever
	// changed between the resolver's List and the watch being in place (or
	// while no watch was) would otherwise be missed.
	for ctx.Err() == nil {
		err := e.watch(ctx, events, true)
		if ctx.Err() != nil {
			return
		}
		_, statErr := os.Stat(e.lxcpath)
		up := statErr == nil
		if wasUp && !up {
			engine.Send(ctx, events, engine.Event{Kind: engine.Unavailable, Engine: Name,
				Err: fmt.Errorf("lxc path %s: %w: %w", e.lxcpath, engine.ErrUnavailable, statErr)})
		}
		if up {
			e.log.Warn("lxc watch failed; retrying", "err", err)
		}
		wasUp = up
		if !engine.Sleep(ctx, retryWatch) {
			return
		}
	}
}

// watcher is one inotify session; it lives in Watch's goroutine only.
type watcher struct {
	e     *Engine
	fs    *fsnotify.Watcher
	kinds map[string]watchKind
	// cgroupWatched: starts and stops are seen as events. Without it the
	// watcher falls back to polling the command sockets' presence.
	cgroupWatched bool
}

// watch runs one inotify session until ctx ends or the session breaks.
func (e *Engine) watch(ctx context.Context, events chan<- engine.Event, resyncFirst bool) error {
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer fw.Close()
	w := &watcher{e: e, fs: fw, kinds: map[string]watchKind{}}
	if err := w.add(e.lxcpath, watchLXCPath); err != nil {
		return err
	}
	w.addExisting()

	var (
		due          = engine.NewDebounce(debounce, maxDelay)
		recheckT     = stoppedTimer()
		recheckEvery = recheckFirst
		pollT        <-chan time.Time
		lastSockets  string
	)
	defer due.Stop()
	defer recheckT.Stop()
	if !w.cgroupWatched {
		e.log.Warn("cannot watch LXC's cgroups; polling for container starts and stops every second")
		t := time.NewTicker(time.Second)
		defer t.Stop()
		pollT = t.C
		lastSockets = listeningSockets(e.lxcpath)
	}
	trigger := due.Changed
	if resyncFirst {
		trigger()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-fw.Events:
			if !ok {
				return errors.New("inotify watcher closed")
			}
			relevant, err := w.handle(ev)
			if err != nil {
				return err
			}
			if relevant {
				e.log.Debug("lxc change seen", "path", ev.Name, "op", ev.Op.String())
				trigger()
			}
		case err, ok := <-fw.Errors:
			if !ok {
				return errors.New("inotify watcher closed")
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				// Events were lost: nothing is known, so List again.
				e.log.Warn("inotify queue overflowed; resyncing")
				trigger()
				continue
			}
			return err
		case <-due.C():
			due.Fired()
			e.log.Debug("lxc resync")
			if !engine.Send(ctx, events, engine.Event{Kind: engine.Resync, Engine: Name}) {
				return nil
			}
			recheckEvery = recheckFirst
			recheckT.Reset(recheckEvery)
		case <-recheckT.C:
			if e.unsettled.Load() {
				e.log.Debug("lxc resync: a container was between states", "after", recheckEvery)
				if !engine.Send(ctx, events, engine.Event{Kind: engine.Resync, Engine: Name}) {
					return nil
				}
				recheckEvery = min(2*recheckEvery, recheckMax)
				recheckT.Reset(recheckEvery)
			}
		case <-e.kick:
			trigger()
		case <-pollT:
			if s := listeningSockets(e.lxcpath); s != lastSockets {
				e.log.Debug("lxc command sockets changed")
				lastSockets = s
				trigger()
			}
		}
	}
}

func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

func (w *watcher) add(path string, kind watchKind) error {
	if _, ok := w.kinds[path]; ok {
		return nil
	}
	if err := w.fs.Add(path); err != nil {
		return fmt.Errorf("watch %s: %w", path, err)
	}
	w.kinds[path] = kind
	return nil
}

// addExisting watches what exists when the session starts. Failures other
// than on the LXC path itself only cost freshness, so they are logged.
func (w *watcher) addExisting() {
	w.addChildren(w.e.lxcpath, watchLXCPath)
	mounts, err := w.e.cgroups.mounts()
	if err != nil {
		w.e.log.Warn("cannot read cgroup mounts", "err", err)
		return
	}
	parents, err := w.e.cgroups.containerCgroupParents(mounts)
	if err != nil {
		w.e.log.Warn("cannot find LXC's cgroup directories", "err", err)
		return
	}
	for _, p := range parents {
		if err := w.add(p, watchCgroupParent); err != nil {
			w.e.log.Warn("cannot watch cgroup directory", "err", err)
			continue
		}
		w.cgroupWatched = true
		w.e.log.Debug("watching cgroup directory for lxc starts and stops", "dir", p)
		w.addChildren(p, watchCgroupParent)
	}
}

// addChildren watches the subdirectories of dir that matter for its kind.
func (w *watcher) addChildren(dir string, kind watchKind) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		w.e.log.Warn("cannot read directory to watch", "dir", dir, "err", err)
		return
	}
	for _, ent := range entries {
		if !ent.IsDir() { // symlinks are not followed
			continue
		}
		child := filepath.Join(dir, ent.Name())
		if ck, ok := childKind(kind, ent.Name()); ok {
			if err := w.add(child, ck); err != nil {
				w.e.log.Debug("cannot watch", "err", err)
				continue
			}
			if ck == watchLegacyParent {
				w.addChildren(child, ck)
			}
		}
	}
}

// childKind says whether a directory named name inside a directory of kind
// parent is watched, and as what.
func childKind(parent watchKind, name string) (watchKind, bool) {
	switch parent {
	case watchLXCPath:
		return watchContainerDir, true
	case watchCgroupParent:
		switch {
		case strings.HasPrefix(name, "lxc.payload."):
			return watchPayload, true
		case name == "lxc":
			return watchLegacyParent, true
		}
	case watchLegacyParent:
		return watchPayload, true
	}
	return 0, false
}

// handle reports whether ev may change what List returns, watching new
// directories as they appear. An error ends the session.
func (w *watcher) handle(ev fsnotify.Event) (bool, error) {
	if kind, ok := w.kinds[ev.Name]; ok && ev.Has(fsnotify.Remove|fsnotify.Rename) {
		// A watched directory itself went away; inotify drops its watch.
		delete(w.kinds, ev.Name)
		if kind == watchLXCPath {
			return true, fmt.Errorf("lxc path %s: %w", ev.Name, os.ErrNotExist)
		}
		return true, nil
	}
	dir, name := filepath.Split(ev.Name)
	parent, ok := w.kinds[filepath.Clean(dir)]
	if !ok {
		return false, nil
	}
	switch parent {
	case watchLXCPath:
		if ev.Has(fsnotify.Create) {
			w.maybeAdd(ev.Name, parent, name)
		}
		return true, nil
	case watchContainerDir:
		return name == "config", nil
	case watchCgroupParent, watchLegacyParent:
		// The parent is shared with every other cgroup user on the host;
		// a legacy lxc/ directory holds only LXC's.
		lxcs := strings.HasPrefix(name, "lxc.payload.") || strings.HasPrefix(name, "lxc.monitor.") || name == "lxc"
		if parent == watchCgroupParent && !lxcs {
			return false, nil
		}
		if ev.Has(fsnotify.Create) {
			w.maybeAdd(ev.Name, parent, name)
		}
		return true, nil
	case watchPayload:
		return name == "cgroup.events" || name == "freezer.state", nil
	}
	return false, nil
}

func (w *watcher) maybeAdd(path string, parent watchKind, name string) {
	ck, ok := childKind(parent, name)
	if !ok {
		return
	}
	if fi, err := os.Lstat(path); err != nil || !fi.IsDir() {
		return
	}
	if err := w.add(path, ck); err != nil {
		w.e.log.Debug("cannot watch", "err", err)
		return
	}
	if ck == watchLegacyParent {
		w.addChildren(path, ck)
	}
}

// listeningSockets is the fallback's fingerprint of which containers under
// lxcpath have a monitor: the listening command sockets in /proc/net/unix.
func listeningSockets(lxcpath string) string {
	data, err := os.ReadFile("/proc/net/unix")
	if err != nil {
		return ""
	}
	prefix := "@" + lxcpath + "/"
	var names []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 8 && strings.HasSuffix(f[7], "/command") &&
			(strings.HasPrefix(f[7], prefix) || strings.HasPrefix(f[7], "@lxc/")) {
			names = append(names, f[7])
		}
	}
	slices.Sort(names)
	return strings.Join(names, "\n")
}
