package rootd

import (
	"sync"
	"time"
)

// Log rate limiting. A peer can make rootd log one line per connection or
// per request (a refused uid reconnecting in a loop wrote ~800 KB/s); past a
// small burst, lines of the same message for the same uid are counted
// instead of written, and the count is reported with the next line let
// through or, if none comes, by Server.reportSuppressed.
//
// The key is the peer's uid and the message, not its pid: a new process per
// connection costs an attacker nothing, so a pid key would neither limit
// the flood nor bound the table. uids are what access control is about.
const (
	logBurst  = 10          // lines per key and window written in full
	logWindow = time.Minute // how long a key's budget lasts
	logKeys   = 4096        // keys tracked at most; beyond, lines are counted as "other"
)

type limitKey struct {
	uid uint32
	msg string
}

// noUID keys lines about peers whose credentials are unknown, and the
// overflow when the table is full.
const noUID = ^uint32(0)

type limitState struct {
	start      time.Time
	logged     int
	suppressed uint64
}

// logLimiter decides which lines to write. Safe for concurrent use.
type logLimiter struct {
	now func() time.Time

	mu    sync.Mutex
	keys  map[limitKey]*limitState
	total uint64 // lines suppressed since start
}

func newLogLimiter(now func() time.Time) *logLimiter {
	if now == nil {
		now = time.Now
	}
	return &logLimiter{now: now, keys: map[limitKey]*limitState{}}
}

// allow reports whether a line for k may be written now, and how many lines
// for k were suppressed since the last one written (to be added to it).
func (l *logLimiter) allow(k limitKey) (ok bool, suppressed uint64) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.keys[k]
	if st == nil {
		if len(l.keys) >= logKeys {
			l.expire(now)
		}
		if len(l.keys) >= logKeys {
			k = limitKey{uid: noUID, msg: "other"}
			st = l.keys[k]
		}
		if st == nil {
			st = &limitState{start: now}
			l.keys[k] = st
		}
	}
	if now.Sub(st.start) >= logWindow {
		st.start, st.logged = now, 0
	}
	if st.logged >= logBurst {
		st.suppressed++
		l.total++
		return false, 0
	}
	st.logged++
	suppressed, st.suppressed = st.suppressed, 0
	return true, suppressed
}

// suppressedReport is the count of lines dropped for one key whose window
// has ended with no line written since.
type suppressedReport struct {
	key   limitKey
	count uint64
}

// sweep forgets keys whose window has ended and returns those that still
// had suppressed lines to report.
func (l *logLimiter) sweep() []suppressedReport {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []suppressedReport
	for k, st := range l.keys {
		if now.Sub(st.start) >= logWindow && st.suppressed > 0 {
			out = append(out, suppressedReport{k, st.suppressed})
			st.suppressed = 0
		}
	}
	l.expire(now)
	return out
}

// expire deletes keys whose window has ended and that owe no report.
// l.mu is held.
func (l *logLimiter) expire(now time.Time) {
	for k, st := range l.keys {
		if now.Sub(st.start) >= logWindow && st.suppressed == 0 {
			delete(l.keys, k)
		}
	}
}

// Total is the number of lines suppressed since start.
func (l *logLimiter) Total() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total
}
