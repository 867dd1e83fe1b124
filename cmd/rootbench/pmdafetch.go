package main

// rootbench pmda: `pminfo -f containers` (the seven containers.* metrics)
// through a private pmcd whose root agent is rootd --pmda, side by side
// with one whose root agent is PCP's pmdaroot, on the same synthetic Docker
// state tree (gen.go) at each size. Each pmcd also runs pmda_pmcd, so that
// `pminfo -f pmcd.hostname` against the same pmcd measures what pminfo
// itself costs (start-up, connection, one fetch of a value pmcd answers
// itself); the containers fetch minus that is the root agent's share, and
// that divided by N its cost per container.

import (
	"context"

	"flag"
	"fmt"
	"log"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// containersMetrics are the metrics `pminfo -f containers` fetches.
var containersMetrics = []string{
	"containers.engine", "containers.name", "containers.pid",
	"containers.state.running", "containers.state.paused", "containers.state.restarting",
	"containers.cgroup",
}

// pmdaConfig is the settings of one `rootbench pmda` run.
type pmdaConfig struct {
	rootd, pmcd, pmdaroot, pminfo, pmcdDSO, pmcdPMNS string
	work                                             string
	sizes                                            []int
	fetches, warmup                                  int
	sleepers                                         int
	inits                                            bool
	pmcdTimeout                                      int
	budget                                           time.Duration
	skipRef                                          bool
}

// PMDASide is one root agent's measurement at one size.
type PMDASide struct {
	Agent       string  // "rootd" or "pmdaroot"
	HandshakeMS float64 // pmcd started → pmcd.agent.status shows the root agent running
	// AgentTookMS is rootd's own "pmcd handshake done took=" (0 for pmdaroot).
	AgentTookMS float64
	FirstMS     float64 // pmcd started → the first containers fetch that has values
	BaseP50MS   float64 // pminfo -f pmcd.hostname
	BaseMinMS   float64
	FetchP50MS  float64 // pminfo -f containers
	FetchMinMS  float64
	Fetches     int // timed
	// CPU time per timed containers fetch (user+system, mean; clock-tick
	// resolution): the root agent's, pmcd's and pminfo's own. The agent's
	// and pmcd's include the pmcd.hostname runs' (pmcd's own metric: no
	// agent work, little pmcd work).
	AgentCPUMS, PmcdCPUMS, PminfoCPUMS float64
	Instances                          map[string]int // per metric, from the last fetch
	Err                                string
}

// NetP50MS is the fetch's p50 less pminfo's own p50.
func (s PMDASide) NetP50MS() float64 { return max(s.FetchP50MS-s.BaseP50MS, 0) }

// NetMinMS is the fetch's minimum less pminfo's own minimum.
func (s PMDASide) NetMinMS() float64 { return max(s.FetchMinMS-s.BaseMinMS, 0) }

// PMDASize is both agents at one size.
type PMDASize struct {
	N     int
	Sides []PMDASide
}

func pmdaMain(args []string) int {
	fs := flag.NewFlagSet("rootbench pmda", flag.ContinueOnError)
	const ci = "/var/lib/rootd-ci/pcp/6.0.3-1.1/root"
	var c pmdaConfig
	sizes := fs.String("sizes", "10,100,1000,10000", "comma-separated synthetic container counts")
	out := fs.String("out", "bench/results/pmda.md", "Markdown report `file`")
	keep := fs.Bool("keep", false, "keep the work directory")
	fs.StringVar(&c.rootd, "rootd", "bin/rootd", "rootd `binary`")
	fs.StringVar(&c.pmcd, "pmcd", ci+"/usr/lib/pcp/bin/pmcd", "PCP's pmcd `binary`")
	fs.StringVar(&c.pmdaroot, "pmdaroot", ci+"/usr/lib/pcp/pmdas/root/pmdaroot", "PCP's pmdaroot `binary` (the reference)")
	fs.StringVar(&c.pminfo, "pminfo", ci+"/usr/bin/pminfo", "PCP's pminfo `binary`")
	fs.StringVar(&c.pmcdDSO, "pmcd-dso", "", "pmda_pmcd.so (default: pmdas/pmcd/pmda_pmcd.so beside -pmdaroot's pmdas directory)")
	fs.StringVar(&c.pmcdPMNS, "pmcd-pmns", "", "PCP's root_pmcd namespace `file` (default: usr/lib/pcp/pmns/root_pmcd of -pmcd's tree)")
	fs.StringVar(&c.work, "work", "", "work `directory` (default: a new one under $TMPDIR)")
	fs.IntVar(&c.fetches, "fetches", 7, "timed fetches of each kind per agent and size")
	fs.IntVar(&c.warmup, "warmup", 2, "untimed fetches before them")
	fs.IntVar(&c.sleepers, "sleepers", 4, "live processes the synthetic containers point at")
	fs.IntVar(&c.pmcdTimeout, "pmcd-timeout", 600, "pmcd -t: `seconds` pmcd waits for an agent's answer (pmcd's default, 5, is less than pmdaroot takes from 1,000 containers)")
	fs.DurationVar(&c.budget, "budget", 90*time.Second, "stop timing an agent at one size once its fetches took this long (at least one fetch)")
	fs.BoolVar(&c.skipRef, "no-reference", false, "measure rootd only")
	fs.BoolVar(&c.inits, "inits", true, "give every container an init process of its own in cgroup docker/ID, as on a real host (rootd then verifies each and exports its cgroup); false: all point at -sleepers shared processes, which rootd refuses to verify")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var err error
	if c.sizes, err = intList(*sizes); err != nil {
		log.Printf("-sizes: %v", err)
		return 2
	}
	if c.pmcdDSO == "" {
		c.pmcdDSO = filepath.Join(filepath.Dir(filepath.Dir(c.pmdaroot)), "pmcd", "pmda_pmcd.so")
	}
	if c.pmcdPMNS == "" {
		// .../usr/lib/pcp/bin/pmcd → .../usr/lib/pcp/pmns/root_pmcd. Not
		// var/lib/pcp/pmns/root_pmcd: in Debian's package that is an absolute
		// symlink to /usr/lib/pcp/pmns, which only an installed PCP has.
		c.pmcdPMNS = filepath.Join(filepath.Dir(filepath.Dir(c.pmcd)), "pmns", "root_pmcd")
	}
	if err := absExisting(&c.rootd, &c.pmcd, &c.pmdaroot, &c.pminfo, &c.pmcdDSO, &c.pmcdPMNS); err != nil {
		log.Print(err)
		return 1
	}
	if c.work, err = workDir(c.work, "", "rootbench-pmda-"); err != nil {
		log.Print(err)
		return 1
	}
	if !*keep {
		defer os.RemoveAll(c.work)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	started := time.Now().UTC()
	load := loadAverage()
	m := describeMachine()
	machine := fmt.Sprintf("%s, %d CPUs, %s RAM, kernel %s, %s", m.CPU, m.CPUs, m.Memory, m.Kernel, m.Go)
	var md string
	write := func(res []PMDASize) {
		md = PMDAMarkdown(res, machine, started, load+" → "+loadAverage(), c.fetches)
		if *out == "" {
			return
		}
		if werr := os.MkdirAll(filepath.Dir(*out), 0o755); werr == nil {
			werr = os.WriteFile(*out, []byte(md), 0o644)
			if werr != nil {
				log.Print(werr)
			}
		}
	}
	res, err := runPMDA(ctx, c, write)
	write(res)
	fmt.Print(md)
	if err != nil {
		log.Print(err)
		return 1
	}
	return 0
}

// runPMDA measures each size; progress gets the results so far after each.
func runPMDA(ctx context.Context, c pmdaConfig, progress func([]PMDASize)) ([]PMDASize, error) {
	host, err := startSynthHost(c.sleepers, c.work)
	if err != nil {
		return nil, err
	}
	defer host.stop()
	tree, sl, empty := host.tree, host.sl, host.empty
	pmcdNS, err := os.ReadFile(c.pmcdPMNS)
	if err != nil {
		return nil, err
	}
	var res []PMDASize
	for _, n := range c.sizes {
		log.Printf("%d containers", n)
		set, err := Generate(filepath.Join(c.work, fmt.Sprintf("docker-%d", n)), n, sl.PIDs())
		if err != nil {
			return res, err
		}
		var inits *plainInits
		if c.inits {
			t0 := time.Now()
			if inits, err = startPlainInits(tree, set); err != nil {
				return res, err
			}
			log.Printf("  %d init processes in their cgroups in %v", n, time.Since(t0).Round(time.Millisecond))
		}
		env := []string{"PCP_DOCKER_DIR=" + set.Dir, "PCP_PODMAN_DATADIR=" + empty, "PCP_PODMAN_RUNDIR=" + empty, "PCP_LXC_DIR=" + empty}
		size := PMDASize{N: n}
		agents := []string{"rootd"}
		if !c.skipRef {
			agents = append(agents, "pmdaroot")
		}
		for _, agent := range agents {
			side, err := measurePMDA(ctx, c, agent, filepath.Join(c.work, fmt.Sprintf("%s-%d", agent, n)), env, string(pmcdNS), n)
			if err != nil {
				side.Err = err.Error()
				log.Printf("  %s: %v", agent, err)
			}
			log.Printf("  %-8s CPU per fetch: agent %.1f ms, pmcd %.1f ms, pminfo %.1f ms", agent, side.AgentCPUMS, side.PmcdCPUMS, side.PminfoCPUMS)
			log.Printf("  %-8s handshake %6.1f ms (agent %.1f ms) first %7.1f ms  pminfo %6.1f ms  containers p50 %8.1f ms min %8.1f ms  instances %v",
				agent, side.HandshakeMS, side.AgentTookMS, side.FirstMS, side.BaseP50MS, side.FetchP50MS, side.FetchMinMS, side.Instances)
			size.Sides = append(size.Sides, side)
			if ctx.Err() != nil {
				break
			}
		}
		if inits != nil {
			inits.Stop()
		}
		os.RemoveAll(set.Dir)
		res = append(res, size)
		progress(res)
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
	}
	return res, nil
}

// pmdaPMNS is the namespace of the benchmark's pmcd: the containers subtree
// as domain 1 (referencePMNS) and PCP's own root_pmcd.
func pmdaPMNS(rootPMCD string) string {
	ns := strings.Replace(referencePMNS, "root {\n    containers\n}", "root {\n    containers\n    pmcd\n}", 1)
	rootBlock := regexp.MustCompile(`(?m)^root\s*\{[^}]*\}`)
	return ns + rootBlock.ReplaceAllString(rootPMCD, "")
}

// measurePMDA starts a private pmcd whose root agent is agent, waits for
// it, and times the fetches.
func measurePMDA(ctx context.Context, c pmdaConfig, agent, work string, env []string, rootPMCD string, n int) (PMDASide, error) {
	side := PMDASide{Agent: agent}
	if err := os.MkdirAll(filepath.Join(work, "tmp"), 0o700); err != nil {
		return side, err
	}
	conf := filepath.Join(work, "pmcd.conf")
	socket := filepath.Join(work, "root.socket")
	rootLog := filepath.Join(work, "root.log")
	var rootLine string
	if agent == "rootd" {
		rootLine = fmt.Sprintf("root\t1\tpipe\tbinary\t%s --config /dev/null --pmda --engines docker -s %s -l %s --pmcd-conf %s", c.rootd, socket, rootLog, conf)
	} else {
		rootLine = fmt.Sprintf("root\t1\tpipe\tbinary\t%s -s %s -l %s", c.pmdaroot, socket, rootLog)
	}
	lines := rootLine + "\npmcd\t2\tdso\tpmcd_init\t" + c.pmcdDSO + "\n"
	if err := os.WriteFile(conf, []byte(lines), 0o644); err != nil {
		return side, err
	}
	pmns := filepath.Join(work, "pmns")
	if err := os.WriteFile(pmns, []byte(pmdaPMNS(rootPMCD)), 0o644); err != nil {
		return side, err
	}
	port, err := freePort()
	if err != nil {
		return side, err
	}
	pmcdSock := filepath.Join(work, "pmcd.socket")
	cmd := exec.Command(c.pmcd, "-f", "-c", conf, "-n", pmns, "-U", "root", "-s", pmcdSock,
		"-p", strconv.Itoa(port), "-i", "127.0.0.1", "-t", strconv.Itoa(c.pmcdTimeout), "-l", filepath.Join(work, "pmcd.log"))
	cmd.Env = append(cleanEnv(), append([]string{
		"PCP_TMP_DIR=" + filepath.Join(work, "tmp"),
		"PCP_BINADM_DIR=" + filepath.Dir(c.pmcd),
		"PCP_PMCDCONF_PATH=" + conf,
	}, env...)...)
	started := time.Now()
	srv, err := newServer(agent, socket, cmd, nil)
	if err != nil {
		return side, err
	}
	defer srv.Stop()
	var pminfoCPU time.Duration
	pminfo := func(args ...string) (string, time.Duration, error) {
		cmd := exec.CommandContext(ctx, c.pminfo, append([]string{"-h", "unix:" + pmcdSock}, args...)...)
		cmd.Env = cleanEnv()
		t0 := time.Now()
		out, err := cmd.CombinedOutput()
		d := time.Since(t0)
		if cmd.ProcessState != nil {
			pminfoCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		}
		if err != nil {
			return string(out), d, fmt.Errorf("pminfo %s: %w: %s", strings.Join(args, " "), err, headLine(string(out)))
		}
		return string(out), d, nil
	}
	// The handshake: until pmcd answers and shows both its agents running.
	deadline := time.Now().Add(time.Duration(c.pmcdTimeout) * time.Second)
	for {
		out, _, err := pminfo("-f", "pmcd.agent.status")
		if err == nil && strings.Count(out, "value 0") == 2 {
			side.HandshakeMS = ms(time.Since(started))
			break
		}
		select {
		case <-srv.done:
			return side, fmt.Errorf("pmcd exited (%v); see %s", srv.cmd.ProcessState, filepath.Join(work, "pmcd.log"))
		case <-ctx.Done():
			return side, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return side, fmt.Errorf("root agent not running within pmcd's timeout: %v %s", err, headLine(out))
		}
	}
	if agent == "rootd" {
		side.AgentTookMS = handshakeTook(rootLog)
	}
	// The first fetch that has values (the agent may still be reading the
	// state tree).
	var firstFetch time.Duration
	for {
		out, d, err := pminfo("-f", "containers.name")
		if err == nil && instanceCounts(out)["containers.name"] > 0 {
			side.FirstMS = ms(time.Since(started))
			firstFetch = d
			break
		}
		if time.Now().After(deadline) {
			return side, fmt.Errorf("no containers.name values within pmcd's timeout: %v %s", err, headLine(out))
		}
		time.Sleep(10 * time.Millisecond)
	}
	warmup := c.warmup
	if firstFetch > 2*time.Second {
		warmup = 0 // the first fetch warmed it; a slow agent keeps no cache to warm
	}
	for range warmup {
		if _, _, err := pminfo("-f", "containers"); err != nil {
			return side, err
		}
	}
	var base, fetch []time.Duration
	var last string
	agentPID := childOf(cmd.Process.Pid, map[string]string{"rootd": "rootd", "pmdaroot": "pmdaroot"}[agent])
	agent0, pmcd0 := cpuTicks(agentPID), cpuTicks(cmd.Process.Pid)
	var infoCPU time.Duration
	var spent time.Duration
	for i := range c.fetches {
		if i > 0 && spent > c.budget {
			break
		}
		// Interleaved, so that both see the same background load.
		_, d, err := pminfo("-f", "pmcd.hostname")
		if err != nil {
			return side, err
		}
		base = append(base, d)
		out, d, err := pminfo("-f", "containers")
		if err != nil {
			return side, err
		}
		fetch = append(fetch, d)
		infoCPU += pminfoCPU
		spent += d
		last = out
		side.Fetches++
	}
	side.BaseP50MS, side.BaseMinMS = ms(median(base)), ms(slices.Min(base))
	side.FetchP50MS, side.FetchMinMS = ms(median(fetch)), ms(slices.Min(fetch))
	side.Instances = instanceCounts(last)
	if k := float64(side.Fetches); k > 0 {
		side.AgentCPUMS = float64(cpuTicks(agentPID)-agent0) * 10 / k
		side.PmcdCPUMS = float64(cpuTicks(cmd.Process.Pid)-pmcd0) * 10 / k
		side.PminfoCPUMS = ms(infoCPU) / k
	}
	if agent == "rootd" {
		for _, m := range containersMetrics {
			if side.Instances[m] != n {
				return side, fmt.Errorf("%s: %d instances, want %d", m, side.Instances[m], n)
			}
		}
	}
	return side, nil
}

// cpuTicks is a process's user+system time in clock ticks (10 ms: Linux's
// USER_HZ is 100), 0 if unknown.
func cpuTicks(pid int) int64 {
	if pid <= 0 {
		return 0
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	return parseStatCPU(string(data))
}

// parseStatCPU adds utime and stime (fields 14 and 15) of a /proc/PID/stat
// line.
func parseStatCPU(stat string) int64 {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

func headLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

// handshakeTook reads rootd's "pmcd handshake done ... took=D" from its
// log; 0 if absent.
func handshakeTook(path string) float64 {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	return parseHandshakeTook(string(data))
}

var tookRE = regexp.MustCompile(`pmcd handshake done.*\btook=(\S+)`)

func parseHandshakeTook(logText string) float64 {
	m := tookRE.FindStringSubmatch(logText)
	if m == nil {
		return 0
	}
	d, err := time.ParseDuration(strings.Trim(m[1], `"`))
	if err != nil {
		return 0
	}
	return ms(d)
}

// instanceCounts counts the values of each metric in pminfo -f output:
//
//	containers.name
//	    inst [0 or "abc"] value "bench-00000"
//
// A metric with no values, or an error line, counts 0.
func instanceCounts(out string) map[string]int {
	counts := map[string]int{}
	metric := ""
	for line := range strings.SplitSeq(out, "\n") {
		t := strings.TrimSpace(line)
		switch {
		case t == "":
		case !strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "\t"):
			metric = t
			if _, ok := counts[metric]; !ok {
				counts[metric] = 0
			}
		case metric != "" && (strings.HasPrefix(t, "inst [") || strings.HasPrefix(t, "value ")):
			counts[metric]++
		}
	}
	return counts
}

// median is the middle of ds (the mean of the two middle ones of an even
// count); 0 for none.
func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// perContainerUS is a net fetch time in ms over n containers, in µs.
func perContainerUS(netMS float64, n int) float64 {
	if n < 1 {
		return math.NaN()
	}
	return netMS * 1000 / float64(n)
}

// PMDAMarkdown writes the results as a Markdown table.
func PMDAMarkdown(res []PMDASize, machine string, started time.Time, load string, fetches int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "`pminfo -f containers` (7 metrics) through a private pmcd, root agent rootd --pmda or pmdaroot, same synthetic Docker state tree; up to %d timed fetches per cell after a warm-up (fewer once they took longer than the budget), each after a `pminfo -f pmcd.hostname` against the same pmcd (\"pminfo alone\"); net = fetch less pminfo alone. %s; started %s; load %s.\n\n",
		fetches, machine, started.Format("2006-01-02 15:04 UTC"), load)
	b.WriteString("| N | agent | instances | fetches | handshake ms | first values ms | pminfo alone p50 / min ms | fetch p50 / min ms | net p50 / min ms | net µs/container (p50) |\n")
	b.WriteString("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, s := range res {
		for _, d := range s.Sides {
			if d.Err != "" && d.FetchP50MS == 0 {
				fmt.Fprintf(&b, "| %d | %s | – | – | %s | %s | – | – | – | failed: %s |\n", s.N, d.Agent, msCell(d.HandshakeMS), msCell(d.FirstMS), strings.ReplaceAll(d.Err, "|", "/"))
				continue
			}
			hs := msCell(d.HandshakeMS)
			if d.AgentTookMS > 0 {
				hs += fmt.Sprintf(" (agent %.1f)", d.AgentTookMS)
			}
			fmt.Fprintf(&b, "| %d | %s | %s | %d | %s | %s | %.1f / %.1f | %.1f / %.1f | %.1f / %.1f | %.1f |\n",
				s.N, d.Agent, instancesCell(d.Instances), d.Fetches, hs, msCell(d.FirstMS),
				d.BaseP50MS, d.BaseMinMS, d.FetchP50MS, d.FetchMinMS, d.NetP50MS(), d.NetMinMS(), perContainerUS(d.NetP50MS(), s.N))
		}
	}
	b.WriteString("\nCPU time per `pminfo -f containers` (mean over the timed fetches, ms; 10 ms clock ticks for the agent and pmcd):\n\n")
	b.WriteString("| N | agent | agent CPU | per container µs | pmcd CPU | pminfo CPU |\n|---:|---|---:|---:|---:|---:|\n")
	for _, s := range res {
		for _, d := range s.Sides {
			if d.Fetches == 0 {
				continue
			}
			fmt.Fprintf(&b, "| %d | %s | %.1f | %.2f | %.1f | %.1f |\n", s.N, d.Agent, d.AgentCPUMS, d.AgentCPUMS*1000/float64(s.N), d.PmcdCPUMS, d.PminfoCPUMS)
		}
	}
	// rootd against the reference, net p50.
	var ratios []string
	for _, s := range res {
		if len(s.Sides) == 2 && s.Sides[0].Err == "" && s.Sides[1].FetchP50MS > 0 && s.Sides[0].NetP50MS() > 0 {
			ratios = append(ratios, fmt.Sprintf("N=%d: %.1f×", s.N, s.Sides[1].NetP50MS()/s.Sides[0].NetP50MS()))
		}
	}
	if len(ratios) > 0 {
		fmt.Fprintf(&b, "\npmdaroot's net p50 over rootd's: %s.\n", strings.Join(ratios, ", "))
	}
	return b.String()
}

func msCell(v float64) string {
	if v == 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f", v)
}

// instancesCell is the instance count if every metric has the same, else
// each metric's.
func instancesCell(in map[string]int) string {
	if len(in) == 0 {
		return "–"
	}
	first := in[containersMetrics[0]]
	same := true
	for _, m := range containersMetrics {
		same = same && in[m] == first
	}
	if same {
		return strconv.Itoa(first)
	}
	var parts []string
	for _, m := range containersMetrics {
		parts = append(parts, fmt.Sprintf("%s %d", strings.TrimPrefix(m, "containers."), in[m]))
	}
	return strings.Join(parts, ", ")
}

// plainInits are one init process per container of a set: a bare sleep
// (no UTS namespace of its own: the fetch reads no hostname) in cgroup
// docker/ID of the hierarchy rootd reads, as Docker's cgroupfs driver
// places a container's init. Each container's state file points at its own.
type plainInits struct {
	tree *CgroupTree
	cmds []*exec.Cmd
}

func startPlainInits(tree *CgroupTree, set *SyntheticSet) (*plainInits, error) {
	in := &plainInits{tree: tree}
	for i, id := range set.IDs {
		cmd := exec.Command("sleep", "2147483647")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			in.Stop()
			return nil, fmt.Errorf("start init %d: %w", i, err)
		}
		in.cmds = append(in.cmds, cmd)
		_, err := tree.Place("docker/"+id, cmd.Process.Pid)
		if err == nil {
			err = set.SetPID(i, cmd.Process.Pid)
		}
		if err != nil {
			in.Stop()
			return nil, err
		}
	}
	return in, nil
}

// Stop kills the init processes and removes their cgroups.
func (in *plainInits) Stop() {
	killAll(in.cmds)
	if err := in.tree.RemoveUnder("docker"); err != nil {
		log.Printf("remove the containers' cgroups: %v", err)
	}
}
