package cri

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/rootd-project/rootd/engine"
	"github.com/rootd-project/rootd/engine/enginetest"
)

// The live tests (integration/cri_test.go) run the engine against
// containerd's CRI plugin; these cover decoding and the edge cases a live
// runtime does not show on demand, over a fake CRI server on a unix socket.

const (
	sbID  = "5b0000000000000000000000000000000000000000000000000000000000000a"
	ctrID = "c70000000000000000000000000000000000000000000000000000000000000b"
)

// fakeCRI serves the part of runtime.v1 the engine uses.
type fakeCRI struct {
	runtimeapi.UnimplementedRuntimeServiceServer

	mu         sync.Mutex
	name       string
	sandboxes  []*runtimeapi.PodSandbox
	containers []*runtimeapi.Container
	// info is the verbose "info" JSON by ID; statusErr fails a status call;
	// state overrides what a status call says of a container.
	info      map[string]string
	statusErr map[string]error
	exited    map[string]bool
	calls     map[string]int
	// events, when not nil, makes GetContainerEvents a stream fed by it.
	events chan *runtimeapi.ContainerEventResponse
	// eventsOff makes GetContainerEvents end at once without an error, as
	// CRI-O does unless enable_pod_events is set.
	eventsOff bool
	// eventsEndAfter, when not zero, ends a stream without an error that
	// long after it was opened (with events nil), as a runtime restarting
	// gracefully does; an event with ContainerId endStream ends it at once.
	eventsEndAfter time.Duration
	// subscribes and lists count GetContainerEvents and ListContainers
	// calls.
	subscribes, lists int
}

func (f *fakeCRI) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{RuntimeName: f.name, RuntimeVersion: "1.0", RuntimeApiVersion: "v1"}, nil
}

func (f *fakeCRI) ListPodSandbox(context.Context, *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return &runtimeapi.ListPodSandboxResponse{Items: slices.Clone(f.sandboxes)}, nil
}

func (f *fakeCRI) ListContainers(context.Context, *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	return &runtimeapi.ListContainersResponse{Containers: slices.Clone(f.containers)}, nil
}

func (f *fakeCRI) status(id string) (map[string]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[id]++
	if err := f.statusErr[id]; err != nil {
		return nil, err
	}
	if info, ok := f.info[id]; ok {
		return map[string]string{"info": info}, nil
	}
	return map[string]string{}, nil
}

func (f *fakeCRI) PodSandboxStatus(_ context.Context, r *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	info, err := f.status(r.GetPodSandboxId())
	if err != nil {
		return nil, err
	}
	return &runtimeapi.PodSandboxStatusResponse{Status: &runtimeapi.PodSandboxStatus{Id: r.GetPodSandboxId(), State: runtimeapi.PodSandboxState_SANDBOX_READY}, Info: info}, nil
}

func (f *fakeCRI) ContainerStatus(_ context.Context, r *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	info, err := f.status(r.GetContainerId())
	if err != nil {
		return nil, err
	}
	state := runtimeapi.ContainerState_CONTAINER_RUNNING
	f.mu.Lock()
	if f.exited[r.GetContainerId()] {
		state = runtimeapi.ContainerState_CONTAINER_EXITED
	}
	f.mu.Unlock()
	return &runtimeapi.ContainerStatusResponse{Status: &runtimeapi.ContainerStatus{Id: r.GetContainerId(), State: state}, Info: info}, nil
}

func (f *fakeCRI) GetContainerEvents(_ *runtimeapi.GetEventsRequest, s grpc.ServerStreamingServer[runtimeapi.ContainerEventResponse]) error {
	f.mu.Lock()
	f.subscribes++
	off, endAfter := f.eventsOff, f.eventsEndAfter
	f.mu.Unlock()
	if off {
		return nil
	}
	var end <-chan time.Time
	if endAfter > 0 {
		end = time.After(endAfter)
		if f.events == nil {
			<-end
			return nil
		}
	}
	if f.events == nil {
		return status.Error(codes.Unimplemented, "method GetContainerEvents not implemented")
	}
	for {
		select {
		case <-s.Context().Done():
			return nil
		case <-end:
			return nil
		case ev := <-f.events:
			if ev == nil {
				return status.Error(codes.Internal, "stream broke")
			}
			if ev.ContainerId == endStream {
				return nil
			}
			if err := s.Send(ev); err != nil {
				return err
			}
		}
	}
}

