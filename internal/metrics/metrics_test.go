package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/rootd-project/rootd/client"
	"github.com/rootd-project/rootd/engine"
	"github.com/rootd-project/rootd/resolver"
	"github.com/rootd-project/rootd/rootd"
)

const webID = "aaaa000000000000000000000000000000000000000000000000000000000001"

// fakeEngine lists a fixed set of containers and, as a Watcher, sends one
// Resync and one Upsert.
type fakeEngine struct {
	name string
	cs   []engine.Container
	err  error
}

func (f *fakeEngine) Name() string { return f.name }
func (f *fakeEngine) List(context.Context) ([]engine.Container, error) {
	return f.cs, f.err
}
func (f *fakeEngine) Watch(ctx context.Context, events chan<- engine.Event) {
	if f.err != nil {
		events <- engine.Event{Kind: engine.Unavailable, Err: f.err}
	} else {
		events <- engine.Event{Kind: engine.Resync}
		events <- engine.Event{Kind: engine.Upsert, ID: f.cs[0].ID, Container: f.cs[0]}
	}
	<-ctx.Done()
}

type fixture struct {
	socket, base string
	http         *http.Client
	ready        atomic.Bool
	initPID      int
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// setup runs a rootd server over a real resolver with two fake engines,
// and the metrics endpoint on a loopback TCP listener.
func setup(t *testing.T) *fixture {
	t.Helper()
	// The container's init: a real process other than this one, as the
	// resolver verifies it.
	init := exec.Command("sleep", "300")
	if err := init.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { init.Process.Kill(); init.Wait() })
	f := &fixture{socket: filepath.Join(t.TempDir(), "root.socket"), http: &http.Client{Timeout: 5 * time.Second}, initPID: init.Process.Pid}
	good := &fakeEngine{name: "docker", cs: []engine.Container{
		{Engine: "docker", ID: webID, Names: []string{"web"}, PID: init.Process.Pid, State: engine.StateRunning},
		{Engine: "docker", ID: "bbbb000000000000000000000000000000000000000000000000000000000002", Names: []string{"old"}, State: engine.StateStopped},
	}}
	down := &fakeEngine{name: "podman", err: fmt.Errorf("no socket: %w", engine.ErrUnavailable)}
	res := resolver.New([]engine.Engine{good, down}, resolver.Options{
		Log:       quiet(),
		Cgroup:    func(pid int) (string, error) { return "docker/" + webID, nil },
		Hostname:  func(context.Context, int) (string, error) { return "web-host", nil },
		StartTime: func(int) (uint64, error) { return 1, nil },
		NoPidfd:   true,
	})
	ctx, cancel := context.WithCancel(context.Background())
	resDone := make(chan struct{})
	go func() { defer close(resDone); res.Run(ctx) }()

	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: f.socket, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	procs := rootd.NewSupervisor(rootd.SupervisorConfig{Log: quiet(), Stderr: io.Discard})
	srv := rootd.NewServer(rootd.Config{Log: quiet(), Resolver: res, Processes: procs})
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Serve(ctx, ln) }()

	mln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.base = "http://" + mln.Addr().String()
	reg := NewRegistry(Sources{Server: srv, Resolver: res, Supervisor: procs, LogDropped: func() uint64 { return 7 }})
	mDone := make(chan error, 1)
	go func() { mDone <- Serve(ctx, mln, Handler(reg, f.ready.Load, quiet())) }()
	t.Cleanup(func() {
		cancel()
		if err := <-srvDone; err != nil {
			t.Errorf("Serve: %v", err)
		}
		if err := <-mDone; err != nil {
			t.Errorf("metrics Serve: %v", err)
		}
		<-resDone
	})
	select {
	case <-res.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("index never ready")
	}
	return f
}

func (f *fixture) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := f.http.Get(f.base + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func (f *fixture) scrape(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := f.get(t, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d\n%s", code, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parsing the scrape: %v\n%s", err, body)
	}
	return mfs
}

