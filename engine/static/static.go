// Package static is the example engine: the smallest complete
// implementation of the engine contract, meant to be read (and copied) by
// anyone adding a runtime. docs/writing-an-engine.md walks through it.
//
// It has two faces:
//
//   - FileEngine, registered as "static", lists the containers described by a
//     JSON file (flag --static-file) and watches that file with inotify. It is
//     useful for containers that no supported runtime knows about, and in
//     demos.
//   - Engine, made by New, holds its containers in memory under any engine
//     name, so that tests can stand in for "docker" or "podman" and change
//     what the runtime reports while a resolver or daemon is running.
package static

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/rootd-project/rootd/engine"
)

// Name is the registered engine name of FileEngine.
const Name = "static"

func init() {
	engine.Register(engine.Driver{
		Name:       Name,
		Summary:    "containers described by a JSON file (--static-file); idle without it",
		Precedence: engine.PrecedenceSynthetic,
		Configure: func(fs *flag.FlagSet) engine.OpenFunc {
			// Bound afresh on every call, so two flag sets never share it.
			path := fs.String("static-file", "", "`PATH` of a JSON array of containers for the static engine (empty: engine idle)")
			return func(env engine.Env) (engine.Engine, error) {
				return NewFile(*path, env.Log), nil
			}
		},
	})
}

// maxFileSize bounds what List reads, so a wrong --static-file (a log file,
// a device) cannot make the daemon swallow unbounded memory.
const maxFileSize = 64 << 20

// retryWatch is how long Watch waits before trying again to watch a
// directory it could not watch (for instance one that does not exist yet).
const retryWatch = 10 * time.Second

// FileEngine lists the containers in a JSON file. The file holds an array of
// objects shaped like engine.Container:
//
//	[{"id": "c0ffee...", "names": ["web"], "pid": 4242, "state": "running",
//	  "labels": {"io.kubernetes.pod.name": "web-0"}}]
//
// The "engine" field is ignored (always "static"); a leading "/" on a name is
// dropped; a missing state means running when pid is set, stopped otherwise.
// An entry without an id, with an unknown state or with an id seen before is
// skipped with a warning. A file that is not valid JSON makes List fail with
// an error naming the file; a file that does not exist makes it fail with
// engine.ErrUnavailable, like a runtime that is not installed.
type FileEngine struct {
	path string // cleaned; "" means idle
	log  *slog.Logger
}

// NewFile returns the engine for the file at path; with path "" the engine is
// idle: it lists nothing and watches nothing.
func NewFile(path string, log *slog.Logger) *FileEngine {
	if log == nil {
		log = slog.Default()
	}
	if path != "" {
		path = filepath.Clean(path)
	}
	return &FileEngine{path: path, log: log}
}

// Name implements engine.Engine.
func (e *FileEngine) Name() string { return Name }

// List implements engine.Engine by reading and parsing the file afresh.
func (e *FileEngine) List(ctx context.Context) ([]engine.Container, error) {
	if e.path == "" {
		return []engine.Container{}, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(e.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %w", engine.ErrUnavailable, err)
	}
	if err != nil {
		return nil, err // *os.PathError already names the file
	}
	defer f.Close()
	cs, err := Parse(io.LimitReader(f, maxFileSize), e.log)
	if err != nil {
		return nil, fmt.Errorf("static file %s: %w", e.path, err)
	}
	return cs, nil
}

// Watch implements engine.Watcher. It watches the file's directory rather
// than the file, so that replacing the file by renaming a new one over it
// (what editors and config tools do) is seen, and sends Resync whenever the
// file changes. It also sends one Resync as soon as the watch is in place:
// whatever changed between the caller's first List and that moment would
// otherwise be missed. That is the pattern to copy: after (re)connecting to
// a runtime's event source, ask for a Resync.
func (e *FileEngine) Watch(ctx context.Context, events chan<- engine.Event) {
	if e.path == "" {
		<-ctx.Done()
		return
	}
	dir := filepath.Dir(e.path)
	for {
		err := e.watchDir(ctx, dir, events)
		if ctx.Err() != nil {
			return
		}
		e.log.Warn("cannot watch static file's directory; retrying", "dir", dir, "retry", retryWatch, "err", err)
		if !engine.Sleep(ctx, retryWatch) {
			return
		}
	}
}

// watchDir runs one inotify watch on dir until ctx is done or the watch
// breaks, which it reports as an error.
func (e *FileEngine) watchDir(ctx context.Context, dir string, events chan<- engine.Event) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer w.Close()
	if err := w.Add(dir); err != nil {
		return err
	}
	if !engine.Send(ctx, events, engine.Event{Kind: engine.Resync, Engine: Name}) {
		return nil
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("inotify watch closed")
			}
			if filepath.Clean(ev.Name) == dir && ev.Has(fsnotify.Remove|fsnotify.Rename) {
				return fmt.Errorf("directory %s went away", dir)
			}
			if filepath.Clean(ev.Name) != e.path {
				continue
			}
			e.log.Debug("static file changed", "op", ev.Op.String())
			if !engine.Send(ctx, events, engine.Event{Kind: engine.Resync, Engine: Name}) {
				return nil
			}
		case err, ok := <-w.Errors:
			if !ok {
				return errors.New("inotify watch closed")
			}
			// Typically a queue overflow: changes may have been lost.
			e.log.Warn("inotify error on static file", "err", err)
			if !engine.Send(ctx, events, engine.Event{Kind: engine.Resync, Engine: Name}) {
				return nil
			}
		}
	}
}

// Parse decodes a JSON array of containers as FileEngine reads it and returns
// the valid entries, with Engine set to "static". Invalid entries are
// skipped and logged on log; malformed JSON is an error.
func Parse(r io.Reader, log *slog.Logger) ([]engine.Container, error) {
	if log == nil {
		log = slog.Default()
	}
	dec := json.NewDecoder(r)
	// A misspelt key ("nmes") is far more likely than a deliberate extra
	// one, and silently ignoring it would hide the container's names.
	dec.DisallowUnknownFields()
	var raw []engine.Container
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("not a JSON array of containers: %w", err)
	}
	if dec.More() {
		return nil, errors.New("unexpected data after the JSON array")
	}
	out := make([]engine.Container, 0, len(raw))
	seen := make(map[string]bool, len(raw))
	for i, c := range raw {
		c.Engine = Name
		switch {
		case c.ID == "":
			log.Warn("static entry without an id skipped", "index", i)
			continue
		case seen[c.ID]:
			log.Warn("static entry with a duplicate id skipped", "index", i, "id", c.ID)
			continue
		case c.PID < 0:
			log.Warn("static entry with a negative pid skipped", "index", i, "id", c.ID, "pid", c.PID)
			continue
		}
		switch c.State {
		case "":
			c.State = engine.StateStopped
			if c.PID > 0 {
				c.State = engine.StateRunning
			}
		case engine.StateRunning, engine.StatePaused, engine.StateRestarting, engine.StateStopped:
		default:
			log.Warn("static entry with an unknown state skipped", "index", i, "id", c.ID, "state", string(c.State))
			continue
		}
		c.Names = trimNames(c.Names)
		seen[c.ID] = true
		out = append(out, c)
	}
	return out, nil
}

// trimNames drops the leading "/" Docker puts on names, and empty names.
func trimNames(names []string) []string {
	if len(names) == 0 {
		return nil
	}
	out := make([]string, 0, len(names))
	for _, n := range names {
		if n = strings.TrimPrefix(n, "/"); n != "" {
			out = append(out, n)
		}
	}
	return out
}
