package main

import (
	"strings"
	"testing"
	"time"
)

func TestStats(t *testing.T) {
	for _, tc := range []struct {
		in          []float64
		p50, lo, hi float64
	}{
		{nil, 0, 0, 0},
		{[]float64{3}, 3, 3, 3},
		{[]float64{5, 1, 3}, 3, 1, 5},
		// An even count: the lower of the two middle ones, as medianRun.
		{[]float64{4, 1, 3, 2}, 2, 1, 4},
	} {
		p50, lo, hi := stats(tc.in)
		if p50 != tc.p50 || lo != tc.lo || hi != tc.hi {
			t.Errorf("stats(%v) = %v, %v, %v; want %v, %v, %v", tc.in, p50, lo, hi, tc.p50, tc.lo, tc.hi)
		}
	}
}

func TestCRIMarkdown(t *testing.T) {
	r := &CRIResult{
		Started: time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC), Took: "1m0s", Pods: 100, Items: 200, CreateMS: 51500,
		Machine: Machine{CPU: "cpu", CPUs: 2}, Containerd: "containerd 1.6.20", RaceBench: true,
		ColdListMS: []float64{90, 80, 170}, SteadyListMS: []float64{2.5, 2, 4.75},
		SocketMS: []float64{33}, AllMS: []float64{240, 210},
		RootdRSSKB: 29491,
		Lookups: []CRILookup{{Form: "NAMESPACE/POD/CONTAINER", PDU: "PROCESSID",
			R: DriverResult{Clients: 1, Requests: 33000, ElapsedS: 1, P50: 25.9, P99: 73.5}}},
	}
	md := CRIMarkdown(r)
	for _, want := range []string{
		"### CRI engine, 100 pods",
		"rootbench (the engine's Lists) built with -race, rootd without -race",
		"(200 items, each with an init PID)",
		"in 51.5 s",
		"8 at a time) | 3 | 90.0 ms | 80.0 ms | 170.0 ms |",
		"PIDs cached (Version known, 2 lists) | 3 | 2.50 ms | 2.00 ms | 4.75 ms |",
		"| rootd start → socket answers | 1 | 33.0 ms | 33.0 ms | 33.0 ms |",
		"all 100 containers answer by NAMESPACE/POD/CONTAINER | 2 | 210.0 ms | 210.0 ms | 240.0 ms |",
		"28.8 MiB",
		"| NAMESPACE/POD/CONTAINER | PROCESSID | 1 | 25.9 µs | 73.5 µs | 33k/s |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
}
