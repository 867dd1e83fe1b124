package enginetest

import (
	"context"
	"fmt"
	"slices"
	"sync"

	"github.com/rootd-project/rootd/engine"
)

// Memory is an in-memory engine under any name, for tests: it lists the
// containers it was last given and tells its watchers about every change,
// the way a live runtime's event stream would. It passes the conformance
// suite (see memory_test.go), so tests of the resolver and the server can
// stand on it.
type Memory struct {
	name string

	mu          sync.Mutex
	containers  []engine.Container
	unavailable bool
	listErr     error
	listCalls   int
	watchers    map[*watcher]struct{}
}

// watcher is one Watch call's queue. Events are queued rather than sent
// directly so that Set and friends never block on a slow reader.
type watcher struct {
	queue []engine.Event // guarded by Memory.mu
	wake  chan struct{}  // capacity 1
}

// NewMemory returns an in-memory engine called name holding containers
// (copied; their Engine field is set to name).
func NewMemory(name string, containers []engine.Container) *Memory {
	e := &Memory{name: name, watchers: map[*watcher]struct{}{}}
	e.containers = e.own(containers)
	return e
}

func (e *Memory) own(cs []engine.Container) []engine.Container {
	out := slices.Clone(cs)
	for i := range out {
		out[i].Engine = e.name
	}
	return out
}

// Name implements engine.Engine.
func (e *Memory) Name() string { return e.name }

// List implements engine.Engine. It fails with engine.ErrUnavailable while
// the engine is marked unavailable.
func (e *Memory) List(ctx context.Context) ([]engine.Container, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.listCalls++
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if e.unavailable {
		return nil, fmt.Errorf("%s: %w", e.name, engine.ErrUnavailable)
	}
	if e.listErr != nil {
		return nil, e.listErr
	}
	return slices.Clone(e.containers), nil
}

// SetListErr makes List fail with err (nil: succeed again) without telling
// the watchers, like a runtime that answers with errors.
func (e *Memory) SetListErr(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.listErr = err
}

// ListCalls reports how many times List has been called.
func (e *Memory) ListCalls() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.listCalls
}

// Set replaces every container and sends Resync to the watchers. It also
// makes the engine available again.
func (e *Memory) Set(containers []engine.Container) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.containers = e.own(containers)
	e.unavailable = false
	e.notify(engine.Event{Kind: engine.Resync, Engine: e.name})
}

// Upsert adds c or replaces the container with its namespace and ID, and
// sends Upsert.
func (e *Memory) Upsert(c engine.Container) {
	c.Engine = e.name
	e.mu.Lock()
	defer e.mu.Unlock()
	if i := e.index(c.Namespace, c.ID); i >= 0 {
		e.containers[i] = c
	} else {
		e.containers = append(e.containers, c)
	}
	e.notify(engine.Event{Kind: engine.Upsert, Engine: e.name, ID: c.ID, Container: c})
}

// Remove drops the container with id (in no namespace), and sends Remove.
func (e *Memory) Remove(id string) { e.RemoveFrom("", id) }

// RemoveFrom drops the container with id in namespace, and sends Remove.
func (e *Memory) RemoveFrom(namespace, id string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if i := e.index(namespace, id); i >= 0 {
		e.containers = slices.Delete(e.containers, i, i+1)
	}
	e.notify(engine.Event{Kind: engine.Remove, Engine: e.name, ID: id, Container: engine.Container{Namespace: namespace}})
}

// SetAvailable(false) makes the runtime "go away": List fails with
// engine.ErrUnavailable and watchers get Unavailable. SetAvailable(true)
// brings it back and sends Resync.
func (e *Memory) SetAvailable(ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.unavailable == !ok {
		return
	}
	e.unavailable = !ok
	if ok {
		e.notify(engine.Event{Kind: engine.Resync, Engine: e.name})
		return
	}
	e.notify(engine.Event{Kind: engine.Unavailable, Engine: e.name,
		Err: fmt.Errorf("%s: %w", e.name, engine.ErrUnavailable)})
}

func (e *Memory) index(namespace, id string) int {
	return slices.IndexFunc(e.containers, func(c engine.Container) bool { return c.ID == id && c.Namespace == namespace })
}

// notify queues ev for every watcher; e.mu must be held.
func (e *Memory) notify(ev engine.Event) {
	for w := range e.watchers {
		w.queue = append(w.queue, ev)
		select {
		case w.wake <- struct{}{}:
		default:
		}
	}
}

// Watch implements engine.Watcher. Like every watcher should, it starts with
// a Resync, covering changes made before it was subscribed.
func (e *Memory) Watch(ctx context.Context, events chan<- engine.Event) {
	w := &watcher{wake: make(chan struct{}, 1)}
	e.mu.Lock()
	e.watchers[w] = struct{}{}
	w.queue = append(w.queue, engine.Event{Kind: engine.Resync, Engine: e.name})
	w.wake <- struct{}{}
	e.mu.Unlock()
	defer func() {
		e.mu.Lock()
		delete(e.watchers, w)
		e.mu.Unlock()
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		}
		e.mu.Lock()
		batch := w.queue
		w.queue = nil
		e.mu.Unlock()
		for _, ev := range batch {
			if !engine.Send(ctx, events, ev) {
				return
			}
		}
	}
}
