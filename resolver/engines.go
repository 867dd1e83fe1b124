package resolver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rootd-project/rootd/engine"
)

// eventBuffer is the capacity of each engine's event channel; events that
// arrive together are applied as one batch, with one index rebuild.
const eventBuffer = 256

// numEventKinds bounds the EventKinds counted per engine: Upsert, Remove,
// Resync and Unavailable are 1 to 4; 0 counts kinds rootd does not know.
const numEventKinds = int(engine.Unavailable) + 1

type availability uint8

const (
	stateUnknown     availability = iota // never listed
	stateAvailable                       // the last List succeeded, or failed with an ordinary error
	stateUnavailable                     // gone (refused, absent): its containers are dropped
	stateHung                            // does not answer in time: its last known containers are kept
)

func (a availability) String() string {
	switch a {
	case stateAvailable:
		return "available"
	case stateUnavailable:
		return "unavailable"
	case stateHung:
		return "hung"
	}
	return "unknown"
}

// engineState is the resolver's view of one engine. Readers use only idx;
// everything else is guarded by mu and changed by Lists and events.
type engineState struct {
	name string
	eng  engine.Engine
	log  *slog.Logger
	idx  atomic.Pointer[engineIndex]
	// listed is set once a List has finished and its result is in idx.
	listed atomic.Bool

	mu          sync.Mutex
	entries     map[string]*entry // what idx was built from, by entryKey
	state       availability
	lastErr     error
	lastRefresh time.Time
	inflight    *listCall // the List running now, if any
	lastErrTime time.Time // when lastErr was last set to a failure
	// Lists finished, their total and last duration: for operators.
	lists        uint64
	listTotal    time.Duration
	lastListTime time.Duration
	// events counts the events received from the engine's Watch, by
	// EventKind (index 0: kinds rootd does not know). Only the consumer
	// goroutine writes them; Status reads them.
	events  [numEventKinds]atomic.Uint64
	doneSeq uint64 // sequence number of the newest finished List
	// journal keeps the events applied while inflight runs: they may be
	// newer than what that List saw, so they are applied again on top of
	// its result.
	journal []engine.Event
}

// healthy reports whether lookups may wait for s's Lists: its last List
// succeeded and no List of it is known to be slow. s.mu must be held.
func (s *engineState) healthy() bool {
	return s.state == stateAvailable && s.lastErr == nil && (s.inflight == nil || !s.inflight.slow)
}

// listCall is one List of one engine, shared by everyone who needs it.
type listCall struct {
	seq      uint64
	deadline time.Time
	done     chan struct{} // closed when finished
	err      error         // set before done is closed
	watchdog *time.Timer   // marks the engine hung at the deadline
	// slow: a lookup stopped waiting for it after Options.MissWait, so later
	// lookups do not wait for it at all. overdue: it outlived its deadline
	// and the engine is hung. Both are guarded by engineState.mu.
	slow, overdue bool
}

// errListTimeout is reported when an engine's List outlives RefreshTimeout.
var errListTimeout = errors.New("list did not return in time")

// errSkipped is what a lookup records for an engine it did not wait for:
// unhealthy, or its List still running after the lookup's wait budget.
var errSkipped = errors.New("not waited for")

// isTimeout reports whether a List or Unavailable error means "the runtime
// did not answer in time" rather than "the runtime is not there".
func isTimeout(err error) bool {
	return errors.Is(err, errListTimeout) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded)
}

// listAfter makes sure a List of s that started after token has finished,
// starting one or joining the one in flight, and returns its error.
//
// until is the wait budget of a lookup; the zero time means a background
// caller (Run, Refresh, Resync), which may wait until the List's deadline.
// A lookup never waits past until, does not wait at all for an unhealthy
// engine (the prober re-lists those) or for a List that an earlier lookup
// already gave up on, and never starts a List of an unhealthy engine. No
// caller waits past the deadline of the List it waits for, nor at all for a
// List that is already overdue.
func (r *Resolver) listAfter(ctx context.Context, s *engineState, token uint64, until time.Time) error {
	lookup := !until.IsZero()
	for {
		s.mu.Lock()
		if s.doneSeq > token {
			err := s.lastErr
			s.mu.Unlock()
			return err
		}
		if lookup && s.state != stateUnknown && !s.healthy() {
			err := fmt.Errorf("engine %s is %s: %w (last error: %w)", s.name, s.health(), errSkipped, s.lastErr)
			s.mu.Unlock()
			return err
		}
		call := s.inflight
		if call == nil {
			call = r.startList(s)
		}
		if lookup && call.slow {
			s.mu.Unlock()
			return fmt.Errorf("engine %s: list still running: %w", s.name, errSkipped)
		}
		wait := time.Until(call.deadline)
		budget := false
		if lookup && time.Until(until) < wait {
			wait, budget = time.Until(until), true
		}
		s.mu.Unlock()

		if r.testHookWait != nil {
			r.testHookWait(call.seq)
		}
		// A List already past its deadline (or a spent budget) fires the
		// timer at once: nobody waits twice for a hung engine.
		timer := time.NewTimer(wait)
		select {
		case <-call.done:
			timer.Stop()
			if call.seq > token {
				return call.err
			}
			// It started before our token; go round for a newer one.
		case <-timer.C:
			if budget {
				return r.giveUp(s, call)
			}
			return r.markHung(s, call)
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		}
	}
}

