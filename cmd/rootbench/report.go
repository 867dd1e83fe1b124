package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Results is everything one run measured.
type Results struct {
	Machine    Machine      `json:"machine"`
	Started    time.Time    `json:"started"`
	Elapsed    string       `json:"elapsed"`
	LoadBefore string       `json:"load_before"`
	LoadAfter  string       `json:"load_after"`
	Floor      []Cell       `json:"floor,omitempty"`
	Sizes      []SizeResult `json:"sizes"`
	Live       *LiveResult  `json:"live,omitempty"`
	LiveNote   string       `json:"live_note,omitempty"`
	Fresh      *FreshResult `json:"fresh,omitempty"`
	FreshNote  string       `json:"fresh_note,omitempty"`
}

// SizeResult is one synthetic set's measurements.
type SizeResult struct {
	N                  int               `json:"n"`
	Queries            []Query           `json:"queries"`
	Cells              []Cell            `json:"cells"`
	Kinds              []KindCell        `json:"kinds"`
	RootdRSSKB         int               `json:"rootd_rss_kb"`
	RefRSSKB           int               `json:"reference_rss_kb"`
	RootdFirstAnswerMS float64           `json:"rootd_first_answer_ms"`
	RefFirstAnswerMS   float64           `json:"reference_first_answer_ms"`
	Expect             map[string]string `json:"expect"`
}

// Cell is one (server, operation, clients) measurement over the query mix.
type Cell struct {
	Server  string       `json:"server"`
	Op      string       `json:"op"`
	Clients int          `json:"clients"`
	R       DriverResult `json:"result"`
}

// KindCell is one query asked on its own (PROCESSID, one client).
type KindCell struct {
	Server   string       `json:"server"`
	Kind     string       `json:"kind"`
	Position string       `json:"position"`
	R        DriverResult `json:"result"`
}

// Machine describes where the run happened.
type Machine struct {
	CPU     string `json:"cpu"`
	CPUs    int    `json:"cpus"`
	Memory  string `json:"memory"`
	Kernel  string `json:"kernel"`
	OS      string `json:"os"`
	Go      string `json:"go"`
	PCP     string `json:"pcp"`
	Docker  string `json:"docker"`
	Cgroups string `json:"cgroups"`
}

func describeMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version()}
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(data), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if kb, err := meminfoTotal(); err == nil {
		m.Memory = fmt.Sprintf("%.0f GiB", float64(kb)/(1<<20))
	}
	m.Kernel = firstLine("uname", "-r")
	if data, err := os.ReadFile("/etc/os-release"); err == nil {
		for line := range strings.SplitSeq(string(data), "\n") {
			if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
				m.OS = strings.Trim(v, `"`)
			}
		}
	}
	m.PCP = "libpcp-pmda3 " + firstLine("dpkg-query", "-W", "-f", "${Version}", "libpcp-pmda3")
	m.Docker = firstLine("docker", "version", "--format", "{{.Server.Version}}")
	switch {
	case exists("/sys/fs/cgroup/memory"):
		m.Cgroups = "v1 (hybrid)"
	case exists("/sys/fs/cgroup/cgroup.controllers"):
		m.Cgroups = "v2"
	}
	return m
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func firstLine(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		return "?"
	}
	s, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return s
}

func meminfoTotal() (int, error) {
	data, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	var kb int
	_, err = fmt.Sscanf(string(data), "MemTotal: %d kB", &kb)
	return kb, err
}

// cell finds a measurement; ok is false when it was not taken.
func findCell(cells []Cell, server, op string, clients int) (DriverResult, bool) {
	for _, c := range cells {
		if c.Server == server && c.Op == op && c.Clients == clients {
			return c.R, true
		}
	}
	return DriverResult{}, false
}

func clientCounts(cells []Cell) []int {
	var out []int
	for _, c := range cells {
		if !slices.Contains(out, c.Clients) {
			out = append(out, c.Clients)
		}
	}
	slices.Sort(out)
	return out
}

// us formats microseconds for a table.
func us(v float64) string {
	switch {
	case v >= 10000:
		return fmt.Sprintf("%.1f ms", v/1000)
	case v >= 1000:
		return fmt.Sprintf("%.2f ms", v/1000)
	case v >= 100:
		return fmt.Sprintf("%.0f µs", v)
	}
	return fmt.Sprintf("%.1f µs", v)
}

