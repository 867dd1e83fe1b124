package main

// rootbench cri: the CRI engine on a Kubernetes-sized node. A private
// containerd with its CRI plugin (internal/crinode, the integration tests'
// own setup) gets N host-network pods, each a sandbox and one running
// container, made through the CRI as a kubelet makes them. Measured: the
// engine's first List in a new engine (cold: connect, Version, both lists
// and a verbose status call per running item), a List once the PIDs are
// cached (steady), rootd's start-up until every container answers by
// NAMESPACE/POD/CONTAINER, and lookups through the socket with PCP's own
// client library (the C load driver), by NAMESPACE/POD/CONTAINER and by
// 12-digit ID prefix.

import (
	"context"
	"debug/buildinfo"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rootd-project/rootd/client"
	"github.com/rootd-project/rootd/engine/cri"
	"github.com/rootd-project/rootd/internal/crinode"
)

// CRIResult is one run of rootbench cri.
type CRIResult struct {
	Started    time.Time `json:"started"`
	Took       string    `json:"took"`
	Machine    Machine   `json:"machine"`
	Containerd string    `json:"containerd"`
	Load       string    `json:"load"`
	// RaceBench and RaceRootd say whether rootbench (which runs the
	// engine's Lists in-process) and rootd were built with -race.
	RaceBench bool `json:"race_bench"`
	RaceRootd bool `json:"race_rootd"`

	Pods     int     `json:"pods"`
	Items    int     `json:"items"` // sandboxes and containers the engine lists
	CreateMS float64 `json:"create_ms"`

	ColdListMS   []float64 `json:"cold_list_ms"`
	SteadyListMS []float64 `json:"steady_list_ms"`
	SocketMS     []float64 `json:"socket_ms"`    // rootd start → socket answers
	AllMS        []float64 `json:"all_ms"`       // rootd start → every triple answers
	RootdRSSKB   int       `json:"rootd_rss_kb"` // after the lookups

	Lookups []CRILookup `json:"lookups"`
}

// CRILookup is one load-driver cell.
type CRILookup struct {
	Form string       `json:"form"` // "NAMESPACE/POD/CONTAINER" or "ID prefix"
	PDU  string       `json:"pdu"`
	R    DriverResult `json:"result"`
}

type criConfig struct {
	rootd, driver string
	pods          int
	coldRuns      int
	steadyRuns    int
	startups      int
	clients       []int
	cell          Budget
	work          string
}

