// Package metrics serves rootd's opt-in observability endpoint: Prometheus
// metrics on /metrics, liveness on /healthz and readiness on /readyz.
//
// Nothing here runs on the request path. The server and the supervisor keep
// plain atomic counters; the resolver's per-engine state, including the
// containers by state, is read from resolver.Status when Prometheus scrapes.
// The collector turns those into metrics at scrape time (const metrics), so
// rootd pays for the metrics only when someone reads them.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rootd-project/rootd/engine"
	"github.com/rootd-project/rootd/resolver"
	"github.com/rootd-project/rootd/rootd"
)

// Sources is what the collector reads. Any field may be nil: its metrics
// are then left out.
type Sources struct {
	Server     *rootd.Server
	Resolver   *resolver.Resolver
	Supervisor *rootd.Supervisor
	// LogDropped returns the number of log writes that failed.
	LogDropped func() uint64
	// Now is the clock of the age metrics (time.Now if nil).
	Now func() time.Time
}

// Healths are the values of EngineStatus.Health, each exported as one
// series of rootd_engine_health (1 for the engine's current one).
var Healths = []string{"available", "slow", "failing", "hung", "unavailable", "unknown"}

// States are the container states exported by rootd_containers.
var States = []engine.State{engine.StateRunning, engine.StatePaused, engine.StateRestarting, engine.StateStopped}

// EventKinds are the engine event kinds exported by rootd_engine_events_total.
var EventKinds = []engine.EventKind{engine.Upsert, engine.Remove, engine.Resync, engine.Unavailable}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("rootd_"+name, help, labels, nil)
}

var (
	descRequests        = desc("requests_total", "Requests answered, by request type and result.", "type", "result")
	descRequestDuration = desc("request_duration_seconds", "Time from reading a request to sending its reply, by request type.", "type")
	descConnsOpen       = desc("connections_open", "Clients connected now.")
	descConnsAccepted   = desc("connections_accepted_total", "Connections accepted on the root socket, refused ones included.")
	descConnsRefused    = desc("connections_refused_total", "Connections closed before the greeting, by reason: credentials (unreadable or not allowed) or limit (--max-connections).", "reason")
	descProtocolErrors  = desc("protocol_errors_total", "Clients closed for a malformed or unknown PDU.")
	descAgentsStarted   = desc("agents_started_total", "Agents started for pmcd.")
	descAgentsExited    = desc("agents_exited_total", "Agents that have exited and been reaped.")
	descAgentsRunning   = desc("agents_running", "Agents started and not yet exited.")
	descContainers      = desc("containers", "Containers indexed, by engine and state.", "engine", "state")
	descEngineUp        = desc("engine_available", "1 if the engine's last List succeeded and it has not become hung or unavailable since, else 0.", "engine")
	descEngineHealth    = desc("engine_health", "1 for the engine's current health (available, slow, failing, hung, unavailable, unknown), 0 for the others.", "engine", "health")
	descLastError       = desc("engine_last_error_timestamp_seconds", "When the engine's List last failed or the engine last became hung or unavailable (Unix time); absent if never.", "engine")
	descLastRefresh     = desc("engine_last_refresh_timestamp_seconds", "When the engine's List last succeeded (Unix time); absent if never.", "engine")
	descIndexAge        = desc("engine_index_age_seconds", "Seconds since the engine's List last succeeded; absent if never.", "engine")
	descLists           = desc("engine_lists_total", "Lists of the engine finished, failed ones included.", "engine")
	descListSeconds     = desc("engine_list_seconds_total", "Total time spent in the engine's Lists.", "engine")
	descLastList        = desc("engine_last_list_duration_seconds", "Duration of the engine's newest finished List.", "engine")
	descEvents          = desc("engine_events_total", "Events received from the engine's watch, by kind (upsert, remove, resync, unavailable).", "engine", "kind")
	descLogDropped      = desc("log_writes_dropped_total", "Log writes that failed (the log line is lost).")
	descLogSuppressed   = desc("log_lines_suppressed_total", "Log lines suppressed by rate limiting of client-provoked messages.")
)

type collector struct {
	src    Sources
	bounds []float64
}

