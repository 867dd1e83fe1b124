package rootd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/rootd-project/rootd/client"
	"github.com/rootd-project/rootd/engine"
	"github.com/rootd-project/rootd/resolver"
	"github.com/rootd-project/rootd/wire"
)

// The real resolver is what cmd/rootd serves the view from.
var _ Viewer = (*resolver.Resolver)(nil)

// fakeViewer answers the view requests from a fixed index; Describe of
// "slow" blocks until release is closed, whatever its context says.
type fakeViewer struct {
	listed  []resolver.Listed
	release chan struct{}
	ready   chan struct{}
}

var (
	viewWeb = resolver.Listed{Container: engine.Container{
		Engine: "docker", ID: "aaaa1111", Names: []string{"web"}, State: engine.StateRunning, PID: 101,
		Labels: map[string]string{"app": "web", "secret.token": "s3cr3t", engine.LabelPodName: "web-0"},
	}, Cgroup: "docker/aaaa1111"}
	viewDB  = resolver.Listed{Container: engine.Container{Engine: "docker", ID: "aaab2222", Names: []string{"db"}, State: engine.StateRunning, PID: 202}, Cgroup: "docker/aaab2222"}
	viewOld = resolver.Listed{Container: engine.Container{Engine: "podman", ID: "cccc3333", Names: []string{"old"}, State: engine.StateStopped}}
)

func newFakeViewer(listed ...resolver.Listed) *fakeViewer {
	ready := make(chan struct{})
	close(ready)
	return &fakeViewer{listed: listed, release: make(chan struct{}), ready: ready}
}

func (f *fakeViewer) Listing() (uint64, []resolver.Listed) { return 1, f.listed }

func (f *fakeViewer) Describe(_ context.Context, q string) (resolver.Described, error) {
	if q == "slow" {
		<-f.release
		q = "web"
	}
	var found []resolver.Listed
	for _, l := range f.listed {
		if slices.Contains(l.Names, q) || l.ID == q || l.Engine+":"+l.Names[0] == q {
			return f.described(l)
		}
		if len(q) >= 3 && bytes.HasPrefix([]byte(l.ID), []byte(q)) {
			found = append(found, l)
		}
	}
	switch len(found) {
	case 0:
		return resolver.Described{}, fmt.Errorf("%q: %w", q, engine.ErrNotFound)
	case 1:
		return f.described(found[0])
	}
	amb := &engine.AmbiguousError{Query: q}
	for _, l := range found {
		amb.Candidates = append(amb.Candidates, l.Container)
	}
	return resolver.Described{}, amb
}

func (f *fakeViewer) described(l resolver.Listed) (resolver.Described, error) {
	d := resolver.Described{Listed: l}
	if !l.State.HasProcess() {
		return d, fmt.Errorf("%w: %s is %s", engine.ErrNotRunning, l.ID, l.State)
	}
	d.Hostname = l.Names[0] + "-host"
	return d, nil
}

func (f *fakeViewer) DescribePID(_ context.Context, pid int) (resolver.Described, error) {
	for _, l := range f.listed {
		if l.PID == pid {
			return f.described(l)
		}
	}
	return resolver.Described{}, fmt.Errorf("%w: no container holds pid %d: %w", engine.ErrNotFound, pid, syscall.ESRCH)
}

func (f *fakeViewer) Status() []resolver.EngineStatus {
	return []resolver.EngineStatus{
		{Name: "docker", Health: "available", Containers: 2, States: map[engine.State]int{engine.StateRunning: 2}, Lists: 3, LastListTime: 5 * time.Millisecond},
		{Name: "podman", Health: "failing", Containers: 1, States: map[engine.State]int{engine.StateStopped: 1},
			Err: errors.New("dial unix /run/podman.sock: refused"), LastErrorTime: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)},
	}
}

func (f *fakeViewer) Containers() []engine.Container {
	out := make([]engine.Container, len(f.listed))
	for i, l := range f.listed {
		out[i] = l.Container
	}
	return out
}

func (f *fakeViewer) Ready() <-chan struct{} { return f.ready }

func startViewServer(t *testing.T, v Viewer, mutate func(*Config)) *testServer {
	return startServer(t, func(c *Config) {
		c.View = v
		c.Version, c.Commit = "1.2.3", "abcdef"
		c.Started = time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)
		if mutate != nil {
			mutate(c)
		}
	})
}

func TestViewFeatureBit(t *testing.T) {
	tests := []struct {
		name string
		view Viewer
		want int32
	}{
		{"without a viewer: PCP's bits only", nil, wire.AllFeatures},
		{"with a viewer", newFakeViewer(), wire.AllFeatures | wire.FeatureView},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ts := startViewServer(t, tc.view, nil)
			c := ts.client(t)
			if c.Features() != tc.want || c.HasView() != (tc.view != nil) {
				t.Fatalf("features %#x, want %#x", c.Features(), tc.want)
			}
		})
	}
}