func rate(v float64) string {
	switch {
	case v >= 10000:
		return fmt.Sprintf("%.0fk/s", v/1000)
	case v >= 100:
		return fmt.Sprintf("%.0f/s", v)
	}
	return fmt.Sprintf("%.1f/s", v)
}

// lat is a cell's p50 or p99 with its error share, "—" when not measured.
func latCell(r DriverResult, ok bool, p99 bool) string {
	if !ok || r.Requests == 0 {
		return "—"
	}
	v := r.P50
	if p99 {
		v = r.P99
	}
	s := us(v)
	if r.Errors > 0 {
		s += fmt.Sprintf(" (%d%% err)", (100*r.Errors+r.Requests-1)/r.Requests)
	}
	return s
}

func ratio(a, b float64) string {
	if a <= 0 || b <= 0 {
		return "—"
	}
	r := a / b
	switch {
	case r < 0.01:
		return fmt.Sprintf("%.4f", r)
	case r < 1:
		return fmt.Sprintf("%.3f", r)
	}
	return fmt.Sprintf("%.2f", r)
}

// Markdown renders the results: the main table, the per-query table, the
// other measurements and the targets.
func Markdown(res *Results) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	m := res.Machine
	p("Run of %s (took %s). Machine: %s, %d CPUs, %s RAM, %s, kernel %s, cgroups %s; %s, Docker %s, %s. Load average before %s, after %s.\n\n",
		res.Started.Format("2006-01-02 15:04 UTC"), res.Elapsed, m.CPU, m.CPUs, m.Memory, m.OS, m.Kernel, m.Cgroups, m.PCP, m.Docker, m.Go, res.LoadBefore, res.LoadAfter)

	p("### Latency and throughput per request, through libpcp_pmda\n\n")
	p("Query mix: each container at the first, middle and last place of the state directory, by exact name, full ID and 12-digit prefix. Ratio = rootd ÷ reference (latency: lower is better for rootd; throughput: higher).\n\n")
	p("| operation | containers | clients | rootd p50 | rootd p99 | rootd req/s | reference p50 | reference p99 | reference req/s | p50 ratio | req/s ratio |\n")
	p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, op := range Ops {
		for _, sr := range res.Sizes {
			for _, cl := range clientCounts(sr.Cells) {
				r, rok := findCell(sr.Cells, "rootd", op.PDU, cl)
				f, fok := findCell(sr.Cells, "reference", op.PDU, cl)
				p("| %s | %d | %d | %s | %s | %s | %s | %s | %s | %s | %s |\n", op.PDU, sr.N, cl,
					latCell(r, rok, false), latCell(r, rok, true), rateCell(r, rok),
					latCell(f, fok, false), latCell(f, fok, true), rateCell(f, fok),
					ratioIfClean(r, f, rok && fok, false), ratioIfClean(r, f, rok && fok, true))
			}
		}
	}
	if len(res.Floor) > 0 {
		p("\n### The floor: a no-op C server (bench/c/floorserver.c), same driver\n\n")
		p("It answers every request at once with a fixed reply: what the unix socket, libpcp_pmda and this machine's scheduler cost before a server does any work.\n\n")
		p("| operation | clients | p50 | p90 | p99 | req/s |\n|---|---:|---:|---:|---:|---:|\n")
		for _, c := range res.Floor {
			p("| %s | %d | %s | %s | %s | %s |\n", c.Op, c.Clients, us(c.R.P50), us(c.R.P90), us(c.R.P99), rate(c.R.Throughput()))
		}
	}
	if res.Live != nil {
		l := res.Live
		p("\n### The live host (every engine, real state)\n\n")
		p("Docker containers: %d, LXC containers: %d; query: `%s`.\n\n", len(l.Docker), len(l.LXC), l.Query)
		p("| operation | clients | rootd p50 | rootd p99 | rootd req/s | reference p50 | reference p99 | reference req/s | p50 ratio |\n")
		p("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, op := range Ops {
			for _, cl := range clientCounts(l.Cells) {
				r, rok := findCell(l.Cells, "rootd", op.PDU, cl)
				f, fok := findCell(l.Cells, "reference", op.PDU, cl)
				p("| %s | %d | %s | %s | %s | %s | %s | %s | %s |\n", op.PDU, cl,
					latCell(r, rok, false), latCell(r, rok, true), rateCell(r, rok),
					latCell(f, fok, false), latCell(f, fok, true), rateCell(f, fok), ratioIfClean(r, f, rok && fok, false))
			}
		}
	} else if res.LiveNote != "" {
		p("\nLive host: %s.\n", res.LiveNote)
	}

	p("\n### Each query on its own (PROCESSID, one client, p50)\n\n")
	p("| containers | query | rootd first | rootd middle | rootd last | reference first | reference middle | reference last |\n")
	p("|---:|---|---:|---:|---:|---:|---:|---:|\n")
	for _, sr := range res.Sizes {
		for _, kind := range []string{"name", "id", "prefix"} {
			row := []string{fmt.Sprint(sr.N), kind}
			for _, server := range []string{"rootd", "reference"} {
				for _, pos := range positionNames {
					row = append(row, kindCell(sr.Kinds, server, kind, pos))
				}
			}
			p("| %s |\n", strings.Join(row, " | "))
		}
	}

	p("\n### Answers (first query of each set)\n\n")
	p("| containers | operation | expected | rootd | reference |\n|---:|---|---|---|---|\n")
	for _, sr := range res.Sizes {
		for _, op := range Ops {
			r, _ := findCell(sr.Cells, "rootd", op.PDU, 1)
			f, fok := findCell(sr.Cells, "reference", op.PDU, 1)
			exp := sr.Expect[op.PDU]
			if exp == "" {
				exp = "a cgroup path"
			}
			ref := "—"
			if fok {
				ref = "`" + f.Answer + "`"
			}
			p("| %d | %s | %s | `%s` | %s |\n", sr.N, op.PDU, exp, r.Answer, ref)
		}
	}

	p("\n### Memory and start-up\n\n")
	p("| containers | rootd RSS | reference (pmdaroot) RSS | rootd start → first answer | reference (pmcd start) → first answer |\n|---:|---:|---:|---:|---:|\n")
	for _, sr := range res.Sizes {
		p("| %d | %s | %s | %.0f ms | %s |\n", sr.N, mib(sr.RootdRSSKB), mib(sr.RefRSSKB), sr.RootdFirstAnswerMS, msOrDash(sr.RefFirstAnswerMS))
	}

	p("\n### Freshness: `docker run -d` returning → name resolvable through rootd\n\n")
	if f := res.Fresh; f != nil && len(f.Runs) > 0 {
		s := slices.Clone(f.Runs)
		slices.Sort(s)
		p("%d runs: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms. The first request already found the container in %d runs (%d of them in under 1 ms, i.e. from the event-fed index); %d requests in all.\n",
			len(s), pctl(s, 50), pctl(s, 90), pctl(s, 99), s[len(s)-1], f.FirstTry, f.FirstTryFast, f.Requests)
	} else {
		p("Not measured: %s.\n", res.FreshNote)
	}

	p("\n### Targets\n\n| target | measured | met |\n|---|---|---|\n")
	for _, t := range Targets(res) {
		met := "yes"
		if !t.Met {
			met = "**no**"
		}
		p("| %s | %s | %s |\n", t.Name, t.Measured, met)
	}
	return b.String()
}

