package containerd

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	apievents "github.com/containerd/containerd/api/events"
	tasksapi "github.com/containerd/containerd/api/services/tasks/v1"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/typeurl/v2"
)

// daemon is the part of containerd's API the engine uses, so that the
// engine's logic can be tested without a daemon. Errors follow errdefs:
// errdefs.ErrNotFound for a missing container or task, errdefs.ErrUnavailable
// when the daemon cannot be reached.
type daemon interface {
	Namespaces(ctx context.Context) ([]string, error)
	Containers(ctx context.Context, namespace string) ([]record, error)
	// Tasks lists the init tasks of a namespace's containers.
	Tasks(ctx context.Context, namespace string) ([]taskState, error)
	Container(ctx context.Context, namespace, id string) (record, error)
	Task(ctx context.Context, namespace, id string) (taskState, error)
	// Subscribe opens an event stream across all namespaces. It returns an
	// error at once when the daemon cannot be reached; later failures arrive
	// on the error channel. Cancelling ctx ends the stream.
	Subscribe(ctx context.Context) (<-chan change, <-chan error, error)
	Close() error
}

// change is one event: something happened to a container.
type change struct {
	Namespace string
	Topic     string
	// ContainerID is empty when the event could not be decoded.
	ContainerID string
}

// watchedTopics are the events after which a container's reported state
// may differ. Exec processes, OOM, IO and checkpoint events change nothing
// rootd reports.
var watchedTopics = []string{
	"/tasks/create", "/tasks/start", "/tasks/exit", "/tasks/delete",
	"/tasks/paused", "/tasks/resumed",
	"/containers/create", "/containers/update", "/containers/delete",
}

// subscribeFilters selects watchedTopics (containerd ORs the filters).
func subscribeFilters() []string {
	out := make([]string, len(watchedTopics))
	for i, t := range watchedTopics {
		out[i] = fmt.Sprintf("topic==%q", t)
	}
	return out
}

// grpcDaemon is a daemon reached through containerd's Go client.
type grpcDaemon struct {
	address string
	client  *client.Client
}

func dialDaemon(address string) (*grpcDaemon, error) {
	// The client connects lazily, so a missing socket is not an error here.
	// WithTimeout also caps gRPC's reconnect backoff.
	c, err := client.New(address, client.WithTimeout(maxBackoff))
	if err != nil {
		return nil, err
	}
	return &grpcDaemon{address: address, client: c}, nil
}

// present fails fast, with a clear message, when the socket file does not
// exist: the engine is then idle rather than broken.
func (g *grpcDaemon) present() error {
	path, isPath := socketPath(g.address)
	if !isPath {
		return nil
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("no containerd socket at %s: %w", path, errdefs.ErrUnavailable)
	}
	return nil
}

// socketPath returns the file behind an address, if it is a unix socket.
func socketPath(address string) (string, bool) {
	if p, ok := strings.CutPrefix(address, "unix://"); ok {
		return p, true
	}
	if strings.Contains(address, "://") {
		return "", false
	}
	return address, true
}

func (g *grpcDaemon) Namespaces(ctx context.Context) ([]string, error) {
	if err := g.present(); err != nil {
		return nil, err
	}
	return g.client.NamespaceService().List(ctx)
}

func (g *grpcDaemon) Containers(ctx context.Context, namespace string) ([]record, error) {
	cs, err := g.client.ContainerService().List(namespaces.WithNamespace(ctx, namespace))
	if err != nil {
		return nil, err
	}
	out := make([]record, len(cs))
	for i, c := range cs {
		out[i] = record{ID: c.ID, Labels: c.Labels}
	}
	return out, nil
}

func (g *grpcDaemon) Tasks(ctx context.Context, namespace string) ([]taskState, error) {
	resp, err := g.client.TaskService().List(namespaces.WithNamespace(ctx, namespace), &tasksapi.ListTasksRequest{})
	if err != nil {
		return nil, errgrpc.ToNative(err)
	}
	out := make([]taskState, 0, len(resp.Tasks))
	for _, p := range resp.Tasks {
		// containerd 1.6 leaves ContainerID empty here; an init task's ID is
		// its container's.
		id := p.ContainerID
		if id == "" {
			id = p.ID
		}
		out = append(out, taskState{ContainerID: id, PID: p.Pid, Status: p.Status})
	}
	return out, nil
}

func (g *grpcDaemon) Container(ctx context.Context, namespace, id string) (record, error) {
	c, err := g.client.ContainerService().Get(namespaces.WithNamespace(ctx, namespace), id)
	if err != nil {
		return record{}, err
	}
	return record{ID: c.ID, Labels: c.Labels}, nil
}

func (g *grpcDaemon) Task(ctx context.Context, namespace, id string) (taskState, error) {
	resp, err := g.client.TaskService().Get(namespaces.WithNamespace(ctx, namespace), &tasksapi.GetRequest{ContainerID: id})
	if err != nil {
		return taskState{}, errgrpc.ToNative(err)
	}
	p := resp.GetProcess()
	if p == nil {
		return taskState{}, fmt.Errorf("task %s: empty reply: %w", id, errdefs.ErrNotFound)
	}
	return taskState{ContainerID: id, PID: p.Pid, Status: p.Status}, nil
}

func (g *grpcDaemon) Subscribe(ctx context.Context) (<-chan change, <-chan error, error) {
	if err := g.present(); err != nil {
		return nil, nil, err
	}
	// No namespace on ctx: the events service then sends every namespace's.
	envelopes, errs := g.client.Subscribe(ctx, subscribeFilters()...)
	// A stream that cannot be opened reports its error before Subscribe
	// returns.
	select {
	case err := <-errs:
		if err == nil {
			err = errors.New("event stream closed at once")
		}
		return nil, nil, errgrpc.ToNative(err)
	default:
	}
	changes := make(chan change)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case env := <-envelopes:
				select {
				case changes <- changeOf(env):
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return changes, errs, nil
}

func (g *grpcDaemon) Close() error { return g.client.Close() }

// changeOf decodes an event envelope; an event it cannot decode yields an
// empty ContainerID, which makes the watcher ask for a full resync.
func changeOf(env *events.Envelope) change {
	c := change{Namespace: env.Namespace, Topic: env.Topic}
	if env.Event == nil {
		return c
	}
	v, err := typeurl.UnmarshalAny(env.Event)
	if err != nil {
		return c
	}
	c.ContainerID = containerIDOf(v)
	return c
}

func containerIDOf(v any) string {
	switch ev := v.(type) {
	case interface{ GetContainerID() string }: // every /tasks/ event
		return ev.GetContainerID()
	case *apievents.ContainerCreate:
		return ev.GetID()
	case *apievents.ContainerUpdate:
		return ev.GetID()
	case *apievents.ContainerDelete:
		return ev.GetID()
	}
	return ""
}
