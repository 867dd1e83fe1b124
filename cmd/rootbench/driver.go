package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// DriverResult is what one run of the C load driver prints.
type DriverResult struct {
	Op        string  `json:"op"`
	Clients   int     `json:"clients"`
	Requests  int     `json:"requests"`
	Errors    int     `json:"errors"`
	LastError int     `json:"last_error"`
	ElapsedS  float64 `json:"elapsed_s"`
	P50       float64 `json:"p50_us"`
	P90       float64 `json:"p90_us"`
	P99       float64 `json:"p99_us"`
	Max       float64 `json:"max_us"`
	Mean      float64 `json:"mean_us"`
	Answer    string  `json:"answer"`
}

// Throughput is requests per second over the measured interval.
func (r DriverResult) Throughput() float64 {
	if r.ElapsedS <= 0 {
		return 0
	}
	return float64(r.Requests) / r.ElapsedS
}

// Budget bounds one measurement.
type Budget struct {
	Duration time.Duration
	MaxReq   int
	Warmup   int // unmeasured requests per client first
}

// Ops are the driver's operation names, in table order, with the PDU names.
var Ops = []struct{ Driver, PDU string }{
	{"pid", "PROCESSID"},
	{"cgroup", "CGROUPNAME"},
	{"hostname", "HOSTNAME"},
}

// RunDriver runs the load driver once against socket, once the machine is
// quiet. A run that measured no request at all (on a machine loaded by
// other work the driver's threads can miss their whole measuring time
// between the start line and the deadline) is run again, up to twice: its
// zero percentiles are not a measurement.
func RunDriver(ctx context.Context, driver, socket, op string, clients int, b Budget, names []string) (DriverResult, error) {
	for try := 1; ; try++ {
		r, err := runDriverOnce(ctx, driver, socket, op, clients, b, names)
		if err != nil || r.Requests > 0 {
			return r, err
		}
		if try == 3 {
			return r, fmt.Errorf("load driver %s x%d on %s: measured no request in %d tries of %v", op, clients, socket, try, b.Duration)
		}
		log.Printf("load driver %s x%d on %s measured no request (machine busy?); again", op, clients, socket)
	}
}

// beQuiet is waitQuiet; tests replace it.
var beQuiet = waitQuiet

func runDriverOnce(ctx context.Context, driver, socket, op string, clients int, b Budget, names []string) (DriverResult, error) {
	beQuiet(ctx)
	maxReq := max(b.MaxReq, clients)
	args := []string{"-s", socket, "-o", op, "-c", strconv.Itoa(clients),
		"-d", strconv.FormatInt(max(b.Duration.Milliseconds(), 1), 10),
		"-n", strconv.Itoa(maxReq), "-w", strconv.Itoa(b.Warmup)}
	args = append(args, names...)
	// The driver stops by itself; the context only guards against a server
	// that never answers.
	ctx, cancel := context.WithTimeout(ctx, b.Duration+2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, driver, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return DriverResult{}, fmt.Errorf("load driver %s x%d on %s: %w: %s", op, clients, socket, err, bytes.TrimSpace(stderr.Bytes()))
	}
	var r DriverResult
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		return DriverResult{}, fmt.Errorf("load driver output %q: %w", stdout.String(), err)
	}
	return r, nil
}

// busyTicks reads the machine's busy and total CPU time from /proc/stat,
// in clock ticks.
func busyTicks() (busy, total uint64, err error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	for i, v := range f[1:] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %w", err)
		}
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	return busy, total, nil
}

// waitQuiet waits until the machine's CPUs were at least 90% idle over a
// 100 ms window, for at most 10 s: a server still working off the backlog
// of the cell before (the reference answers every request queued by 64
// clients, at 50 ms each with 10,000 containers, after the driver has left)
// must not share the CPUs with the next measurement.
func waitQuiet(ctx context.Context) {
	const window = 100 * time.Millisecond
	deadline := time.Now().Add(10 * time.Second)
	b0, t0, err := busyTicks()
	if err != nil {
		log.Printf("cannot tell whether the machine is quiet: %v", err)
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(window):
		}
		b1, t1, err := busyTicks()
		if err != nil || t1 > t0 && float64(b1-b0) <= 0.1*float64(t1-t0) {
			return
		}
		if time.Now().After(deadline) {
			log.Printf("machine still busy (%.0f%% over the last %v): measuring anyway", 100*float64(b1-b0)/float64(max(t1-t0, 1)), window)
			return
		}
		b0, t0 = b1, t1
	}
}