// value returns the value of the series of name whose labels include want
// (name=value pairs); ok is false if there is none.
func value(mfs map[string]*dto.MetricFamily, name string, want ...string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for i := 0; i+1 < len(want); i += 2 {
			if have[want[i]] != want[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func TestScrape(t *testing.T) {
	f := setup(t)
	mfs := f.scrape(t)

	types := map[string]dto.MetricType{
		"rootd_requests_total":                        dto.MetricType_COUNTER,
		"rootd_request_duration_seconds":              dto.MetricType_HISTOGRAM,
		"rootd_connections_open":                      dto.MetricType_GAUGE,
		"rootd_connections_accepted_total":            dto.MetricType_COUNTER,
		"rootd_connections_refused_total":             dto.MetricType_COUNTER,
		"rootd_protocol_errors_total":                 dto.MetricType_COUNTER,
		"rootd_agents_started_total":                  dto.MetricType_COUNTER,
		"rootd_agents_exited_total":                   dto.MetricType_COUNTER,
		"rootd_agents_running":                        dto.MetricType_GAUGE,
		"rootd_containers":                            dto.MetricType_GAUGE,
		"rootd_engine_available":                      dto.MetricType_GAUGE,
		"rootd_engine_health":                         dto.MetricType_GAUGE,
		"rootd_engine_last_error_timestamp_seconds":   dto.MetricType_GAUGE,
		"rootd_engine_last_refresh_timestamp_seconds": dto.MetricType_GAUGE,
		"rootd_engine_index_age_seconds":              dto.MetricType_GAUGE,
		"rootd_engine_lists_total":                    dto.MetricType_COUNTER,
		"rootd_engine_list_seconds_total":             dto.MetricType_COUNTER,
		"rootd_engine_last_list_duration_seconds":     dto.MetricType_GAUGE,
		"rootd_engine_events_total":                   dto.MetricType_COUNTER,
		"rootd_log_writes_dropped_total":              dto.MetricType_COUNTER,
		"rootd_log_lines_suppressed_total":            dto.MetricType_COUNTER,
		"go_goroutines":                               dto.MetricType_GAUGE,
		"process_resident_memory_bytes":               dto.MetricType_GAUGE,
	}
	for name, typ := range types {
		mf := mfs[name]
		if mf == nil {
			t.Errorf("no %s", name)
			continue
		}
		if mf.GetType() != typ {
			t.Errorf("%s is a %v, want %v", name, mf.GetType(), typ)
		}
		if mf.GetHelp() == "" {
			t.Errorf("%s has no help", name)
		}
	}

	// Engine state, computed at scrape time from resolver.Status.
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"rootd_containers", []string{"engine", "docker", "state", "running"}, 1},
		{"rootd_containers", []string{"engine", "docker", "state", "stopped"}, 1},
		{"rootd_containers", []string{"engine", "podman", "state", "running"}, 0},
		{"rootd_engine_available", []string{"engine", "docker"}, 1},
		{"rootd_engine_available", []string{"engine", "podman"}, 0},
		{"rootd_engine_health", []string{"engine", "docker", "health", "available"}, 1},
		{"rootd_engine_health", []string{"engine", "podman", "health", "unavailable"}, 1},
		{"rootd_engine_health", []string{"engine", "podman", "health", "available"}, 0},
		{"rootd_log_writes_dropped_total", nil, 7},
		{"rootd_connections_open", nil, 0},
	} {
		if got, ok := value(mfs, c.name, c.labels...); !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	if _, ok := value(mfs, "rootd_engine_last_error_timestamp_seconds", "engine", "podman"); !ok {
		t.Error("no last error time for the unavailable engine")
	}
	if _, ok := value(mfs, "rootd_engine_last_error_timestamp_seconds", "engine", "docker"); ok {
		t.Error("a last error time for an engine that never failed")
	}
	if age, ok := value(mfs, "rootd_engine_index_age_seconds", "engine", "docker"); !ok || age < 0 || age > 60 {
		t.Errorf("index age %v (present %v)", age, ok)
	}
	if n, _ := value(mfs, "rootd_engine_lists_total", "engine", "docker"); n < 1 {
		t.Errorf("docker lists %v, want at least 1", n)
	}
	// Events arrive asynchronously; the watch sends them at once.
	deadline := time.Now().Add(5 * time.Second)
	for {
		up, _ := value(mfs, "rootd_engine_events_total", "engine", "docker", "kind", "upsert")
		un, _ := value(mfs, "rootd_engine_events_total", "engine", "podman", "kind", "unavailable")
		if up == 1 && un == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events: docker upsert %v, podman unavailable %v; want 1 and 1", up, un)
		}
		time.Sleep(20 * time.Millisecond)
		mfs = f.scrape(t)
	}

	// Real requests through the Go client move the counters.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Connect(ctx, f.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if pid, err := c.ProcessID(ctx, "web"); err != nil || pid != f.initPID {
		t.Fatalf("ProcessID(web) = %d, %v", pid, err)
	}
	if _, err := c.ProcessID(ctx, "nothere"); err == nil {
		t.Fatal("ProcessID(nothere) succeeded")
	}
	if _, err := c.ProcessID(ctx, "old"); err == nil {
		t.Fatal("ProcessID(old) succeeded")
	}
	if _, err := c.CgroupName(ctx, "web"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.HostName(ctx, "web"); err != nil {
		t.Fatal(err)
	}

	// A request is counted just after its reply is sent: wait for the last
	// one to show; the session's earlier ones are counted by then.
	deadline = time.Now().Add(5 * time.Second)
	for mfs = f.scrape(t); ; mfs = f.scrape(t) {
		if n, _ := value(mfs, "rootd_requests_total", "type", "hostname", "result", "ok"); n == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	for _, c := range []struct {
		labels []string
		want   float64
	}{
		{[]string{"type", "processid", "result", "ok"}, 1},
		{[]string{"type", "processid", "result", "not_found"}, 1},
		{[]string{"type", "processid", "result", "not_running"}, 1},
		{[]string{"type", "processid", "result", "ambiguous"}, 0},
		{[]string{"type", "cgroupname", "result", "ok"}, 1},
		{[]string{"type", "hostname", "result", "ok"}, 1},
		{[]string{"type", "startpmda", "result", "ok"}, 0},
	} {
		if got, ok := value(mfs, "rootd_requests_total", c.labels...); !ok || got != c.want {
			t.Errorf("rootd_requests_total%v = %v (present %v), want %v", c.labels, got, ok, c.want)
		}
	}
	if n, _ := value(mfs, "rootd_request_duration_seconds", "type", "processid"); n != 3 {
		t.Errorf("processid latency count %v, want 3", n)
	}
	for _, m := range mfs["rootd_request_duration_seconds"].GetMetric() {
		h := m.GetHistogram()
		// The text format carries the +Inf bucket too.
		if len(h.GetBucket()) != rootd.NumLatencyBuckets+1 {
			t.Errorf("%d buckets, want %d", len(h.GetBucket()), rootd.NumLatencyBuckets+1)
		} else if inf := h.GetBucket()[rootd.NumLatencyBuckets]; inf.GetCumulativeCount() != h.GetSampleCount() {
			t.Errorf("+Inf bucket %d, count %d", inf.GetCumulativeCount(), h.GetSampleCount())
		}
		if h.GetSampleCount() > 0 && h.GetSampleSum() <= 0 {
			t.Errorf("latency sum %v for %d samples", h.GetSampleSum(), h.GetSampleCount())
		}
	}
	if n, _ := value(mfs, "rootd_connections_open", nil...); n != 1 {
		t.Errorf("connections open %v, want 1", n)
	}
	if n, _ := value(mfs, "rootd_connections_accepted_total", nil...); n != 1 {
		t.Errorf("connections accepted %v, want 1", n)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	f := setup(t)
	if code, _ := f.get(t, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz before ready: %d", code)
	}
	if code, _ := f.get(t, "/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before ready: %d, want 503", code)
	}
	f.ready.Store(true)
	if code, _ := f.get(t, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz after ready: %d", code)
	}
	if code, _ := f.get(t, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after ready: %d, want 200", code)
	}
	if code, _ := f.get(t, "/nothing"); code != http.StatusNotFound {
		t.Errorf("/nothing: %d, want 404", code)
	}
}

func TestListenRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "[::]:0", "192.0.2.1:9559", "example.com:9559"} {
		ln, err := Listen(addr)
		if err == nil {
			ln.Close()
			t.Errorf("Listen(%q) succeeded", addr)
			continue
		}
		if !errors.Is(err, ErrNotLoopback) {
			t.Errorf("Listen(%q): %v, want ErrNotLoopback", addr, err)
		}
	}
	for _, addr := range []string{"127.0.0.1:0", "localhost:0", "unix:" + filepath.Join(t.TempDir(), "m.sock")} {
		ln, err := Listen(addr)
		if err != nil {
			t.Errorf("Listen(%q): %v", addr, err)
			continue
		}
		ln.Close()
	}
	if ln, err := Listen("127.0.0.1"); err == nil {
		ln.Close()
		t.Error("Listen without a port succeeded")
	}
}

func TestUnixListener(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metrics.sock")
	ln, err := Listen("unix:" + path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, Handler(NewRegistry(Sources{}), nil, quiet())) }()
	defer func() { cancel(); <-done }()
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		},
	}}
	resp, err := hc.Get("http://rootd/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz over unix: %d", resp.StatusCode)
	}
}
