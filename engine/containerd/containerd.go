// Package containerd is rootd's engine for containerd daemons, reached through
// containerd's own Go client (containers, tasks, namespaces and events APIs,
// which containerd 1.6 and later all serve).
//
// Every namespace of every configured daemon is listed, except the ones in
// --containerd-skip-namespaces (by default Docker's "moby" and "plugins.moby",
// whose containers the docker engine already reports). The containerd
// container ID is the Container ID; Names are derived from labels (see
// namesFor). The daemon's events keep the resolver's index fresh.
package containerd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rootd-project/rootd/engine"
)

// Name is the engine's registered name.
const Name = "containerd"

const (
	// DefaultAddress is containerd's own default socket.
	DefaultAddress = "/run/containerd/containerd.sock"
	// AddressEnv overrides DefaultAddress when no --containerd-address is given,
	// as it does for ctr.
	AddressEnv = "CONTAINERD_ADDRESS"
	// DefaultSkipNamespaces are Docker's namespaces: dockerd runs its own
	// containerd and keeps its containers (and managed plugins) there, so
	// reporting them here would list every Docker container twice.
	DefaultSkipNamespaces = "moby,plugins.moby"
)

const (
	// listTimeout bounds one daemon's share of a List, so that a hung daemon
	// cannot stall a refresh forever.
	listTimeout = 10 * time.Second
	// The watcher retries a vanished daemon with this backoff; the cap is also
	// the gRPC reconnect cap, so a daemon that appears is noticed within ~1s
	// (and the resolver is back in use within 2 s of its return).
	minBackoff = 100 * time.Millisecond
	maxBackoff = time.Second
)

func init() {
	engine.Register(engine.Driver{
		Name:       Name,
		Summary:    "containerd daemons (every namespace but Docker's; CRI/Kubernetes labels)",
		Precedence: engine.PrecedenceLowLevel,
		Configure:  configure,
	})
}

// checkAddress refuses an empty --containerd-address.
func checkAddress(v string) (string, error) {
	if v == "" {
		return "", errors.New("empty containerd address")
	}
	return v, nil
}

type options struct {
	addresses      engine.Paths
	skipNamespaces string
}

func configure(fs *flag.FlagSet) engine.OpenFunc {
	o := &options{addresses: engine.Paths{Check: checkAddress}}
	fs.Var(&o.addresses, "containerd-address",
		"containerd socket `path`; repeat for several daemons (default $"+AddressEnv+", else "+DefaultAddress+")")
	fs.StringVar(&o.skipNamespaces, "containerd-skip-namespaces", DefaultSkipNamespaces,
		"comma-separated containerd `namespaces` to ignore (moby and plugins.moby belong to Docker)")
	return func(env engine.Env) (engine.Engine, error) {
		return open(env, o.addresses.List, o.skipNamespaces)
	}
}

// addressesFor applies the defaults: the flags, else $CONTAINERD_ADDRESS, else
// containerd's default socket.
func addressesFor(flagged []string, getenv func(string) string) []string {
	if len(flagged) > 0 {
		return slices.Clone(flagged)
	}
	if getenv != nil {
		if a := strings.TrimSpace(getenv(AddressEnv)); a != "" {
			return []string{a}
		}
	}
	return []string{DefaultAddress}
}

// parseNamespaceList reads a comma-separated list; blanks are ignored, so ""
// skips nothing.
func parseNamespaceList(s string) map[string]bool {
	out := map[string]bool{}
	for _, ns := range strings.Split(s, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			out[ns] = true
		}
	}
	return out
}

func open(env engine.Env, flagged []string, skip string) (*Engine, error) {
	log := env.Log
	if log == nil {
		log = slog.Default()
	}
	var daemons []*daemonConn
	for _, addr := range addressesFor(flagged, env.Getenv) {
		d, err := dialDaemon(addr)
		if err != nil {
			for _, opened := range daemons {
				_ = opened.api.Close()
			}
			return nil, fmt.Errorf("containerd client for %s: %w", addr, err)
		}
		daemons = append(daemons, &daemonConn{address: addr, api: d})
	}
	return newEngine(log, daemons, parseNamespaceList(skip)), nil
}

