package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rootd-project/rootd/client"
)

var errNoLiveContainers = errors.New("no running Docker or LXC container on this host: live measurement skipped")

// LiveResult is the measurement on real engines: the host's own containers,
// or the mixed set that -live-make starts, in phases.
type LiveResult struct {
	Phases []LivePhase `json:"phases"`
}

// LivePhase is one state of the live host, measured on both servers.
type LivePhase struct {
	Label string `json:"label"`
	// Containers are ENGINE/NAME of the containers running in this phase;
	// Queries the names the driver cycles through.
	Containers []string `json:"containers"`
	Queries    []string `json:"queries"`
	Cells      []Cell   `json:"cells"`
	// Runs are every run of the cells measured more than once.
	Runs []Cell `json:"runs,omitempty"`
}

// output runs a command and returns its stdout lines, nil if it fails.
func output(ctx context.Context, name string, args ...string) []string {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).Output()
	if err != nil {
		return nil
	}
	return strings.Fields(string(out))
}

// runCommand runs a command to its end and says what went wrong.
func runCommand(ctx context.Context, name string, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// liveServers starts rootd (every engine) and, unless skipped, the
// reference on the host's real state, and waits until both answer for
// every query.
func liveServers(ctx context.Context, c config, queries []string) ([]*Server, func(), error) {
	var servers []*Server
	stop := func() {
		for _, s := range servers {
			s.Stop()
		}
	}
	work := filepath.Join(c.work, "live")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, stop, err
	}
	started := time.Now()
	rd, err := StartRootd(c.tools, work, filepath.Join(work, "rootd.socket"), "", nil)
	if err != nil {
		return nil, stop, err
	}
	servers = append(servers, rd)
	if !c.skipRef {
		ref, err := StartReference(c.tools, filepath.Join(work, "ref"), nil)
		if err != nil {
			return nil, stop, err
		}
		servers = append(servers, ref)
	}
	if err := waitAll(ctx, servers, queries, started, c.startLimit); err != nil {
		return nil, stop, err
	}
	return servers, stop, nil
}

func waitAll(ctx context.Context, servers []*Server, queries []string, since time.Time, limit time.Duration) error {
	for _, s := range servers {
		for _, q := range queries {
			if _, err := WaitAnswer(ctx, s, q, since, limit); err != nil {
				return fmt.Errorf("%s: %w", s.Label, err)
			}
		}
	}
	return nil
}

// measureLive runs every operation and client count on every server,
// cycling through the phase's queries.
func measureLive(ctx context.Context, c config, servers []*Server, ph *LivePhase) error {
	log.Printf("live host, %s: %s", ph.Label, strings.Join(ph.Containers, " "))
	for _, op := range Ops {
		for _, clients := range c.clients {
			for _, s := range servers {
				b := c.rootdCell
				if s.Label == "reference" {
					b = c.refCell
				}
				cell, runs, err := measureCell(ctx, c, s, op.Driver, op.PDU, clients, b, ph.Queries, "")
				if err != nil {
					return err
				}
				ph.Cells = append(ph.Cells, cell)
				ph.Runs = append(ph.Runs, runs...)
			}
		}
	}
	return nil
}

// runLive measures both servers, each with every engine it knows and the
// host's real state, against one running container of the host.
func runLive(ctx context.Context, c config) (*LiveResult, error) {
	docker := output(ctx, c.dockerBin, "ps", "--format", "{{.Names}}")
	lxc := output(ctx, "lxc-ls", "--running")
	ph := LivePhase{Label: "the host's own containers"}
	for _, n := range docker {
		ph.Containers = append(ph.Containers, "docker/"+n)
	}
	for _, n := range lxc {
		ph.Containers = append(ph.Containers, "lxc/"+n)
	}
	slices.Sort(docker)
	switch {
	case len(docker) > 0:
		ph.Queries = docker[:1]
	case len(lxc) > 0:
		ph.Queries = lxc[:1]
	default:
		return nil, errNoLiveContainers
	}
	servers, stop, err := liveServers(ctx, c, ph.Queries)
	defer stop()
	if err != nil {
		return nil, err
	}
	if err := measureLive(ctx, c, servers, &ph); err != nil {
		return nil, err
	}
	return &LiveResult{Phases: []LivePhase{ph}}, nil
}

