package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rootd-project/rootd/engine"
	"github.com/rootd-project/rootd/resolver"
	"github.com/rootd-project/rootd/wire"
)

// viewReply is what the wire-level server answers one view request type.
type viewReply struct {
	status int32
	doc    wire.ViewDocument
}

// viewServer is rootd's socket as far as the view goes, at the level of
// PDUs, so that rootctl's socket side (socket.go, socket_view.go and the
// client package) is what is tested: it greets with the view feature and
// answers each request with the reply given for its type, recording the
// requests and the connections.
type viewServer struct {
	path    string
	mu      sync.Mutex
	reqs    []wire.Type
	conns   int
	replies map[wire.Type]viewReply
}

func newViewServer(t *testing.T, replies map[wire.Type]viewReply) *viewServer {
	t.Helper()
	s := &viewServer{path: filepath.Join(t.TempDir(), "root.socket"), replies: replies}
	ln, err := net.Listen("unix", s.path)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns++
			s.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				s.serve(c)
			}()
		}
	}()
	return s
}

func (s *viewServer) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write(wire.AppendInfo(nil, wire.Info{Features: wire.AllFeatures | wire.FeatureView}))
	buf := make([]byte, wire.MaxPDUSize)
	for {
		_, pdu, err := wire.ReadPDU(c, buf)
		if err != nil {
			return
		}
		req, err := wire.DecodeViewRequest(pdu)
		if err != nil {
			return
		}
		s.mu.Lock()
		s.reqs = append(s.reqs, req.Type)
		s.mu.Unlock()
		want, _ := req.Type.Reply()
		r := s.replies[want]
		r.doc.Version = wire.ViewVersion
		doc, _ := json.Marshal(r.doc)
		var out []byte
		wire.ViewChunks(want, r.status, doc, func(v wire.View) error {
			out, err = wire.AppendView(out, v)
			return err
		})
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

// runSocket runs rootctl against the server through the real socket code.
func runSocket(t *testing.T, s *viewServer, args ...string) result {
	t.Helper()
	var out, errOut bytes.Buffer
	a := newApp(&out, &errOut)
	a.getenv = func(string) string { return "" }
	a.euid = func() int { return 1000 }
	code := a.run(append([]string{"--config", "/dev/null", "-s", s.path}, args...))
	return result{out.String(), errOut.String(), code}
}

var healthy = wire.Status{Version: "rootd 1.0", Ready: true, Containers: 1,
	Engines: []wire.EngineStatus{{Name: "docker", Health: "available", Containers: 1}}}

// C1: labels_redacted survives the socket into rootctl's JSON, and the
// other formats say the labels were withheld.
func TestSocketLabelsRedacted(t *testing.T) {
	c := wire.ContainerInfo{Engine: "docker", ID: webID, Names: []string{"web"}, State: "running", PID: 42,
		Labels: map[string]string{engine.LabelPodName: "web-0"}, Cgroup: "system.slice/x.scope", LabelsRedacted: true}
	d := c
	d.Hostname = "web-host"
	s := newViewServer(t, map[wire.Type]viewReply{
		wire.TypeList:     {doc: wire.ViewDocument{Containers: []wire.ContainerInfo{c}}},
		wire.TypeDescribe: {doc: wire.ViewDocument{Container: &d}},
		wire.TypeStatus:   {doc: wire.ViewDocument{Status: &healthy}},
	})
	r := runSocket(t, s, "ls", "-o", "json")
	var got []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || r.code != 0 || len(got) != 1 || got[0]["labels_redacted"] != true {
		t.Fatalf("ls -o json: exit %d, %v:\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	r = runSocket(t, s, "ls", "-o", "wide")
	if !strings.Contains(r.stdout, " 1+withheld\n") {
		t.Errorf("ls -o wide does not say labels were withheld:\n%s", r.stdout)
	}
	r = runSocket(t, s, "resolve", "web")
	if !strings.Contains(r.stdout, "labels:     io.kubernetes.pod.name=web-0\n            (others withheld: root only)\n") ||
		!strings.Contains(r.stdout, "hostname:   web-host\n") {
		t.Errorf("resolve:\n%s", r.stdout)
	}
	// A label filter on a withheld key cannot match: said on stderr, exit 0.
	r = runSocket(t, s, "ls", "-q", "--filter", "label=app=shop")
	if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "warning: --filter label=app=shop: rootd shows users other than root only the Kubernetes identity labels") {
		t.Errorf("label filter on a withheld key: exit %d, %q, %q", r.code, r.stdout, r.stderr)
	}
	r = runSocket(t, s, "ls", "-q", "--filter", "label="+engine.LabelPodName+"=web-0")
	if r.code != 0 || r.stdout != webID+"\n" || r.stderr != "" {
		t.Errorf("label filter on an identity key: exit %d, %q, %q", r.code, r.stdout, r.stderr)
	}
}

// C2: DESCRIBE's ESRCH carries the container; resolve prints it and exits 5.
func TestSocketResolveNotRunning(t *testing.T) {
	c := wire.ContainerInfo{Engine: "podman", ID: "cafe", Names: []string{"db"}, State: "stopped"}
	s := newViewServer(t, map[wire.Type]viewReply{
		wire.TypeDescribe: {status: wire.StatusFromErrno(syscall.ESRCH), doc: wire.ViewDocument{Container: &c, Error: "not running: podman:cafe is stopped"}},
	})
	r := runSocket(t, s, "resolve", "db")
	if r.code != exitNotRunning || !strings.Contains(r.stdout, "id:         cafe\n") || !strings.Contains(r.stdout, "state:      stopped\n") ||
		!strings.Contains(r.stderr, `"db": container is not running`) {
		t.Fatalf("resolve db: exit %d, stdout:\n%s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	r = runSocket(t, s, "resolve", "-o", "json", "db")
	var got Info
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || r.code != exitNotRunning || got.ID != "cafe" || got.State != "stopped" {
		t.Fatalf("resolve -o json db: exit %d, %+v, %v", r.code, got, err)
	}
}

// C9b: status -o json prints every field the daemon sends.
func TestSocketStatusJSONKeepsDaemonFields(t *testing.T) {
	st := wire.Status{Version: "rootd 1.0", Commit: "abc123", Started: time.Date(2026, 12, 4, 6, 0, 0, 0, time.UTC), Ready: true,
		Containers: 1, Clients: 3, Engines: []wire.EngineStatus{{Name: "docker", Health: "available", Containers: 1,
			LastRefresh: time.Date(2026, 12, 4, 7, 0, 0, 0, time.UTC), Lists: 9, LastList: 2 * time.Millisecond}}}
	s := newViewServer(t, map[wire.Type]viewReply{wire.TypeStatus: {doc: wire.ViewDocument{Status: &st}}})
	r := runSocket(t, s, "status", "-o", "json")
	want, _ := json.Marshal(st)
	var a, b any
	if err := json.Unmarshal([]byte(r.stdout), &a); err != nil || r.code != 0 {
		t.Fatalf("exit %d, %v:\n%s", r.code, err, r.stdout)
	}
	json.Unmarshal(want, &b)
	if ja, jb := mustJSON(a), mustJSON(b); ja != jb {
		t.Errorf("status -o json:\n%s\nthe daemon sent:\n%s", ja, jb)
	}
	for _, k := range []string{`"commit"`, `"clients"`, `"last_refresh"`, `"lists"`, `"last_list_ns"`} {
		if !strings.Contains(r.stdout, k) {
			t.Errorf("status -o json lacks %s", k)
		}
	}
	if strings.Contains(r.stdout, "last_error") {
		t.Errorf("a healthy engine has a last_error:\n%s", r.stdout)
	}
	r = runSocket(t, s, "status")
	if !strings.Contains(r.stdout, "commit:      abc123\n") || !strings.Contains(r.stdout, "clients:     3\n") {
		t.Errorf("status:\n%s", r.stdout)
	}
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

// C9c: a listing through the socket is followed by STATUS on the same
// connection, and engines that are not available are named on stderr.
func TestSocketLsWarnsUnhealthyEngines(t *testing.T) {
	st := wire.Status{Version: "rootd 1.0", Ready: true, Containers: 1, Engines: []wire.EngineStatus{
		{Name: "docker", Health: "available", Containers: 1},
		{Name: "lxc", Health: "failing", Error: "lxc-ls: exit 1", LastError: time.Now()},
		{Name: "podman", Health: "unavailable"},
	}}
	c := wire.ContainerInfo{Engine: "docker", ID: webID, Names: []string{"web"}, State: "running", PID: 42}
	s := newViewServer(t, map[wire.Type]viewReply{
		wire.TypeList:   {doc: wire.ViewDocument{Containers: []wire.ContainerInfo{c}}},
		wire.TypeStatus: {doc: wire.ViewDocument{Status: &st}},
	})
	r := runSocket(t, s, "ls", "-q")
	if r.code != 0 || r.stdout != webID+"\n" {
		t.Fatalf("ls -q: exit %d, %q, %s", r.code, r.stdout, r.stderr)
	}
	for _, w := range []string{"engine lxc is failing: lxc-ls: exit 1", "engine podman is unavailable;"} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("ls stderr lacks %q: %q", w, r.stderr)
		}
	}
	if strings.Contains(r.stderr, "docker") {
		t.Errorf("an available engine is warned about: %q", r.stderr)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns != 1 || len(s.reqs) != 2 || s.reqs[0] != wire.TypeListReq || s.reqs[1] != wire.TypeStatusReq {
		t.Errorf("%d connections, requests %v; want LIST then STATUS on one", s.conns, s.reqs)
	}
}

// twin is an engine for in-process tests: the containers given.
type twin struct {
	name string
	list []engine.Container
}

func (e twin) Name() string                                     { return e.name }
func (e twin) List(context.Context) ([]engine.Container, error) { return e.list, nil }

// C9a: in-process, a container two engines report is counted once, as the
// daemon counts it (a Docker container is a containerd one too).
func TestInProcessStatusCountsDistinct(t *testing.T) {
	shared := func(eng string) engine.Container {
		return engine.Container{Engine: eng, ID: webID, Names: []string{"web"}, State: engine.StateStopped}
	}
	r := resolver.New([]engine.Engine{
		twin{"docker", []engine.Container{shared("docker")}},
		twin{"containerd", []engine.Container{shared("containerd"), {Engine: "containerd", ID: "other", State: engine.StateStopped}}},
	}, resolver.Options{Log: quietLog(&bytes.Buffer{})})
	ctx := context.Background()
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	l := &local{r: r, started: time.Now()}
	st, err := l.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	list, _ := l.List(ctx)
	if st.Containers != 2 || len(list) != 2 {
		t.Fatalf("status counts %d containers, ls lists %d; want 2 and 2 (engines: %+v)", st.Containers, len(list), st.Engines)
	}
}
