// Package resolver answers "which container is NAME?" for every engine at
// once, from an in-memory index that engine events keep fresh.
//
// # Queries
//
// A query is [ENGINE:]NAME. When the part before the first ':' is the name
// of one of the resolver's engines, only that engine is searched; otherwise
// the whole string is the name. NAME is matched in ranks:
//
//  1. the container's full ID;
//  2. one of its names (a Docker-style leading "/" is ignored: "/web" is
//     "web"), or NAMESPACE/POD/CONTAINER against the Kubernetes labels;
//  3. a prefix of its ID, of any length, when only one container has it.
//
// The best rank that matches anything decides. Two different containers at
// that rank, in one engine or across engines, make the query ambiguous
// (*engine.AmbiguousError) — with one exception: when every candidate was
// matched by its Kubernetes triple and exactly one of them has a running
// process, that one wins, because Kubernetes keeps the exited predecessor
// of a restarted container around under the same labels. Entries of several
// engines with the same ID are one container (Docker's containers also
// appear in containerd), reported by the engine listed first; engine.Set.Open
// lists engines by their explicit precedence (engine.Driver.Precedence).
//
// # Freshness
//
// The index is filled by listing every engine and then kept current by the
// engines' Watch events. Because events arrive a moment after the change, a
// query that finds nothing — or finds a container without a process — is
// answered again after a List of the engines concerned that started after
// the query arrived. Concurrent queries share such Lists, and a List that
// has already started after a query arrived is never repeated for it, so a
// flood of bogus names costs at most back-to-back Lists, never concurrent
// ones.
//
// # Health
//
// A lookup never waits longer than Options.MissWait (DefaultMissWait,
// 100 ms) for Lists, and only for engines that are healthy. Each engine is
// tracked as available, slow (a lookup gave up on its running List: later
// lookups do not wait for that List), failing (its last List failed), hung
// (a List outlived Options.RefreshTimeout, or the engine reported a
// timeout) or unavailable (gone: refused, absent). Lookups neither start
// nor wait for Lists of failing, hung or unavailable engines; Run re-lists
// those every Options.ProbeInterval, so one that comes back is used again
// within about that interval. A hung or failing engine's containers answer
// from its last known state; an unavailable engine's do not answer. So a
// name that no healthy engine has is "not found" at index speed, whatever
// the unhealthy engines do.
package resolver

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rootd-project/rootd/engine"
	"github.com/rootd-project/rootd/internal/procfs"
)

// MaxQueryLen is the longest query accepted; longer ones are
// engine.ErrInvalidName rather than a lookup.
const MaxQueryLen = 4096

// DefaultRefreshTimeout bounds one engine's List when Options leaves it 0.
// A List that outlives it marks the engine hung.
const DefaultRefreshTimeout = 5 * time.Second

// DefaultMissWait is the longest one lookup waits for engines' Lists when
// Options leaves MissWait 0. A lookup that misses waits this long at most,
// and only for engines that are healthy; then it answers from the index.
const DefaultMissWait = 100 * time.Millisecond

// DefaultProbeInterval is how often Run re-lists an engine that lookups do
// not wait for (hung, unavailable, failing), when Options leaves it 0.
const DefaultProbeInterval = 500 * time.Millisecond

// Options configures a Resolver; the zero value is usable.
type Options struct {
	Log *slog.Logger
	// RefreshTimeout bounds each engine's List (DefaultRefreshTimeout if 0);
	// an engine whose List outlives it is hung.
	RefreshTimeout time.Duration
	// MissWait bounds how long one lookup waits for the Lists its miss asks
	// for (DefaultMissWait if 0). It is never longer than RefreshTimeout.
	MissWait time.Duration
	// ProbeInterval is how often Run re-lists unhealthy engines
	// (DefaultProbeInterval if 0).
	ProbeInterval time.Duration
	// Cgroup returns a process's cgroup path without its leading slash
	// (procfs.CgroupPath if nil).
	Cgroup func(pid int) (string, error)
	// Hostname returns the hostname seen by a process (procfs.Hostname if
	// nil).
	Hostname func(ctx context.Context, pid int) (string, error)
	// StartTime returns a process's start time (procfs.StartTime if nil),
	// to tell a verified init process from a later one with its PID.
	StartTime func(pid int) (uint64, error)
	// NoPidfd keeps verified init processes by start time only, not also
	// by pidfd (for tests whose PIDs are not real processes).
	NoPidfd bool
}

