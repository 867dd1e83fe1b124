package static

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rootd-project/rootd/engine"
	"github.com/rootd-project/rootd/engine/enginetest"
)

// waitLimit bounds how long a test waits for something asynchronous; it is
// a hang guard, not a timing assertion.
const waitLimit = 10 * time.Second

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestParse(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		want     []engine.Container
		errSub   string
		warnings int
	}{
		{
			name: "full entry, engine forced, slash trimmed",
			in: `[{"engine":"docker","id":"abc","names":["/web","db"],"pid":42,"state":"paused",
			       "namespace":"ns","labels":{"k":"v"}}]`,
			want: []engine.Container{{Engine: "static", ID: "abc", Names: []string{"web", "db"}, PID: 42,
				State: engine.StatePaused, Namespace: "ns", Labels: map[string]string{"k": "v"}}},
		},
		{
			name: "missing state defaults from pid",
			in:   `[{"id":"a","pid":7},{"id":"b"}]`,
			want: []engine.Container{
				{Engine: "static", ID: "a", PID: 7, State: engine.StateRunning},
				{Engine: "static", ID: "b", State: engine.StateStopped},
			},
		},
		{
			name: "bad entries skipped with warnings",
			in: `[{"names":["noid"]},{"id":"a","state":"zombie"},{"id":"b","pid":-3},
			      {"id":"c","state":"stopped"},{"id":"c","state":"running","pid":9}]`,
			want:     []engine.Container{{Engine: "static", ID: "c", State: engine.StateStopped}},
			warnings: 4,
		},
		{name: "empty array", in: `[]`, want: []engine.Container{}},
		{name: "not JSON", in: `{{`, errSub: "not a JSON array"},
		{name: "object instead of array", in: `{"id":"a"}`, errSub: "not a JSON array"},
		{name: "unknown field", in: `[{"id":"a","nmes":["x"]}]`, errSub: "nmes"},
		{name: "trailing garbage", in: `[] []`, errSub: "after the JSON array"},
		{name: "empty file", in: ``, errSub: "not a JSON array"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logBuf bytes.Buffer
			got, err := Parse(strings.NewReader(tt.in), slog.New(slog.NewTextHandler(&logBuf, nil)))
			if tt.errSub != "" {
				if err == nil || !strings.Contains(err.Error(), tt.errSub) {
					t.Fatalf("Parse() error = %v, want one containing %q", err, tt.errSub)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse() error = %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Parse() = %+v\nwant %+v", got, tt.want)
			}
			if n := strings.Count(logBuf.String(), "level=WARN"); n != tt.warnings {
				t.Fatalf("%d warnings logged, want %d:\n%s", n, tt.warnings, logBuf.String())
			}
		})
	}
}

func TestFileEngineList(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	bad := filepath.Join(dir, "bad.json")
	writeFile(t, good, `[{"id":"abc","names":["web"],"pid":1}]`)
	writeFile(t, bad, `[{"id":`)

	tests := []struct {
		name      string
		path      string
		wantIDs   []string
		wantErrIs error
		errSub    string
	}{
		{name: "idle without a path", path: "", wantIDs: []string{}},
		{name: "valid file", path: good, wantIDs: []string{"abc"}},
		{name: "missing file is unavailable", path: filepath.Join(dir, "nope.json"), wantErrIs: engine.ErrUnavailable},
		{name: "corrupt file names the file", path: bad, errSub: bad},
		{name: "a directory is an error", path: dir, errSub: dir},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := NewFile(tt.path, quietLog())
			if e.Name() != "static" {
				t.Fatalf("Name() = %q", e.Name())
			}
			got, err := e.List(context.Background())
			switch {
			case tt.wantErrIs != nil:
				if !errors.Is(err, tt.wantErrIs) {
					t.Fatalf("List() error = %v, want %v", err, tt.wantErrIs)
				}
			case tt.errSub != "":
				if err == nil || errors.Is(err, engine.ErrUnavailable) || !strings.Contains(err.Error(), tt.errSub) {
					t.Fatalf("List() error = %v, want a non-unavailable one containing %q", err, tt.errSub)
				}
			default:
				if err != nil {
					t.Fatalf("List() error = %v", err)
				}
				if got == nil {
					t.Fatal("List() = nil, want an empty or full list")
				}
				ids := []string{}
				for _, c := range got {
					ids = append(ids, c.ID)
				}
				if !reflect.DeepEqual(ids, tt.wantIDs) {
					t.Fatalf("List() ids = %v, want %v", ids, tt.wantIDs)
				}
			}
		})
	}
}