// liveContainer is one container of the mixed set -live-make starts.
type liveContainer struct {
	engine, name string
	start        [][]string // commands, in order
	remove       [][]string
}

// mixedSet is the live host: two Docker containers and one Podman
// container, then the same with one LXC container.
func mixedSet(c config) (base []liveContainer, lxc liveContainer) {
	prefix := fmt.Sprintf("rootbench-live-%d-", os.Getpid())
	run := func(engine, bin, image, name string) liveContainer {
		return liveContainer{engine: engine, name: name,
			start:  [][]string{{bin, "run", "-d", "--name", name, "--hostname", name, "--network", "none", image, "sleep", "3600"}},
			remove: [][]string{{bin, "rm", "-f", name}}}
	}
	base = []liveContainer{
		run("docker", c.dockerBin, c.image, prefix+"docker-a"),
		run("docker", c.dockerBin, c.image, prefix+"docker-b"),
		run("podman", "podman", c.podmanImage, prefix+"podman"),
	}
	name := prefix + "lxc"
	lxc = liveContainer{engine: "lxc", name: name,
		start:  [][]string{{"sh", c.lxcScript, "create", name}, {"lxc-start", "-n", name}},
		remove: [][]string{{"lxc-stop", "-k", "-n", name}, {"lxc-destroy", "-f", "-n", name}}}
	return base, lxc
}

func (lc liveContainer) up(ctx context.Context) error {
	for _, cmd := range lc.start {
		if err := runCommand(ctx, cmd[0], cmd[1:]...); err != nil {
			return fmt.Errorf("starting %s container %s: %w", lc.engine, lc.name, err)
		}
	}
	return nil
}

func (lc liveContainer) down() {
	for _, cmd := range lc.remove {
		runCommand(context.Background(), cmd[0], cmd[1:]...)
	}
}

// runLiveMixed starts the mixed set, measures both servers on it, adds an
// LXC container, measures again, and removes what it started.
func runLiveMixed(ctx context.Context, c config) (*LiveResult, error) {
	base, lxc := mixedSet(c)
	var started []liveContainer
	defer func() {
		for _, lc := range started {
			lc.down()
		}
	}()
	ph := LivePhase{Label: "2 Docker + 1 Podman containers"}
	for _, lc := range base {
		if err := lc.up(ctx); err != nil {
			return nil, err
		}
		started = append(started, lc)
		ph.Containers = append(ph.Containers, lc.engine+"/"+lc.name)
		ph.Queries = append(ph.Queries, lc.name)
	}
	servers, stop, err := liveServers(ctx, c, ph.Queries)
	defer stop()
	if err != nil {
		return nil, err
	}
	lr := &LiveResult{}
	if err := measureLive(ctx, c, servers, &ph); err != nil {
		return nil, err
	}
	lr.Phases = append(lr.Phases, ph)

	if err := lxc.up(ctx); err != nil {
		return lr, err
	}
	started = append(started, lxc)
	ph2 := LivePhase{Label: "the same plus 1 LXC container",
		Containers: append(slices.Clone(ph.Containers), "lxc/"+lxc.name),
		Queries:    append(slices.Clone(ph.Queries), lxc.name)}
	// Both servers keep running: rootd learns of the container from the
	// LXC directory's events, the reference looks on every request.
	if err := waitAll(ctx, servers, []string{lxc.name}, time.Now(), c.startLimit); err != nil {
		return lr, err
	}
	if err := measureLive(ctx, c, servers, &ph2); err != nil {
		return lr, err
	}
	lr.Phases = append(lr.Phases, ph2)
	return lr, nil
}

