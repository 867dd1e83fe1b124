package docker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"
	"golang.org/x/sync/errgroup"

	"github.com/rootd-project/rootd/engine"
)

const (
	// inspectConcurrency bounds the inspect calls one List makes at a time.
	inspectConcurrency = 4
	// apiTimeout is how long a daemon that accepts connections but does
	// not answer is waited for before it counts as unavailable.
	apiTimeout = 10 * time.Second
	// pingTimeout bounds the ping that opens each event subscription: a
	// daemon that does not answer a ping this fast is reported hung
	// (Unavailable wrapping context.DeadlineExceeded) rather than waited for.
	pingTimeout = 2 * time.Second
)

// apiEngine lists containers through the Docker Engine API.
type apiEngine struct {
	cli  *client.Client
	host string
	log  *slog.Logger

	// fallback, if set, answers List while the daemon is unreachable.
	fallback *diskReader
	// onFallback remembers that the last List was answered from disk, so
	// that the switch is logged once each way.
	onFallback atomic.Bool
}

func (e *apiEngine) Name() string { return Name }

// Close releases the client's idle connections.
func (e *apiEngine) Close() error { return e.cli.Close() }

// List asks the daemon for every container, then inspects those with a
// process for their PIDs, which the list call does not report.
func (e *apiEngine) List(ctx context.Context) ([]engine.Container, error) {
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, apiTimeout)
	defer cancel()
	res, err := e.cli.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		if parent.Err() != nil {
			return nil, parent.Err()
		}
		if client.IsErrConnectionFailed(err) || errors.Is(err, context.DeadlineExceeded) {
			return e.listFallback(parent, err)
		}
		return nil, fmt.Errorf("docker list: %w", err)
	}
	if e.onFallback.Swap(false) {
		e.log.Info("docker: daemon reachable again; listing through the API", "host", e.host)
	}

	out := make([]engine.Container, len(res.Items))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(inspectConcurrency)
	for i, s := range res.Items {
		names := containerNames(s.Names)
		out[i] = engine.Container{
			Engine:  Name,
			ID:      s.ID,
			Names:   names,
			State:   stateFromStatus(string(s.State)),
			Labels:  withK8sLabels(s.Labels, names),
			Cgroups: cgroupMarks(s.ID),
		}
		if out[i].State == engine.StateStopped {
			continue
		}
		g.Go(func() error {
			c, err := e.inspect(gctx, s.ID)
			switch {
			case err == nil:
				out[i] = c
			case cerrdefs.IsNotFound(err):
				out[i].ID = "" // removed since the list call
			case client.IsErrConnectionFailed(err) || gctx.Err() != nil:
				return err
			default:
				// One container the daemon cannot describe must not hide
				// the others; it stays listed, without a PID.
				e.log.Warn("docker: cannot inspect container", "id", s.ID, "err", err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		if parent.Err() != nil {
			return nil, parent.Err()
		}
		if client.IsErrConnectionFailed(err) || errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("docker at %s: %w: %w", e.host, engine.ErrUnavailable, err)
		}
		return nil, fmt.Errorf("docker inspect: %w", err)
	}
	kept := out[:0]
	for _, c := range out {
		if c.ID != "" {
			kept = append(kept, c)
		}
	}
	return kept, nil
}

// listFallback answers from the daemon's on-disk state when the daemon is
// unreachable (containers outlive a stopped daemon with live-restore, or
// after a crash). Without a readable state directory the engine is simply
// unavailable.
func (e *apiEngine) listFallback(ctx context.Context, apiErr error) ([]engine.Container, error) {
	unavailable := fmt.Errorf("docker at %s: %w: %w", e.host, engine.ErrUnavailable, apiErr)
	if e.fallback == nil {
		return nil, unavailable
	}
	cs, err := e.fallback.list(ctx)
	if err != nil {
		e.log.Debug("docker: no on-disk fallback", "err", err)
		return nil, unavailable
	}
	if !e.onFallback.Swap(true) {
		e.log.Warn("docker: daemon unreachable; listing from its state directory",
			"host", e.host, "dir", e.fallback.dir, "err", apiErr)
	}
	return cs, nil
}

// inspect returns one container as the daemon sees it now.
func (e *apiEngine) inspect(ctx context.Context, id string) (engine.Container, error) {
	res, err := e.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		return engine.Container{}, err
	}
	return fromInspect(res.Container), nil
}

func fromInspect(in container.InspectResponse) engine.Container {
	c := engine.Container{Engine: Name, ID: in.ID, State: engine.StateStopped, Cgroups: cgroupMarks(in.ID)}
	c.Names = containerNames([]string{in.Name})
	if in.State != nil {
		if in.State.Status != "" {
			c.State = stateFromStatus(string(in.State.Status))
		} else {
			c.State = stateFromFlags(in.State.Running, in.State.Paused, in.State.Restarting)
		}
		if c.State.HasProcess() {
			c.PID = max(in.State.Pid, 0)
		}
	}
	var labels map[string]string
	if in.Config != nil {
		labels = in.Config.Labels
	}
	c.Labels = withK8sLabels(labels, c.Names)
	return c
}

// The container actions that can change what rootd reports.
var watchedActions = []events.Action{
	events.ActionCreate, events.ActionStart, events.ActionRestart,
	events.ActionDie, events.ActionStop, events.ActionKill, events.ActionOOM,
	events.ActionPause, events.ActionUnPause, events.ActionRename,
	events.ActionDestroy,
}

// streamSettled is how long an event stream must have lived before a break
// counts as a new problem rather than the same one again.
const streamSettled = 5 * time.Second

// Watch follows the daemon's container events. After the stream breaks it
// resubscribes from the last event's time and sends Resync, since a daemon
// that restarted in between has forgotten its older events. While the daemon
// cannot be reached it sends Unavailable once and retries with a backoff of
// at most two seconds; Resync follows when it answers again.
func (e *apiEngine) Watch(ctx context.Context, out chan<- engine.Event) {
	filters := make(client.Filters).Add("type", string(events.ContainerEventType))
	for _, a := range watchedActions {
		filters.Add("event", string(a))
	}
	var (
		since       = time.Now()
		bo          = engine.Backoff{Min: 100 * time.Millisecond, Max: 2 * time.Second}
		unavailable bool // Unavailable sent, daemon not yet back
		first       = true
	)
	for {
		sub, cancel := context.WithCancel(ctx)
		// Events reports a failed request only after it has returned, so a
		// ping first tells "daemon answers" from "daemon gone" reliably.
		pingCtx, pingDone := context.WithTimeout(sub, pingTimeout)
		_, err := e.cli.Ping(pingCtx, client.PingOptions{
			NegotiateAPIVersion: true,
			// The daemon may have been upgraded while it was away.
			ForceNegotiate: unavailable,
		})
		pingDone()
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			err = fmt.Errorf("docker at %s did not answer within %s: %w", e.host, pingTimeout, err)
		}
		if err == nil {
			stream := e.cli.Events(sub, client.EventsListOptions{Since: eventTime(since), Filters: filters})
			// Resync on every subscription, the first included: the stream
			// starts now, and whatever changed since the resolver's List
			// (or while the stream was down) would otherwise be missed.
			if !first {
				e.log.Info("docker: event stream re-established; resyncing", "host", e.host)
			}
			first = false
			if !engine.Send(ctx, out, engine.Event{Kind: engine.Resync, Engine: Name}) {
				cancel()
				return
			}
			unavailable = false
			started := time.Now()
			err = e.follow(sub, stream, out, &since)
			if time.Since(started) > streamSettled {
				bo.Reset()
			}
		}
		cancel()
		if ctx.Err() != nil {
			return
		}
		if client.IsErrConnectionFailed(err) || errors.Is(err, context.DeadlineExceeded) {
			if !unavailable {
				unavailable = true
				e.log.Warn("docker: daemon unreachable", "host", e.host, "err", err)
				if !engine.Send(ctx, out, engine.Event{Kind: engine.Unavailable, Engine: Name, Err: err}) {
					return
				}
			}
		} else {
			e.log.Warn("docker: event stream failed; resubscribing", "host", e.host, "err", err)
		}
		if !bo.Wait(ctx) {
			return
		}
	}
}

