package resolver

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"testing"
	"time"

	"github.com/rootd-project/rootd/engine"
	"github.com/rootd-project/rootd/engine/enginetest"
	"github.com/rootd-project/rootd/internal/procfs"
)

// benchResolver indexes n docker containers (and an empty podman engine, so
// that every lookup crosses more than one engine) and returns a sample.
func benchResolver(b *testing.B, n int) (*Resolver, engine.Container) {
	b.Helper()
	cs := make([]engine.Container, n)
	proc := newFakeProc()
	for i := range cs {
		cs[i] = running(id(fmt.Sprint(i)), 1000+i, fmt.Sprintf("web-%d", i))
		proc.setCgroup(1000+i, "docker/"+cs[i].ID)
	}
	r := newTestResolver(b, proc, enginetest.NewMemory("docker", cs), enginetest.NewMemory("podman", nil))
	if err := r.Refresh(context.Background()); err != nil {
		b.Fatal(err)
	}
	return r, cs[n/2]
}

func BenchmarkResolve(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{10, 1000, 10000} {
		r, c := benchResolver(b, n)
		for _, q := range []struct{ kind, query string }{
			{"name", c.Names[0]},
			{"id", c.ID},
			{"prefix", c.ID[:12]},
		} {
			b.Run(fmt.Sprintf("%s/%d", q.kind, n), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					got, err := r.Resolve(ctx, q.query)
					if err != nil || got.ID != c.ID {
						b.Fatalf("Resolve(%s) = %s, %v", q.query, got.ID, err)
					}
				}
			})
		}
	}
}

func BenchmarkCgroupPathParallel(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{10, 10000} {
		r, c := benchResolver(b, n)
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, _, err := r.CgroupPath(ctx, c.Names[0]); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkVerifiedRealProc answers PID and CGROUPNAME for a container
// whose init is a real process, with the real /proc readers: the cost of
// verification on the hot path once the container and PID are verified
// (one pidfd_send_signal, or without pidfd one read of /proc/PID/stat).
func BenchmarkVerifiedRealProc(b *testing.B) {
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	pid := cmd.Process.Pid
	path, err := procfs.CgroupPath(pid)
	if err != nil {
		b.Skipf("sleep's cgroup: %v", err)
	}
	c := running(id("real"), pid, "real")
	c.Cgroups = []string{path}
	ctx := context.Background()
	for _, noPidfd := range []bool{false, true} {
		r := New([]engine.Engine{enginetest.NewMemory("docker", []engine.Container{c})}, Options{Log: quietLog(), NoPidfd: noPidfd})
		mode := "pidfd"
		if noPidfd {
			mode = "starttime"
		}
		b.Run("PID/"+mode, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.PID(ctx, "real"); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("CgroupPath/"+mode, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := r.CgroupPath(ctx, "real"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkHungEngine measures lookups while one engine is hung (its List
// never returns): a name in scope only of the hung engine, a container the
// hung engine had (answered as last known), and a name no engine has, next
// to the same miss with no hung engine at all. A miss still lists the
// healthy engines (that is the freshness rule); the hung engine adds
// nothing to it.
func BenchmarkHungEngine(b *testing.B) {
	ctx := context.Background()
	const n = 1000
	cs := make([]engine.Container, n)
	for i := range cs {
		cs[i] = running(id(fmt.Sprint(i)), 1000+i, fmt.Sprintf("web-%d", i))
	}
	healthy := func() *Resolver {
		r := newTestResolver(b, nil, enginetest.NewMemory("docker", cs), enginetest.NewMemory("podman", nil))
		if err := r.Refresh(ctx); err != nil {
			b.Fatal(err)
		}
		return r
	}
	withHung := func() *Resolver {
		sick := newStuck("sick", running(idB, 2, "sickbox"))
		proc := newFakeProc()
		r := New([]engine.Engine{enginetest.NewMemory("docker", cs), sick}, Options{
			Log: quietLog(), Cgroup: proc.cgroup, Hostname: proc.hostname,
			RefreshTimeout: 10 * time.Millisecond,
		})
		if err := r.Refresh(ctx); err != nil {
			b.Fatal(err)
		}
		sick.hang()
		b.Cleanup(sick.resume)
		if err := r.Refresh(ctx); !errors.Is(err, errListTimeout) {
			b.Fatalf("Refresh() of a hung engine = %v", err)
		}
		return r
	}
	for _, bc := range []struct {
		name, query string
		r           func() *Resolver
		found       bool
	}{
		{"no-hung-engine/miss", "nosuch", healthy, false},
		{"one-hung-engine/miss", "nosuch", withHung, false},
		{"one-hung-engine/miss-in-hung-engine", "sick:nosuch", withHung, false},
		{"one-hung-engine/last-known-container", "sickbox", withHung, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := bc.r()
			b.ReportAllocs()
			for b.Loop() {
				_, err := r.Resolve(ctx, bc.query)
				if (err == nil) != bc.found || (err != nil && !errors.Is(err, engine.ErrNotFound)) {
					b.Fatalf("Resolve(%s) = %v", bc.query, err)
				}
			}
		})
	}
}
