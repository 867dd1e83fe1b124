// Package cri is rootd's engine for Kubernetes nodes: it asks the node's
// container runtimes through the Container Runtime Interface
// (k8s.io/cri-api, runtime.v1 over gRPC), the API the kubelet itself uses,
// so that it sees pods the way Kubernetes does whichever runtime runs them
// (containerd's CRI plugin, CRI-O).
//
// Every pod sandbox and container of every configured endpoint is listed.
// Kubernetes identity comes from CRI metadata (pod namespace, pod name, pod
// UID, container name) and is stored under the well-known labels, so
// NAMESPACE/POD/CONTAINER queries work; a container's CRI name (what crictl
// shows as NAME) is its Names. The init PID comes from ContainerStatus
// (PodSandboxStatus for a sandbox) with Verbose set: the runtime's "info"
// JSON carries "pid". Freshness comes from the CRI event stream
// (GetContainerEvents) where the runtime serves it, else from listing every
// relist interval and sending Resync only when something changed.
//
// The engine registers with engine.PrecedenceManager: on a node where the
// containerd engine also sees the k8s.io namespace, the CRI view of a
// container answers.
package cri

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/rootd-project/rootd/engine"
)

// Name is the engine's registered name.
const Name = "cri"

// DefaultEndpoints are CRI-O's and containerd's sockets, the two runtimes
// a kubelet is normally configured with.
var DefaultEndpoints = []string{"/var/run/crio/crio.sock", "/run/containerd/containerd.sock"}

const (
	// DefaultRelist is how often an endpoint without an event stream is
	// listed to find changes.
	DefaultRelist = 2 * time.Second
	// eventSafetyRelist is how often an endpoint with an event stream is
	// listed anyway: the stream may have missed changes made while it was
	// being established.
	eventSafetyRelist = 30 * time.Second
	// callTimeout bounds one endpoint's share of a List.
	callTimeout = 5 * time.Second
	// maxBackoff caps gRPC's reconnect backoff and the watcher's, so that an
	// endpoint that appears is noticed within about a second.
	maxBackoff = time.Second
	// maxMsgSize allows large nodes' lists (gRPC's default is 4 MiB).
	maxMsgSize = 16 << 20
)

func init() {
	engine.Register(engine.Driver{
		Name:       Name,
		Summary:    "Kubernetes pods through the CRI (CRI-O, containerd's CRI plugin)",
		Precedence: engine.PrecedenceManager,
		Configure:  configure,
	})
}

// checkEndpoint takes a --cri-endpoint as a unix socket's absolute path,
// with or without unix://.
func checkEndpoint(v string) (string, error) {
	v = strings.TrimPrefix(v, "unix://")
	if v == "" {
		return "", errors.New("empty CRI endpoint")
	}
	if !strings.HasPrefix(v, "/") {
		return "", fmt.Errorf("CRI endpoint %q: want the absolute path of a unix socket", v)
	}
	return v, nil
}

func configure(fs *flag.FlagSet) engine.OpenFunc {
	eps := engine.Paths{Check: checkEndpoint}
	fs.Var(&eps, "cri-endpoint",
		"CRI runtime socket `path` (unix:// optional); repeat for several (default "+strings.Join(DefaultEndpoints, " and ")+")")
	relist := fs.Duration("cri-relist", DefaultRelist,
		"how often to list a CRI runtime that offers no event stream (containerd before 1.7)")
	return func(env engine.Env) (engine.Engine, error) {
		if *relist <= 0 {
			return nil, fmt.Errorf("--cri-relist %v: must be positive", *relist)
		}
		addrs := eps.List
		if len(addrs) == 0 {
			addrs = DefaultEndpoints
		}
		return Open(env.Log, addrs, *relist)
	}
}

// endpoint is one CRI runtime socket.
type endpoint struct {
	address string
	conn    *grpc.ClientConn
	rt      runtimeapi.RuntimeServiceClient

	mu sync.Mutex
	// runtime is the runtime's name from Version ("containerd", "cri-o"),
	// empty until known; it decides the cgroup marks.
	runtime string
	// pids caches the init PIDs of running containers and ready sandboxes:
	// a CRI container or sandbox never restarts under the same ID, so its
	// PID is asked once, not on every List.
	pids map[string]int
}

// Engine reports the pods and containers of one or more CRI runtimes.
type Engine struct {
	log    *slog.Logger
	eps    []*endpoint
	relist time.Duration

	reachable engine.Reachability

	mu       sync.Mutex
	watching map[string]bool
	closed   bool
}