func criMain(args []string) int {
	fs := flag.NewFlagSet("rootbench cri", flag.ContinueOnError)
	var c criConfig
	fs.StringVar(&c.rootd, "rootd", "bin/rootd", "rootd `binary`")
	fs.StringVar(&c.driver, "driver", "bin/loaddriver", "load driver `binary` (bench/c/loaddriver.c); \"\" skips the lookups")
	fs.IntVar(&c.pods, "pods", 100, "host-network pods to make, each with one running container")
	fs.IntVar(&c.coldRuns, "cold-runs", 5, "first Lists, each by a new engine")
	fs.IntVar(&c.steadyRuns, "steady-runs", 20, "Lists by one engine once its PIDs are cached")
	fs.IntVar(&c.startups, "startups", 3, "rootd start-ups timed")
	clients := fs.String("clients", "1,64", "comma-separated client counts of the lookups")
	cellTime := fs.Duration("rootd-time", time.Second, "measuring time of one lookup cell")
	out := fs.String("out", "bench/results/cri.md", "Markdown report `file`")
	jsonOut := fs.String("json", "bench/results/cri.json", "results record `file`")
	keep := fs.Bool("keep", false, "keep the work directory")
	fs.StringVar(&c.work, "work", "", "work `directory` (default: a new one under /tmp; its socket paths must be short)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var err error
	if c.clients, err = intList(*clients); err != nil {
		log.Printf("-clients: %v", err)
		return 2
	}
	if c.pods < 1 || c.coldRuns < 1 || c.steadyRuns < 1 || c.startups < 1 {
		log.Print("-pods, -cold-runs, -steady-runs and -startups must be positive")
		return 2
	}
	c.cell = Budget{Duration: *cellTime, MaxReq: 2_000_000, Warmup: 200}
	paths := []*string{&c.rootd}
	if c.driver != "" {
		paths = append(paths, &c.driver)
	}
	if err := absExisting(paths...); err != nil {
		log.Print(err)
		return 1
	}
	if c.work, err = workDir(c.work, "/tmp", "rbcri"); err != nil {
		log.Print(err)
		return 1
	}
	if !*keep {
		defer os.RemoveAll(c.work)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	res, err := runCRI(ctx, c)
	if res != nil {
		md := CRIMarkdown(res)
		if werr := writeFile(*out, []byte(md)); werr != nil {
			log.Print(werr)
			return 1
		}
		if *jsonOut != "" {
			data, _ := json.MarshalIndent(res, "", "  ")
			if werr := writeFile(*jsonOut, append(data, '\n')); werr != nil {
				log.Print(werr)
				return 1
			}
		}
		fmt.Print(md)
	}
	if err != nil {
		log.Print(err)
		return 1
	}
	return 0
}

func writeFile(path string, data []byte) error {
	if path == "" {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// isRace reports whether the binary at path was built with -race.
func isRace(path string) bool {
	bi, err := buildinfo.ReadFile(path)
	if err != nil {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

// criDaemon is the private containerd the benchmark runs.
type criDaemon struct {
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
	node *crinode.Node
}

func startCRIDaemon(ctx context.Context, dir string) (*criDaemon, error) {
	argv, err := crinode.Setup(dir)
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "containerd.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	d := &criDaemon{dir: dir, done: make(chan struct{})}
	d.cmd = exec.Command(argv[0], argv[1:]...)
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := d.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { d.cmd.Wait(); close(d.done) }()
	sock := crinode.Socket(dir)
	deadline := time.Now().Add(30 * time.Second)
	for crinode.Ready(ctx, sock) != nil {
		select {
		case <-d.done:
			return nil, fmt.Errorf("containerd exited at start; see %s", filepath.Join(dir, "containerd.log"))
		case <-ctx.Done():
			d.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.stop()
			return nil, fmt.Errorf("containerd did not answer within 30 s; see %s", filepath.Join(dir, "containerd.log"))
		}
	}
	if d.node, err = crinode.Dial(dir, sock); err != nil {
		d.stop()
		return nil, err
	}
	if err := crinode.ImportPauseImage(ctx, sock, dir); err != nil {
		d.stop()
		return nil, err
	}
	return d, nil
}

// stop removes the pods, stops containerd, then ends the shims that are
// left (a shim outlives its daemon while its container runs) and unmounts
// what is left under the directory.
func (d *criDaemon) stop() {
	if d.node != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		for _, err := range d.node.RemovePods(ctx) {
			log.Printf("cleanup: %v", err)
		}
		cancel()
		d.node.Close()
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.done:
	case <-time.After(20 * time.Second):
		d.cmd.Process.Kill()
		<-d.done
	}
	sock := crinode.Socket(d.dir)
	for pid, line := range processesWith(sock) {
		log.Printf("cleanup: killing %d (%s)", pid, line)
		syscall.Kill(pid, syscall.SIGKILL)
	}
	if data, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
		var under []string
		for line := range strings.SplitSeq(string(data), "\n") {
			if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(unescapeMount(f[4]), d.dir+"/") {
				under = append(under, unescapeMount(f[4]))
			}
		}
		slices.Reverse(under)
		for _, m := range under {
			syscall.Unmount(m, syscall.MNT_DETACH)
		}
	}
}

// processesWith lists the processes whose command line holds word.
func processesWith(word string) map[int]string {
	out := map[int]string{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if line := strings.ReplaceAll(string(b), "\x00", " "); strings.Contains(line, word) {
			out[pid] = line
		}
	}
	return out
}

// criPod is one pod of the benchmark: its container's triple, ID and PID.
type criPod struct {
	triple, id string
	pid        int
}

// makePods makes n pods with a container each, 4 at a time.
func makePods(ctx context.Context, node *crinode.Node, n int) ([]criPod, error) {
	pods := make([]criPod, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i := range pods {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			name := fmt.Sprintf("pod-%03d", i)
			pod, err := node.RunPod(ctx, "bench", name, fmt.Sprintf("bench-uid-%d-%03d", os.Getpid(), i))
			if err != nil {
				errs[i] = err
				return
			}
			id, err := node.RunContainer(ctx, pod, "app")
			if err == nil {
				pods[i].pid, err = node.ContainerPID(ctx, id)
			}
			pods[i].triple, pods[i].id, errs[i] = "bench/"+name+"/app", id, err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return pods, nil
}

func runCRI(ctx context.Context, c criConfig) (*CRIResult, error) {
	start := time.Now()
	m := describeMachine()
	res := &CRIResult{Started: start.UTC(), Machine: m, Load: loadAverage(), Pods: c.pods,
		RaceBench: raceEnabled, RaceRootd: isRace(c.rootd),
		Containerd: containerdVersion()}
	d, err := startCRIDaemon(ctx, c.work)
	if err != nil {
		return nil, err
	}
	defer d.stop()
	sock := crinode.Socket(c.work)

	log.Printf("making %d host-network pods with a container each", c.pods)
	t0 := time.Now()
	pods, err := makePods(ctx, d.node, c.pods)
	if err != nil {
		return nil, err
	}
	res.CreateMS = ms(time.Since(t0))
	want := map[string]int{}
	for _, p := range pods {
		want[p.id] = p.pid
	}

	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	listOnce := func(e *cri.Engine) (time.Duration, error) {
		beQuiet(ctx)
		t := time.Now()
		cs, err := e.List(ctx)
		d := time.Since(t)
		if err != nil {
			return 0, err
		}
		running := 0
		for _, ct := range cs {
			if ct.PID > 0 {
				running++
			}
			if p, ok := want[ct.ID]; ok && ct.PID != p {
				return 0, fmt.Errorf("engine List: container %s has PID %d, want %d", ct.ID, ct.PID, p)
			}
		}
		if len(cs) != 2*c.pods || running != 2*c.pods {
			return 0, fmt.Errorf("engine List: %d items, %d with a PID; want %d running", len(cs), running, 2*c.pods)
		}
		res.Items = len(cs)
		return d, nil
	}
	log.Printf("engine List, cold (%d new engines)", c.coldRuns)
	for range c.coldRuns {
		e, err := cri.Open(quiet, []string{sock}, cri.DefaultRelist)
		if err != nil {
			return res, err
		}
		d, err := listOnce(e)
		e.Close()
		if err != nil {
			return res, err
		}
		res.ColdListMS = append(res.ColdListMS, ms(d))
	}
	log.Printf("engine List, steady (%d)", c.steadyRuns)
	e, err := cri.Open(quiet, []string{sock}, cri.DefaultRelist)
	if err != nil {
		return res, err
	}
	if _, err := listOnce(e); err != nil {
		e.Close()
		return res, err
	}
	for range c.steadyRuns {
		d, err := listOnce(e)
		if err != nil {
			e.Close()
			return res, err
		}
		res.SteadyListMS = append(res.SteadyListMS, ms(d))
	}
	e.Close()

	triples := make([]string, len(pods))
	prefixes := make([]string, len(pods))
	for i, p := range pods {
		triples[i], prefixes[i] = p.triple, p.id[:12]
	}
	ids, err := d.node.IDs(ctx)
	if err != nil {
		return res, err
	}
	for _, pre := range prefixes {
		if n := countPrefix(ids, pre); n != 1 {
			return res, fmt.Errorf("prefix %s names %d sandboxes and containers", pre, n)
		}
	}

	var srv *Server
	for i := range c.startups {
		log.Printf("rootd start-up %d of %d", i+1, c.startups)
		beQuiet(ctx)
		rsock := filepath.Join(c.work, "root.sock")
		os.Remove(rsock)
		t := time.Now()
		srv, err = startCRIRootd(c.rootd, c.work, rsock, sock)
		if err != nil {
			return res, err
		}
		up, all, err := waitIndexed(ctx, srv, pods, t, time.Minute)
		if err != nil {
			srv.Stop()
			return res, err
		}
		res.SocketMS = append(res.SocketMS, ms(up))
		res.AllMS = append(res.AllMS, ms(all))
		if i < c.startups-1 {
			srv.Stop()
		}
	}
	defer srv.Stop()

	if c.driver != "" {
		for _, form := range []struct {
			name  string
			names []string
		}{{"NAMESPACE/POD/CONTAINER", triples}, {"ID prefix (12 digits)", prefixes}} {
			for _, op := range Ops[:2] {
				for _, n := range c.clients {
					log.Printf("lookups by %s, %s, %d clients", form.name, op.PDU, n)
					r, err := RunDriver(ctx, c.driver, srv.Socket, op.Driver, n, c.cell, form.names)
					if err == nil && op.Driver == "pid" {
						err = checkRun(r, strconv.Itoa(pods[0].pid))
					} else if err == nil {
						err = checkRun(r, "")
					}
					if err != nil {
						return res, fmt.Errorf("%s %s x%d: %w", form.name, op.PDU, n, err)
					}
					res.Lookups = append(res.Lookups, CRILookup{Form: form.name, PDU: op.PDU, R: r})
				}
			}
		}
	}
	res.RootdRSSKB, _ = statusField(srv.PID(), "VmRSS")
	res.Load += " → " + loadAverage()
	res.Took = time.Since(start).Round(time.Second).String()
	return res, nil
}

// containerdVersion is "containerd VERSION" from containerd --version.
func containerdVersion() string {
	f := strings.Fields(firstLine("containerd", "--version"))
	if len(f) < 3 {
		return "containerd ?"
	}
	return "containerd " + f[2]
}

func countPrefix(ids []string, prefix string) int {
	n := 0
	for _, id := range ids {
		if strings.HasPrefix(id, prefix) {
			n++
		}
	}
	return n
}

// startCRIRootd starts rootd with the CRI engine alone on criSock.
func startCRIRootd(rootd, work, socket, criSock string) (*Server, error) {
	cmd := exec.Command(rootd, "--config", os.DevNull, "-s", socket, "-l", filepath.Join(work, "rootd.log"), "--log-level", "warn",
		"--engines", "cri", "--cri-endpoint", criSock)
	cmd.Env = cleanEnv()
	return newServer("rootd", socket, cmd, nil)
}

// waitIndexed polls rootd from its start until its socket answers (up) and
// then until every pod's container answers PROCESSID by its triple with
// the PID containerd reports (all), asking only those not answered yet.
func waitIndexed(ctx context.Context, srv *Server, pods []criPod, since time.Time, limit time.Duration) (up, all time.Duration, err error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var cl *client.Client
	for {
		if cl, err = client.Connect(ctx, srv.Socket); err == nil {
			up = time.Since(since)
			break
		}
		select {
		case <-ctx.Done():
			return 0, 0, fmt.Errorf("rootd did not answer on %s: %w", srv.Socket, err)
		case <-srv.done:
			return 0, 0, fmt.Errorf("rootd exited (%v); see its log", srv.cmd.ProcessState)
		case <-time.After(time.Millisecond):
		}
	}
	defer cl.Close()
	left := slices.Clone(pods)
	for len(left) > 0 {
		var still []criPod
		for _, p := range left {
			pid, err := cl.ProcessID(ctx, p.triple)
			if err == nil && pid != p.pid {
				return 0, 0, fmt.Errorf("%s: pid %d, want %d", p.triple, pid, p.pid)
			}
			if err != nil {
				if ctx.Err() != nil {
					return 0, 0, fmt.Errorf("%d of %d containers not answered within %v: %s: %w", len(left), len(pods), limit, p.triple, err)
				}
				still = append(still, p)
			}
		}
		left = still
	}
	return up, time.Since(since), nil
}

// stats are a series' median, minimum and maximum.
func stats(v []float64) (p50, lo, hi float64) {
	if len(v) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[(len(s)-1)/2], s[0], s[len(s)-1]
}

func built(race bool) string {
	if race {
		return "with -race"
	}
	return "without -race"
}

// CRIMarkdown renders a run as the tables of docs/performance.md.
func CRIMarkdown(r *CRIResult) string {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "### CRI engine, %d pods (rootbench cri)\n\n", r.Pods)
	fmt.Fprintf(&b, "Run of %s (took %s). Machine: %s, %d CPUs, %s RAM, %s, kernel %s, cgroups %s; %s, %s. "+
		"rootbench (the engine's Lists) built %s, rootd %s. Load average %s.\n\n",
		r.Started.Format("2006-01-02 15:04 UTC"), orDash(r.Took), m.CPU, m.CPUs, m.Memory, m.OS, m.Kernel, orDash(m.Cgroups),
		orDash(r.Containerd), m.Go, built(r.RaceBench), built(r.RaceRootd), r.Load)
	fmt.Fprintf(&b, "%d host-network pods on a private containerd with its CRI plugin, each a sandbox and one running "+
		"busybox container (%d items, each with an init PID), made through the CRI 4 at a time in %.1f s.\n\n",
		r.Pods, r.Items, r.CreateMS/1000)
	b.WriteString("| measurement | runs | p50 | min | max |\n|---|---:|---:|---:|---:|\n")
	row := func(what string, v []float64) {
		if len(v) == 0 {
			fmt.Fprintf(&b, "| %s | 0 | — | — | — |\n", what)
			return
		}
		p50, lo, hi := stats(v)
		fmt.Fprintf(&b, "| %s | %d | %s | %s | %s |\n", what, len(v), us(p50*1000), us(lo*1000), us(hi*1000))
	}
	row("engine List, cold: a new engine (connect, Version, 2 lists, a verbose status call per item, 8 at a time)", r.ColdListMS)
	row("engine List, steady: PIDs cached (Version known, 2 lists)", r.SteadyListMS)
	row("rootd start → socket answers", r.SocketMS)
	row(fmt.Sprintf("rootd start → all %d containers answer by NAMESPACE/POD/CONTAINER", r.Pods), r.AllMS)
	if r.RootdRSSKB > 0 {
		fmt.Fprintf(&b, "\nrootd's resident set after the lookups: %s.\n", mib(r.RootdRSSKB))
	}
	if len(r.Lookups) > 0 {
		fmt.Fprintf(&b, "\nLookups through rootd's socket with PCP's client library (bench/c/loaddriver.c), cycling through all %d containers; every request answered (the first with the PID containerd reports).\n\n", r.Pods)
		b.WriteString("| query | operation | clients | p50 | p99 | req/s |\n|---|---|---:|---:|---:|---:|\n")
		for _, l := range r.Lookups {
			fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %s |\n", l.Form, l.PDU, l.R.Clients,
				latCell(l.R, true, false), latCell(l.R, true, true), rateCell(l.R, true))
		}
	}
	return b.String()
}