// Resolver finds containers across engines. Its methods are safe for
// concurrent use. Containers it returns share their Names and Labels with
// the index: treat them as read-only.
type Resolver struct {
	opts    Options
	log     *slog.Logger
	engines []*engineState // in the order given to New
	byName  map[string]*engineState

	// seq numbers List calls as they start, across all engines. A query
	// notes seq when it arrives; a List with a greater number began after
	// it, so its result covers every container created before the query.
	seq atomic.Uint64
	// gen changes whenever any engine's index is replaced.
	gen atomic.Uint64

	ready chan struct{} // closed by Run after the first List

	cgroupMu  sync.Mutex // serialises rebuilds of cgroupIdx
	cgroupIdx atomic.Pointer[cgroupIndex]

	// testHookWait, when set by a test, is called as a query starts waiting
	// for the List numbered seq.
	testHookWait func(seq uint64)
}

// New returns a resolver over engines. Engines listed first win when several
// report the same container. Nothing is listed until Run, Refresh or the
// first query.
func New(engines []engine.Engine, opts Options) *Resolver {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.RefreshTimeout <= 0 {
		opts.RefreshTimeout = DefaultRefreshTimeout
	}
	if opts.MissWait <= 0 {
		opts.MissWait = DefaultMissWait
	}
	opts.MissWait = min(opts.MissWait, opts.RefreshTimeout)
	if opts.ProbeInterval <= 0 {
		opts.ProbeInterval = DefaultProbeInterval
	}
	if opts.Cgroup == nil {
		opts.Cgroup = procfs.CgroupPath
	}
	if opts.Hostname == nil {
		opts.Hostname = procfs.Hostname
	}
	if opts.StartTime == nil {
		opts.StartTime = procfs.StartTime
	}
	r := &Resolver{opts: opts, log: opts.Log, byName: map[string]*engineState{}, ready: make(chan struct{})}
	for _, e := range engines {
		name := e.Name()
		if _, dup := r.byName[name]; dup {
			r.log.Warn("engine given twice; using the first", "engine", name)
			continue
		}
		s := &engineState{
			name:    name,
			eng:     e,
			log:     r.log.With("engine", name),
			entries: map[string]*entry{},
		}
		s.idx.Store(emptyIndex)
		r.engines = append(r.engines, s)
		r.byName[name] = s
	}
	return r
}

// Resolve finds the container a query names.
func (r *Resolver) Resolve(ctx context.Context, query string) (engine.Container, error) {
	e, err := r.resolve(ctx, query, r.seq.Load(), r.budget())
	if err != nil {
		return engine.Container{}, err
	}
	return e.c, nil
}

// PID returns the host PID of the init process of the container a query
// names; a container without one gives engine.ErrNotRunning, and so does
// one whose init PID fails verification (see ErrUnverified).
func (r *Resolver) PID(ctx context.Context, query string) (int, error) {
	e, _, err := r.verifiedEntry(ctx, query)
	if err != nil {
		return 0, err
	}
	return e.c.PID, nil
}

// CgroupPath returns the init PID and the cgroup path (without leading
// slash) of the container a query names, as /proc reports it for that init
// process. The PID comes with it because replies carry both, and one lookup
// keeps the two consistent. The path is read once per init process and
// then cached.
func (r *Resolver) CgroupPath(ctx context.Context, query string) (int, string, error) {
	e, p, err := r.verifiedEntry(ctx, query)
	if err != nil {
		return 0, "", err
	}
	return e.c.PID, p.cgroup, nil
}