// Open returns an engine over the CRI sockets at addresses. It does not
// connect: a socket that is not there is not an error until List.
func Open(log *slog.Logger, addresses []string, relist time.Duration) (*Engine, error) {
	if log == nil {
		log = slog.Default()
	}
	if relist <= 0 {
		relist = DefaultRelist
	}
	e := &Engine{log: log, relist: relist, watching: map[string]bool{}}
	for _, addr := range addresses {
		conn, err := grpc.NewClient("unix://"+addr,
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithConnectParams(grpc.ConnectParams{
				Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: maxBackoff},
				MinConnectTimeout: 2 * time.Second,
			}),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsgSize)),
		)
		if err != nil {
			e.Close()
			return nil, fmt.Errorf("CRI client for %s: %w", addr, err)
		}
		e.eps = append(e.eps, &endpoint{address: addr, conn: conn, rt: runtimeapi.NewRuntimeServiceClient(conn), pids: map[string]int{}})
	}
	return e, nil
}

// Name implements engine.Engine.
func (e *Engine) Name() string { return Name }

// Close closes the connections to every endpoint; closing twice is harmless.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	for _, ep := range e.eps {
		ep.conn.Close()
	}
	return nil
}

// isUnavailable reports whether err means the runtime is not there: no
// socket, refused, gone, or a gRPC server without the CRI runtime service
// (Unimplemented: Docker's containerd has its CRI plugin disabled).
func isUnavailable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.Unimplemented:
		return true
	}
	return errors.Is(err, engine.ErrUnavailable)
}

// isTimeout reports whether err means the runtime did not answer in time.
func isTimeout(err error) bool {
	return status.Code(err) == codes.DeadlineExceeded || errors.Is(err, context.DeadlineExceeded)
}

// List implements engine.Engine. Endpoints that cannot be reached are left
// out; when none can, the error wraps engine.ErrUnavailable. An endpoint
// that does not answer in time makes the error wrap
// context.DeadlineExceeded (the resolver then keeps the last known
// containers); any other failure fails the List, since a partial answer
// would make the resolver forget containers that still exist.
func (e *Engine) List(ctx context.Context) ([]engine.Container, error) {
	var (
		out  []engine.Container
		down []string
		seen = map[string]bool{}
	)
	for _, ep := range e.eps {
		cs, err := e.listEndpoint(ctx, ep)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			switch {
			case isUnavailable(err):
				e.noteReachable(ep.address, err)
				down = append(down, err.Error())
				continue
			case isTimeout(err):
				return nil, fmt.Errorf("cri %s: %w: %w", ep.address, context.DeadlineExceeded, err)
			}
			return nil, fmt.Errorf("cri %s: %w", ep.address, err)
		}
		e.noteReachable(ep.address, nil)
		for _, c := range cs {
			// One runtime reachable under two paths would list each
			// container twice.
			if !seen[c.ID] {
				seen[c.ID] = true
				out = append(out, c)
			}
		}
	}
	if len(down) == len(e.eps) {
		return nil, fmt.Errorf("%w: %s", engine.ErrUnavailable, strings.Join(down, "; "))
	}
	return out, nil
}

func (e *Engine) noteReachable(address string, err error) {
	switch lost, back := e.reachable.Note(address, err); {
	case lost && len(e.eps) > 1:
		// With one endpoint the resolver logs ErrUnavailable itself; an
		// absent default socket (CRI-O on a containerd node) is logged once.
		e.log.Debug("CRI endpoint unreachable", "address", address, "err", err)
	case back:
		e.log.Info("CRI endpoint reachable again", "address", address)
	}
}

// runtimeName asks the endpoint's runtime for its name once.
func (e *Engine) runtimeName(ctx context.Context, ep *endpoint) (string, error) {
	ep.mu.Lock()
	name := ep.runtime
	ep.mu.Unlock()
	if name != "" {
		return name, nil
	}
	v, err := ep.rt.Version(ctx, &runtimeapi.VersionRequest{})
	if err != nil {
		return "", fmt.Errorf("version: %w", err)
	}
	name = v.GetRuntimeName()
	if name == "" {
		name = "unknown"
	}
	ep.mu.Lock()
	ep.runtime = name
	ep.mu.Unlock()
	e.log.Debug("CRI runtime", "address", ep.address, "runtime", name, "version", v.GetRuntimeVersion(), "api", v.GetRuntimeApiVersion())
	return name, nil
}