// follow turns the stream's messages into events until the stream fails,
// advancing since to the last message's time.
func (e *apiEngine) follow(ctx context.Context, stream client.EventsResult, out chan<- engine.Event, since *time.Time) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-stream.Err:
			if err == nil {
				err = errors.New("event stream closed")
			}
			return err
		case msg := <-stream.Messages:
			if t := messageTime(msg); !t.IsZero() {
				*since = t
			}
			ev, ok := e.eventFor(ctx, msg)
			if ok && !engine.Send(ctx, out, ev) {
				return ctx.Err()
			}
		}
	}
}

// eventFor turns one container event into the index change it implies.
func (e *apiEngine) eventFor(ctx context.Context, msg events.Message) (engine.Event, bool) {
	id := msg.Actor.ID
	if msg.Type != events.ContainerEventType || id == "" {
		return engine.Event{}, false
	}
	if msg.Action == events.ActionDestroy {
		return engine.Event{Kind: engine.Remove, Engine: Name, ID: id}, true
	}
	c, err := e.inspect(ctx, id)
	switch {
	case err == nil:
		return engine.Event{Kind: engine.Upsert, Engine: Name, Container: c}, true
	case cerrdefs.IsNotFound(err):
		// Gone already; its destroy event follows, but the index need not wait.
		return engine.Event{Kind: engine.Remove, Engine: Name, ID: id}, true
	case ctx.Err() != nil:
		return engine.Event{}, false
	}
	e.log.Warn("docker: cannot inspect container after event; resyncing",
		"id", id, "action", msg.Action, "err", err)
	return engine.Event{Kind: engine.Resync, Engine: Name}, true
}

func messageTime(m events.Message) time.Time {
	switch {
	case m.TimeNano != 0:
		return time.Unix(0, m.TimeNano)
	case m.Time != 0:
		return time.Unix(m.Time, 0)
	}
	return time.Time{}
}

// eventTime formats t as the API's "since" parameter.
func eventTime(t time.Time) string {
	return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond())
}
