package main

import (
	"context"
	"encoding/xml"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rootd-project/rootd/engine"
	_ "github.com/rootd-project/rootd/engine/docker"
	"github.com/rootd-project/rootd/internal/procfs"
	"github.com/rootd-project/rootd/resolver"
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

// dockerEngine opens rootd's Docker engine on the state directory dir, as
// rootd runs it with PCP_DOCKER_DIR.
func dockerEngine(t *testing.T, dir string) engine.Engine {
	t.Helper()
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
	return e
}

// SetPID points one container at a process of its own; the others keep
// theirs, and the Docker engine reads the rewritten file.
func TestSetPID(t *testing.T) {
	pids := []int{101, 202, 303}
	set, err := Generate(filepath.Join(t.TempDir(), "docker"), 10, pids)
	if err != nil {
		t.Fatal(err)
	}
	pinned := set.Positions[1]
	if err := set.SetPID(pinned, 4242); err != nil {
		t.Fatal(err)
	}
	if err := set.SetPID(len(set.IDs), 1); err == nil {
		t.Error("SetPID of a container that does not exist succeeded")
	}
	cs, err := dockerEngine(t, set.Dir).List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 10 {
		t.Fatalf("engine lists %d containers, want 10", len(cs))
	}
	byID := map[string]engine.Container{}
	for _, c := range cs {
		byID[c.ID] = c
	}
	for i, id := range set.IDs {
		want := pids[i%len(pids)]
		if i == pinned {
			want = 4242
		}
		if c := byID[id]; c.PID != want || set.PIDOf(i) != want || c.State != engine.StateRunning {
			t.Errorf("container %d: engine pid %d (%s), PIDOf %d, want %d running", i, c.PID, c.State, set.PIDOf(i), want)
		}
	}
}

func TestPickHierarchy(t *testing.T) {
	for _, tc := range []struct {
		label, file, want string
	}{
		{"hybrid", "12:memory:/a\n1:name=systemd:/b\n0::/c\n", hierMemory},
		{"v1 without memory", "3:cpu,cpuacct:/a\n1:name=systemd:/b\n", hierSystemd},
		{"v2 only", "0::/user.slice\n", hierUnified},
		{"nothing", "", ""},
	} {
		lines, err := procfs.ParseCgroupLines([]byte(tc.file))
		if err != nil {
			t.Fatal(err)
		}
		got, err := pickHierarchy(lines)
		if got != tc.want || (err != nil) != (tc.want == "") {
			t.Errorf("%s: %q, %v; want %q", tc.label, got, err, tc.want)
		}
	}
}

func TestFindMount(t *testing.T) {
	const mi = `30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime shared:9 - cgroup cgroup rw,cpu
34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
35 30 0:31 /sub /mnt/memsub rw,relatime - cgroup cgroup rw,memory
39 30 0:36 / /sys/fs/cgroup/sys\040temd rw,relatime - cgroup cgroup rw,xattr,name=systemd
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
`
	for kind, want := range map[string]string{
		hierMemory: "/sys/fs/cgroup/memory", hierSystemd: "/sys/fs/cgroup/sys temd", hierUnified: "/sys/fs/cgroup/unified",
	} {
		if got, err := findMount([]byte(mi), kind); got != want || err != nil {
			t.Errorf("%s: %q, %v; want %q", kind, got, err, want)
		}
	}
	if got, err := findMount([]byte(mi), "pids"); err == nil {
		t.Errorf("pids: %q, want an error", got)
	}
}

// The containers the benchmark asks about must pass rootd's verification
// exactly as real ones do: through rootd's Docker engine and resolver, each
// query answers its own init's PID, cgroup and hostname. A container whose
// PID is a shared sleeper is refused, which is why only the queried ones
// are asked. Needs root (it creates cgroups and UTS namespaces).
func TestInitsPassVerification(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates cgroups and UTS namespaces")
	}
	tree, err := NewCgroupTree()
	if err != nil {
		t.Skipf("cannot create cgroups here: %v", err)
	}
	t.Cleanup(func() {
		if err := tree.Remove(); err != nil {
			t.Error(err)
		}
	})
	sl, err := StartSleepers(1, tree)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sl.Stop)
	set, err := Generate(filepath.Join(t.TempDir(), "docker"), 20, sl.PIDs())
	if err != nil {
		t.Fatal(err)
	}
	inits, err := StartInits(tree, set)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(inits.Stop)
	if len(inits.ByIndex) != 3 {
		t.Fatalf("%d init processes, want 3 (first, middle, last)", len(inits.ByIndex))
	}

	ctx := context.Background()
	r := resolver.New([]engine.Engine{dockerEngine(t, set.Dir)}, resolver.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	for _, q := range set.Queries() {
		w := inits.ByIndex[q.Index]
		if w.Cgroup != tree.Base+"/docker/"+set.IDs[q.Index] {
			t.Errorf("%s: cgroup %q", q.Text, w.Cgroup)
		}
		if pid, err := r.PID(ctx, q.Text); pid != w.PID || err != nil {
			t.Errorf("PID(%s) = %d, %v; want %d", q.Text, pid, err, w.PID)
		}
		if _, cg, err := r.CgroupPath(ctx, q.Text); cg != w.Cgroup || err != nil {
			t.Errorf("CgroupPath(%s) = %q, %v; want %q", q.Text, cg, err, w.Cgroup)
		}
		if _, host, err := r.Hostname(ctx, q.Text); host != w.Hostname || err != nil {
			t.Errorf("Hostname(%s) = %q, %v; want %q", q.Text, host, err, w.Hostname)
		}
	}
	for i, name := range set.Names {
		if _, queried := inits.ByIndex[i]; queried {
			continue
		}
		if _, err := r.PID(ctx, name); !errors.Is(err, resolver.ErrUnverified) {
			t.Errorf("PID(%s) of a shared sleeper: %v, want refused as unverified", name, err)
		}
		break
	}
	inits.Stop()
	for _, w := range inits.ByIndex {
		if _, err := os.Stat(filepath.Join(tree.Mount, w.Cgroup)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cgroup %s left behind: %v", w.Cgroup, err)
		}
	}
}