// giveUp records that a lookup stopped waiting for call after its budget:
// later lookups answer without waiting for it.
func (r *Resolver) giveUp(s *engineState, call *listCall) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight == call && !call.slow {
		call.slow = true
		s.log.Info("engine list is slow; lookups no longer wait for it", "waited", r.opts.MissWait)
	}
	return fmt.Errorf("engine %s: list still running after %v: %w", s.name, r.opts.MissWait, errSkipped)
}

// markHung records, once per List, that it has outlived its deadline: the
// engine is hung, and keeps its last known containers.
func (r *Resolver) markHung(s *engineState, call *listCall) error {
	err := fmt.Errorf("engine %s: %w (%v)", s.name, errListTimeout, r.opts.RefreshTimeout)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight == call && !call.overdue {
		call.overdue = true
		call.slow = true
		s.becomeHung(err)
	}
	return err
}

// startList starts a List of s; s.mu must be held.
func (r *Resolver) startList(s *engineState) *listCall {
	call := &listCall{
		seq:      r.seq.Add(1),
		deadline: time.Now().Add(r.opts.RefreshTimeout),
		done:     make(chan struct{}),
	}
	// The engine is marked hung at the deadline even if nobody waits, and
	// even if its List ignores its context.
	call.watchdog = time.AfterFunc(r.opts.RefreshTimeout, func() { _ = r.markHung(s, call) })
	s.inflight = call
	s.journal = s.journal[:0]
	go r.runList(s, call)
	return call
}

func (r *Resolver) runList(s *engineState, call *listCall) {
	ctx, cancel := context.WithDeadline(context.Background(), call.deadline)
	began := time.Now()
	cs, err := safeList(ctx, s.eng)
	took := time.Since(began)
	cancel()
	call.watchdog.Stop()

	s.mu.Lock()
	s.lists++
	s.listTotal += took
	s.lastListTime = took
	s.inflight = nil
	s.doneSeq = call.seq
	switch {
	case err == nil:
		fresh := make(map[string]*entry, len(cs))
		for _, c := range cs {
			c, ok := s.normalize(c)
			if !ok {
				continue
			}
			key := entryKey(c.Namespace, c.ID)
			if _, dup := fresh[key]; dup {
				s.log.Warn("engine listed a container twice; keeping the first", "id", c.ID, "namespace", c.Namespace)
				continue
			}
			fresh[key] = newEntry(c, s.entries[key])
		}
		s.entries = fresh
		s.becomeAvailable(len(fresh))
		s.lastRefresh = time.Now()
		for _, ev := range s.journal {
			s.apply(ev)
		}
	case isTimeout(err):
		// Checked before ErrUnavailable: an engine that reports "no answer
		// within my own timeout" as unavailable is hung, not gone.
		s.becomeHung(err)
	case errors.Is(err, engine.ErrUnavailable):
		s.becomeUnavailable(err)
	default:
		if s.lastErr == nil || s.lastErr.Error() != err.Error() {
			s.log.Warn("listing containers failed; keeping the last known ones", "err", err)
		}
		s.lastErr = err
		s.lastErrTime = time.Now()
	}
	s.journal = s.journal[:0]
	r.publish(s)
	s.listed.Store(true)
	s.mu.Unlock()

	call.err = err
	close(call.done)
}

// safeList calls List, turning a panic in the engine into an error: one
// broken engine must not take the daemon, and every other engine, down.
func safeList(ctx context.Context, e engine.Engine) (cs []engine.Container, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("engine %s: List panicked: %v\n%s", e.Name(), p, debug.Stack())
		}
	}()
	return e.List(ctx)
}

