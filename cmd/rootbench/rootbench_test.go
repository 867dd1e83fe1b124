package main

import (
	"context"
	"encoding/xml"
	"flag"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rootd-project/rootd/engine"
	_ "github.com/rootd-project/rootd/engine/docker"
)

// The generated state must be what rootd's own Docker engine reads: every
// container, running, with the PID it was given.
func TestGenerateIsReadByTheDockerEngine(t *testing.T) {
	for _, n := range []int{1, 2, 10, 250} {
		dir := filepath.Join(t.TempDir(), "docker")
		pids := []int{101, 202, 303}
		set, err := Generate(dir, n, pids)
		if err != nil {
			t.Fatal(err)
		}
		d, ok := engine.Lookup("docker")
		if !ok {
			t.Fatal("docker engine not registered")
		}
		open := d.Configure(flag.NewFlagSet("t", flag.ContinueOnError))
		e, err := open(engine.Env{
			Log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
			Getenv: func(k string) string { return map[string]string{"PCP_DOCKER_DIR": dir}[k] },
		})
		if err != nil {
			t.Fatal(err)
		}
		cs, err := e.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(cs) != n {
			t.Fatalf("n=%d: engine lists %d containers", n, len(cs))
		}
		byID := map[string]engine.Container{}
		for _, c := range cs {
			byID[c.ID] = c
		}
		for i, id := range set.IDs {
			c, ok := byID[id]
			switch {
			case !ok:
				t.Errorf("n=%d: container %s not listed", n, id)
			case c.State != engine.StateRunning || c.PID != pids[i%len(pids)]:
				t.Errorf("n=%d: %s is %s with pid %d, want running with %d", n, id, c.State, c.PID, pids[i%len(pids)])
			case !slices.Equal(c.Names, []string{set.Names[i]}):
				t.Errorf("n=%d: %s names %v, want [%s]", n, id, c.Names, set.Names[i])
			}
		}
	}
}

// Every query must name exactly one container: names and IDs are unique,
// and each prefix is a prefix of one ID only, even the planted near miss.
func TestQueriesAreUnique(t *testing.T) {
	for _, n := range []int{1, 3, 1000} {
		set, err := Generate(filepath.Join(t.TempDir(), "d"), n, []int{1})
		if err != nil {
			t.Fatal(err)
		}
		qs := set.Queries()
		if len(qs) != 9 {
			t.Fatalf("n=%d: %d queries, want 9", n, len(qs))
		}
		for _, q := range qs {
			var hits []int
			for i, id := range set.IDs {
				switch {
				case q.Kind == "name" && set.Names[i] == q.Text,
					q.Kind == "id" && id == q.Text,
					q.Kind == "prefix" && strings.HasPrefix(id, q.Text):
					hits = append(hits, i)
				}
			}
			if len(hits) != 1 || hits[0] != q.Index {
				t.Errorf("n=%d: %s/%s %q matches %v, want [%d]", n, q.Kind, q.Position, q.Text, hits, q.Index)
			}
		}
		if n > 1 && set.IDs[n-1][:11] != set.IDs[0][:11] {
			t.Errorf("n=%d: last ID %s does not share 11 digits with the first %s", n, set.IDs[n-1], set.IDs[0])
		}
	}
}

func TestGenerateRejectsEmpty(t *testing.T) {
	for _, tc := range []struct {
		n    int
		pids []int
	}{{0, []int{1}}, {5, nil}} {
		if _, err := Generate(filepath.Join(t.TempDir(), "d"), tc.n, tc.pids); err == nil {
			t.Errorf("Generate(%d, %v) succeeded", tc.n, tc.pids)
		}
	}
}

func cellOf(server, op string, clients int, p50, p99 float64, reqs int, secs float64) Cell {
	return Cell{Server: server, Op: op, Clients: clients, R: DriverResult{P50: p50, P99: p99, Requests: reqs, ElapsedS: secs}}
}

