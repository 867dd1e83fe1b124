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

// LiveResult is the measurement on the host's own containers.
type LiveResult struct {
	Query  string   `json:"query"`
	Docker []string `json:"docker"`
	LXC    []string `json:"lxc"`
	Cells  []Cell   `json:"cells"`
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

// runLive measures both servers, each with every engine it knows and the
// host's real state, against one running container of the host.
func runLive(ctx context.Context, c config) (*LiveResult, error) {
	lr := &LiveResult{
		Docker: output(ctx, c.dockerBin, "ps", "--format", "{{.Names}}"),
		LXC:    output(ctx, "lxc-ls", "--running"),
	}
	switch {
	case len(lr.Docker) > 0:
		slices.Sort(lr.Docker)
		lr.Query = lr.Docker[0]
	case len(lr.LXC) > 0:
		lr.Query = lr.LXC[0]
	default:
		return nil, errNoLiveContainers
	}
	log.Printf("live host: %d docker, %d lxc containers; asking for %s", len(lr.Docker), len(lr.LXC), lr.Query)
	work := filepath.Join(c.work, "live")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return nil, err
	}
	started := time.Now()
	rd, err := StartRootd(c.tools, work, filepath.Join(work, "rootd.socket"), "", nil)
	if err != nil {
		return nil, err
	}
	defer rd.Stop()
	if _, err := WaitAnswer(ctx, rd, lr.Query, started, c.startLimit); err != nil {
		return nil, fmt.Errorf("rootd: %w", err)
	}
	servers := []*Server{rd}
	if !c.skipRef {
		started := time.Now()
		ref, err := StartReference(c.tools, filepath.Join(work, "ref"), nil)
		if err != nil {
			return nil, err
		}
		defer ref.Stop()
		if _, err := WaitAnswer(ctx, ref, lr.Query, started, c.startLimit); err != nil {
			return nil, fmt.Errorf("reference: %w", err)
		}
		servers = append(servers, ref)
	}
	for _, op := range Ops {
		for _, clients := range c.clients {
			for _, s := range servers {
				b := c.rootdCell
				if s.Label == "reference" {
					b = c.refCell
				}
				r, err := RunDriver(ctx, c.tools.Driver, s.Socket, op.Driver, clients, b, []string{lr.Query})
				if err != nil {
					return nil, err
				}
				log.Printf("  %-9s %-10s x%-2d p50 %8.1fµs p99 %9.1fµs %9.0f/s errors %d (%s)",
					s.Label, op.PDU, clients, r.P50, r.P99, r.Throughput(), r.Errors, r.Answer)
				lr.Cells = append(lr.Cells, Cell{Server: s.Label, Op: op.PDU, Clients: clients, R: r})
			}
		}
	}
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
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	exec.CommandContext(ctx, docker, "rm", "-f", name).Run()
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
