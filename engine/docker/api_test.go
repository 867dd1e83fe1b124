package docker

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"

	"github.com/rootd-project/rootd/engine"
)

// fakeDaemon answers the handful of Docker API calls the engine makes, on a
// unix socket, as dockerd 20.10 (API 1.41) would.
type fakeDaemon struct {
	sock string

	mu         sync.Mutex
	containers []container.InspectResponse
	srv        *httptest.Server
	stop       chan struct{} // closed to end event streams
	sinces     []string      // "since" of every events request

	events chan events.Message
}

func newFakeDaemon(t *testing.T) *fakeDaemon {
	t.Helper()
	// A short path: unix socket names are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "dk")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	d := &fakeDaemon{sock: filepath.Join(dir, "docker.sock"), events: make(chan events.Message)}
	d.start(t)
	t.Cleanup(d.shutdown)
	return d
}

func (d *fakeDaemon) host() string { return "unix://" + d.sock }

func (d *fakeDaemon) start(t *testing.T) {
	t.Helper()
	l, err := net.Listen("unix", d.sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(d.serve))
	srv.Listener.Close()
	srv.Listener = l
	d.mu.Lock()
	d.srv, d.stop = srv, make(chan struct{})
	d.mu.Unlock()
	srv.Start()
}

// shutdown makes the daemon go away: its socket stops answering.
func (d *fakeDaemon) shutdown() {
	d.mu.Lock()
	srv, stop := d.srv, d.stop
	d.srv = nil
	d.mu.Unlock()
	if srv == nil {
		return
	}
	close(stop)
	srv.CloseClientConnections()
	srv.Close()
}

func (d *fakeDaemon) set(cs ...container.InspectResponse) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.containers = cs
}

