// Command rootbench measures rootd against PCP's own pmdaroot, side by side
// on the same container sets, through PCP's real client library (the C load
// driver in bench/c), and writes the results as a Markdown table, a JSON
// record and an SVG chart.
//
//	rootbench [flags]                 run the benchmark
//	rootbench gen -n N -dir DIR PID…  write a synthetic Docker state directory
//	rootbench report -in FILE.json    redo the table and chart from a record
//	rootbench floor [-loop] SOCKET    serve fixed answers (a zero-work server)
//	rootbench pmda [-sizes …]         pminfo -f containers: rootd --pmda against pmdaroot under pmcd
//	rootbench cri [-pods N]           the CRI engine with N pods on a private containerd
//
// bench/run.sh installs what it needs, builds everything and runs it.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rootd-project/rootd/client"
)

func main() {
	log.SetFlags(log.Ltime)
	log.SetPrefix("rootbench: ")
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "gen":
			os.Exit(genMain(os.Args[2:]))
		case "report":
			os.Exit(reportMain(os.Args[2:]))
		case "floor":
			os.Exit(floorMain(os.Args[2:]))
		case "pmda":
			os.Exit(pmdaMain(os.Args[2:]))
		case "cri":
			os.Exit(criMain(os.Args[2:]))
		}
	}
	os.Exit(benchMain(os.Args[1:]))
}

func genMain(args []string) int {
	fs := flag.NewFlagSet("rootbench gen", flag.ContinueOnError)
	n := fs.Int("n", 100, "number of containers")
	dir := fs.String("dir", "", "state `directory` to (re)create; containers go in DIR/containers")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *dir == "" || fs.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: rootbench gen -n N -dir DIR PID...")
		return 2
	}
	var pids []int
	for _, a := range fs.Args() {
		p, err := strconv.Atoi(a)
		if err != nil || p < 1 {
			fmt.Fprintf(os.Stderr, "rootbench gen: bad pid %q\n", a)
			return 2
		}
		pids = append(pids, p)
	}
	set, err := Generate(*dir, *n, pids)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rootbench gen:", err)
		return 1
	}
	for _, q := range set.Queries() {
		fmt.Printf("%s\t%s\t%s\n", q.Kind, q.Position, q.Text)
	}
	return 0
}

func reportMain(args []string) int {
	fs := flag.NewFlagSet("rootbench report", flag.ContinueOnError)
	in := fs.String("in", "bench/results/latest.json", "results `file` written by a run")
	md := fs.String("md", "", "write the Markdown report to this `file` too")
	svg := fs.String("svg", "", "write the latency chart to this `file`")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	data, err := os.ReadFile(*in)
	if err != nil {
		log.Print(err)
		return 1
	}
	var res Results
	if err := json.Unmarshal(data, &res); err != nil {
		log.Printf("%s: %v", *in, err)
		return 1
	}
	if err := writeOutputs(&res, *md, "", *svg); err != nil {
		log.Print(err)
		return 1
	}
	return 0
}

// config is the run's settings.
type config struct {
	tools       Tools
	work        string
	sizes       []int
	sleepers    int
	rootdCell   Budget // one rootd measurement
	refCell     Budget // one reference measurement
	kindRootd   Budget
	kindRef     Budget
	clients     []int
	floorRuns   int
	oneRuns     int
	live        string
	liveMake    bool
	lxcScript   string
	podmanImage string
	freshRuns   int
	dockerBin   string
	image       string
	skipRef     bool
	startLimit  time.Duration
}