func rateCell(r DriverResult, ok bool) string {
	if !ok || r.Requests == 0 {
		return "—"
	}
	return rate(r.Throughput())
}

// ratioIfClean compares only cells where both servers answered every
// request: an error reply costs something else than an answer.
func ratioIfClean(r, f DriverResult, ok bool, throughput bool) string {
	if !ok || r.Errors > 0 || f.Errors > 0 {
		return "—"
	}
	if throughput {
		return ratio(r.Throughput(), f.Throughput())
	}
	return ratio(r.P50, f.P50)
}

func kindCell(cells []KindCell, server, kind, pos string) string {
	for _, c := range cells {
		if c.Server == server && c.Kind == kind && c.Position == pos {
			return latCell(c.R, true, false)
		}
	}
	return "—"
}

func mib(kb int) string {
	if kb == 0 {
		return "—"
	}
	return fmt.Sprintf("%.1f MiB", float64(kb)/1024)
}

func msOrDash(v float64) string {
	if v == 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f ms", v)
}

// pctl is the nearest-rank percentile of sorted s.
func pctl(s []float64, p float64) float64 {
	if len(s) == 0 {
		return 0
	}
	r := int(p/100*float64(len(s)) + 0.999999)
	return s[min(max(r, 1), len(s))-1]
}