func (d *fakeDaemon) serve(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Api-Version", "1.41")
	p := r.URL.Path
	if p == "/_ping" {
		w.Write([]byte("OK"))
		return
	}
	p, ok := strings.CutPrefix(p, "/v1.41")
	if !ok {
		http.Error(w, `{"message":"client version too new"}`, http.StatusBadRequest)
		return
	}
	d.mu.Lock()
	cs := slices.Clone(d.containers)
	stop := d.stop
	d.mu.Unlock()
	switch {
	case p == "/containers/json":
		var out []container.Summary
		for _, c := range cs {
			out = append(out, container.Summary{
				ID: c.ID, Names: []string{c.Name, "/linker" + c.Name}, State: c.State.Status, Labels: c.Config.Labels,
			})
		}
		json.NewEncoder(w).Encode(out)
	case strings.HasPrefix(p, "/containers/") && strings.HasSuffix(p, "/json"):
		id := strings.TrimSuffix(strings.TrimPrefix(p, "/containers/"), "/json")
		for _, c := range cs {
			if c.ID == id {
				json.NewEncoder(w).Encode(c)
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"message":"No such container: ` + id + `"}`))
	case p == "/events":
		d.mu.Lock()
		d.sinces = append(d.sinces, r.URL.Query().Get("since"))
		d.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		enc := json.NewEncoder(w)
		for {
			select {
			case m := <-d.events:
				enc.Encode(m)
				w.(http.Flusher).Flush()
			case <-stop:
				return
			case <-r.Context().Done():
				return
			}
		}
	default:
		http.NotFound(w, r)
	}
}

func inspected(id, name, status string, pid int, labels map[string]string) container.InspectResponse {
	return container.InspectResponse{
		ID:   id,
		Name: "/" + name,
		State: &container.State{
			Status:  container.ContainerState(status),
			Running: status == "running" || status == "paused" || status == "restarting",
			Paused:  status == "paused",
			Pid:     pid,
		},
		Config: &container.Config{Labels: labels},
	}
}

func newAPIEngine(t *testing.T, host string) *apiEngine {
	t.Helper()
	log, _ := logBuffer()
	e, err := open(engine.Env{Log: log, Getenv: func(string) string { return "" }}, host, "")
	if err != nil {
		t.Fatal(err)
	}
	a := e.(*apiEngine)
	a.fallback = nil
	t.Cleanup(func() { a.Close() })
	return a
}

func TestAPIList(t *testing.T) {
	d := newFakeDaemon(t)
	k8sName := "k8s_app_web-7d9f_prod_0b7c5c6e-1111-2222-3333-444455556666_2"
	d.set(
		inspected(idA, "web", "running", 1001, map[string]string{"tier": "front"}),
		inspected(idB, "batch", "exited", 0, nil),
		inspected(idC, "frozen", "paused", 1003, nil),
		inspected(idD, k8sName, "running", 1004, map[string]string{engine.LabelPodNamespace: "from-label"}),
	)
	e := newAPIEngine(t, d.host())
	cs, err := e.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := byID(cs)
	want := []struct {
		id    string
		name  string
		state engine.State
		pid   int
	}{
		{idA, "web", engine.StateRunning, 1001},
		{idB, "batch", engine.StateStopped, 0},
		{idC, "frozen", engine.StatePaused, 1003},
		{idD, k8sName, engine.StateRunning, 1004},
	}
	if len(cs) != len(want) {
		t.Fatalf("List = %+v", cs)
	}
	for _, w := range want {
		c := got[w.id]
		if !slices.Equal(c.Names, []string{w.name}) || c.State != w.state || c.PID != w.pid || c.Engine != Name {
			t.Errorf("%s: got names %q state %s pid %d, want %q %s %d", w.id[:12], c.Names, c.State, c.PID, w.name, w.state, w.pid)
		}
	}
	if got[idA].Labels["tier"] != "front" {
		t.Errorf("labels not copied: %v", got[idA].Labels)
	}
	k8s := got[idD].Labels
	if k8s[engine.LabelPodName] != "web-7d9f" || k8s[engine.LabelContainerName] != "app" ||
		k8s[engine.LabelPodUID] != "0b7c5c6e-1111-2222-3333-444455556666" || k8s[engine.LabelPodNamespace] != "from-label" {
		t.Errorf("kubernetes labels = %v", k8s)
	}
}

func TestAPIUnavailable(t *testing.T) {
	missing := "unix://" + filepath.Join(t.TempDir(), "no.sock")

	e := newAPIEngine(t, missing)
	if _, err := e.List(context.Background()); !errors.Is(err, engine.ErrUnavailable) {
		t.Errorf("List without a daemon: %v, want ErrUnavailable", err)
	}

	// The fallback must not hide an absent daemon when there is no state.
	log, _ := logBuffer()
	e.fallback = &diskReader{dir: filepath.Join(t.TempDir(), "none"), log: log, verifyPIDs: true, procRoot: t.TempDir()}
	if _, err := e.List(context.Background()); !errors.Is(err, engine.ErrUnavailable) {
		t.Errorf("List without daemon or state: %v, want ErrUnavailable", err)
	}

	// With state on disk, the fallback answers, distrusting its PIDs.
	e.fallback.dir = fixtureRoot(t, "containers-docker-1.3.2-root-001.tgz")
	cs, err := e.List(context.Background())
	if err != nil || len(cs) != 3 {
		t.Fatalf("List from fallback = %+v, %v", cs, err)
	}
	for _, c := range cs {
		if c.State != engine.StateStopped || c.PID != 0 {
			t.Errorf("fallback reported %s as %s pid %d; its PIDs are not processes here", c.Names, c.State, c.PID)
		}
	}
}

func TestAPIWatch(t *testing.T) {
	d := newFakeDaemon(t)
	d.set(inspected(idA, "web", "running", 1001, nil))
	e := newAPIEngine(t, d.host())

	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan engine.Event, 16)
	done := make(chan struct{})
	go func() { defer close(done); e.Watch(ctx, out) }()
	t.Cleanup(func() { cancel(); <-done })

	emit := func(action events.Action, id string) {
		t.Helper()
		select {
		case d.events <- events.Message{Type: events.ContainerEventType, Action: action, Actor: events.Actor{ID: id}, TimeNano: 1700000000123456789}:
		case <-ctx.Done():
		}
	}

	d.set(inspected(idA, "web", "paused", 1001, nil))
	emit(events.ActionPause, idA)
	ev := waitEvent(t, out, engine.Upsert)
	if ev.Container.ID != idA || ev.Container.State != engine.StatePaused || ev.Container.PID != 1001 {
		t.Errorf("upsert after pause = %+v", ev.Container)
	}

	d.set(inspected(idA, "renamed", "running", 1001, nil))
	emit(events.ActionRename, idA)
	if ev := waitEvent(t, out, engine.Upsert); !slices.Equal(ev.Container.Names, []string{"renamed"}) {
		t.Errorf("upsert after rename = %+v", ev.Container)
	}

	d.set()
	emit(events.ActionDestroy, idA)
	if ev := waitEvent(t, out, engine.Remove); ev.ID != idA {
		t.Errorf("remove = %+v", ev)
	}
	// An event for a container that is gone by the time it is inspected.
	emit(events.ActionDie, idB)
	if ev := waitEvent(t, out, engine.Remove); ev.ID != idB {
		t.Errorf("remove after failed inspect = %+v", ev)
	}

	d.shutdown()
	if ev := waitEvent(t, out, engine.Unavailable); ev.Err == nil {
		t.Errorf("Unavailable without an error")
	}
	d.start(t)
	waitEvent(t, out, engine.Resync)

	d.mu.Lock()
	sinces := slices.Clone(d.sinces)
	d.mu.Unlock()
	if last := sinces[len(sinces)-1]; last != "1700000000.123456789" {
		t.Errorf("resubscribed with since=%q, want the last event's time (all: %q)", last, sinces)
	}
}

// The client must talk to an old daemon at its version, not the newest.
func TestAPIVersionNegotiated(t *testing.T) {
	d := newFakeDaemon(t)
	e := newAPIEngine(t, d.host())
	if _, err := e.List(context.Background()); err != nil {
		t.Fatal(err)
	}
	if v := e.cli.ClientVersion(); v != "1.41" {
		t.Errorf("client speaks API %s, want 1.41", v)
	}
}