func TestViewList(t *testing.T) {
	ts := startViewServer(t, newFakeViewer(viewWeb, viewDB, viewOld), nil)
	got, err := ts.client(t).List(ctx5(t))
	if err != nil {
		t.Fatal(err)
	}
	// The test runs as root: every label, no hostname in a listing.
	want := []wire.ContainerInfo{
		{Engine: "docker", ID: "aaaa1111", Names: []string{"web"}, State: "running", PID: 101, Cgroup: "docker/aaaa1111", Labels: viewWeb.Labels},
		{Engine: "docker", ID: "aaab2222", Names: []string{"db"}, State: "running", PID: 202, Cgroup: "docker/aaab2222"},
		{Engine: "podman", ID: "cccc3333", Names: []string{"old"}, State: "stopped"},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("List:\n got %+v\nwant %+v", got, want)
	}
}

func TestViewListOf10000(t *testing.T) {
	var listed []resolver.Listed
	for i := range 10000 {
		listed = append(listed, resolver.Listed{Container: engine.Container{
			Engine: "containerd", ID: fmt.Sprintf("%064x", i), Names: []string{fmt.Sprintf("c%d", i)},
			State: engine.StateRunning, PID: 1000 + i, Namespace: "k8s.io",
			Labels: map[string]string{engine.LabelPodName: fmt.Sprintf("pod-%d", i), "team": "x"},
		}, Cgroup: fmt.Sprintf("kubepods/%064x", i)})
	}
	ts := startViewServer(t, newFakeViewer(listed...), nil)
	c := ts.client(t)
	got, err := c.List(ctx5(t))
	if err != nil || len(got) != len(listed) {
		t.Fatalf("List: %d containers, %v", len(got), err)
	}
	for i, g := range got {
		if g.ID != listed[i].ID || g.PID != listed[i].PID || g.Cgroup != listed[i].Cgroup || g.Labels["team"] != "x" {
			t.Fatalf("container %d: %+v", i, g)
		}
	}
	// The connection is still in step after thousands of chunks.
	if pid, err := c.ProcessID(ctx5(t), "web1"); err != nil || pid != 101 {
		t.Fatalf("ProcessID after List: %d, %v", pid, err)
	}
}

func TestViewDescribe(t *testing.T) {
	ts := startViewServer(t, newFakeViewer(viewWeb, viewDB, viewOld), nil)
	c := ts.client(t)
	ctx := ctx5(t)
	tests := []struct {
		name     string
		query    string
		pid      int
		wantID   string
		wantHost string
		err      error
		cands    []string
	}{
		{name: "by name", query: "web", wantID: "aaaa1111", wantHost: "web-host"},
		{name: "engine qualified", query: "docker:db", wantID: "aaab2222", wantHost: "db-host"},
		{name: "unique prefix", query: "aaab", wantID: "aaab2222", wantHost: "db-host"},
		{name: "ambiguous prefix", query: "aaa", err: syscall.ENOTUNIQ, cands: []string{"aaaa1111", "aaab2222"}},
		{name: "not found", query: "nosuch", err: client.ErrNoContainer},
		{name: "not running", query: "old", wantID: "cccc3333", err: syscall.ESRCH},
		{name: "by pid", pid: 202, wantID: "aaab2222", wantHost: "db-host"},
		{name: "pid of no container", pid: 9999, err: client.ErrNoContainer},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var (
				got wire.ContainerInfo
				err error
			)
			if tc.query != "" {
				got, err = c.Describe(ctx, tc.query)
			} else {
				got, err = c.DescribePID(ctx, tc.pid)
			}
			if tc.err == nil && err != nil || !errors.Is(err, tc.err) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if got.ID != tc.wantID || got.Hostname != tc.wantHost {
				t.Fatalf("described %+v, want %s on %q", got, tc.wantID, tc.wantHost)
			}
			var amb *client.AmbiguousError
			if errors.As(err, &amb) != (tc.cands != nil) {
				t.Fatalf("AmbiguousError %v for %v", amb, err)
			}
			if amb != nil {
				var ids []string
				for _, c := range amb.Candidates {
					ids = append(ids, c.ID)
				}
				if !slices.Equal(ids, tc.cands) || amb.Name != tc.query {
					t.Fatalf("candidates %v of %q, want %v", ids, amb.Name, tc.cands)
				}
			}
		})
	}
}

