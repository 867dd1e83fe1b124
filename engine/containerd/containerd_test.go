package containerd

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	apievents "github.com/containerd/containerd/api/events"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"

	"github.com/rootd-project/rootd/engine"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// fakeDaemon is an in-memory containerd: namespace -> container ID -> state.
type fakeDaemon struct {
	mu          sync.Mutex
	containers  map[string]map[string]record
	tasks       map[string]map[string]taskState
	err         error // returned by every call when set
	subscribeFn func(ctx context.Context) (<-chan change, <-chan error, error)
}

func newFake() *fakeDaemon {
	return &fakeDaemon{containers: map[string]map[string]record{}, tasks: map[string]map[string]taskState{}}
}

func (f *fakeDaemon) add(ns string, r record, t *taskState) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.containers[ns] == nil {
		f.containers[ns] = map[string]record{}
		f.tasks[ns] = map[string]taskState{}
	}
	f.containers[ns][r.ID] = r
	if t != nil {
		t.ContainerID = r.ID
		f.tasks[ns][r.ID] = *t
	}
}

func (f *fakeDaemon) remove(ns, id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.containers[ns], id)
	delete(f.tasks[ns], id)
}

func (f *fakeDaemon) Namespaces(context.Context) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	var out []string
	for ns := range f.containers {
		out = append(out, ns)
	}
	sort.Strings(out)
	return out, nil
}

func (f *fakeDaemon) Containers(_ context.Context, ns string) ([]record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	var out []record
	for _, r := range f.containers[ns] {
		out = append(out, r)
	}
	return out, nil
}

func (f *fakeDaemon) Tasks(_ context.Context, ns string) ([]taskState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	var out []taskState
	for _, t := range f.tasks[ns] {
		out = append(out, t)
	}
	return out, nil
}

func (f *fakeDaemon) Container(_ context.Context, ns, id string) (record, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return record{}, f.err
	}
	r, ok := f.containers[ns][id]
	if !ok {
		return record{}, errdefs.ErrNotFound
	}
	return r, nil
}

func (f *fakeDaemon) Task(_ context.Context, ns, id string) (taskState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return taskState{}, f.err
	}
	t, ok := f.tasks[ns][id]
	if !ok {
		return taskState{}, errdefs.ErrNotFound
	}
	return t, nil
}

func (f *fakeDaemon) Subscribe(ctx context.Context) (<-chan change, <-chan error, error) {
	if f.subscribeFn == nil {
		return nil, nil, errdefs.ErrUnavailable
	}
	return f.subscribeFn(ctx)
}

func (f *fakeDaemon) Close() error { return nil }

func testEngine(skip string, daemons ...*fakeDaemon) *Engine {
	var conns []*daemonConn
	for i, d := range daemons {
		conns = append(conns, &daemonConn{address: filepath.Join("/fake", string(rune('a'+i))), api: d})
	}
	e := newEngine(quietLog(), conns, parseNamespaceList(skip))
	e.minBackoff, e.maxBackoff = time.Millisecond, time.Millisecond
	return e
}

func running(pid uint32) *taskState {
	return &taskState{PID: pid, Status: tasktypes.Status_RUNNING}
}

func ids(cs []engine.Container) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Namespace+"/"+c.ID)
	}
	sort.Strings(out)
	return out
}

func TestListSkipsNamespaces(t *testing.T) {
	d := newFake()
	d.add("default", record{ID: "web"}, running(10))
	d.add("k8s.io", record{ID: "abc123"}, running(11))
	d.add("moby", record{ID: "dockerid"}, running(12))
	d.add("plugins.moby", record{ID: "plugin"}, running(13))

	tests := []struct {
		skip string
		want []string
	}{
		{DefaultSkipNamespaces, []string{"default/web", "k8s.io/abc123"}},
		{"", []string{"default/web", "k8s.io/abc123", "moby/dockerid", "plugins.moby/plugin"}},
		{" moby , k8s.io,,", []string{"default/web", "plugins.moby/plugin"}},
	}
	for _, tt := range tests {
		got, err := testEngine(tt.skip, d).List(context.Background())
		if err != nil {
			t.Fatalf("skip %q: List: %v", tt.skip, err)
		}
		if !slices.Equal(ids(got), tt.want) {
			t.Errorf("skip %q: got %v, want %v", tt.skip, ids(got), tt.want)
		}
	}
}