// normalize makes c obey the engine contract as the index relies on it: the
// right engine name, an ID, names without "/".
func (s *engineState) normalize(c engine.Container) (engine.Container, bool) {
	if c.ID == "" {
		s.log.Warn("engine reported a container without an ID; skipped", "names", c.Names)
		return c, false
	}
	c.Engine = s.name
	for i, n := range c.Names {
		if n == "" || n[0] == '/' {
			c.Names = cleanNames(c.Names[:i:i], c.Names[i:])
			break
		}
	}
	return c, true
}

// cleanNames appends the names of rest to kept (a fresh slice is made),
// without leading "/" and without empty ones.
func cleanNames(kept, rest []string) []string {
	out := make([]string, 0, len(kept)+len(rest))
	out = append(out, kept...)
	for _, n := range rest {
		if n = strings.TrimPrefix(n, "/"); n != "" {
			out = append(out, n)
		}
	}
	return out
}

func (s *engineState) becomeAvailable(n int) {
	switch s.state {
	case stateUnavailable:
		s.log.Info("engine available again", "containers", n)
	case stateHung:
		s.log.Info("engine answers again", "containers", n)
	case stateUnknown:
		s.log.Info("engine available", "containers", n)
	}
	s.state = stateAvailable
	s.lastErr = nil
}

// becomeHung records that s does not answer. Its containers stay indexed as
// last known: a wedged runtime leaves its containers running, and a
// container whose init has since exited is caught when /proc is read.
func (s *engineState) becomeHung(err error) {
	if s.state != stateHung {
		s.log.Warn("engine does not answer; lookups no longer wait for it and use its last known containers",
			"containers", len(s.entries), "err", err)
	}
	s.state = stateHung
	s.lastErr = err
	s.lastErrTime = time.Now()
}

// health names s's state for operators; s.mu must be held.
func (s *engineState) health() string {
	switch {
	case s.state == stateAvailable && s.lastErr != nil:
		return "failing"
	case (s.state == stateAvailable || s.state == stateUnknown) && s.inflight != nil && s.inflight.slow:
		return "slow"
	}
	return s.state.String()
}

func (s *engineState) becomeUnavailable(err error) {
	if err == nil {
		err = engine.ErrUnavailable
	}
	switch s.state {
	case stateUnknown:
		s.log.Info("engine not available", "err", err)
	case stateAvailable:
		s.log.Warn("engine became unavailable; its containers no longer resolve", "err", err)
	}
	s.state = stateUnavailable
	s.lastErr = err
	s.lastErrTime = time.Now()
	clear(s.entries)
}

// apply applies an Upsert, Remove or Unavailable event to s.entries and
// journals it if a List is running; s.mu must be held.
func (s *engineState) apply(ev engine.Event) {
	if s.inflight != nil {
		s.journal = append(s.journal, ev)
	}
	switch ev.Kind {
	case engine.Unavailable:
		if isTimeout(ev.Err) {
			s.becomeHung(ev.Err)
		} else {
			s.becomeUnavailable(ev.Err)
		}
	case engine.Upsert:
		// While unavailable, containers stay hidden until a List succeeds:
		// an engine that reconnects must Resync (see engine.Watcher).
		if s.state == stateUnavailable {
			return
		}
		if c, ok := s.normalize(ev.Container); ok {
			key := entryKey(c.Namespace, c.ID)
			s.entries[key] = newEntry(c, s.entries[key])
		}
	case engine.Remove:
		if s.state != stateUnavailable {
			delete(s.entries, entryKey(ev.Container.Namespace, ev.ID))
		}
	}
}

// publish swaps in a new index built from s.entries; s.mu must be held.
func (r *Resolver) publish(s *engineState) {
	s.idx.Store(buildIndex(s.entries))
	r.gen.Add(1)
}