// endStream, as the ContainerId of an event sent to fakeCRI.events, ends
// the stream without an error instead of being sent.
const endStream = "end-of-stream"

func (f *fakeCRI) callsOf(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[id]
}

// newFake is a pod (namespace prod, pod web-0) with one running container
// (nginx, PID 4242; the sandbox's PID is 4200) and one exited one.
func newFake() *fakeCRI {
	return &fakeCRI{
		name: "containerd",
		sandboxes: []*runtimeapi.PodSandbox{{
			Id:       sbID,
			Metadata: &runtimeapi.PodSandboxMetadata{Name: "web-0", Uid: "u-1", Namespace: "prod"},
			State:    runtimeapi.PodSandboxState_SANDBOX_READY,
			Labels:   map[string]string{"app": "web", engine.LabelPodName: "stale-label"},
		}},
		containers: []*runtimeapi.Container{
			{Id: ctrID, PodSandboxId: sbID, Metadata: &runtimeapi.ContainerMetadata{Name: "nginx"}, State: runtimeapi.ContainerState_CONTAINER_RUNNING},
			{Id: "e0" + ctrID[2:], PodSandboxId: sbID, Metadata: &runtimeapi.ContainerMetadata{Name: "init", Attempt: 1}, State: runtimeapi.ContainerState_CONTAINER_EXITED},
		},
		info: map[string]string{
			sbID:  `{"pid":4200,"processStatus":"running"}`,
			ctrID: `{"sandboxID":"` + sbID + `","pid":4242,"runtimeSpec":{}}`,
		},
		statusErr: map[string]error{},
		exited:    map[string]bool{},
		calls:     map[string]int{},
	}
}