func TestStateOf(t *testing.T) {
	tests := []struct {
		task      *taskState
		wantState engine.State
		wantPID   int
	}{
		{nil, engine.StateStopped, 0},
		{&taskState{PID: 42, Status: tasktypes.Status_RUNNING}, engine.StateRunning, 42},
		{&taskState{PID: 42, Status: tasktypes.Status_PAUSED}, engine.StatePaused, 42},
		{&taskState{PID: 42, Status: tasktypes.Status_PAUSING}, engine.StatePaused, 42},
		{&taskState{PID: 42, Status: tasktypes.Status_CREATED}, engine.StateStopped, 0},
		{&taskState{PID: 42, Status: tasktypes.Status_STOPPED}, engine.StateStopped, 0},
		{&taskState{PID: 42, Status: tasktypes.Status_UNKNOWN}, engine.StateStopped, 0},
	}
	for _, tt := range tests {
		state, pid := stateOf(tt.task)
		if state != tt.wantState || pid != tt.wantPID {
			t.Errorf("stateOf(%+v) = %s, %d; want %s, %d", tt.task, state, pid, tt.wantState, tt.wantPID)
		}
	}
}

func TestNamesAndLabels(t *testing.T) {
	const hexID = "4c01db0b339c4c5b9f6d0e5d1b1e4b6c9d2c0e9a8f7b6c5d4e3f2a1b0c9d8e7f"
	k8s := map[string]string{
		engine.LabelPodName:       "web-7d4b9c",
		engine.LabelPodNamespace:  "shop",
		engine.LabelContainerName: "nginx",
		engine.LabelPodUID:        "0b3c",
		"io.cri-containerd.kind":  "container",
	}
	sandbox := map[string]string{
		engine.LabelPodName:      "web-7d4b9c",
		engine.LabelPodNamespace: "shop",
		"io.cri-containerd.kind": "sandbox",
	}
	tests := []struct {
		name   string
		id     string
		labels map[string]string
		want   []string
	}{
		{"ctr run", "ctr1", nil, []string{"ctr1"}},
		{"plain with labels", "ctr2", map[string]string{"app": "x"}, []string{"ctr2"}},
		{"cri container", hexID, k8s, nil},
		{"cri sandbox", hexID, sandbox, nil},
		{"pod name alone", hexID, map[string]string{engine.LabelPodName: "p"}, nil},
		{"nerdctl", hexID, map[string]string{LabelNerdctlName: "db"}, []string{"db"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := toContainer("ns1", record{ID: tt.id, Labels: tt.labels}, running(7))
			if !slices.Equal(c.Names, tt.want) {
				t.Errorf("names = %q, want %q", c.Names, tt.want)
			}
			if c.ID != tt.id || c.Namespace != "ns1" || c.Engine != Name || c.PID != 7 || c.State != engine.StateRunning {
				t.Errorf("container = %+v", c)
			}
			if len(c.Labels) != len(tt.labels) {
				t.Errorf("labels = %v, want %v", c.Labels, tt.labels)
			}
			for k, v := range tt.labels {
				if c.Labels[k] != v {
					t.Errorf("label %s = %q, want %q", k, c.Labels[k], v)
				}
			}
			if tt.labels != nil {
				c.Labels["mutated"] = "yes"
				if _, leaked := tt.labels["mutated"]; leaked {
					t.Error("Container.Labels shares the record's map")
				}
			}
		})
	}
}

func TestAddressFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  string
		want []string
	}{
		{"default", nil, "", []string{DefaultAddress}},
		{"environment", nil, "/run/k3s/containerd/containerd.sock", []string{"/run/k3s/containerd/containerd.sock"}},
		{"flag beats environment", []string{"--containerd-address", "/a.sock"}, "/env.sock", []string{"/a.sock"}},
		{"repeated, deduplicated", []string{"--containerd-address=/a.sock", "--containerd-address", "/b.sock", "--containerd-address=/a.sock"}, "", []string{"/a.sock", "/b.sock"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			o := &options{}
			fs.Var(&o.addresses, "containerd-address", "")
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			getenv := func(k string) string {
				if k == AddressEnv {
					return tt.env
				}
				return ""
			}
			if got := addressesFor(o.addresses.List, getenv); !slices.Equal(got, tt.want) {
				t.Errorf("addresses = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestConfigureFlags(t *testing.T) {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	configure(fs)
	if err := fs.Parse([]string{"--containerd-address", ""}); err == nil {
		t.Error("an empty --containerd-address was accepted")
	}

	fs = flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	open := configure(fs)
	sock := filepath.Join(t.TempDir(), "none.sock")
	if err := fs.Parse([]string{"--containerd-address", sock, "--containerd-skip-namespaces", "a,b"}); err != nil {
		t.Fatal(err)
	}
	eng, err := open(engine.Env{Log: quietLog(), Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	e := eng.(*Engine)
	defer e.Close()
	if len(e.daemons) != 1 || e.daemons[0].address != sock {
		t.Errorf("daemons = %v, want just %s", e.daemons, sock)
	}
	if !e.skip["a"] || !e.skip["b"] || e.skip["moby"] {
		t.Errorf("skip = %v, want a and b only", e.skip)
	}
}

// A missing socket is an idle engine: List reports ErrUnavailable, through
// the real client.
func TestListMissingSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "containerd.sock")
	e, err := open(engine.Env{Log: quietLog()}, []string{sock}, DefaultSkipNamespaces)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	_, err = e.List(context.Background())
	if !errors.Is(err, engine.ErrUnavailable) {
		t.Fatalf("List error = %v, want one wrapping ErrUnavailable", err)
	}
}

func TestListSeveralDaemons(t *testing.T) {
	up := newFake()
	up.add("default", record{ID: "web"}, running(10))
	down := newFake()
	down.err = errdefs.ErrUnavailable
	broken := newFake()
	broken.err = errdefs.ErrPermissionDenied

	got, err := testEngine(DefaultSkipNamespaces, up, down).List(context.Background())
	if err != nil || !slices.Equal(ids(got), []string{"default/web"}) {
		t.Errorf("one daemon down: got %v, %v; want the other's containers", ids(got), err)
	}
	_, err = testEngine(DefaultSkipNamespaces, down, down).List(context.Background())
	if !errors.Is(err, engine.ErrUnavailable) {
		t.Errorf("all daemons down: error = %v, want ErrUnavailable", err)
	}
	_, err = testEngine(DefaultSkipNamespaces, up, broken).List(context.Background())
	if err == nil || errors.Is(err, engine.ErrUnavailable) {
		t.Errorf("a daemon failing otherwise: error = %v, want a non-ErrUnavailable error", err)
	}
}

func TestChangeOf(t *testing.T) {
	tests := []struct {
		topic string
		event any
		want  string
	}{
		{"/tasks/start", &apievents.TaskStart{ContainerID: "c1", Pid: 5}, "c1"},
		{"/tasks/exit", &apievents.TaskExit{ContainerID: "c1", ID: "exec7"}, "c1"},
		{"/tasks/delete", &apievents.TaskDelete{ContainerID: "c1", ID: "c1"}, "c1"},
		{"/tasks/paused", &apievents.TaskPaused{ContainerID: "c1"}, "c1"},
		{"/containers/create", &apievents.ContainerCreate{ID: "c2"}, "c2"},
		{"/containers/update", &apievents.ContainerUpdate{ID: "c2"}, "c2"},
		{"/containers/delete", &apievents.ContainerDelete{ID: "c2"}, "c2"},
		{"/namespaces/create", &apievents.NamespaceCreate{Name: "x"}, ""},
	}
	for _, tt := range tests {
		anyEvent, err := typeurl.MarshalAny(tt.event)
		if err != nil {
			t.Fatal(err)
		}
		got := changeOf(&events.Envelope{Namespace: "ns", Topic: tt.topic, Event: anyEvent})
		if got.ContainerID != tt.want || got.Namespace != "ns" || got.Topic != tt.topic {
			t.Errorf("%s: change = %+v, want container %q", tt.topic, got, tt.want)
		}
	}
	if got := changeOf(&events.Envelope{Namespace: "ns", Topic: "/tasks/start"}); got.ContainerID != "" {
		t.Errorf("empty envelope: change = %+v", got)
	}
}

// stream is a scripted event stream for the fake daemon.
type stream struct {
	changes chan change
	errs    chan error
}

func newStream() *stream { return &stream{changes: make(chan change), errs: make(chan error, 1)} }

func TestWatch(t *testing.T) {
	d := newFake()
	d.add("default", record{ID: "web"}, running(10))
	d.add("other", record{ID: "twin"}, nil)
	d.add("default", record{ID: "twin"}, nil)

	first, second := newStream(), newStream()
	var mu sync.Mutex
	attempts := 0
	d.subscribeFn = func(ctx context.Context) (<-chan change, <-chan error, error) {
		mu.Lock()
		defer mu.Unlock()
		attempts++
		switch attempts {
		case 1, 2: // the daemon is not there yet
			return nil, nil, errdefs.ErrUnavailable
		case 3:
			return first.changes, first.errs, nil
		case 4: // it went away
			return nil, nil, errdefs.ErrUnavailable
		default:
			return second.changes, second.errs, nil
		}
	}

	e := testEngine(DefaultSkipNamespaces, d)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan engine.Event)
	go e.Watch(ctx, events)

	next := func() engine.Event {
		t.Helper()
		select {
		case ev := <-events:
			return ev
		case <-time.After(10 * time.Second):
			t.Fatal("no event")
			return engine.Event{}
		}
	}
	expectKind := func(want engine.EventKind) engine.Event {
		t.Helper()
		ev := next()
		if ev.Kind != want || ev.Engine != Name {
			t.Fatalf("event = %v %+v, want %v", ev.Kind, ev, want)
		}
		return ev
	}

	if ev := expectKind(engine.Unavailable); !errors.Is(ev.Err, engine.ErrUnavailable) {
		t.Errorf("Unavailable carries %v, want ErrUnavailable", ev.Err)
	}
	expectKind(engine.Resync) // connected

	d.add("default", record{ID: "web"}, &taskState{PID: 10, Status: tasktypes.Status_PAUSED})
	first.changes <- change{Namespace: "moby", Topic: "/tasks/start", ContainerID: "dockerid"} // skipped
	first.changes <- change{Namespace: "default", Topic: "/tasks/paused", ContainerID: "web"}
	ev := expectKind(engine.Upsert)
	if c := ev.Container; c.ID != "web" || c.State != engine.StatePaused || c.PID != 10 || c.Namespace != "default" {
		t.Errorf("upsert = %+v, want web paused with PID 10", c)
	}

	d.remove("default", "web")
	first.changes <- change{Namespace: "default", Topic: "/containers/delete", ContainerID: "web"}
	if ev := expectKind(engine.Remove); ev.ID != "web" {
		t.Errorf("remove %q, want web", ev.ID)
	}

	first.changes <- change{Namespace: "default", Topic: "/tasks/start", ContainerID: "twin"}
	expectKind(engine.Resync) // the ID is also in namespace "other"
	first.changes <- change{Namespace: "default", Topic: "/tasks/start"}
	expectKind(engine.Resync) // undecodable event

	first.errs <- errors.New("connection reset")
	expectKind(engine.Unavailable) // reconnect failed once
	expectKind(engine.Resync)      // back

	d.add("default", record{ID: "new"}, running(20))
	second.changes <- change{Namespace: "default", Topic: "/tasks/start", ContainerID: "new"}
	if ev := expectKind(engine.Upsert); ev.Container.ID != "new" || ev.Container.PID != 20 {
		t.Errorf("upsert = %+v, want new with PID 20", ev.Container)
	}
}

// With two daemons, losing one is a Resync (List still has the other's
// containers), not Unavailable.
func TestWatchLosingOneOfTwoDaemons(t *testing.T) {
	a, b := newFake(), newFake()
	aStream := newStream()
	a.subscribeFn = func(context.Context) (<-chan change, <-chan error, error) {
		return aStream.changes, aStream.errs, nil
	}
	bStream := newStream()
	bUp := make(chan struct{})
	var once sync.Once
	b.subscribeFn = func(context.Context) (<-chan change, <-chan error, error) {
		select {
		case <-bUp:
			return nil, nil, errdefs.ErrUnavailable
		default:
		}
		once.Do(func() { close(bUp) })
		return bStream.changes, bStream.errs, nil
	}
	e := testEngine(DefaultSkipNamespaces, a, b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	events := make(chan engine.Event)
	go e.Watch(ctx, events)

	for range 2 {
		if ev := <-events; ev.Kind != engine.Resync {
			t.Fatalf("event = %v, want resync from each daemon", ev.Kind)
		}
	}
	bStream.errs <- errors.New("daemon b exited")
	if ev := <-events; ev.Kind != engine.Resync {
		t.Fatalf("event after losing b = %v, want resync", ev.Kind)
	}
}

func TestCgroupMarks(t *testing.T) {
	hex := strings.Repeat("0f", 32)
	tests := []struct {
		ns, id, path string
		want         bool
	}{
		{"rootd-test", "web", "rootd-test/web", true},
		{"rootd-test", "web", "k8s.io/web", false},
		{"rootd-test", "web", "other/web", false}, // a short chosen ID alone is not enough
		{"k8s.io", hex, "kubepods.slice/kubepods-pod1.slice/cri-containerd-" + hex + ".scope", true},
		{"k8s.io", hex, "kubepods/besteffort/pod1/" + hex, true},
		{"default", hex, "system.slice/nerdctl-" + hex + ".scope", true},
		{"k8s.io", hex, "system.slice/containerd.service", false},
	}
	for _, tt := range tests {
		if got := engine.CgroupMatches(tt.path, cgroupMarks(tt.ns, tt.id)); got != tt.want {
			t.Errorf("%s/%s in %s: %v, want %v", tt.ns, tt.id, tt.path, got, tt.want)
		}
	}
	if c := toContainer("rootd-test", record{ID: "web"}, nil); len(c.Cgroups) == 0 {
		t.Error("toContainer states no cgroup marks")
	}
}