func benchMain(args []string) int {
	fs := flag.NewFlagSet("rootbench", flag.ContinueOnError)
	var (
		c        config
		sizes    = fs.String("sizes", "10,100,1000,10000", "comma-separated synthetic container counts")
		clients  = fs.String("clients", "1,64", "comma-separated client counts")
		out      = fs.String("out", "bench/results/latest.md", "Markdown report `file`")
		jsonOut  = fs.String("json", "bench/results/latest.json", "results record `file`")
		svgOut   = fs.String("svg", "docs/performance-latency.svg", "latency chart `file`")
		keep     = fs.Bool("keep", false, "keep the work directory")
		rootdDur = fs.Duration("rootd-time", time.Second, "measuring time of one rootd cell")
		refDur   = fs.Duration("ref-time", 3*time.Second, "longest measuring time of one reference cell")
		refMax   = fs.Int("ref-requests", 2000, "most requests in one reference cell")
	)
	fs.StringVar(&c.tools.Rootd, "rootd", "bin/rootd", "rootd `binary`")
	fs.StringVar(&c.tools.Driver, "driver", "bin/loaddriver", "load driver `binary` (bench/c/loaddriver.c)")
	fs.StringVar(&c.tools.Floor, "floor", "bin/floorserver", "zero-work C server `binary` (bench/c/floorserver.c); \"\" skips every zero-work server")
	fs.IntVar(&c.floorRuns, "floor-runs", 5, "measurements of each zero-work server at each client count")
	fs.IntVar(&c.oneRuns, "one-client-runs", 3, "runs of each one-client cell of rootd and the reference; the one with the median p50 stands for the cell")
	fs.StringVar(&c.tools.Pmcd, "pmcd", "/usr/lib/pcp/bin/pmcd", "PCP's pmcd `binary`")
	fs.StringVar(&c.tools.Pmdaroot, "pmdaroot", "/usr/lib/pcp/pmdas/root/pmdaroot", "PCP's pmdaroot `binary` (the reference)")
	fs.StringVar(&c.work, "work", "", "work `directory` (default: a new one under $TMPDIR)")
	fs.IntVar(&c.sleepers, "sleepers", 4, "live processes the synthetic containers point at")
	fs.StringVar(&c.live, "live", "auto", "measure on live engines too: auto (the host's running containers, if any), on (required) or off")
	fs.BoolVar(&c.liveMake, "live-make", false, "for the live measurement, start 2 Docker and 1 Podman containers, then 1 LXC container, and remove them afterwards")
	fs.StringVar(&c.lxcScript, "lxc-script", "scripts/engines/lxc.sh", "`script` that creates an LXC container that starts offline (with -live-make)")
	fs.StringVar(&c.podmanImage, "podman-image", "localhost/bb:latest", "Podman `image` for -live-make")
	fs.IntVar(&c.freshRuns, "fresh-runs", 60, "docker run → resolvable measurements (0 skips)")
	fs.StringVar(&c.dockerBin, "docker", "docker", "docker CLI `binary`")
	fs.StringVar(&c.image, "image", "bb:latest", "image for the freshness containers")
	fs.BoolVar(&c.skipRef, "no-reference", false, "measure rootd only")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var err error
	if c.sizes, err = intList(*sizes); err != nil {
		log.Printf("-sizes: %v", err)
		return 2
	}
	if c.clients, err = intList(*clients); err != nil {
		log.Printf("-clients: %v", err)
		return 2
	}
	c.rootdCell = Budget{Duration: *rootdDur, MaxReq: 2_000_000, Warmup: 200}
	c.refCell = Budget{Duration: *refDur, MaxReq: *refMax, Warmup: 2}
	c.kindRootd = Budget{Duration: *rootdDur / 3, MaxReq: 1_000_000, Warmup: 200}
	c.kindRef = Budget{Duration: *refDur / 3, MaxReq: *refMax / 4, Warmup: 1}
	c.startLimit = 60 * time.Second
	tools := []*string{&c.tools.Rootd, &c.tools.Driver}
	if !c.skipRef {
		tools = append(tools, &c.tools.Pmcd, &c.tools.Pmdaroot)
	}
	if c.tools.Floor != "" {
		tools = append(tools, &c.tools.Floor)
	}
	if err := absExisting(tools...); err != nil {
		log.Print(err)
		return 1
	}
	if c.work, err = workDir(c.work, "", "rootbench-"); err != nil {
		log.Print(err)
		return 1
	}
	if !*keep {
		defer os.RemoveAll(c.work)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	res, err := run(ctx, c)
	if res != nil {
		if werr := writeOutputs(res, *out, *jsonOut, *svgOut); werr != nil {
			log.Print(werr)
			return 1
		}
		fmt.Print(Markdown(res))
	}
	if err != nil {
		log.Print(err)
		return 1
	}
	return 0
}

func intList(s string) ([]int, error) {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("bad number %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func writeOutputs(res *Results, md, js, svg string) error {
	write := func(path string, data []byte) error {
		if path == "" {
			return nil
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		return os.WriteFile(path, data, 0o644)
	}
	if js != "" {
		data, err := json.MarshalIndent(res, "", "  ")
		if err != nil {
			return err
		}
		if err := write(js, append(data, '\n')); err != nil {
			return err
		}
	}
	if err := write(md, []byte(Markdown(res))); err != nil {
		return err
	}
	return write(svg, []byte(Chart(res)))
}

// run does the whole benchmark. It returns what it measured even when a
// later step fails.
func run(ctx context.Context, c config) (*Results, error) {
	res := &Results{Machine: describeMachine(), Started: time.Now().UTC()}
	res.LoadBefore = loadAverage()
	defer func() {
		res.LoadAfter = loadAverage()
		res.Elapsed = time.Since(res.Started).Round(time.Second).String()
	}()
	host, err := startSynthHost(c.sleepers, c.work)
	if err != nil {
		return nil, err
	}
	defer host.stop()
	tree, sl, empty := host.tree, host.sl, host.empty
	if c.tools.Floor != "" {
		if res.Floor, err = runFloor(ctx, c); err != nil {
			return res, fmt.Errorf("floor: %w", err)
		}
	}
	for _, n := range c.sizes {
		log.Printf("%d containers", n)
		sr, err := runSize(ctx, c, tree, sl, n, empty)
		if sr != nil {
			res.Sizes = append(res.Sizes, *sr)
		}
		if err != nil {
			return res, fmt.Errorf("%d containers: %w", n, err)
		}
	}
	if c.live != "off" {
		live := runLive
		if c.liveMake {
			live = runLiveMixed
		}
		lr, err := live(ctx, c)
		res.Live = lr // what was measured before a failure, too
		switch {
		case errors.Is(err, errNoLiveContainers) && c.live == "auto":
			res.LiveNote = err.Error()
		case err != nil:
			return res, fmt.Errorf("live host: %w", err)
		}
	}
	if c.freshRuns > 0 {
		fr, err := runFreshness(ctx, c)
		if err != nil {
			res.FreshNote = err.Error()
			log.Printf("freshness: %v", err)
		} else {
			res.Fresh = fr
		}
	}
	return res, nil
}

// runFloor measures the zero-work servers (floor.go): what the socket, the
// client library, the machine's scheduler and each server design cost
// before any lookup. Each client count is measured c.floorRuns times, as
// the tail with many clients varies from run to run.
func runFloor(ctx context.Context, c config) ([]Cell, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	var cells []Cell
	for _, d := range floorDesigns {
		work := filepath.Join(c.work, d.Server)
		if err := os.MkdirAll(work, 0o755); err != nil {
			return nil, err
		}
		socket := filepath.Join(work, "floor.socket")
		var cmd *exec.Cmd
		switch d.Server {
		case "floor-c":
			cmd = exec.Command(c.tools.Floor, socket)
		case "floor-go":
			cmd = exec.Command(self, "floor", socket)
		default:
			cmd = exec.Command(self, "floor", "-loop", socket)
		}
		dc, err := measureFloor(ctx, c, d.Server, socket, cmd)
		cells = append(cells, dc...)
		if err != nil {
			return cells, fmt.Errorf("%s: %w", d.Server, err)
		}
	}
	return cells, nil
}

func measureFloor(ctx context.Context, c config, label, socket string, cmd *exec.Cmd) ([]Cell, error) {
	srv, err := newServer(label, socket, cmd, nil)
	if err != nil {
		return nil, err
	}
	defer srv.Stop()
	if err := waitSocket(ctx, srv, 10*time.Second); err != nil {
		return nil, err
	}
	var cells []Cell
	for _, clients := range c.clients {
		for run := range max(c.floorRuns, 1) {
			r, err := RunDriver(ctx, c.tools.Driver, socket, "pid", clients, c.rootdCell, []string{floorAnswer})
			if err != nil {
				return cells, err
			}
			log.Printf("  %-13s PROCESSID  x%-2d p50 %8.1fµs p99 %9.1fµs %9.0f/s", label, clients, r.P50, r.P99, r.Throughput())
			cells = append(cells, Cell{Server: label, Op: "PROCESSID", Clients: clients, Run: run, R: r})
		}
	}
	return cells, nil
}

// runSize measures both servers on one synthetic set.
func runSize(ctx context.Context, c config, tree *CgroupTree, sl *Sleepers, n int, empty string) (*SizeResult, error) {
	set, err := Generate(filepath.Join(c.work, fmt.Sprintf("docker-%d", n)), n, sl.PIDs())
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(set.Dir)
	// The queried containers get init processes of their own, in cgroups
	// named as Docker names them, before either server starts: rootd
	// verifies every PID it answers with, and the reference looks for each
	// container's cgroup directory once, when it first sees the container.
	inits, err := StartInits(tree, set)
	if err != nil {
		return nil, err
	}
	defer inits.Stop()
	queries := set.Queries()
	want := func(q Query) Init { return inits.ByIndex[q.Index] }
	names := make([]string, len(queries))
	for i, q := range queries {
		names[i] = q.Text
	}
	sr := &SizeResult{N: n, Queries: queries}

	rdWork := filepath.Join(c.work, fmt.Sprintf("rootd-%d", n))
	if err := os.MkdirAll(rdWork, 0o755); err != nil {
		return nil, err
	}
	started := time.Now()
	rd, err := StartRootd(c.tools, rdWork, filepath.Join(rdWork, "root.socket"), "docker", []string{"PCP_DOCKER_DIR=" + set.Dir})
	if err != nil {
		return nil, err
	}
	defer rd.Stop()
	first, err := WaitAnswer(ctx, rd, set.Names[set.Positions[2]], started, c.startLimit)
	if err != nil {
		return nil, fmt.Errorf("rootd: %w", err)
	}
	sr.RootdFirstAnswerMS = ms(first)
	servers := []*Server{rd}
	if !c.skipRef {
		refWork := filepath.Join(c.work, fmt.Sprintf("ref-%d", n))
		started := time.Now()
		ref, err := StartReference(c.tools, refWork, []string{
			"PCP_DOCKER_DIR=" + set.Dir, "PCP_PODMAN_DATADIR=" + empty, "PCP_PODMAN_RUNDIR=" + empty, "PCP_LXC_DIR=" + empty,
		})
		if err != nil {
			return sr, err
		}
		defer ref.Stop()
		first, err := WaitAnswer(ctx, ref, set.Names[set.Positions[2]], started, c.startLimit)
		if err != nil {
			return sr, fmt.Errorf("reference: %w", err)
		}
		sr.RefFirstAnswerMS = ms(first)
		servers = append(servers, ref)
	}
	// Every query, every operation, once through the Go client: rootd must
	// answer each exactly (the verified PID, its cgroup, its hostname), and
	// the reference the same PIDs and hostnames.
	for _, s := range servers {
		if err := checkAnswers(ctx, s, queries, want); err != nil {
			return sr, err
		}
	}
	w0 := want(queries[0])
	expect := map[string]string{"PROCESSID": strconv.Itoa(w0.PID), "CGROUPNAME": w0.Cgroup, "HOSTNAME": w0.Hostname}

	for _, op := range Ops {
		for _, clients := range c.clients {
			for _, s := range servers {
				b := c.rootdCell
				if s.Label == "reference" {
					b = c.refCell
					if n >= 1000 {
						b.Warmup = 0 // it keeps no cache to warm
					}
				}
				cell, runs, err := measureCell(ctx, c, s, op.Driver, op.PDU, clients, b, names, expect[op.PDU])
				if err != nil {
					return sr, err
				}
				sr.Cells = append(sr.Cells, cell)
				sr.Runs = append(sr.Runs, runs...)
			}
		}
	}
	// Each query on its own, one client, PROCESSID: name against ID against
	// prefix, and where in the directory the container sits.
	for _, q := range queries {
		for _, s := range servers {
			b := c.kindRootd
			if s.Label == "reference" {
				b = c.kindRef
			}
			r, err := RunDriver(ctx, c.tools.Driver, s.Socket, "pid", 1, b, []string{q.Text})
			if err == nil && s.Label == "rootd" {
				err = checkRun(r, strconv.Itoa(want(q).PID))
			}
			if err != nil {
				return sr, fmt.Errorf("%s PROCESSID %s/%s: %w", s.Label, q.Kind, q.Position, err)
			}
			sr.Kinds = append(sr.Kinds, KindCell{Server: s.Label, Kind: q.Kind, Position: q.Position, R: r})
		}
	}
	// The answers every server should give for the first query.
	sr.Expect = expect
	for _, s := range servers {
		pid := s.PID()
		rss, err := statusField(pid, "VmRSS")
		if err != nil {
			log.Printf("  %s RSS: %v", s.Label, err)
		}
		if s.Label == "rootd" {
			sr.RootdRSSKB = rss
		} else {
			sr.RefRSSKB = rss
		}
	}
	log.Printf("  rootd RSS %d kB, first answer %.0f ms; reference RSS %d kB", sr.RootdRSSKB, sr.RootdFirstAnswerMS, sr.RefRSSKB)
	return sr, nil
}

// measureCell measures one server, operation and client count. A
// one-client cell is measured c.oneRuns times, each with a new client
// process, and the run with the median p50 stands for the cell: on this
// kind of machine a client's latency depends on whether it and the
// server's thread happen to share a vCPU (docs/performance.md), which is
// decided when the client starts and holds for the whole run. runs holds
// every run of a repeated cell. Every run of rootd must answer every request
// and, unless expect is "", answer expect for the first name (checkRun).
func measureCell(ctx context.Context, c config, s *Server, driverOp, pdu string, clients int, b Budget, names []string, expect string) (cell Cell, runs []Cell, err error) {
	n := 1
	if clients == 1 {
		n = max(c.oneRuns, 1)
	}
	for run := range n {
		r, err := RunDriver(ctx, c.tools.Driver, s.Socket, driverOp, clients, b, names)
		if err != nil {
			return Cell{}, nil, err
		}
		log.Printf("  %-9s %-10s x%-2d p50 %8.1fµs p99 %9.1fµs %9.0f/s errors %d (%s)",
			s.Label, pdu, clients, r.P50, r.P99, r.Throughput(), r.Errors, r.Answer)
		if s.Label == "rootd" {
			if err := checkRun(r, expect); err != nil {
				return Cell{}, nil, fmt.Errorf("rootd %s x%d: %w", pdu, clients, err)
			}
		}
		runs = append(runs, Cell{Server: s.Label, Op: pdu, Clients: clients, Run: run, R: r})
	}
	if n == 1 {
		return runs[0], nil, nil
	}
	return medianRun(runs), runs, nil
}

// checkRun fails a measurement that did not measure answers: one with a
// failed request (rootd refuses a PID it cannot verify with -ESRCH, which
// a benchmark would otherwise time as if it were an answer), or, unless
// expect is "", whose answer for the first name is not expect.
func checkRun(r DriverResult, expect string) error {
	if r.Errors > 0 {
		return fmt.Errorf("%d of %d requests failed (last error %d; first answer %q): not measuring answers",
			r.Errors, r.Requests, r.LastError, r.Answer)
	}
	if expect != "" && r.Answer != expect {
		return fmt.Errorf("answered %q for the first name, want %q", r.Answer, expect)
	}
	return nil
}

// checkAnswers asks srv each query for each operation once, through the Go
// client. rootd must answer exactly what want says (the PID, cgroup path
// and hostname of the container's verified init); the reference the same
// PID and hostname. The reference's CGROUPNAME is its own search of the
// cgroup tree, only logged.
func checkAnswers(ctx context.Context, srv *Server, queries []Query, want func(Query) Init) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cl, err := client.Connect(ctx, srv.Socket)
	if err != nil {
		return fmt.Errorf("%s: %w", srv.Label, err)
	}
	defer cl.Close()
	for _, q := range queries {
		w := want(q)
		pid, err := cl.ProcessID(ctx, q.Text)
		if err == nil && pid != w.PID {
			err = fmt.Errorf("pid %d, want %d", pid, w.PID)
		}
		if err != nil {
			return fmt.Errorf("%s PROCESSID %q: %w", srv.Label, q.Text, err)
		}
		host, err := cl.HostName(ctx, q.Text)
		if err == nil && host != w.Hostname {
			err = fmt.Errorf("hostname %q, want %q", host, w.Hostname)
		}
		if err != nil {
			return fmt.Errorf("%s HOSTNAME %q: %w", srv.Label, q.Text, err)
		}
		cg, err := cl.CgroupName(ctx, q.Text)
		if err == nil && cg != w.Cgroup && srv.Label == "rootd" {
			err = fmt.Errorf("cgroup %q, want %q", cg, w.Cgroup)
		}
		if err != nil {
			return fmt.Errorf("%s CGROUPNAME %q: %w", srv.Label, q.Text, err)
		}
		if srv.Label != "rootd" && q == queries[0] {
			log.Printf("  %s CGROUPNAME %q: %q (rootd: %q)", srv.Label, q.Text, cg, w.Cgroup)
		}
	}
	return nil
}

// medianRun is the run with the median p50 (the lower one of an even count).
func medianRun(runs []Cell) Cell {
	byP50 := slices.Clone(runs)
	slices.SortStableFunc(byP50, func(a, b Cell) int { return cmp.Compare(a.R.P50, b.R.P50) })
	return byP50[(len(byP50)-1)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// loadAverage is the 1-minute load average, as a sign of other work on the
// machine during the run.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// absExisting makes each path absolute and checks that it exists.
func absExisting(paths ...*string) error {
	for _, p := range paths {
		abs, err := filepath.Abs(*p)
		if err == nil {
			_, err = os.Stat(abs)
		}
		if err != nil {
			return err
		}
		*p = abs
	}
	return nil
}

// workDir is dir, or else a new directory in parent ("" for the system's
// temporary directory) named after prefix.
func workDir(dir, parent, prefix string) (string, error) {
	if dir != "" {
		return dir, nil
	}
	return os.MkdirTemp(parent, prefix)
}