func sampleResults(p50At10, p50At10k, rss float64) *Results {
	size := func(n int, p50 float64) SizeResult {
		sr := SizeResult{N: n, RootdRSSKB: int(rss), RootdFirstAnswerMS: 300}
		for _, op := range Ops {
			sr.Cells = append(sr.Cells,
				cellOf("rootd", op.PDU, 1, p50, 2*p50, 1000, 0.1),
				cellOf("rootd", op.PDU, 64, 3*p50, 500, 4000, 0.1),
				cellOf("reference", op.PDU, 1, 100*p50, 200*p50, 10, 0.1))
		}
		return sr
	}
	floor := []Cell{cellOf("floor-c", "PROCESSID", 1, 80, 150, 1000, 0.1)}
	for run, p99 := range []float64{900, 1300} {
		c := cellOf("floor-c", "PROCESSID", 64, 400, p99, 8000, 0.1)
		c.Run = run
		floor = append(floor, c)
	}
	live := LivePhase{Label: "2 Docker + 1 Podman containers", Containers: []string{"docker/a", "podman/b"}, Queries: []string{"a", "b"},
		Cells: []Cell{cellOf("rootd", "PROCESSID", 1, 11, 20, 1000, 0.1), cellOf("reference", "PROCESSID", 1, 4000, 5000, 10, 0.1)}}
	sizes := []SizeResult{size(10, p50At10), size(10000, p50At10k)}
	for run, p50 := range []float64{p50At10, 4 * p50At10, p50At10} {
		c := cellOf("rootd", "PROCESSID", 1, p50, 2*p50, 1000, 0.1)
		c.Run = run
		sizes[0].Runs = append(sizes[0].Runs, c)
	}
	return &Results{
		Sizes: sizes,
		Floor: floor,
		Live:  &LiveResult{Phases: []LivePhase{live}},
		Fresh: &FreshResult{Runs: []float64{3, 4, 5}},
	}
}

func TestTargets(t *testing.T) {
	for _, tc := range []struct {
		label             string
		p50At10, p50At10k float64
		rssKB             float64
		wantFailing       []string
	}{
		{"all met", 10, 12, 30000, nil},
		{"slow and growing", 10, 20, 30000, []string{"PROCESSID p50 ≤ 15", "PROCESSID p50 at 10000", "CGROUPNAME p50 ≤ 15", "CGROUPNAME p50 at 10000"}},
		{"too big", 10, 12, 50000, []string{"RSS"}},
	} {
		ts := Targets(sampleResults(tc.p50At10, tc.p50At10k, tc.rssKB))
		var failing []string
		for _, tg := range ts {
			if !tg.Met {
				failing = append(failing, tg.Name)
			}
		}
		for _, want := range tc.wantFailing {
			if !slices.ContainsFunc(failing, func(f string) bool { return strings.HasPrefix(f, want) }) {
				t.Errorf("%s: %q not reported failing; failing: %v", tc.label, want, failing)
			}
		}
		if len(failing) != len(tc.wantFailing) {
			t.Errorf("%s: failing %v, want %d of them", tc.label, failing, len(tc.wantFailing))
		}
	}
}

func TestMarkdownAndChart(t *testing.T) {
	res := sampleResults(10, 12, 30000)
	md := Markdown(res)
	for _, want := range []string{
		"| PROCESSID | 10000 | 1 | 12.0 µs |", "### Targets", "3 runs: p50 4.00 ms, p90 5.00 ms",
		"| C, one thread, epoll loop (bench/c/floorserver.c) | 64 | 2 | 400 µs | 900 µs | 900 µs – 1.30 ms | 1 | 80k/s |",
		"zero-work servers: C epoll loop 900 µs – 1.30 ms (1 of 2 runs < 1 ms)",
		"#### 2 Docker + 1 Podman containers", "| PROCESSID | 10 | 10.0 µs, 40.0 µs, 10.0 µs | — |", "| PROCESSID | 1 | 11.0 µs | 20.0 µs | 10k/s | 4.00 ms | 5.00 ms | 100/s | 0.0027 |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md)
		}
	}
	svg := Chart(res)
	dec := xml.NewDecoder(strings.NewReader(svg))
	for {
		_, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("chart is not well-formed XML: %v\n%s", err, svg)
		}
	}
	if n := strings.Count(svg, "<polyline"); n != 6 {
		t.Errorf("chart has %d lines, want 6 (3 operations × 2 servers)", n)
	}
}

func TestIntList(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []int
		ok   bool
	}{
		{"10,100", []int{10, 100}, true},
		{" 1 , 64", []int{1, 64}, true},
		{"0", nil, false},
		{"x", nil, false},
		{"", nil, false},
	} {
		got, err := intList(tc.in)
		if (err == nil) != tc.ok || !slices.Equal(got, tc.want) {
			t.Errorf("intList(%q) = %v, %v", tc.in, got, err)
		}
	}
}

func TestMedianRun(t *testing.T) {
	for _, tc := range []struct {
		p50s    []float64
		wantRun int
	}{
		{[]float64{10, 46, 11}, 2},
		{[]float64{46, 45, 11}, 1},
		{[]float64{12}, 0},
		{[]float64{30, 10, 20, 40}, 2}, // the lower middle of an even count
	} {
		var runs []Cell
		for i, v := range tc.p50s {
			runs = append(runs, Cell{Run: i, R: DriverResult{P50: v}})
		}
		if got := medianRun(runs); got.Run != tc.wantRun {
			t.Errorf("medianRun(%v) = run %d, want run %d", tc.p50s, got.Run, tc.wantRun)
		}
	}
}