func TestViewStatus(t *testing.T) {
	v := newFakeViewer(viewWeb, viewDB, viewOld)
	v.ready = make(chan struct{}) // the index is still being built
	ts := startViewServer(t, v, nil)
	c := ts.client(t)
	st, err := c.Status(ctx5(t))
	if err != nil {
		t.Fatal(err)
	}
	if st.Version != "1.2.3" || st.Commit != "abcdef" || !st.Started.Equal(time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC)) ||
		st.Ready || st.Containers != 3 || st.Clients != 1 || len(st.Engines) != 2 {
		t.Fatalf("status %+v", st)
	}
	d, p := st.Engines[0], st.Engines[1]
	if d.Name != "docker" || d.Health != "available" || d.States["running"] != 2 || d.Lists != 3 || d.LastList != 5*time.Millisecond || d.Error != "" {
		t.Errorf("docker %+v", d)
	}
	if p.Health != "failing" || p.Error == "" || !p.LastError.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) || p.States["stopped"] != 1 {
		t.Errorf("podman %+v", p)
	}
	close(v.ready)
	if st, err := c.Status(ctx5(t)); err != nil || !st.Ready {
		t.Fatalf("after the index is built: %+v, %v", st, err)
	}
}

func TestViewUnsupported(t *testing.T) {
	ts := startViewServer(t, nil, nil)
	c := ts.client(t)
	ctx := ctx5(t)
	if _, err := c.List(ctx); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("List against a server without the feature: %v", err)
	}
	if _, err := c.Describe(ctx, "web"); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("Describe: %v", err)
	}
	// A client that sends one anyway is answered, and kept.
	conn := ts.raw(t)
	req, _ := wire.AppendViewRequest(nil, wire.ViewRequest{Type: wire.TypeStatusReq})
	v := rawView(t, conn, req, wire.TypeStatus)
	if v.status != -int32(syscall.EOPNOTSUPP) {
		t.Fatalf("status %d", v.status)
	}
	rawStillServes(t, conn)
}

type rawReply struct {
	status int32
	doc    []byte
}

// rawView sends one PDU and reads a whole view reply of type want.
func rawView(t *testing.T, conn io.ReadWriter, req []byte, want wire.Type) rawReply {
	t.Helper()
	if _, err := conn.Write(req); err != nil {
		t.Fatal(err)
	}
	a := wire.NewViewAssembler(want)
	buf := make([]byte, wire.MaxPDUSize)
	for {
		_, pdu, err := wire.ReadPDU(conn, buf)
		if err != nil {
			t.Fatal(err)
		}
		v, err := wire.DecodeView(pdu)
		if err != nil {
			t.Fatal(err)
		}
		done, err := a.Add(v)
		if err != nil {
			t.Fatal(err)
		}
		if done {
			return rawReply{a.Status(), a.Document()}
		}
	}
}

func rawStillServes(t *testing.T, conn io.ReadWriter) {
	t.Helper()
	req, _ := wire.AppendContainer(nil, wire.Container{Type: wire.TypeProcessIDReq, Name: []byte("web1")})
	if _, err := conn.Write(req); err != nil {
		t.Fatal(err)
	}
	_, pdu, err := wire.ReadPDU(conn, make([]byte, wire.MaxPDUSize))
	if err != nil {
		t.Fatal(err)
	}
	if r, err := wire.DecodeContainer(pdu); err != nil || r.PID != 101 {
		t.Fatalf("PROCESSID after the view request: %+v, %v", r, err)
	}
}

