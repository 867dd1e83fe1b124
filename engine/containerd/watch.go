package containerd

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/containerd/errdefs"

	"github.com/rootd-project/rootd/engine"
)

// isUnavailable reports whether err means the daemon is not there (no socket,
// refused, gone, or not answering in time).
func isUnavailable(err error) bool {
	return errdefs.IsUnavailable(err) || errdefs.IsDeadlineExceeded(err) || errors.Is(err, engine.ErrUnavailable)
}

// Watch implements engine.Watcher with one event stream per daemon.
//
// containerd does not replay missed events, so every time a stream is
// (re)opened the watcher sends Resync. When a daemon goes away it sends
// Unavailable if no other daemon's stream is up, else Resync (whose List then
// leaves the missing daemon out), and retries with a backoff capped at
// maxBackoff.
func (e *Engine) Watch(ctx context.Context, events chan<- engine.Event) {
	var wg sync.WaitGroup
	for _, d := range e.daemons {
		wg.Go(func() { e.watchDaemon(ctx, d, events) })
	}
	wg.Wait()
}

func (e *Engine) watchDaemon(ctx context.Context, d *daemonConn, events chan<- engine.Event) {
	bo := engine.Backoff{Min: e.minBackoff, Max: e.maxBackoff}
	announcedDown := false
	for ctx.Err() == nil {
		streamCtx, cancel := context.WithCancel(ctx)
		changes, errs, err := d.api.Subscribe(streamCtx)
		if err != nil {
			cancel()
			if ctx.Err() != nil {
				return
			}
			if !announcedDown {
				announcedDown = true
				e.log.Debug("containerd event stream unavailable", "address", d.address, "err", err)
				e.lost(ctx, d, err, events)
			}
			if !bo.Wait(ctx) {
				return
			}
			continue
		}
		announcedDown = false
		e.setWatching(d.address, true)
		if !engine.Send(ctx, events, engine.Event{Kind: engine.Resync, Engine: Name}) {
			cancel()
			return
		}
		opened := time.Now()
		err = e.consume(streamCtx, d, changes, errs, events)
		cancel()
		if ctx.Err() != nil {
			return
		}
		e.log.Warn("containerd event stream ended", "address", d.address, "err", err)
		// A stream that broke at once would otherwise make a busy loop of
		// reconnects and resyncs.
		if time.Since(opened) > e.maxBackoff {
			bo.Reset()
		}
		if !bo.Wait(ctx) {
			return
		}
	}
}

// lost reports that d's stream is down.
func (e *Engine) lost(ctx context.Context, d *daemonConn, cause error, events chan<- engine.Event) {
	if e.setWatching(d.address, false) {
		engine.Send(ctx, events, engine.Event{Kind: engine.Resync, Engine: Name})
		return
	}
	engine.Send(ctx, events, engine.Event{
		Kind:   engine.Unavailable,
		Engine: Name,
		Err:    fmt.Errorf("%w: containerd %s: %w", engine.ErrUnavailable, d.address, cause),
	})
}

// setWatching records whether address's stream is up and reports whether
// another daemon's stream is up.
func (e *Engine) setWatching(address string, up bool) (othersUp bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.watching[address] = up
	for a, ok := range e.watching {
		if ok && a != address {
			return true
		}
	}
	return false
}

// consume applies changes until the stream fails or ctx ends.
func (e *Engine) consume(ctx context.Context, d *daemonConn, changes <-chan change, errs <-chan error, events chan<- engine.Event) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err, ok := <-errs:
			if !ok || err == nil {
				return errors.New("event stream closed")
			}
			return err
		case ch := <-changes:
			if e.skip[ch.Namespace] {
				continue
			}
			ev := e.eventFor(ctx, d, ch)
			if !engine.Send(ctx, events, ev) {
				return ctx.Err()
			}
		}
	}
}

// eventFor re-reads the container a change is about. Whenever the answer
// could mislead the resolver it asks for a Resync instead: when the event
// cannot be decoded, when the re-read fails, and when the same ID exists in
// another namespace or daemon (an Upsert or Remove by ID would then hit the
// wrong one).
func (e *Engine) eventFor(ctx context.Context, d *daemonConn, ch change) engine.Event {
	resync := engine.Event{Kind: engine.Resync, Engine: Name}
	if ch.ContainerID == "" {
		e.log.Warn("containerd event without a container ID", "address", d.address, "namespace", ch.Namespace, "topic", ch.Topic)
		return resync
	}
	if e.existsElsewhere(ctx, d, ch.Namespace, ch.ContainerID) {
		return resync
	}
	rec, err := d.api.Container(ctx, ch.Namespace, ch.ContainerID)
	if errdefs.IsNotFound(err) {
		return engine.Event{Kind: engine.Remove, Engine: Name, ID: ch.ContainerID, Container: engine.Container{Namespace: ch.Namespace}}
	}
	if err != nil {
		e.log.Warn("containerd: re-reading container", "address", d.address, "namespace", ch.Namespace, "id", ch.ContainerID, "err", err)
		return resync
	}
	var task *taskState
	t, err := d.api.Task(ctx, ch.Namespace, ch.ContainerID)
	switch {
	case err == nil:
		task = &t
	case !errdefs.IsNotFound(err):
		e.log.Warn("containerd: re-reading task", "address", d.address, "namespace", ch.Namespace, "id", ch.ContainerID, "err", err)
		return resync
	}
	return engine.Event{Kind: engine.Upsert, Engine: Name, Container: toContainer(ch.Namespace, rec, task)}
}

// existsElsewhere reports whether a container with this ID exists in a
// watched namespace other than (origin, namespace). A daemon that cannot be
// reached does not count: List leaves its containers out. Any other error
// counts as "maybe", which only costs a Resync.
func (e *Engine) existsElsewhere(ctx context.Context, origin *daemonConn, namespace, id string) bool {
	for _, d := range e.daemons {
		nss, err := d.api.Namespaces(ctx)
		if err != nil {
			if isUnavailable(err) {
				continue
			}
			return true
		}
		for _, ns := range nss {
			if e.skip[ns] || (d == origin && ns == namespace) {
				continue
			}
			_, err := d.api.Container(ctx, ns, id)
			switch {
			case err == nil:
				return true
			case errdefs.IsNotFound(err), isUnavailable(err):
			default:
				return true
			}
		}
	}
	return false
}
