package cri

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/rootd-project/rootd/engine"
)

// Watch implements engine.Watcher, one loop per endpoint.
//
// Each loop lists its endpoint, sends Resync, and then follows the
// runtime's CRI event stream (GetContainerEvents, containerd 1.7 and later,
// CRI-O 1.26 and later with enable_pod_events), sending Resync on every
// event. A runtime that answers the stream with Unimplemented (containerd
// 1.6) or ends it cleanly at once without an event (CRI-O without
// enable_pod_events, its default, returns at once: within
// streamEndedAtOnce) is listed every relist interval instead, and Resync is
// sent only when what it lists changed. A stream that ends cleanly after
// an event, or after streamEndedAtOnce, is a runtime restarting gracefully:
// the loop subscribes again, as for a broken stream. With a stream, the
// endpoint is still listed every 30 s, covering changes made while the
// stream was being set up. When an endpoint goes
// away the loop sends Unavailable if no other endpoint is up, else Resync,
// and tries again with a backoff.
func (e *Engine) Watch(ctx context.Context, events chan<- engine.Event) {
	var wg sync.WaitGroup
	for _, ep := range e.eps {
		wg.Go(func() { e.watchEndpoint(ctx, ep, events) })
	}
	wg.Wait()
}

// errStreamEnded is a CRI event stream the runtime ended without an error
// after it had delivered an event or lived a while: a runtime restarting
// gracefully. The engine subscribes again.
var errStreamEnded = errors.New("event stream ended")

// errNoStream is a CRI event stream the runtime ended without an error and
// without an event within streamEndedAtOnce of opening it: CRI-O without
// enable_pod_events does that. The engine lists the endpoint periodically
// instead.
var errNoStream = errors.New("event stream ended at once, without events")

// streamEndedAtOnce is how soon after it was opened a stream that ended
// cleanly, without an event, means a runtime that serves no events.
const streamEndedAtOnce = time.Second

// fingerprint is what a List of one endpoint showed, for change detection.
func fingerprint(cs []engine.Container) string {
	keys := make([]string, len(cs))
	for i, c := range cs {
		keys[i] = c.ID + " " + string(c.State) + " " + strconv.Itoa(c.PID)
	}
	slices.Sort(keys)
	return strings.Join(keys, "\n")
}

func (e *Engine) watchEndpoint(ctx context.Context, ep *endpoint, events chan<- engine.Event) {
	bo := engine.Backoff{Min: 100 * time.Millisecond, Max: maxBackoff}
	announcedDown := false
	for ctx.Err() == nil {
		err := e.follow(ctx, ep, events, &announcedDown, &bo)
		if ctx.Err() != nil {
			return
		}
		if !announcedDown {
			// A stream that ended while the runtime still answers is no
			// outage: reconnect (with a Resync) without dropping anything.
			if _, perr := e.snapshot(ctx, ep); perr == nil {
				e.log.Warn("CRI event stream ended; reconnecting", "address", ep.address, "err", err)
			} else {
				announcedDown = true
				e.log.Debug("CRI endpoint lost", "address", ep.address, "err", perr)
				e.lost(ctx, ep, perr, events)
			}
		}
		if !bo.Wait(ctx) {
			return
		}
	}
}

// follow watches one connection to ep until it fails.
func (e *Engine) follow(ctx context.Context, ep *endpoint, events chan<- engine.Event, announcedDown *bool, bo *engine.Backoff) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Subscribe first, so that the List below covers everything the stream
	// might have missed.
	streamed := make(chan error, 1)
	changed := make(chan struct{}, 1)
	subscribed := time.Now()
	stream, err := ep.rt.GetContainerEvents(sctx, &runtimeapi.GetEventsRequest{})
	if err != nil {
		streamed <- err
	} else {
		go func() {
			delivered := false
			for {
				_, err := stream.Recv()
				if err != nil {
					if err == io.EOF {
						err = errStreamEnded
						if !delivered && time.Since(subscribed) < streamEndedAtOnce {
							err = errNoStream
						}
					}
					streamed <- err
					return
				}
				delivered = true
				select {
				case changed <- struct{}{}:
				default:
				}
			}
		}()
	}
	last, err := e.snapshot(sctx, ep)
	if err != nil {
		return err
	}
	*announcedDown = false
	e.setWatching(ep.address, true)
	if !engine.Send(ctx, events, engine.Event{Kind: engine.Resync, Engine: Name}) {
		return ctx.Err()
	}
	opened := time.Now()
	interval, mode := eventSafetyRelist, "events"
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-streamed:
			if status.Code(err) != codes.Unimplemented && !errors.Is(err, errNoStream) {
				// Broken, or ended cleanly after events or a while (a
				// graceful runtime restart): subscribe again, with the
				// backoff.
				if time.Since(opened) > maxBackoff {
					bo.Reset()
				}
				return fmt.Errorf("CRI event stream: %w", err)
			}
			// No stream (containerd 1.6), or one the runtime ended
			// cleanly at once without an event (CRI-O without
			// enable_pod_events): list it periodically on this
			// connection. A runtime that goes away fails a relist, and
			// the next connection asks for the stream again.
			interval, mode = e.relist, "relist"
			tick.Reset(interval)
			e.log.Debug("CRI runtime has no event stream; listing it periodically", "address", ep.address, "every", interval, "stream", err)
		case <-changed:
			// The event is applied by the resolver's List; the next
			// periodic comparison starts from that.
			if !engine.Send(ctx, events, engine.Event{Kind: engine.Resync, Engine: Name}) {
				return ctx.Err()
			}
			if cur, err := e.snapshot(sctx, ep); err == nil {
				last = cur
			}
		case <-tick.C:
			cur, err := e.snapshot(sctx, ep)
			if err != nil {
				if isUnavailable(err) || isTimeout(err) {
					return err
				}
				// Trouble other than the runtime going away: the resolver's
				// own List reports it.
				e.log.Warn("CRI relist ("+mode+")", "address", ep.address, "err", err)
				continue
			}
			bo.Reset()
			if cur != last {
				last = cur
				if !engine.Send(ctx, events, engine.Event{Kind: engine.Resync, Engine: Name}) {
					return ctx.Err()
				}
			}
		}
	}
}

// snapshot lists one endpoint and returns its fingerprint.
func (e *Engine) snapshot(ctx context.Context, ep *endpoint) (string, error) {
	cs, err := e.listEndpoint(ctx, ep)
	if err != nil {
		return "", err
	}
	return fingerprint(cs), nil
}

// lost reports that ep is down.
func (e *Engine) lost(ctx context.Context, ep *endpoint, cause error, events chan<- engine.Event) {
	if e.setWatching(ep.address, false) {
		engine.Send(ctx, events, engine.Event{Kind: engine.Resync, Engine: Name})
		return
	}
	err := fmt.Errorf("%w: cri %s: %w", engine.ErrUnavailable, ep.address, cause)
	if isTimeout(cause) && !errors.Is(cause, context.DeadlineExceeded) {
		// A runtime that does not answer is hung, not gone: the resolver
		// keeps its containers as last known.
		err = fmt.Errorf("%w: cri %s: %w: %w", engine.ErrUnavailable, ep.address, context.DeadlineExceeded, cause)
	}
	engine.Send(ctx, events, engine.Event{Kind: engine.Unavailable, Engine: Name, Err: err})
}

// setWatching records whether address is being watched and reports whether
// another endpoint is.
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