// refresh lists the engines in scope, in parallel, each after token (see
// listAfter). It returns the failures other than engine.ErrUnavailable, or
// ctx's error.
func (r *Resolver) refresh(ctx context.Context, scope int, token uint64, until time.Time) error {
	lo, hi := r.bounds(scope)
	errs := make([]error, hi-lo)
	var wg sync.WaitGroup
	for i := lo; i < hi; i++ {
		s := r.engines[i]
		if !until.IsZero() && r.skips(s, token) {
			// Decided without a goroutine: a lookup with a hung engine
			// in scope costs what the index costs.
			continue
		}
		wg.Go(func() {
			err := r.listAfter(ctx, s, token, until)
			if err != nil && !errors.Is(err, engine.ErrUnavailable) && !errors.Is(err, errSkipped) {
				errs[i-lo] = err
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.Join(errs...)
}

// skips reports whether a lookup that arrived at token has nothing to wait
// for from s: a List newer than token is in, or s is unhealthy, or its List
// is slow.
func (r *Resolver) skips(s *engineState, token uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.doneSeq > token || (s.state != stateUnknown && !s.healthy()) || (s.inflight != nil && s.inflight.slow)
}

// Refresh lists every engine now, or joins Lists that started after the
// call. Engines that are not available are not an error (see Status); other
// List failures are returned.
func (r *Resolver) Refresh(ctx context.Context) error {
	return r.refresh(ctx, -1, r.seq.Load(), time.Time{})
}

// Ready is closed once Run's first List of every engine has finished
// (successfully or not), i.e. when the index first holds the whole host.
func (r *Resolver) Ready() <-chan struct{} { return r.ready }

// Run lists every engine and keeps the index current from their events
// until ctx is done. Watches start before the first List, so that nothing
// happening in between is missed. Run is meant to be called once.
func (r *Resolver) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, s := range r.engines {
		w, ok := s.eng.(engine.Watcher)
		if !ok {
			continue
		}
		events := make(chan engine.Event, eventBuffer)
		wg.Go(func() { r.watch(ctx, s, w, events) })
		wg.Go(func() { r.consume(ctx, s, events) })
	}
	wg.Go(func() { r.probe(ctx) })
	// Failures are logged and recorded per engine.
	_ = r.Refresh(ctx)
	close(r.ready)
	<-ctx.Done()
	wg.Wait()
}

// probe re-lists, every ProbeInterval, each engine that lookups do not wait
// for (hung, unavailable, failing), so that an engine that comes back is in
// use again within about one interval, without any lookup paying for it.
// At most one List per engine runs at a time.
func (r *Resolver) probe(ctx context.Context) {
	t := time.NewTicker(r.opts.ProbeInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, s := range r.engines {
			s.mu.Lock()
			if s.state != stateUnknown && !s.healthy() && s.inflight == nil {
				r.startList(s)
			}
			s.mu.Unlock()
		}
	}
}

func (r *Resolver) watch(ctx context.Context, s *engineState, w engine.Watcher, events chan<- engine.Event) {
	defer func() {
		if p := recover(); p != nil {
			s.log.Error("engine Watch panicked; its events are lost until restart", "panic", p, "stack", string(debug.Stack()))
		}
	}()
	w.Watch(ctx, events)
	if ctx.Err() == nil {
		s.log.Warn("engine Watch returned early; the index now relies on lookups to refresh it")
	}
}

// consume applies s's events in batches until ctx is done.
func (r *Resolver) consume(ctx context.Context, s *engineState, events <-chan engine.Event) {
	batch := make([]engine.Event, 0, eventBuffer)
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-events:
			batch = append(batch[:0], ev)
		}
	drain:
		for len(batch) < cap(batch) {
			select {
			case ev := <-events:
				batch = append(batch, ev)
			default:
				break drain
			}
		}
		r.applyBatch(ctx, s, batch)
	}
}

// applyBatch applies events in order. Upsert, Remove and Unavailable change
// the index at once; Resync leads to one List, which starts after the batch
// was taken, unless an Unavailable comes after it.
func (r *Resolver) applyBatch(ctx context.Context, s *engineState, batch []engine.Event) {
	var resync bool
	var token uint64
	changed := false
	s.mu.Lock()
	for _, ev := range batch {
		k := int(ev.Kind)
		if k < 0 || k >= numEventKinds {
			k = 0
		}
		s.events[k].Add(1)
		switch ev.Kind {
		case engine.Resync:
			if !resync {
				resync, token = true, r.seq.Load()
			}
		case engine.Upsert, engine.Remove, engine.Unavailable:
			s.apply(ev)
			changed = true
			if ev.Kind == engine.Unavailable {
				resync = false
			}
		default:
			s.log.Warn("engine sent an unknown event; ignored", "kind", ev.Kind.String())
		}
	}
	if changed {
		r.publish(s)
	}
	s.mu.Unlock()
	if resync {
		// Errors are recorded and logged by the List itself.
		_ = r.listAfter(ctx, s, token, time.Time{})
	}
}
