package rootd

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/rootd-project/rootd/client"
	"github.com/rootd-project/rootd/engine"
)

func TestLatencyBuckets(t *testing.T) {
	bounds := LatencyBounds()
	if len(bounds) != NumLatencyBuckets {
		t.Fatalf("%d bounds", len(bounds))
	}
	for i, b := range bounds {
		d := time.Duration(b * 1e9)
		// Prometheus buckets are "less than or equal": the bound itself is
		// in its bucket, one nanosecond more is in the next.
		if got := latencyBucket(d); got != i {
			t.Errorf("latencyBucket(%v) = %d, want %d", d, got, i)
		}
		if got := latencyBucket(d + 1); got != i+1 {
			t.Errorf("latencyBucket(%v) = %d, want %d", d+1, got, i+1)
		}
	}
	for _, d := range []time.Duration{-1, 0, 1} {
		if got := latencyBucket(d); got != 0 {
			t.Errorf("latencyBucket(%v) = %d, want 0", d, got)
		}
	}
	if got := latencyBucket(time.Hour); got != NumLatencyBuckets {
		t.Errorf("latencyBucket(1h) = %d, want %d (+Inf)", got, NumLatencyBuckets)
	}
}

func TestResultOfStatus(t *testing.T) {
	for _, c := range []struct {
		err  error
		want Result
	}{
		{nil, ResultOK},
		{fmt.Errorf("x: %w", engine.ErrNotFound), ResultNotFound},
		{engine.ErrUnavailable, ResultNotFound},
		{&engine.AmbiguousError{Query: "ab"}, ResultAmbiguous},
		{engine.ErrNotRunning, ResultNotRunning},
		{engine.ErrInvalidName, ResultInvalid},
		{context.DeadlineExceeded, ResultError},
		{errors.New("boom"), ResultError},
	} {
		if got := resultOfStatus(statusOf(c.err)); got != c.want {
			t.Errorf("%v: %v, want %v", c.err, got, c.want)
		}
	}
}

// BenchmarkObserve is what counting costs one request: the clock read
// after it (the one before is shared with the lookup's deadline), a
// result counter, a latency bucket and the latency sum.
func BenchmarkObserve(b *testing.B) {
	var st requestStats
	start := time.Now()
	for b.Loop() {
		st.observe(RequestProcessID, ResultOK, time.Since(start))
	}
}

// BenchmarkObserveParallel is the same with every core counting, each
// into its own session's counters, as concurrent clients do.
func BenchmarkObserveParallel(b *testing.B) {
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		st := new(requestStats)
		for pb.Next() {
			st.observe(RequestProcessID, ResultOK, time.Since(start))
		}
	})
}

// Requests are counted per session and kept when the session ends;
// connections beyond the limit are counted as refused.
func TestStatsCountRequests(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.MaxConnections = 1 })
	c := ts.client(t)
	ctx := ctx5(t)
	if _, err := c.ProcessID(ctx, "web1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.ProcessID(ctx, "ab"); err == nil {
		t.Fatal("ambiguous name resolved")
	}
	if _, err := c.CgroupName(ctx, "nothere"); err == nil {
		t.Fatal("unknown name resolved")
	}
	// A second client is over the limit.
	if c2, err := client.Connect(ctx, ts.path); err == nil {
		c2.Close()
		t.Error("second client greeted")
	}
	wantStats := func(what string, open int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			st := ts.srv.Stats()
			pid, cg := st.Requests[RequestProcessID], st.Requests[RequestCgroupName]
			ok := pid.Results[ResultOK] == 1 && pid.Results[ResultAmbiguous] == 1 && cg.Results[ResultNotFound] == 1 &&
				st.RefusedLimit == 1 && st.Accepted == 2 && st.Open == open
			var n uint64
			for _, b := range pid.Buckets {
				n += b
			}
			if ok && n == 2 && pid.Sum > 0 {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: stats %+v", what, st)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	wantStats("while connected", 1)
	c.Close()
	wantStats("after the client left", 0)
}
