package rootd

import (
	"math/bits"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rootd-project/rootd/wire"
)

// The server's own counters, for the metrics endpoint. The request counters
// sit on the request path, so they are plain atomics in each session,
// updated once per request (a result counter, a latency bucket and the
// latency sum): a session's counters are written by its goroutine alone, so
// concurrent clients never contend for a cache line. A session's counts are
// added to the server's totals when it ends; Stats sums the totals and the
// live sessions. Everything else (gauges, engine state) is computed when the
// metrics are read.

// RequestType indexes the request counters.
type RequestType uint8

// The request types counted; RequestOther is a PDU type rootd does not
// serve (the client is closed).
const (
	RequestHostname RequestType = iota
	RequestProcessID
	RequestCgroupName
	RequestStart
	RequestStop
	RequestList
	RequestDescribe
	RequestStatus
	RequestOther
	NumRequestTypes
)

var requestTypeNames = [NumRequestTypes]string{"hostname", "processid", "cgroupname", "startpmda", "stoppmda", "list", "describe", "status", "other"}

func (t RequestType) String() string { return requestTypeNames[t] }

func requestTypeOf(t wire.Type) RequestType {
	switch t {
	case wire.TypeHostnameReq:
		return RequestHostname
	case wire.TypeProcessIDReq:
		return RequestProcessID
	case wire.TypeCgroupNameReq:
		return RequestCgroupName
	case wire.TypeStartReq:
		return RequestStart
	case wire.TypeStopReq:
		return RequestStop
	case wire.TypeListReq:
		return RequestList
	case wire.TypeDescribeReq:
		return RequestDescribe
	case wire.TypeStatusReq:
		return RequestStatus
	}
	return RequestOther
}

// Result is how a request ended.
type Result uint8

// The results counted. ResultError covers everything else: a timeout, an
// engine failure, an agent that could not be started or signalled, a start
// the exec policy refused.
const (
	ResultOK Result = iota
	ResultNotFound
	ResultAmbiguous
	ResultNotRunning
	ResultInvalid
	ResultError
	NumResults
)

var resultNames = [NumResults]string{"ok", "not_found", "ambiguous", "not_running", "invalid", "error"}

func (r Result) String() string { return resultNames[r] }

// resultOfStatus classifies a container reply's status (see statusOf).
func resultOfStatus(status int32) Result {
	switch status {
	case 0:
		return ResultOK
	case wire.StatusNoContainer:
		return ResultNotFound
	case -int32(syscall.ENOTUNIQ):
		return ResultAmbiguous
	case -int32(syscall.ESRCH):
		return ResultNotRunning
	case -int32(syscall.EINVAL):
		return ResultInvalid
	}
	return ResultError
}

// NumLatencyBuckets is the number of finite latency buckets: bucket i
// counts requests that took at most 1024·4^i ns (about 1µs, 4µs, 16µs, ...
// 4.3s, 17.2s); one more bucket counts the slower ones.
const NumLatencyBuckets = 13

// LatencyBounds returns the upper bounds of the finite latency buckets, in
// seconds.
func LatencyBounds() []float64 {
	out := make([]float64, NumLatencyBuckets)
	for i := range out {
		out[i] = float64(int64(1024)<<(2*i)) / 1e9
	}
	return out
}

// latencyBucket maps a duration onto its bucket with one bit count:
// bucket i holds (1024·4^(i-1), 1024·4^i] ns.
func latencyBucket(d time.Duration) int {
	ns := uint64(max(d, 1)) - 1
	return min((bits.Len64(ns>>10)+1)/2, NumLatencyBuckets)
}

type requestCounters struct {
	results [NumResults]atomic.Uint64
	buckets [NumLatencyBuckets + 1]atomic.Uint64
	sumNs   atomic.Uint64
}

// requestStats counts one session's requests, or the server's ended ones.
type requestStats [NumRequestTypes]requestCounters

func (rs *requestStats) observe(t RequestType, r Result, d time.Duration) {
	c := &rs[t]
	c.results[r].Add(1)
	c.buckets[latencyBucket(d)].Add(1)
	c.sumNs.Add(uint64(max(d, 0)))
}

// addTo adds rs's counts to out.
func (rs *requestStats) addTo(out *[NumRequestTypes]RequestStats) {
	for t := range rs {
		c, r := &rs[t], &out[t]
		for i := range r.Results {
			r.Results[i] += c.results[i].Load()
		}
		for i := range r.Buckets {
			r.Buckets[i] += c.buckets[i].Load()
		}
		r.Sum += time.Duration(c.sumNs.Load())
	}
}

// fold adds rs's counts to the counters of into.
func (rs *requestStats) fold(into *requestStats) {
	for t := range rs {
		c, to := &rs[t], &into[t]
		for i := range c.results {
			to.results[i].Add(c.results[i].Load())
		}
		for i := range c.buckets {
			to.buckets[i].Add(c.buckets[i].Load())
		}
		to.sumNs.Add(c.sumNs.Load())
	}
}

type serverStats struct {
	ended          requestStats // of sessions that have ended; guarded by Server.mu
	accepted       atomic.Uint64
	refusedCreds   atomic.Uint64
	refusedLimit   atomic.Uint64
	protocolErrors atomic.Uint64
}

// RequestStats is a snapshot of one request type's counters.
type RequestStats struct {
	Type RequestType
	// Results counts the requests by Result.
	Results [NumResults]uint64
	// Buckets counts them by latency bucket (see LatencyBounds), not
	// cumulative; the last one is beyond the last bound.
	Buckets [NumLatencyBuckets + 1]uint64
	// Sum is their total latency.
	Sum time.Duration
}

// Stats is a snapshot of the server's counters.
type Stats struct {
	Requests [NumRequestTypes]RequestStats
	// Open is the number of clients connected now; Accepted counts every
	// connection accepted; RefusedCredentials those closed because their
	// credentials could not be read or are not allowed, RefusedLimit those
	// beyond MaxConnections. ProtocolErrors counts clients closed for a
	// malformed PDU.
	Open                                       int
	Accepted, RefusedCredentials, RefusedLimit uint64
	ProtocolErrors                             uint64
	SuppressedLogLines                         uint64
}

// Stats reads the server's counters. The counters are read one by one, so
// a snapshot taken under load may be off by the requests in flight.
func (s *Server) Stats() Stats {
	out := Stats{
		Open:               s.Clients(),
		Accepted:           s.stats.accepted.Load(),
		RefusedCredentials: s.stats.refusedCreds.Load(),
		RefusedLimit:       s.stats.refusedLimit.Load(),
		ProtocolErrors:     s.stats.protocolErrors.Load(),
		SuppressedLogLines: s.SuppressedLogLines(),
	}
	for t := range out.Requests {
		out.Requests[t].Type = RequestType(t)
	}
	s.mu.Lock()
	s.stats.ended.addTo(&out.Requests)
	for ss := range s.sessions {
		ss.stats.addTo(&out.Requests)
	}
	s.mu.Unlock()
	return out
}