// NewCollector returns a Collector of rootd's metrics from src.
func NewCollector(src Sources) prometheus.Collector {
	if src.Now == nil {
		src.Now = time.Now
	}
	return &collector{src: src, bounds: rootd.LatencyBounds()}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		descRequests, descRequestDuration, descConnsOpen, descConnsAccepted, descConnsRefused, descProtocolErrors,
		descAgentsStarted, descAgentsExited, descAgentsRunning, descContainers, descEngineUp, descEngineHealth,
		descLastError, descLastRefresh, descIndexAge, descLists, descListSeconds, descLastList, descEvents,
		descLogDropped, descLogSuppressed,
	} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	if s := c.src.Server; s != nil {
		st := s.Stats()
		for _, r := range st.Requests {
			typ := r.Type.String()
			var count uint64
			for res, n := range r.Results {
				counter(descRequests, float64(n), typ, rootd.Result(res).String())
				count += n
			}
			// Results and buckets are read one after the other: take the
			// count from the buckets so that the histogram is consistent.
			cum := make(map[float64]uint64, len(c.bounds))
			var acc uint64
			for i, b := range c.bounds {
				acc += r.Buckets[i]
				cum[b] = acc
			}
			acc += r.Buckets[len(c.bounds)]
			ch <- prometheus.MustNewConstHistogram(descRequestDuration, acc, r.Sum.Seconds(), cum, typ)
		}
		gauge(descConnsOpen, float64(st.Open))
		counter(descConnsAccepted, float64(st.Accepted))
		counter(descConnsRefused, float64(st.RefusedCredentials), "credentials")
		counter(descConnsRefused, float64(st.RefusedLimit), "limit")
		counter(descProtocolErrors, float64(st.ProtocolErrors))
		counter(descLogSuppressed, float64(st.SuppressedLogLines))
	}
	if p := c.src.Supervisor; p != nil {
		started, exited := p.Counts()
		counter(descAgentsStarted, float64(started))
		counter(descAgentsExited, float64(exited))
		gauge(descAgentsRunning, float64(len(p.Live())))
	}
	if c.src.LogDropped != nil {
		counter(descLogDropped, float64(c.src.LogDropped()))
	}
	if r := c.src.Resolver; r != nil {
		now := c.src.Now()
		for _, e := range r.Status() {
			for _, state := range States {
				gauge(descContainers, float64(e.States[state]), e.Name, string(state))
			}
			gauge(descEngineUp, b2f(e.Available), e.Name)
			for _, h := range Healths {
				gauge(descEngineHealth, b2f(e.Health == h), e.Name, h)
			}
			if !e.LastErrorTime.IsZero() {
				gauge(descLastError, unix(e.LastErrorTime), e.Name)
			}
			if !e.LastRefresh.IsZero() {
				gauge(descLastRefresh, unix(e.LastRefresh), e.Name)
				gauge(descIndexAge, max(now.Sub(e.LastRefresh).Seconds(), 0), e.Name)
			}
			counter(descLists, float64(e.Lists), e.Name)
			counter(descListSeconds, e.ListTime.Seconds(), e.Name)
			gauge(descLastList, e.LastListTime.Seconds(), e.Name)
			for _, k := range EventKinds {
				counter(descEvents, float64(e.Events[k]), e.Name, k.String())
			}
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func unix(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

// NewRegistry returns a registry holding rootd's collector and the Go
// runtime and process collectors (go_*, process_*).
func NewRegistry(src Sources) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		NewCollector(src),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// Handler serves /metrics from g, /healthz (200 while rootd runs) and
// /readyz (200 once ready returns true, else 503).
func Handler(g prometheus.Gatherer, ready func() bool, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog:            slogPrinter{log},
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if ready != nil && !ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "not ready: socket not bound or first index not built")
			return
		}
		fmt.Fprintln(w, "ready")
	})
	return mux
}

type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) {
	if p.log != nil {
		p.log.Warn("metrics: " + strings.TrimSpace(fmt.Sprintln(v...)))
	}
}

// ErrNotLoopback is returned by Listen for a TCP address that is not on
// the loopback interface.
var ErrNotLoopback = errors.New("metrics address must be unix:PATH or a loopback TCP address (127.0.0.1:PORT, [::1]:PORT, localhost:PORT)")

// Listen opens the metrics listener: "unix:/path" for a unix socket, or
// HOST:PORT where HOST is a loopback address or "localhost". The metrics
// tell who runs which containers: they are not served beyond the host.
// A stale unix socket file at path is replaced.
func Listen(addr string) (net.Listener, error) {
	if err := CheckAddress(addr); err != nil {
		return nil, err
	}
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		if fi, err := os.Lstat(path); err == nil && fi.Mode().Type() == os.ModeSocket {
			os.Remove(path)
		}
		ln, err := net.Listen("unix", path)
		if err != nil {
			return nil, err
		}
		if err := os.Chmod(path, 0o600); err != nil {
			ln.Close()
			return nil, err
		}
		return ln, nil
	}
	if host, _, _ := net.SplitHostPort(addr); host == "localhost" {
		// Resolved here, not by the system resolver: localhost is loopback.
		addr = net.JoinHostPort("127.0.0.1", addr[strings.LastIndexByte(addr, ':')+1:])
	}
	return net.Listen("tcp", addr)
}

// CheckAddress reports whether Listen would accept addr's form, opening
// nothing: "unix:" and a path, or a loopback (or "localhost") host and a
// port. A TCP address that is not loopback is ErrNotLoopback.
func CheckAddress(addr string) error {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		if path == "" {
			return fmt.Errorf("metrics address %q: empty socket path", addr)
		}
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("metrics address %q: %w", addr, err)
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return fmt.Errorf("metrics address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("metrics address %q: %w", addr, ErrNotLoopback)
	}
	return nil
}

// Serve serves h on ln until ctx is done.
func Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
	}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	})
	defer stop()
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}