// serve runs f on a unix socket and returns its path.
func serve(t *testing.T, f *fakeCRI) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "cri.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	runtimeapi.RegisterRuntimeServiceServer(s, f)
	go s.Serve(l)
	t.Cleanup(s.Stop)
	return sock
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func open(t *testing.T, addrs ...string) *Engine {
	t.Helper()
	e, err := Open(quiet(), addrs, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func byID(cs []engine.Container) map[string]engine.Container {
	m := map[string]engine.Container{}
	for _, c := range cs {
		m[c.ID] = c
	}
	return m
}

func TestList(t *testing.T) {
	f := newFake()
	e := open(t, serve(t, f))
	cs, err := e.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m := byID(cs)
	if len(m) != 3 {
		t.Fatalf("listed %d: %+v", len(m), cs)
	}
	ng := m[ctrID]
	if ng.State != engine.StateRunning || ng.PID != 4242 || !slices.Equal(ng.Names, []string{"nginx"}) || ng.Engine != Name {
		t.Errorf("nginx = %+v", ng)
	}
	for k, v := range map[string]string{
		engine.LabelPodNamespace: "prod", engine.LabelPodName: "web-0", engine.LabelPodUID: "u-1",
		engine.LabelContainerName: "nginx", LabelKind: "container", "app": "",
	} {
		if ng.Labels[k] != v {
			t.Errorf("nginx label %s = %q, want %q", k, ng.Labels[k], v)
		}
	}
	if want := []string{"cri-containerd-" + ctrID + ".scope", ctrID}; !slices.Equal(ng.Cgroups, want) {
		t.Errorf("nginx cgroups %q, want %q", ng.Cgroups, want)
	}
	sb := m[sbID]
	if sb.State != engine.StateRunning || sb.PID != 4200 || len(sb.Names) != 0 ||
		sb.Labels[engine.LabelPodName] != "web-0" || sb.Labels[engine.LabelContainerName] != "" || sb.Labels["app"] != "web" {
		t.Errorf("sandbox = %+v (metadata wins over a stale pod-name label; no container name)", sb)
	}
	if ex := m["e0"+ctrID[2:]]; ex.State != engine.StateStopped || ex.PID != 0 {
		t.Errorf("exited container = %+v", ex)
	}
	// PIDs are asked once per running container, not on every List.
	if _, err := e.List(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := f.callsOf(ctrID); n != 1 {
		t.Errorf("ContainerStatus called %d times over two Lists, want 1", n)
	}
	if n := f.callsOf("e0" + ctrID[2:]); n != 0 {
		t.Errorf("ContainerStatus called for an exited container")
	}
}

func TestListEdgeCases(t *testing.T) {
	running := func(id string) *runtimeapi.Container {
		return &runtimeapi.Container{Id: id, PodSandboxId: "gone", Metadata: &runtimeapi.ContainerMetadata{Name: "x" + id[:2]},
			State: runtimeapi.ContainerState_CONTAINER_RUNNING, Labels: map[string]string{engine.LabelPodName: "from-label"}}
	}
	var (
		exitedSince = "a1" + ctrID[2:]
		goneSince   = "a2" + ctrID[2:]
		broken      = "a3" + ctrID[2:]
		noPID       = "a4" + ctrID[2:]
		badJSON     = "a5" + ctrID[2:]
		orphan      = "a6" + ctrID[2:]
	)
	f := newFake()
	f.name = "cri-o"
	f.containers = append(f.containers, running(exitedSince), running(goneSince), running(broken), running(noPID), running(badJSON), running(orphan))
	f.exited[exitedSince] = true
	f.statusErr[goneSince] = status.Error(codes.NotFound, "no such container")
	f.statusErr[broken] = status.Error(codes.Internal, "boom")
	f.info[noPID] = `{"sandboxID":"x"}`
	f.info[badJSON] = `{"pid":`
	f.info[orphan] = `{"pid":77}`
	f.info[exitedSince] = `{"pid":0}`
	// A CRI-O pod without an infra container has no sandbox process.
	f.info[sbID] = `{"pid":0}`
	cs, err := open(t, serve(t, f)).List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m := byID(cs)
	if c, ok := m[exitedSince]; !ok || c.State != engine.StateStopped || c.PID != 0 {
		t.Errorf("exited between list and status: %+v, %v", c, ok)
	}
	for _, id := range []string{goneSince, broken, noPID, badJSON, sbID} {
		if c, ok := m[id]; ok {
			t.Errorf("%s listed as %+v; want it left out", id[:2], c)
		}
	}
	o := m[orphan]
	if o.PID != 77 || o.Labels[engine.LabelPodName] != "from-label" {
		t.Errorf("container whose sandbox is not listed: %+v", o)
	}
	if want := []string{"crio-" + orphan + ".scope", "crio-" + orphan}; !slices.Equal(o.Cgroups, want) {
		t.Errorf("CRI-O cgroup marks %q, want %q", o.Cgroups, want)
	}
}

func TestInfoPID(t *testing.T) {
	for _, tc := range []struct {
		info map[string]string
		pid  int
	}{
		{map[string]string{"info": `{"pid":12}`}, 12},
		{map[string]string{"info": `{"pid":12,"sandboxID":"x","runtimeSpec":{"process":{}}}`}, 12},
		{map[string]string{}, 0},
		{map[string]string{"info": `{}`}, 0},
		{map[string]string{"info": `{"pid":0}`}, 0},
		{map[string]string{"info": `{"pid":-3}`}, 0},
		{map[string]string{"info": `{"pid":"12"}`}, 0},
		{map[string]string{"info": `{"pid":99999999999}`}, 0},
		{map[string]string{"info": `not json`}, 0},
	} {
		pid, err := infoPID(tc.info)
		if pid != tc.pid || (err == nil) != (tc.pid > 0) {
			t.Errorf("infoPID(%q) = %d, %v; want %d", tc.info, pid, err, tc.pid)
		}
	}
}

func TestAbsentAndPartial(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.sock")
	_, err := open(t, missing).List(context.Background())
	if !errors.Is(err, engine.ErrUnavailable) {
		t.Fatalf("List with no runtime: %v, want ErrUnavailable", err)
	}
	// One endpoint of two answering is a List of that one's containers;
	// the same runtime under two paths lists each container once.
	sock := serve(t, newFake())
	cs, err := open(t, missing, sock, filepath.Dir(sock)+"/./cri.sock").List(context.Background())
	if err != nil || len(cs) != 3 {
		t.Fatalf("List with one endpoint of three absent: %d containers, %v", len(cs), err)
	}
}

// TestNoCRIService: a containerd whose CRI plugin is disabled (Docker's)
// answers gRPC but not the CRI: no CRI runtime there.
func TestNoCRIService(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "plain.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	go s.Serve(l)
	t.Cleanup(s.Stop)
	_, err = open(t, sock).List(context.Background())
	if !errors.Is(err, engine.ErrUnavailable) {
		t.Fatalf("List over a gRPC server without the CRI: %v, want ErrUnavailable", err)
	}
}

func TestWatchRelistSendsResyncOnChange(t *testing.T) {
	f := newFake()
	e := open(t, serve(t, f))
	events, stop := watch(t, e, 16)
	defer stop()
	// Nothing changes: several relist intervals pass without an event.
	select {
	case ev := <-events:
		t.Fatalf("event %v without a change", ev.Kind)
	case <-time.After(300 * time.Millisecond):
	}
	f.mu.Lock()
	f.containers = f.containers[:1]
	f.mu.Unlock()
	if ev := next(t, events); ev.Kind != engine.Resync {
		t.Fatalf("after a change: %v, want Resync", ev.Kind)
	}
}

func TestWatchEventStream(t *testing.T) {
	f := newFake()
	f.events = make(chan *runtimeapi.ContainerEventResponse)
	e, err := Open(quiet(), []string{serve(t, f)}, time.Hour) // no relist to help
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	events, stop := watch(t, e, 16)
	defer stop()
	select {
	case f.events <- &runtimeapi.ContainerEventResponse{ContainerId: ctrID, ContainerEventType: runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT}:
	case <-time.After(10 * time.Second):
		t.Fatal("the engine did not subscribe to the event stream")
	}
	if ev := next(t, events); ev.Kind != engine.Resync {
		t.Fatalf("after an event: %v, want Resync", ev.Kind)
	}
	// A stream that breaks while the runtime answers is no outage: the
	// engine subscribes again and resyncs, without Unavailable.
	f.events <- nil
	if ev := next(t, events); ev.Kind != engine.Resync {
		t.Fatalf("after the stream broke: %v, want Resync", ev.Kind)
	}
	select {
	case f.events <- &runtimeapi.ContainerEventResponse{ContainerId: ctrID}:
	case <-time.After(10 * time.Second):
		t.Fatal("the engine did not subscribe again")
	}
	if ev := next(t, events); ev.Kind != engine.Resync {
		t.Fatalf("after an event on the new stream: %v, want Resync", ev.Kind)
	}
}

// CRI-O without enable_pod_events (its default) serves GetContainerEvents
// but ends the stream at once with no error. The engine must list it every
// relist interval, as a runtime without the method, not subscribe again
// and again (each time a List and a Resync).
func TestWatchStreamEndedAtOnceRelists(t *testing.T) {
	f := newFake()
	f.eventsOff = true
	e := open(t, serve(t, f)) // relist 50 ms
	events, stop := watch(t, e, 64)
	defer stop()
	counts := func() (subscribes, lists int) {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.subscribes, f.lists
	}
	// Wait for several Lists after the first one.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, lists := counts(); lists >= 6 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the endpoint was not listed again")
		}
	}
	if subs, lists := counts(); subs != 1 {
		t.Errorf("%d subscriptions in %d Lists, want 1: the ended stream is subscribed to again", subs, lists)
	}
	select {
	case ev := <-events:
		t.Errorf("event %v without a change", ev.Kind)
	default:
	}
	f.mu.Lock()
	f.containers = f.containers[:1]
	f.mu.Unlock()
	if ev := next(t, events); ev.Kind != engine.Resync {
		t.Fatalf("after a change: %v, want Resync", ev.Kind)
	}
}

// A stream that delivered events, or lived longer than a moment, and then
// ended without an error is a runtime restarting gracefully, not one
// without events: the engine subscribes again (with its backoff) instead
// of falling back to relisting for good.
func TestWatchStreamEndedLaterResubscribes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		endAfter time.Duration // the stream ends this long after it opened, with no event
	}{
		{"after an event", 0},
		{"after a while without events", streamEndedAtOnce + 500*time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			if tc.endAfter > 0 {
				f.eventsEndAfter = tc.endAfter
			} else {
				f.events = make(chan *runtimeapi.ContainerEventResponse)
			}
			e, err := Open(quiet(), []string{serve(t, f)}, time.Hour) // no relist to help
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			events, stop := watch(t, e, 16)
			defer stop()
			if tc.endAfter == 0 {
				f.events <- &runtimeapi.ContainerEventResponse{ContainerId: ctrID}
				if ev := next(t, events); ev.Kind != engine.Resync {
					t.Fatalf("after an event: %v, want Resync", ev.Kind)
				}
				f.events <- &runtimeapi.ContainerEventResponse{ContainerId: endStream}
			}
			// The engine subscribes again, and resyncs on doing so.
			if ev := next(t, events); ev.Kind != engine.Resync {
				t.Fatalf("after the stream ended: %v, want Resync", ev.Kind)
			}
			for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
				f.mu.Lock()
				subs := f.subscribes
				f.mu.Unlock()
				if subs >= 2 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d subscriptions: the engine did not subscribe again", subs)
				}
			}
			if tc.endAfter == 0 {
				select {
				case f.events <- &runtimeapi.ContainerEventResponse{ContainerId: ctrID}:
				case <-time.After(10 * time.Second):
					t.Fatal("no new stream takes events")
				}
				if ev := next(t, events); ev.Kind != engine.Resync {
					t.Fatalf("after an event on the new stream: %v, want Resync", ev.Kind)
				}
			}
		})
	}
}