// listEndpoint lists one runtime's sandboxes and containers.
func (e *Engine) listEndpoint(ctx context.Context, ep *endpoint) ([]engine.Container, error) {
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	rtName, err := e.runtimeName(ctx, ep)
	if err != nil {
		return nil, err
	}
	sbs, err := ep.rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return nil, fmt.Errorf("listing pod sandboxes: %w", err)
	}
	cts, err := ep.rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
	if err != nil {
		return nil, fmt.Errorf("listing containers: %w", err)
	}
	ep.mu.Lock()
	cached := ep.pids
	ep.mu.Unlock()
	pids := make(map[string]int, len(cached))

	pods := make(map[string]*runtimeapi.PodSandbox, len(sbs.GetItems()))
	out := make([]engine.Container, 0, len(sbs.GetItems())+len(cts.GetContainers()))
	// todo are the running containers and ready sandboxes whose PID is not
	// cached yet: asked for below, several at a time.
	var todo []*pidQuery
	for _, sb := range sbs.GetItems() {
		if sb.GetId() == "" {
			e.log.Warn("CRI pod sandbox without an ID", "address", ep.address)
			continue
		}
		pods[sb.GetId()] = sb
		c := sandboxContainer(rtName, sb)
		if sb.GetState() == runtimeapi.PodSandboxState_SANDBOX_READY {
			if pid, ok := cached[sb.GetId()]; ok {
				c.State, c.PID = engine.StateRunning, pid
			} else {
				todo = append(todo, &pidQuery{idx: len(out), sandbox: true, id: sb.GetId()})
			}
		}
		out = append(out, c)
	}
	for _, ct := range cts.GetContainers() {
		if ct.GetId() == "" {
			e.log.Warn("CRI container without an ID", "address", ep.address)
			continue
		}
		c := containerOf(rtName, ct, pods[ct.GetPodSandboxId()])
		if ct.GetState() == runtimeapi.ContainerState_CONTAINER_RUNNING {
			if pid, ok := cached[ct.GetId()]; ok {
				c.State, c.PID = engine.StateRunning, pid
			} else {
				todo = append(todo, &pidQuery{idx: len(out), id: ct.GetId()})
			}
		}
		out = append(out, c)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(statusConcurrency)
	for _, q := range todo {
		g.Go(func() error { return e.askPID(gctx, ep, q) })
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	skip := map[int]bool{}
	for _, q := range todo {
		switch {
		case q.skip:
			skip[q.idx] = true
		case q.pid > 0:
			out[q.idx].State, out[q.idx].PID = engine.StateRunning, q.pid
		}
	}
	if len(skip) > 0 {
		kept := out[:0]
		for i, c := range out {
			if !skip[i] {
				kept = append(kept, c)
			}
		}
		out = kept
	}
	for _, c := range out {
		if c.PID > 0 {
			pids[c.ID] = c.PID
		}
	}
	ep.mu.Lock()
	ep.pids = pids
	ep.mu.Unlock()
	return out, nil
}

// statusConcurrency bounds the status calls one List makes at a time (the
// first List of a node with many pods asks one per running container).
const statusConcurrency = 8

// pidQuery is one status call for an init PID.
type pidQuery struct {
	idx     int // in the List's output
	sandbox bool
	id      string
	// Results: the PID (0: no longer running), or skip to leave it out.
	pid  int
	skip bool
}

// askPID asks the runtime for one running container's or ready sandbox's
// init PID. An error fails the List (the runtime as a whole is failing);
// trouble with the one item only sets skip.
func (e *Engine) askPID(ctx context.Context, ep *endpoint, q *pidQuery) error {
	var (
		info    map[string]string
		running bool
		err     error
		what    = "container"
	)
	if q.sandbox {
		what = "pod sandbox"
		var st *runtimeapi.PodSandboxStatusResponse
		st, err = ep.rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: q.id, Verbose: true})
		info, running = st.GetInfo(), st.GetStatus().GetState() == runtimeapi.PodSandboxState_SANDBOX_READY
	} else {
		var st *runtimeapi.ContainerStatusResponse
		st, err = ep.rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: q.id, Verbose: true})
		info, running = st.GetInfo(), st.GetStatus().GetState() == runtimeapi.ContainerState_CONTAINER_RUNNING
	}
	if skip, err := e.itemError(ep, what, q.id, err); err != nil {
		return err
	} else if skip {
		q.skip = true
		return nil
	}
	if !running {
		return nil // stopped since it was listed: reported as stopped
	}
	pid, err := infoPID(info)
	if err != nil {
		q.skip = true
		if q.sandbox {
			// CRI-O without an infra container has no sandbox process;
			// nothing to report but the pod's containers.
			e.log.Debug("CRI pod sandbox without an init process", "address", ep.address, "id", q.id, "err", err)
		} else {
			e.log.Warn("CRI running container without a usable PID; left out", "address", ep.address, "id", q.id, "err", err)
		}
		return nil
	}
	q.pid = pid
	return nil
}

// itemError sorts out the error of one sandbox's or container's status
// call: gone since listed (skip it), the runtime failing as a whole (fail
// the List), or trouble with this item alone (skip it with a warning).
func (e *Engine) itemError(ep *endpoint, what, id string, err error) (skip bool, _ error) {
	switch {
	case err == nil:
		return false, nil
	case status.Code(err) == codes.NotFound:
		return true, nil
	case isUnavailable(err), isTimeout(err), status.Code(err) == codes.Canceled:
		return false, fmt.Errorf("status of %s %s: %w", what, id, err)
	}
	e.log.Warn("CRI: reading "+what+" status; left out", "address", ep.address, "id", id, "err", err)
	return true, nil
}