// FreshResult is the distribution of the time from `docker run -d`
// returning to rootd resolving the new container's name.
type FreshResult struct {
	Runs []float64 `json:"runs_ms"`
	// FirstTry counts runs where the very first request already found the
	// container; FirstTryFast those among them answered in under a
	// millisecond, i.e. from the index that Docker's events had updated,
	// without a List on the miss path.
	FirstTry     int `json:"first_try"`
	FirstTryFast int `json:"first_try_fast"`
	// Requests is the total number of requests sent while polling.
	Requests int `json:"requests"`
}

// runFreshness starts rootd on the live Docker daemon and times how long
// each new container takes to become resolvable by name.
func runFreshness(ctx context.Context, c config) (*FreshResult, error) {
	if output(ctx, c.dockerBin, "info", "--format", "{{.ID}}") == nil {
		return nil, errors.New("docker does not answer: freshness not measured (scripts/engines/docker.sh starts it)")
	}
	if output(ctx, c.dockerBin, "image", "inspect", "--format", "{{.Id}}", c.image) == nil {
		return nil, fmt.Errorf("image %s missing: freshness not measured (scripts/engines/docker.sh imports it)", c.image)
	}
	work := filepath.Join(c.work, "fresh")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	rd, err := StartRootd(c.tools, work, filepath.Join(work, "rootd.socket"), "docker", nil)
	if err != nil {
		return nil, err
	}
	defer rd.Stop()
	cl, err := connectRetry(ctx, rd.Socket, 30*time.Second)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	log.Printf("freshness: %d runs of docker run -d", c.freshRuns)
	fr := &FreshResult{}
	prefix := fmt.Sprintf("rootbench-fresh-%d-", os.Getpid())
	for i := range c.freshRuns {
		name := fmt.Sprintf("%s%d", prefix, i)
		d, firstTry, fast, reqs, err := freshOnce(ctx, c, cl, name)
		removeContainer(c.dockerBin, name)
		if err != nil {
			return fr, err
		}
		fr.Runs = append(fr.Runs, ms(d))
		fr.Requests += reqs
		if firstTry {
			fr.FirstTry++
			if fast {
				fr.FirstTryFast++
			}
		}
	}
	return fr, nil
}

func freshOnce(ctx context.Context, c config, cl *client.Client, name string) (d time.Duration, firstTry, fast bool, reqs int, err error) {
	cmd := exec.CommandContext(ctx, c.dockerBin, "run", "-d", "--name", name, "--network", "none", c.image, "sleep", "600")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return 0, false, false, 0, fmt.Errorf("docker run: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	ran := time.Now()
	deadline := ran.Add(10 * time.Second)
	for {
		t := time.Now()
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := cl.ProcessID(rctx, name)
		cancel()
		reqs++
		if err == nil {
			if reqs == 1 {
				firstTry, fast = true, time.Since(t) < time.Millisecond
			}
			return time.Since(ran), firstTry, fast, reqs, nil
		}
		if !errors.Is(err, client.ErrNoContainer) {
			return 0, false, false, reqs, fmt.Errorf("resolving %s: %w", name, err)
		}
		if time.Now().After(deadline) {
			return 0, false, false, reqs, fmt.Errorf("%s not resolvable 10s after docker run", name)
		}
	}
}

func removeContainer(docker, name string) {
	runCommand(context.Background(), docker, "rm", "-f", name)
}

func connectRetry(ctx context.Context, socket string, limit time.Duration) (*client.Client, error) {
	deadline := time.Now().Add(limit)
	for {
		cl, err := client.Connect(ctx, socket)
		if err == nil {
			return cl, nil
		}
		if time.Now().After(deadline) {
			return nil, err
		}
		time.Sleep(10 * time.Millisecond)
	}
}
