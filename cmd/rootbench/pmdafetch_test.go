package main

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestInstanceCounts(t *testing.T) {
	out := `
containers.engine
    inst [0 or "aaa"] value "docker"
    inst [1 or "bbb"] value "docker"

containers.pid
    inst [0 or "aaa"] value 123
    inst [1 or "bbb"] value 456

containers.cgroup
    inst [0 or "aaa"] value "docker/aaa"

containers.state.paused
No value(s) available!

pmcd.hostname
    value "host"
`
	got := instanceCounts(out)
	want := map[string]int{"containers.engine": 2, "containers.pid": 2, "containers.cgroup": 1, "containers.state.paused": 0, "pmcd.hostname": 1}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %d values, want %d (all: %v)", k, got[k], v, got)
		}
	}
	// "No value(s) available!" sits at column 0 but is no metric of the
	// seven; instancesCell reads only those.
	if c := instancesCell(got); !strings.Contains(c, "engine 2") || !strings.Contains(c, "cgroup 1") || !strings.Contains(c, "state.paused 0") {
		t.Errorf("instancesCell = %q", c)
	}
	same := map[string]int{}
	for _, m := range containersMetrics {
		same[m] = 7
	}
	if c := instancesCell(same); c != "7" {
		t.Errorf("instancesCell of equal counts = %q, want 7", c)
	}
	if c := instancesCell(nil); c != "–" {
		t.Errorf("instancesCell(nil) = %q", c)
	}
}

func TestMedian(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var d []time.Duration
		for _, x := range v {
			d = append(d, time.Duration(x)*time.Millisecond)
		}
		return d
	}
	for _, tc := range []struct {
		in   []time.Duration
		want time.Duration
	}{
		{nil, 0},
		{ms(5), 5 * time.Millisecond},
		{ms(9, 1, 5), 5 * time.Millisecond},
		{ms(4, 1, 3, 2), 2500 * time.Microsecond},
	} {
		in := append([]time.Duration(nil), tc.in...)
		if got := median(tc.in); got != tc.want {
			t.Errorf("median(%v) = %v, want %v", tc.in, got, tc.want)
		}
		for i := range in {
			if in[i] != tc.in[i] {
				t.Fatalf("median reordered its argument")
			}
		}
	}
}

func TestNetAndPerContainer(t *testing.T) {
	s := PMDASide{BaseP50MS: 15, BaseMinMS: 12, FetchP50MS: 40, FetchMinMS: 11}
	if s.NetP50MS() != 25 {
		t.Errorf("net p50 = %v", s.NetP50MS())
	}
	if s.NetMinMS() != 0 { // never negative
		t.Errorf("net min = %v", s.NetMinMS())
	}
	if got := perContainerUS(25, 1000); got != 25 {
		t.Errorf("per container = %v µs, want 25", got)
	}
	if !math.IsNaN(perContainerUS(1, 0)) {
		t.Error("per container of 0 containers is a number")
	}
}

func TestParseHandshakeTook(t *testing.T) {
	log := `time=2026-12-04T07:32:55.118Z level=INFO msg="rootd listening" socket=/x
time=2026-12-04T07:32:55.120Z level=INFO msg="pmcd handshake done" side=pmda pmcd_pid=28324 version=2 took=1.795ms
`
	if got := parseHandshakeTook(log); math.Abs(got-1.795) > 1e-9 {
		t.Errorf("took = %v ms, want 1.795", got)
	}
	if got := parseHandshakeTook("nothing here"); got != 0 {
		t.Errorf("took without the line = %v", got)
	}
}

func TestPMDAPMNS(t *testing.T) {
	rootPMCD := "/* c */\nroot {\n    pmcd\n}\n#define PMCD 2\npmcd {\n    hostname\tPMCD:0:22\n}\n"
	ns := pmdaPMNS(rootPMCD)
	if strings.Count(ns, "root {") != 1 || !strings.Contains(ns, "root {\n    containers\n    pmcd\n}") {
		t.Errorf("namespace has not exactly one root holding containers and pmcd:\n%s", ns)
	}
	if !strings.Contains(ns, "hostname\tPMCD:0:22") || !strings.Contains(ns, "cgroup      1:0:6") {
		t.Errorf("namespace lost a subtree:\n%s", ns)
	}
}

func TestPMDAMarkdown(t *testing.T) {
	all := map[string]int{}
	for _, m := range containersMetrics {
		all[m] = 10
	}
	res := []PMDASize{{N: 10, Sides: []PMDASide{
		{Agent: "rootd", HandshakeMS: 80, AgentTookMS: 2.5, FirstMS: 100, BaseP50MS: 15, BaseMinMS: 14, FetchP50MS: 16, FetchMinMS: 15, Fetches: 9, Instances: all},
		{Agent: "pmdaroot", HandshakeMS: 50, FirstMS: 90, BaseP50MS: 15, BaseMinMS: 14, FetchP50MS: 18, FetchMinMS: 16, Fetches: 9, Instances: all},
	}}, {N: 100, Sides: []PMDASide{
		{Agent: "rootd", HandshakeMS: 80, BaseP50MS: 15, FetchP50MS: 17, Fetches: 1, Instances: all},
		{Agent: "pmdaroot", HandshakeMS: 50, Err: "no values | within pmcd's timeout"},
	}}}
	md := PMDAMarkdown(res, "test machine", time.Date(2026, 12, 4, 7, 0, 0, 0, time.UTC), "0 → 0", 9)
	for _, want := range []string{
		"| 10 | rootd | 10 | 9 | 80 (agent 2.5) | 100 | 15.0 / 14.0 | 16.0 / 15.0 | 1.0 / 1.0 | 100.0 |",
		"| 10 | pmdaroot | 10 | 9 | 50 | 90 | 15.0 / 14.0 | 18.0 / 16.0 | 3.0 / 2.0 | 300.0 |",
		"failed: no values / within pmcd's timeout |",
		"N=10: 3.0×",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "N=100:") {
		t.Errorf("ratio for a size the reference failed:\n%s", md)
	}
}

func TestParseStatCPU(t *testing.T) {
	stat := "1234 (a (b) c) S 1 1234 1234 0 -1 4194560 100 0 0 0 17 5 0 0 20 0 1 0 100 1000 10 18446744073709551615"
	if got := parseStatCPU(stat); got != 22 {
		t.Errorf("utime+stime = %d, want 22", got)
	}
	if got := parseStatCPU("garbage"); got != 0 {
		t.Errorf("garbage = %d", got)
	}
}
