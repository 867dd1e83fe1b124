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
	Runs               []Cell            `json:"runs,omitempty"` // every run of the cells measured more than once
	Kinds              []KindCell        `json:"kinds"`
	RootdRSSKB         int               `json:"rootd_rss_kb"`
	RefRSSKB           int               `json:"reference_rss_kb"`
	RootdFirstAnswerMS float64           `json:"rootd_first_answer_ms"`
	RefFirstAnswerMS   float64           `json:"reference_first_answer_ms"`
	Expect             map[string]string `json:"expect"`
}

// Cell is one (server, operation, clients) measurement over the query mix.
type Cell struct {
	Server  string `json:"server"`
	Op      string `json:"op"`
	Clients int    `json:"clients"`
	// Run numbers repeated measurements of the same cell, from 0.
	Run int          `json:"run,omitempty"`
	R   DriverResult `json:"result"`
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
	if spread := runSpread(res.Sizes); spread != "" {
		p("\n#### One-client cells, every run\n\n")
		p("Each one-client cell above is the run with the median p50 of these, each run a new client process.\n\n")
		p("| operation | containers | rootd p50 of each run | reference p50 of each run |\n|---|---:|---|---|\n")
		p("%s", spread)
	}
	if len(res.Floor) > 0 {
		p("\n### The floor: servers that do no work, same driver\n\n")
		p("Each answers every PROCESSID request at once with a fixed reply: what the unix socket, libpcp_pmda, this machine's scheduler and the server's design cost before any lookup. Each line is several runs of the same cell: the median p50 and throughput, the p99 of every run.\n\n")
		p("| server | clients | runs | p50 (median) | p99 (median) | p99 (lowest–highest) | runs with p99 < 1 ms | req/s (median) |\n|---|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, d := range floorDesigns {
			for _, cl := range clientCounts(res.Floor) {
				f, ok := floorOf(res.Floor, d.Server, cl)
				if !ok {
					continue
				}
				p("| %s | %d | %d | %s | %s | %s – %s | %d | %s |\n", d.Title, cl, f.Runs, us(f.P50), us(f.P99), us(f.P99Low), us(f.P99High), f.Under1ms, rate(f.Rate))
			}
		}
	}
	if res.Live != nil {
		p("\n### Live engines (real state, every engine each server knows)\n\n")
		p("The driver cycles through the phase's container names. Both servers run with their default configuration on the host's real engine state.\n\n")
		for _, ph := range res.Live.Phases {
			p("#### %s\n\nContainers: %s. Queries: %s.\n\n", ph.Label, codeList(ph.Containers), codeList(ph.Queries))
			p("| operation | clients | rootd p50 | rootd p99 | rootd req/s | reference p50 | reference p99 | reference req/s | p50 ratio |\n")
			p("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
			for _, op := range Ops {
				for _, cl := range clientCounts(ph.Cells) {
					r, rok := findCell(ph.Cells, "rootd", op.PDU, cl)
					f, fok := findCell(ph.Cells, "reference", op.PDU, cl)
					p("| %s | %d | %s | %s | %s | %s | %s | %s | %s |\n", op.PDU, cl,
						latCell(r, rok, false), latCell(r, rok, true), rateCell(r, rok),
						latCell(f, fok, false), latCell(f, fok, true), rateCell(f, fok), ratioIfClean(r, f, rok && fok, false))
				}
			}
			p("\n")
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
	} else if res.FreshNote != "" {
		p("Not measured: %s.\n", res.FreshNote)
	} else {
		p("Not measured in this run (-fresh-runs 0).\n")
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

// runSpread lists the p50 of every run of the repeated cells, a table row
// per operation and size.
func runSpread(sizes []SizeResult) string {
	var b strings.Builder
	for _, op := range Ops {
		for _, sr := range sizes {
			var cols [2][]string
			for _, r := range sr.Runs {
				if r.Op != op.PDU {
					continue
				}
				switch r.Server {
				case "rootd":
					cols[0] = append(cols[0], us(r.R.P50))
				case "reference":
					cols[1] = append(cols[1], us(r.R.P50))
				}
			}
			if len(cols[0])+len(cols[1]) > 0 {
				fmt.Fprintf(&b, "| %s | %d | %s | %s |\n", op.PDU, sr.N, orDash(strings.Join(cols[0], ", ")), orDash(strings.Join(cols[1], ", ")))
			}
		}
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func codeList(items []string) string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = "`" + it + "`"
	}
	return strings.Join(out, ", ")
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

// FloorStats sums up the repeated runs of one zero-work server cell.
type FloorStats struct {
	Runs            int
	P50, P99, Rate  float64 // medians over the runs
	P99Low, P99High float64
	Under1ms        int // runs whose p99 was under 1 ms
}

// floorOf sums up the runs of server at a client count.
func floorOf(cells []Cell, server string, clients int) (FloorStats, bool) {
	var p50, p99, rates []float64
	for _, c := range cells {
		if c.Server == server && c.Clients == clients && c.R.Requests > 0 {
			p50 = append(p50, c.R.P50)
			p99 = append(p99, c.R.P99)
			rates = append(rates, c.R.Throughput())
		}
	}
	if len(p99) == 0 {
		return FloorStats{}, false
	}
	for _, s := range [][]float64{p50, p99, rates} {
		slices.Sort(s)
	}
	f := FloorStats{Runs: len(p99), P50: pctl(p50, 50), P99: pctl(p99, 50), Rate: pctl(rates, 50), P99Low: p99[0], P99High: p99[len(p99)-1]}
	for _, v := range p99 {
		if v < 1000 {
			f.Under1ms++
		}
	}
	return f, true
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
		one, ok1 := floorOf(res.Floor, "floor-c", 1)
		many, ok2 := floorOf(res.Floor, "floor-c", 64)
		if ok1 && ok2 {
			floorGain = fmt.Sprintf("; zero-work C server: %.2f×", many.Rate/one.Rate)
		}
		var floors []string
		for _, d := range floorDesigns {
			if f, ok := floorOf(res.Floor, d.Server, 64); ok {
				floors = append(floors, fmt.Sprintf("%s %s – %s (%d of %d runs < 1 ms)", d.Short, us(f.P99Low), us(f.P99High), f.Under1ms, f.Runs))
			}
		}
		if len(floors) > 0 {
			floorP99 = "; zero-work servers: " + strings.Join(floors, ", ")
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