// Target is one goal of issue 5 and how this run did.
type Target struct {
	Name     string
	Measured string
	Met      bool
}

// Targets checks the run against the goals.
func Targets(res *Results) []Target {
	var ts []Target
	add := func(name, measured string, met bool) { ts = append(ts, Target{name, measured, met}) }
	if len(res.Sizes) == 0 {
		return nil
	}
	small, large := res.Sizes[0], res.Sizes[len(res.Sizes)-1]
	for _, op := range []string{"PROCESSID", "CGROUPNAME"} {
		worst, at := 0.0, 0
		for _, sr := range res.Sizes {
			if r, ok := findCell(sr.Cells, "rootd", op, 1); ok && r.P50 > worst {
				worst, at = r.P50, sr.N
			}
		}
		add(op+" p50 ≤ 15 µs at every size", fmt.Sprintf("worst %s (at %d)", us(worst), at), worst > 0 && worst <= 15)
		a, aok := findCell(small.Cells, "rootd", op, 1)
		z, zok := findCell(large.Cells, "rootd", op, 1)
		if aok && zok {
			add(fmt.Sprintf("%s p50 at %d ≤ 1.5 × p50 at %d", op, large.N, small.N),
				fmt.Sprintf("%s vs %s (%.2f×)", us(z.P50), us(a.P50), z.P50/a.P50), z.P50 <= 1.5*a.P50)
		}
	}
	worst, at := 0.0, 0
	for _, sr := range res.Sizes {
		if r, ok := findCell(sr.Cells, "rootd", "HOSTNAME", 1); ok && r.P50 > worst {
			worst, at = r.P50, sr.N
		}
	}
	add("HOSTNAME p50 ≤ 30 µs", fmt.Sprintf("worst %s (at %d)", us(worst), at), worst > 0 && worst <= 30)
	minGain, worstP99, gainAt, p99At := 0.0, 0.0, "", ""
	for _, sr := range res.Sizes {
		for _, op := range Ops {
			one, ok1 := findCell(sr.Cells, "rootd", op.PDU, 1)
			many, ok2 := findCell(sr.Cells, "rootd", op.PDU, 64)
			if !ok1 || !ok2 {
				continue
			}
			g := many.Throughput() / one.Throughput()
			if gainAt == "" || g < minGain {
				minGain, gainAt = g, fmt.Sprintf("%s at %d", op.PDU, sr.N)
			}
			if many.P99 > worstP99 {
				worstP99, p99At = many.P99, fmt.Sprintf("%s at %d", op.PDU, sr.N)
			}
		}
	}
	if gainAt != "" {
		floorGain, floorP99 := "", ""
		one, ok1 := findCell(res.Floor, "floor", "PROCESSID", 1)
		many, ok2 := findCell(res.Floor, "floor", "PROCESSID", 64)
		if ok1 && ok2 {
			floorGain = fmt.Sprintf("; no-op server: %.2f×", many.Throughput()/one.Throughput())
			floorP99 = "; no-op server: " + us(many.P99)
		}
		add("64 clients: throughput ≥ 1.5 × one client's", fmt.Sprintf("lowest %.2f× (%s)%s", minGain, gainAt, floorGain), minGain >= 1.5)
		add("64 clients: p99 < 1 ms", fmt.Sprintf("worst %s (%s)%s", us(worstP99), p99At, floorP99), worstP99 < 1000)
	}
	if f := res.Fresh; f != nil && len(f.Runs) > 0 {
		s := slices.Clone(f.Runs)
		slices.Sort(s)
		add("freshness p99 ≤ 100 ms", fmt.Sprintf("%.1f ms over %d runs", pctl(s, 99), len(s)), pctl(s, 99) <= 100)
	}
	add(fmt.Sprintf("RSS ≤ 40 MB at %d containers", large.N), mib(large.RootdRSSKB), large.RootdRSSKB > 0 && large.RootdRSSKB*1024 <= 40e6)
	add(fmt.Sprintf("first answer ≤ 1 s after start at %d", large.N), fmt.Sprintf("%.0f ms", large.RootdFirstAnswerMS), large.RootdFirstAnswerMS <= 1000)
	return ts
}
