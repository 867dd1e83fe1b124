package engine

import (
	"context"
	"sync"
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

// Debounce turns a burst of file changes into one Resync, for engines that
// watch a runtime's state files (inotify): C fires Quiet after the last
// Changed, but never later than Max after the first Changed of a burst, so
// a runtime that writes without pause is still listed again. After a
// receive from C, call Fired before the next Changed.
type Debounce struct {
	Quiet, Max time.Duration
	t          *time.Timer
	first      time.Time // of the pending burst; zero when none is
}

// NewDebounce returns a Debounce with nothing pending.
func NewDebounce(quiet, max time.Duration) *Debounce {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &Debounce{Quiet: quiet, Max: max, t: t}
}

// Changed notes a change: a Resync is due.
func (d *Debounce) Changed() {
	now := time.Now()
	if d.first.IsZero() {
		d.first = now
	}
	d.t.Reset(min(d.Quiet, max(0, d.Max-now.Sub(d.first))))
}

// Pending reports whether a Resync is due.
func (d *Debounce) Pending() bool { return !d.first.IsZero() }

// C fires when the Resync is due.
func (d *Debounce) C() <-chan time.Time { return d.t.C }

// Fired ends the burst C fired for.
func (d *Debounce) Fired() { d.first = time.Time{} }

// Stop releases the timer.
func (d *Debounce) Stop() { d.t.Stop() }

// Reachability remembers, per address, whether an engine with several
// runtime endpoints last reached it, so that an endpoint that stays away is
// logged once, and its return once, rather than on every List. The zero
// value is ready to use and safe for concurrent use.
type Reachability struct {
	mu    sync.Mutex
	state map[string]bool
}

// Note records the outcome of reaching address and reports a change: lost
// when it failed now but was reachable before (or never seen), back when it
// answers again after a failure.
func (r *Reachability) Note(address string, err error) (lost, back bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state == nil {
		r.state = map[string]bool{}
	}
	was, known := r.state[address]
	r.state[address] = err == nil
	return err != nil && (was || !known), err == nil && known && !was
}
