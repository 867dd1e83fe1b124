package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
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

// RunDriver runs the load driver once against socket.
func RunDriver(ctx context.Context, driver, socket, op string, clients int, b Budget, names []string) (DriverResult, error) {
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