// Hostname returns the init PID and the hostname in the UTS namespace of
// the container a query names. The hostname is read afresh every time:
// containers may change it.
func (r *Resolver) Hostname(ctx context.Context, query string) (int, string, error) {
	e, _, err := r.verifiedEntry(ctx, query)
	if err != nil {
		return 0, "", err
	}
	name, err := r.opts.Hostname(ctx, e.c.PID)
	if err != nil {
		return 0, "", processError(e, err)
	}
	return e.c.PID, name, nil
}

// processError describes a failure to inspect a container's init process;
// one that has exited makes the container not running.
func processError(e *entry, err error) error {
	if errors.Is(err, unix.ESRCH) {
		return fmt.Errorf("%w: %s:%s (pid %d gone): %w", engine.ErrNotRunning, e.c.Engine, e.c.ShortID(), e.c.PID, err)
	}
	return fmt.Errorf("%s:%s (pid %d): %w", e.c.Engine, e.c.ShortID(), e.c.PID, err)
}

// entryCgroup returns the cgroup path of the container's verified init
// process, read once per init process.
func (r *Resolver) entryCgroup(e *entry) (string, error) {
	p, _, err := r.verify(e)
	if err != nil {
		return "", err
	}
	return p.cgroup, nil
}

// runningEntry resolves query to a container that has an init process. A
// container found without one is looked up again after a fresh List of its
// engine, since its start event may still be on its way.
func (r *Resolver) runningEntry(ctx context.Context, query string) (*entry, error) {
	token, until := r.seq.Load(), r.budget()
	e, err := r.resolve(ctx, query, token, until)
	if err != nil {
		return nil, err
	}
	if e.running() {
		return e, nil
	}
	if s := r.byName[e.c.Engine]; s != nil {
		_ = r.listAfter(ctx, s, token, until) // failures are recorded per engine
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	if e, err = r.resolve(ctx, query, token, until); err != nil {
		return nil, err
	}
	if !e.running() {
		return nil, fmt.Errorf("%w: %q is %s:%s, %s", engine.ErrNotRunning, query, e.c.Engine, e.c.ShortID(), e.c.State)
	}
	return e, nil
}

// budget is the time until which a lookup arriving now may wait for Lists.
func (r *Resolver) budget() time.Time { return time.Now().Add(r.opts.MissWait) }

// resolve looks query up, and on a miss looks again after a List that
// started after token, waiting for Lists no later than until.
func (r *Resolver) resolve(ctx context.Context, query string, token uint64, until time.Time) (*entry, error) {
	scope, name, problem := r.parseQuery(query)
	if problem != "" {
		return nil, fmt.Errorf("%w: %s", engine.ErrInvalidName, problem)
	}
	// Checked before looking: if the first List finishes in between, the
	// lookup may have missed its result.
	pending := r.neverListed(scope)
	e, out := r.lookup(scope, name)
	if out == notFound && pending {
		// Until an engine's first List is in, its index is empty, not
		// stale: that List, whenever it began, is the one to wait for.
		// Asking for a newer one would double the time to first answer.
		_ = r.refresh(ctx, scope, 0, until)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		e, out = r.lookup(scope, name)
	}
	if out == notFound {
		_ = r.refresh(ctx, scope, token, until) // failures are recorded per engine
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		e, out = r.lookup(scope, name)
	}
	switch out {
	case found:
		return e, nil
	case notFound:
		return nil, fmt.Errorf("%w: %q", engine.ErrNotFound, query)
	}
	// Ambiguous at first sight: the slow path lists the candidates and
	// applies the Kubernetes tie-break.
	cands := r.candidates(scope, name)
	if len(cands) == 1 {
		return cands[0], nil
	}
	amb := &engine.AmbiguousError{Query: query}
	for _, c := range cands {
		amb.Candidates = append(amb.Candidates, c.c)
	}
	return nil, amb
}

// neverListed reports whether some engine in scope has yet to finish a List.
func (r *Resolver) neverListed(scope int) bool {
	lo, hi := r.bounds(scope)
	for _, s := range r.engines[lo:hi] {
		if !s.listed.Load() {
			return true
		}
	}
	return false
}

// parseQuery splits off an engine qualifier and validates the name. scope is
// the index of the engine to search, or -1 for all.
func (r *Resolver) parseQuery(q string) (scope int, name, problem string) {
	if len(q) > MaxQueryLen {
		return -1, "", fmt.Sprintf("longer than %d bytes", MaxQueryLen)
	}
	for i := 0; i < len(q); i++ {
		if b := q[i]; b < 0x20 || b == 0x7f {
			return -1, "", fmt.Sprintf("control character %#02x at offset %d", b, i)
		}
	}
	scope, name = -1, q
	if prefix, rest, ok := strings.Cut(q, ":"); ok {
		for i, s := range r.engines {
			if s.name == prefix {
				scope, name = i, rest
				break
			}
		}
	}
	if name == "" {
		return -1, "", "empty name"
	}
	return scope, name, ""
}

type outcome uint8

const (
	found outcome = iota
	notFound
	ambiguous
)

// The ranks of a match, best first.
const (
	rankID = iota + 1
	rankName
	rankPrefix
)

// matcher tallies the matches at one rank without allocating.
type matcher struct {
	first    *entry
	n        int
	distinct bool // some match has an ID other than first's
	allPod   bool // every match came from the Kubernetes triple
}

func (m *matcher) add(e *entry, pod bool) {
	if m.n == 0 {
		m.first, m.allPod = e, pod
	} else {
		m.distinct = m.distinct || !e.same(m.first)
		m.allPod = m.allPod && pod
	}
	m.n++
}

func (m *matcher) outcome() (*entry, outcome) {
	switch {
	case m.n == 0:
		return nil, notFound
	case m.distinct:
		return nil, ambiguous
	}
	return m.first, found
}

// bounds returns the range of engines a scope covers.
func (r *Resolver) bounds(scope int) (lo, hi int) {
	if scope >= 0 {
		return scope, scope + 1
	}
	return 0, len(r.engines)
}

// lookup is the hot path: map lookups and a binary search per engine, no
// allocation, no lock.
func (r *Resolver) lookup(scope int, name string) (*entry, outcome) {
	m, _ := r.match(scope, name)
	return m.outcome()
}

// match tallies the matches at the best rank that has any.
func (r *Resolver) match(scope int, name string) (matcher, int) {
	lo, hi := r.bounds(scope)
	var m matcher
	for i := lo; i < hi; i++ {
		for _, e := range r.engines[i].idx.Load().byID[name] {
			m.add(e, false)
		}
	}
	if m.n > 0 {
		return m, rankID
	}
	bare := strings.TrimPrefix(name, "/")
	pod := isPodQuery(bare)
	for i := lo; i < hi; i++ {
		x := r.engines[i].idx.Load()
		for _, e := range x.byName[bare] {
			m.add(e, false)
		}
		if pod {
			for _, e := range x.byPod[bare] {
				m.add(e, true)
			}
		}
	}
	if m.n > 0 {
		return m, rankName
	}
	for i := lo; i < hi; i++ {
		a, b := r.engines[i].idx.Load().prefixMatches(name)
		if a != nil {
			m.add(a, false)
		}
		if b != nil {
			m.add(b, false)
		}
	}
	return m, rankPrefix
}

// candidates lists the distinct containers at the best rank, after the
// Kubernetes tie-break. It is the slow path, taken only for ambiguity.
func (r *Resolver) candidates(scope int, name string) []*entry {
	m, rank := r.match(scope, name)
	if m.n == 0 {
		return nil
	}
	lo, hi := r.bounds(scope)
	var out []*entry
	add := func(e *entry) {
		if !slices.ContainsFunc(out, e.same) {
			out = append(out, e)
		}
	}
	bare := strings.TrimPrefix(name, "/")
	for i := lo; i < hi; i++ {
		x := r.engines[i].idx.Load()
		switch rank {
		case rankID:
			for _, e := range x.byID[name] {
				add(e)
			}
		case rankName:
			for _, e := range x.byName[bare] {
				add(e)
			}
			if isPodQuery(bare) {
				for _, e := range x.byPod[bare] {
					add(e)
				}
			}
		case rankPrefix:
			for _, e := range x.sorted {
				if strings.HasPrefix(e.c.ID, name) {
					add(e)
				}
			}
		}
	}
	if rank == rankName && m.allPod {
		var live []*entry
		for _, e := range out {
			if e.running() {
				live = append(live, e)
			}
		}
		if len(live) == 1 {
			return live
		}
	}
	return out
}

// Containers returns every indexed container once, sorted by engine, then
// name (the first one; the ID for containers without a name), then ID. A
// container several engines report (a CRI container is also a containerd
// one) appears as the engine listed first reports it, as in Listing. It
// does not refresh: without Run, call Refresh first.
func (r *Resolver) Containers() []engine.Container {
	var out []engine.Container
	for i, s := range r.engines {
	entries:
		for _, e := range s.idx.Load().sorted {
			if i > 0 {
				for _, o := range r.earlier(s, e.c.ID) {
					if o.same(e) {
						continue entries
					}
				}
			}
			out = append(out, e.c)
		}
	}
	label := func(c engine.Container) string {
		if len(c.Names) > 0 {
			return c.Names[0]
		}
		return c.ID
	}
	slices.SortFunc(out, func(a, b engine.Container) int {
		return cmp.Or(
			strings.Compare(a.Engine, b.Engine),
			strings.Compare(label(a), label(b)),
			strings.Compare(a.ID, b.ID),
		)
	})
	return out
}

// EngineStatus describes one engine for operators.
type EngineStatus struct {
	Name string
	// Available is true once a List has succeeded, until the engine reports
	// Unavailable, a List fails with engine.ErrUnavailable, or a List
	// outlives the refresh timeout (the engine is hung).
	Available bool
	// Health is "available", "slow" (a List is running longer than
	// MissWait: lookups do not wait for it), "failing" (the last List
	// failed; its last known containers are kept), "hung" (a List outlived
	// the refresh timeout; last known containers kept), "unavailable" (gone;
	// its containers dropped) or "unknown" (never listed). Lookups wait for
	// Lists only of available and unknown engines.
	Health string
	// Err is the last List failure or Unavailable reason, nil after a
	// successful List.
	Err error
	// Containers is how many containers are indexed for it.
	Containers int
	// LastRefresh is when a List last succeeded; zero if never.
	LastRefresh time.Time
	// LastErrorTime is when a List last failed or the engine last became
	// hung or unavailable; zero if never.
	LastErrorTime time.Time
	// States counts the indexed containers by state.
	States map[engine.State]int
	// Lists is how many Lists of the engine have finished (successful or
	// not), ListTime their total duration and LastListTime the newest one's.
	Lists        uint64
	ListTime     time.Duration
	LastListTime time.Duration
	// Events counts the events received from the engine's Watch by kind
	// (kinds rootd does not know are not counted here).
	Events map[engine.EventKind]uint64
}

// Status reports every engine in the order given to New.
func (r *Resolver) Status() []EngineStatus {
	out := make([]EngineStatus, 0, len(r.engines))
	for _, s := range r.engines {
		s.mu.Lock()
		idx := s.idx.Load()
		st := EngineStatus{
			Name:          s.name,
			Available:     s.state == stateAvailable,
			Health:        s.health(),
			Containers:    len(idx.sorted),
			LastRefresh:   s.lastRefresh,
			Err:           s.lastErr,
			LastErrorTime: s.lastErrTime,
			Lists:         s.lists,
			ListTime:      s.listTotal,
			LastListTime:  s.lastListTime,
		}
		s.mu.Unlock()
		// The index is immutable once published: count outside the lock.
		st.States = map[engine.State]int{}
		for _, e := range idx.sorted {
			st.States[e.c.State]++
		}
		st.Events = make(map[engine.EventKind]uint64, numEventKinds-1)
		for k := 1; k < numEventKinds; k++ {
			st.Events[engine.EventKind(k)] = s.events[k].Load()
		}
		out = append(out, st)
	}
	return out
}