// A driver run that measured nothing is run again; one that keeps
// measuring nothing is an error, not a cell of zeros.
func TestRunDriverRetriesEmptyRuns(t *testing.T) {
	beQuiet = func(context.Context) {}
	t.Cleanup(func() { beQuiet = waitQuiet })
	dir := t.TempDir()
	fake := filepath.Join(dir, "driver")
	// Measures nothing on its first $EMPTY runs, then 5 requests.
	script := `#!/bin/sh
n=$(cat "` + dir + `/count" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "` + dir + `/count"
r=5; [ "$n" -le "$EMPTY" ] && r=0
echo '{"op":"pid","clients":1,"requests":'$r',"errors":0,"elapsed_s":1,"p50_us":10,"answer":"42"}'
`
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	b := Budget{Duration: time.Millisecond, MaxReq: 10}
	for _, tc := range []struct {
		empty string
		ok    bool
		runs  string
	}{{"1", true, "2"}, {"2", true, "3"}, {"3", false, "3"}} {
		os.Remove(filepath.Join(dir, "count"))
		t.Setenv("EMPTY", tc.empty)
		r, err := RunDriver(context.Background(), fake, "sock", "pid", 1, b, []string{"x"})
		runs, _ := os.ReadFile(filepath.Join(dir, "count"))
		if (err == nil) != tc.ok || strings.TrimSpace(string(runs)) != tc.runs || (tc.ok && r.Requests != 5) {
			t.Errorf("%s empty runs: %+v, %v after %s runs; want ok=%v after %s", tc.empty, r, err, runs, tc.ok, tc.runs)
		}
	}
}

func TestCheckRun(t *testing.T) {
	for _, tc := range []struct {
		r      DriverResult
		expect string
		ok     bool
	}{
		{DriverResult{Requests: 10, Answer: "42"}, "42", true},
		{DriverResult{Requests: 10, Answer: "42"}, "", true},
		{DriverResult{Requests: 10, Answer: "43"}, "42", false},
		{DriverResult{Requests: 10, Errors: 10, LastError: -3, Answer: "err -3 No such process"}, "", false},
		{DriverResult{Requests: 10, Errors: 1, LastError: -3, Answer: "42"}, "42", false},
	} {
		if err := checkRun(tc.r, tc.expect); (err == nil) != tc.ok {
			t.Errorf("checkRun(%+v, %q) = %v, want ok=%v", tc.r, tc.expect, err, tc.ok)
		}
	}
}
