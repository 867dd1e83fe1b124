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

// Backoff is the pause between a watcher's attempts to reach its runtime
// again: it doubles from Min up to Max, and starts from Min again after
// Reset (call it once a connection has proved itself). The zero value of
// Min means 100ms, of Max 2s: a runtime that comes back is seen again
// within Max.
type Backoff struct {
	Min, Max time.Duration
	cur      time.Duration
}

// Next returns the next pause.
func (b *Backoff) Next() time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = 100 * time.Millisecond
	}
	if hi < lo {
		hi = max(lo, 2*time.Second)
	}
	switch {
	case b.cur == 0:
		b.cur = lo
	case b.cur < hi:
		b.cur = min(2*b.cur, hi)
	}
	return b.cur
}

// Reset makes the next pause Min again.
func (b *Backoff) Reset() { b.cur = 0 }

// Wait pauses for Next unless ctx ends first; it reports whether the full
// pause passed.
func (b *Backoff) Wait(ctx context.Context) bool { return Sleep(ctx, b.Next()) }
