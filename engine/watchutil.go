package engine

import (
	"context"
	"time"
)

// Send delivers ev to a Watcher's channel unless ctx ends first; it
// reports whether ev was delivered. Watchers use it so that a resolver that
// has stopped reading never blocks them forever.
func Send(ctx context.Context, events chan<- Event, ev Event) bool {
	select {
	case events <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

// Sleep waits d unless ctx ends first; it reports whether the full time
// passed. Watchers back off with it between reconnection attempts.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