// TestViewBadRequests: malformed view requests framed by their headers are
// answered with EINVAL and the client is kept.
func TestViewBadRequests(t *testing.T) {
	ints := func(v ...int32) []byte {
		b := make([]byte, 4*len(v))
		for i, x := range v {
			wireOrder.PutUint32(b[4*i:], uint32(x))
		}
		return b
	}
	tests := []struct {
		name string
		pdu  []byte
		want wire.Type
	}{
		{"list with a name", append(ints(int32(wire.TypeListReq), 25, 0, 2, 0, 1), 'x'), wire.TypeList},
		{"status with a pid", ints(int32(wire.TypeStatusReq), 24, 0, 2, 7, 0), wire.TypeStatus},
		{"describe nothing", ints(int32(wire.TypeDescribeReq), 24, 0, 2, 0, 0), wire.TypeDescribe},
		{"describe negative pid", ints(int32(wire.TypeDescribeReq), 24, 0, 2, -5, 0), wire.TypeDescribe},
		{"describe name and pid", append(ints(int32(wire.TypeDescribeReq), 25, 0, 2, 9, 1), 'x'), wire.TypeDescribe},
		{"byte after NUL", append(ints(int32(wire.TypeDescribeReq), 27, 0, 2, 0, 3), 'a', 0, 'b'), wire.TypeDescribe},
		{"namelen inconsistent", append(ints(int32(wire.TypeDescribeReq), 26, 0, 2, 0, 9), 'a', 'b'), wire.TypeDescribe},
		{"request with a status", ints(int32(wire.TypeListReq), 24, -1, 2, 0, 0), wire.TypeList},
		{"header only", ints(int32(wire.TypeStatusReq), 16, 0, 2), wire.TypeStatus},
	}
	ts := startViewServer(t, newFakeViewer(viewWeb), nil)
	conn := ts.raw(t)
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rawView(t, conn, tc.pdu, tc.want)
			if r.status != -int32(syscall.EINVAL) || !bytes.Contains(r.doc, []byte(`"error"`)) {
				t.Fatalf("status %d, document %s", r.status, r.doc)
			}
		})
	}
	rawStillServes(t, conn)
	if st := ts.srv.Stats(); st.Requests[RequestDescribe].Results[ResultInvalid] != 5 ||
		st.Requests[RequestList].Results[ResultInvalid] != 2 || st.Requests[RequestStatus].Results[ResultInvalid] != 2 {
		t.Errorf("invalid requests counted: %+v", st.Requests[RequestList:RequestOther])
	}
}

// TestViewDoesNotBlockLookups: with every view slot held by a slow
// DESCRIBE, container lookups are answered, and a further view request
// gives up with EBUSY at its deadline instead of queueing forever.
func TestViewDoesNotBlockLookups(t *testing.T) {
	v := newFakeViewer(viewWeb)
	ts := startViewServer(t, v, func(c *Config) {
		c.ViewConcurrency = 1
		c.RequestTimeout = 300 * time.Millisecond
	})
	holder := ts.client(t)
	held := make(chan error, 1)
	go func() {
		_, err := holder.Describe(context.Background(), "slow")
		held <- err
	}()
	// Wait until the slow DESCRIBE holds the slot.
	for deadline := time.Now().Add(5 * time.Second); ts.srv.viewSlotsInUse() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("slow DESCRIBE never took the slot")
		}
	}
	c := ts.client(t)
	if pid, err := c.ProcessID(ctx5(t), "web1"); err != nil || pid != 101 {
		t.Errorf("lookup while the view is busy: %d, %v", pid, err)
	}
	if _, err := c.List(ctx5(t)); !errors.Is(err, syscall.EBUSY) {
		t.Errorf("List with no slot free: %v, want EBUSY", err)
	}
	close(v.release)
	if err := <-held; err != nil {
		t.Errorf("slow DESCRIBE: %v", err)
	}
}

func TestContainerInfoLabels(t *testing.T) {
	c := viewWeb.Container
	tests := []struct {
		name     string
		all      bool
		want     map[string]string
		redacted bool
	}{
		{"root sees every label", true, c.Labels, false},
		{"others see the Kubernetes identity only", false, map[string]string{engine.LabelPodName: "web-0"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := containerInfo(c, "cg", "", tc.all)
			if fmt.Sprint(got.Labels) != fmt.Sprint(tc.want) || got.LabelsRedacted != tc.redacted {
				t.Fatalf("labels %v redacted %v", got.Labels, got.LabelsRedacted)
			}
		})
	}
	if got := containerInfo(viewDB.Container, "", "", false); got.Labels != nil || got.LabelsRedacted {
		t.Errorf("container without labels: %+v", got)
	}
}

func TestViewCounted(t *testing.T) {
	ts := startViewServer(t, newFakeViewer(viewWeb, viewDB, viewOld), nil)
	c := ts.client(t)
	ctx := ctx5(t)
	c.List(ctx)
	c.Status(ctx)
	c.Describe(ctx, "web")
	c.Describe(ctx, "nosuch")
	c.Describe(ctx, "aaa")
	c.Describe(ctx, "old")
	want := map[RequestType][NumResults]uint64{
		RequestList:     {ResultOK: 1},
		RequestStatus:   {ResultOK: 1},
		RequestDescribe: {ResultOK: 1, ResultNotFound: 1, ResultAmbiguous: 1, ResultNotRunning: 1},
	}
	// The server counts a request after sending its reply, so the client
	// can have the last answer before the count: wait for it (10 s at
	// most), then compare.
	st := ts.srv.Stats()
	for deadline := time.Now().Add(10 * time.Second); st.Requests[RequestDescribe].Results != want[RequestDescribe] && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
		st = ts.srv.Stats()
	}
	for typ, results := range want {
		if got := st.Requests[typ].Results; got != results {
			t.Errorf("%v: %v, want %v", typ, got, results)
		}
	}
}