func next(t *testing.T, events <-chan engine.Event) engine.Event {
	t.Helper()
	select {
	case ev := <-events:
		if ev.Engine != Name {
			t.Errorf("event of engine %q", ev.Engine)
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event")
	}
	return engine.Event{}
}

func TestConformance(t *testing.T) {
	sock := serve(t, newFake())
	missing := filepath.Join(t.TempDir(), "none.sock")
	enginetest.Run(t, enginetest.Harness{
		Open:       func(context.Context) (engine.Engine, error) { return Open(quiet(), []string{sock}, time.Second) },
		OpenAbsent: func(context.Context) (engine.Engine, error) { return Open(quiet(), []string{missing}, time.Second) },
		Expect: []engine.Container{
			{ID: ctrID, Names: []string{"nginx"}, State: engine.StateRunning},
			{ID: sbID, State: engine.StateRunning},
		},
		Timeout: 10 * time.Second,
	})
}

func TestRegisteredWithFlag(t *testing.T) {
	sock := serve(t, newFake())
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	set := engine.Configure(fs)
	if err := fs.Parse([]string{"--cri-endpoint", "unix://" + sock, "--cri-endpoint", sock, "--cri-relist", "1s"}); err != nil {
		t.Fatal(err)
	}
	es, err := set.Open(engine.Env{Log: quiet()}, []string{Name})
	if err != nil {
		t.Fatal(err)
	}
	e := es[0].(*Engine)
	defer e.Close()
	if len(e.eps) != 1 || e.eps[0].address != sock || e.relist != time.Second {
		t.Fatalf("endpoints %d, relist %v", len(e.eps), e.relist)
	}
	if d, _ := engine.Lookup(Name); d.Precedence != engine.PrecedenceManager {
		t.Errorf("precedence %d", d.Precedence)
	}
	for _, bad := range [][]string{{"--cri-endpoint", "relative.sock"}, {"--cri-endpoint", ""}} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		engine.Configure(fs)
		if err := fs.Parse(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	fs = flag.NewFlagSet("t", flag.ContinueOnError)
	set = engine.Configure(fs)
	fs.Parse(nil)
	es, err = set.Open(engine.Env{Log: quiet()}, []string{Name})
	if err != nil {
		t.Fatal(err)
	}
	defer es[0].(*Engine).Close()
	var got []string
	for _, ep := range es[0].(*Engine).eps {
		got = append(got, ep.address)
	}
	if !slices.Equal(got, DefaultEndpoints) {
		t.Errorf("default endpoints %q", got)
	}
}

// watch starts e's Watch and reads its first event, which must be the
// Resync every watch begins with; stop cancels the watch and waits for it.
func watch(t *testing.T, e *Engine, buf int) (events chan engine.Event, stop func()) {
	t.Helper()
	events = make(chan engine.Event, buf)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); e.Watch(ctx, events) }()
	stop = func() { cancel(); <-done }
	if ev := next(t, events); ev.Kind != engine.Resync {
		stop()
		t.Fatalf("first event %v, want Resync", ev.Kind)
	}
	return events, stop
}