func TestFileEngineWatchSeesAtomicReplace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "containers.json")
	writeFile(t, path, `[]`)
	e := NewFile(path, quietLog())

	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan engine.Event)
	done := make(chan struct{})
	go func() { defer close(done); e.Watch(ctx, events) }()
	defer func() { cancel(); <-done }()

	// The first Resync says the watch is in place.
	expectResync(t, events)

	// A new file renamed over the watched one, as editors and config tools
	// replace files, is reported.
	tmp := filepath.Join(dir, ".containers.json.tmp")
	writeFile(t, tmp, `[{"id":"new1","pid":5}]`)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	expectResync(t, events)
	cs, err := e.List(ctx)
	if err != nil || len(cs) != 1 || cs[0].ID != "new1" {
		t.Fatalf("List() after replace = %+v, %v", cs, err)
	}
}

func TestFileEngineWatchIdleReturnsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); NewFile("", quietLog()).Watch(ctx, make(chan engine.Event)) }()
	cancel()
	select {
	case <-done:
	case <-time.After(waitLimit):
		t.Fatal("Watch did not return after cancel")
	}
}

func expectResync(t *testing.T, events <-chan engine.Event) {
	t.Helper()
	for {
		select {
		case ev := <-events:
			if ev.Kind != engine.Resync || ev.Engine != "static" {
				t.Fatalf("event = %+v, want a static Resync", ev)
			}
			return
		case <-time.After(waitLimit):
			t.Fatal("no Resync event")
		}
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestRegisteredWithFlag(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.json")
	writeFile(t, path, `[{"id":"x1","state":"running","pid":3}]`)

	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	set := engine.Configure(fs)
	if err := fs.Parse([]string{"--static-file", path}); err != nil {
		t.Fatal(err)
	}
	engines, err := set.Open(engine.Env{Log: quietLog()}, []string{"static"})
	if err != nil || len(engines) != 1 {
		t.Fatalf("Open(static) = %v, %v", engines, err)
	}
	cs, err := engines[0].List(context.Background())
	if err != nil || len(cs) != 1 || cs[0].ID != "x1" || cs[0].Engine != "static" {
		t.Fatalf("List() = %+v, %v", cs, err)
	}
	if _, ok := engines[0].(engine.Watcher); !ok {
		t.Fatal("static engine does not implement engine.Watcher")
	}
}

// staticRuntime drives the static engine's file as an operator would: each
// change rewrites the whole file by renaming a new one over it.
type staticRuntime struct {
	path string
	cs   map[string]string // id -> JSON object
}

func (r *staticRuntime) write(id, obj string) error {
	if obj == "" {
		delete(r.cs, id)
	} else {
		r.cs[id] = obj
	}
	var objs []string
	for _, o := range r.cs {
		objs = append(objs, o)
	}
	tmp := r.path + ".new"
	if err := os.WriteFile(tmp, []byte("["+strings.Join(objs, ",")+"]"), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, r.path)
}

func (r *staticRuntime) Create(_ context.Context, name string) (string, error) {
	id := "id-" + name
	return id, r.write(id, `{"id":"`+id+`","names":["`+name+`"],"pid":4242,"state":"running"}`)
}

func (r *staticRuntime) Pause(_ context.Context, id string) error {
	name := strings.TrimPrefix(id, "id-")
	return r.write(id, `{"id":"`+id+`","names":["`+name+`"],"pid":4242,"state":"paused"}`)
}

func (r *staticRuntime) Stop(_ context.Context, id string) error {
	name := strings.TrimPrefix(id, "id-")
	return r.write(id, `{"id":"`+id+`","names":["`+name+`"],"state":"stopped"}`)
}

func (r *staticRuntime) Remove(_ context.Context, id string) error { return r.write(id, "") }

// TestConformance runs the engine contract's suite over a static file, the
// file changed under the engine's watch, and a file that is missing.
func TestConformance(t *testing.T) {
	dir := t.TempDir()
	rt := &staticRuntime{path: filepath.Join(dir, "containers.json"), cs: map[string]string{}}
	if err := rt.write("abc", `{"id":"abc","names":["web"],"pid":1,"state":"running"}`); err != nil {
		t.Fatal(err)
	}
	enginetest.Run(t, enginetest.Harness{
		Open: func(context.Context) (engine.Engine, error) { return NewFile(rt.path, quietLog()), nil },
		OpenAbsent: func(context.Context) (engine.Engine, error) {
			return NewFile(filepath.Join(dir, "missing.json"), quietLog()), nil
		},
		Expect:  []engine.Container{{ID: "abc", Names: []string{"web"}, State: engine.StateRunning}},
		Runtime: rt,
		Timeout: waitLimit,
	})
}