// daemonConn is one configured daemon with what the engine remembers of it.
type daemonConn struct {
	address string
	api     daemon
}

// Engine reports the containers of one or more containerd daemons.
type Engine struct {
	log     *slog.Logger
	daemons []*daemonConn
	skip    map[string]bool

	minBackoff, maxBackoff time.Duration

	// reachable is each address's last known state, so that a daemon that
	// stays away is logged once rather than on every refresh.
	reachable engine.Reachability

	mu sync.Mutex
	// watching counts the daemons whose event stream is up; when the last
	// one goes the watcher reports Unavailable, otherwise Resync.
	watching map[string]bool
}

func newEngine(log *slog.Logger, daemons []*daemonConn, skip map[string]bool) *Engine {
	return &Engine{
		log:        log,
		daemons:    daemons,
		skip:       skip,
		minBackoff: minBackoff,
		maxBackoff: maxBackoff,
		watching:   map[string]bool{},
	}
}

// Name implements engine.Engine.
func (e *Engine) Name() string { return Name }

// Close closes the clients of every daemon.
func (e *Engine) Close() error {
	var errs []error
	for _, d := range e.daemons {
		if err := d.api.Close(); err != nil {
			errs = append(errs, fmt.Errorf("containerd %s: %w", d.address, err))
		}
	}
	return errors.Join(errs...)
}

// List implements engine.Engine. Daemons that cannot be reached are left out;
// when none can, the error wraps engine.ErrUnavailable. Any other failure of
// a reachable daemon fails the whole List, because a partial answer would
// make the resolver forget containers that still exist.
func (e *Engine) List(ctx context.Context) ([]engine.Container, error) {
	var (
		out  []engine.Container
		down []string
	)
	for _, d := range e.daemons {
		cs, err := e.listDaemon(ctx, d)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if isUnavailable(err) {
				e.noteReachable(d.address, err)
				down = append(down, err.Error())
				continue
			}
			return nil, fmt.Errorf("containerd %s: %w", d.address, err)
		}
		e.noteReachable(d.address, nil)
		out = append(out, cs...)
	}
	if len(down) == len(e.daemons) {
		return nil, fmt.Errorf("%w: %s", engine.ErrUnavailable, strings.Join(down, "; "))
	}
	return out, nil
}

func (e *Engine) noteReachable(address string, err error) {
	switch lost, back := e.reachable.Note(address, err); {
	case lost && len(e.daemons) > 1:
		// With one daemon the resolver logs ErrUnavailable itself.
		e.log.Warn("containerd daemon unreachable", "address", address, "err", err)
	case back:
		e.log.Info("containerd daemon reachable again", "address", address)
	}
}

func (e *Engine) listDaemon(ctx context.Context, d *daemonConn) ([]engine.Container, error) {
	ctx, cancel := context.WithTimeout(ctx, listTimeout)
	defer cancel()
	nss, err := d.api.Namespaces(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing namespaces: %w", err)
	}
	var out []engine.Container
	for _, ns := range nss {
		if e.skip[ns] {
			continue
		}
		recs, err := d.api.Containers(ctx, ns)
		if err != nil {
			return nil, fmt.Errorf("listing containers of namespace %s: %w", ns, err)
		}
		if len(recs) == 0 {
			continue
		}
		tasks, err := d.api.Tasks(ctx, ns)
		if err != nil {
			return nil, fmt.Errorf("listing tasks of namespace %s: %w", ns, err)
		}
		byID := make(map[string]*taskState, len(tasks))
		for i := range tasks {
			byID[tasks[i].ContainerID] = &tasks[i]
		}
		for _, r := range recs {
			out = append(out, toContainer(ns, r, byID[r.ID]))
		}
	}
	return out, nil
}
