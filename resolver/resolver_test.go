package resolver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/rootd-project/rootd/engine"
	"github.com/rootd-project/rootd/engine/enginetest"
)

func hexID(prefix, fill string) string { return prefix + strings.Repeat(fill, 64-len(prefix)) }

var (
	idA  = hexID("aaaa1111", "1")
	idB  = hexID("aaab", "2")
	idC  = hexID("c0ffee", "3")
	idD  = hexID("d00d", "4")
	idQ  = hexID("f00", "5")
	idK1 = hexID("b1", "6")
	idK2 = hexID("b2", "6")
	idP1 = hexID("b3", "7")
	idP2 = hexID("b4", "7")
	idS  = hexID("5707", "8")
	idE  = hexID("e1e1", "9")
)

// rankingEngines is a docker, a podman and an lxc engine whose containers
// exercise every rule of the query language.
func rankingEngines() []engine.Engine {
	docker := enginetest.NewMemory("docker", []engine.Container{
		running(idA, 100, "web"),
		running(idB, 101, "db"),
		running(idC, 102, "shared"),
		running(idD, 103, "aaab"), // a name that is also B's ID prefix
		running(idQ, 104, idA),    // a name that is A's full ID
		withPod(running(idK1, 105, "k8s_nginx_web-0"), "prod", "web-0", "nginx"),
		withPod(running(idP1, 106), "prod", "db-0", "pg"),
		stopped(idS, "old"),
	})
	podman := enginetest.NewMemory("podman", []engine.Container{
		running(idE, 200, "shared"),
		// The exited predecessor of K1, as Kubernetes keeps it.
		withPod(stopped(idK2), "prod", "web-0", "nginx"),
		withPod(running(idP2, 201), "prod", "db-0", "pg"),
	})
	lxc := enginetest.NewMemory("lxc", []engine.Container{
		running("web1", 300, "web1"),
		running("web10", 301, "web10"),
	})
	return []engine.Engine{docker, podman, lxc}
}

func TestResolveRanking(t *testing.T) {
	r := newTestResolver(t, nil, rankingEngines()...)
	ctx := context.Background()

	tests := []struct {
		query string
		want  string   // engine:id when found
		amb   []string // engine:id candidates when ambiguous
		err   error    // expected sentinel otherwise
	}{
		{query: idA, want: "docker:" + idA}, // beats Q, which is named idA
		{query: "web", want: "docker:" + idA},
		{query: "/web", want: "docker:" + idA},
		{query: "docker:web", want: "docker:" + idA},
		{query: "docker:/web", want: "docker:" + idA},
		{query: "aaaa", want: "docker:" + idA},
		{query: "aaa", amb: []string{"docker:" + idA, "docker:" + idB}},
		{query: "a", amb: []string{"docker:" + idA, "docker:" + idB}},
		{query: "aaab", want: "docker:" + idD},   // exact name beats unique prefix
		{query: "aaab2", want: "docker:" + idB},  // no such name: prefix
		{query: "c0f", want: "docker:" + idC},    // prefix
		{query: "c", want: "docker:" + idC},      // one character is enough when unique
		{query: "cx", err: engine.ErrNotFound},   // shares only a first character
		{query: "AAAA", err: engine.ErrNotFound}, // IDs are lowercase; no folding
		{query: idA[:63] + "x", err: engine.ErrNotFound},
		{query: "shared", amb: []string{"docker:" + idC, "podman:" + idE}},
		{query: "/shared", amb: []string{"docker:" + idC, "podman:" + idE}},
		{query: "docker:shared", want: "docker:" + idC},
		{query: "podman:shared", want: "podman:" + idE},
		{query: "docker:e1e1", err: engine.ErrNotFound},
		{query: "podman:e1e1", want: "podman:" + idE},
		{query: "nosuch:web", err: engine.ErrNotFound}, // not an engine: all of it is the name
		{query: "prod/web-0/nginx", want: "docker:" + idK1},
		{query: "podman:prod/web-0/nginx", want: "podman:" + idK2},
		{query: "prod/db-0/pg", amb: []string{"docker:" + idP1, "podman:" + idP2}},
		{query: "prod/web-0", err: engine.ErrNotFound},
		{query: "prod//nginx", err: engine.ErrNotFound},
		{query: "old", want: "docker:" + idS}, // stopped containers resolve
		{query: "web1", want: "lxc:web1"},     // exact ID beats being a prefix of web10
		{query: "web10", want: "lxc:web10"},
		{query: "lxc:web", amb: []string{"lxc:web1", "lxc:web10"}},
		{query: "lxc:" + idA, err: engine.ErrNotFound},
		{query: strings.Repeat("a", MaxQueryLen), err: engine.ErrNotFound},
		{query: "", err: engine.ErrInvalidName},
		{query: "docker:", err: engine.ErrInvalidName},
		{query: "we\x00b", err: engine.ErrInvalidName},
		{query: "web\n", err: engine.ErrInvalidName},
		{query: "\x7f", err: engine.ErrInvalidName},
		{query: strings.Repeat("a", MaxQueryLen+1), err: engine.ErrInvalidName},
	}
	for _, tt := range tests {
		name := tt.query
		if len(name) > 40 {
			name = name[:40] + "..."
		}
		t.Run(fmt.Sprintf("%q", name), func(t *testing.T) {
			c, err := r.Resolve(ctx, tt.query)
			switch {
			case tt.want != "":
				if err != nil || c.Engine+":"+c.ID != tt.want {
					t.Fatalf("Resolve() = %s:%s, %v; want %s", c.Engine, c.ID, err, tt.want)
				}
			case tt.amb != nil:
				var amb *engine.AmbiguousError
				if !errors.Is(err, engine.ErrAmbiguous) || !errors.As(err, &amb) {
					t.Fatalf("Resolve() = %s:%s, %v; want ambiguous", c.Engine, c.ID, err)
				}
				got := ids(amb.Candidates)
				slices.Sort(got)
				if !slices.Equal(got, tt.amb) {
					t.Fatalf("candidates = %v, want %v", got, tt.amb)
				}
				if amb.Query != tt.query {
					t.Fatalf("AmbiguousError.Query = %q", amb.Query)
				}
			default:
				if !errors.Is(err, tt.err) {
					t.Fatalf("Resolve() = %s:%s, %v; want %v", c.Engine, c.ID, err, tt.err)
				}
				if c.ID != "" {
					t.Fatalf("Resolve() returned %s with an error", c.ID)
				}
			}
		})
	}
}

func TestSameIDInTwoEnginesIsOneContainer(t *testing.T) {
	// Docker's containers also appear in containerd's "moby" namespace.
	id := id("shared-container")
	docker := enginetest.NewMemory("docker", []engine.Container{running(id, 10, "web")})
	ctrd := enginetest.NewMemory("containerd", []engine.Container{running(id, 10, id)})
	for _, order := range [][]engine.Engine{{docker, ctrd}, {ctrd, docker}} {
		r := newTestResolver(t, nil, order...)
		first := order[0].Name()
		for _, q := range []string{id, id[:12]} {
			c, err := r.Resolve(context.Background(), q)
			if err != nil || c.Engine != first {
				t.Errorf("engines %s first: Resolve(%.12s) = %s, %v; want the %s entry", first, q, c.Engine, err, first)
			}
		}
	}
}

func TestPIDCgroupHostname(t *testing.T) {
	proc := newFakeProc()
	proc.setCgroup(100, "docker/"+idA)
	proc.hostnames[100] = "web-host"
	proc.setCgroup(101, "docker/"+idB)
	proc.hostnames[101] = "paused-host"
	proc.setCgroup(300, "")           // root cgroup
	proc.hostnames[301] = "gone-soon" // no cgroup entry: ESRCH
	docker := enginetest.NewMemory("docker", []engine.Container{
		running(idA, 100, "web"),
		{ID: idB, Names: []string{"paused"}, PID: 101, State: engine.StatePaused},
		{ID: idC, Names: []string{"restarting"}, PID: 102, State: engine.StateRestarting},
		{ID: idD, Names: []string{"nopid"}, State: engine.StateRunning},
		stopped(idS, "stopped"),
		running(idE, 300, "rootcg"),
		running(idK1, 301, "vanished"),
	})
	r := newTestResolver(t, proc, docker)
	ctx := context.Background()

	tests := []struct {
		query   string
		pid     int
		pidErr  error
		cgroup  string
		cgErr   error
		host    string
		hostErr error
	}{
		{query: "web", pid: 100, cgroup: "docker/" + idA, host: "web-host"},
		{query: "paused", pid: 101, cgroup: "docker/" + idB, host: "paused-host"},
		{query: "restarting", pidErr: engine.ErrNotRunning, cgErr: engine.ErrNotRunning, hostErr: engine.ErrNotRunning},
		{query: "nopid", pidErr: engine.ErrNotRunning, cgErr: engine.ErrNotRunning, hostErr: engine.ErrNotRunning},
		{query: "stopped", pidErr: engine.ErrNotRunning, cgErr: engine.ErrNotRunning, hostErr: engine.ErrNotRunning},
		// An init in the root cgroup is in no container's cgroup.
		{query: "rootcg", pidErr: ErrUnverified, cgErr: ErrUnverified, hostErr: ErrUnverified},
		// An init whose cgroup cannot be read cannot be verified.
		{query: "vanished", pidErr: engine.ErrNotRunning, cgErr: engine.ErrNotRunning, hostErr: engine.ErrNotRunning},
		{query: "nosuch", pidErr: engine.ErrNotFound, cgErr: engine.ErrNotFound, hostErr: engine.ErrNotFound},
		{query: "", pidErr: engine.ErrInvalidName, cgErr: engine.ErrInvalidName, hostErr: engine.ErrInvalidName},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			pid, err := r.PID(ctx, tt.query)
			if !errors.Is(err, tt.pidErr) || (err == nil && pid != tt.pid) {
				t.Errorf("PID() = %d, %v; want %d, %v", pid, err, tt.pid, tt.pidErr)
			}
			cpid, cg, err := r.CgroupPath(ctx, tt.query)
			if !errors.Is(err, tt.cgErr) || (err == nil && (cg != tt.cgroup || cpid != tt.pid)) {
				t.Errorf("CgroupPath() = %d, %q, %v; want %d, %q, %v", cpid, cg, err, tt.pid, tt.cgroup, tt.cgErr)
			}
			hpid, h, err := r.Hostname(ctx, tt.query)
			if !errors.Is(err, tt.hostErr) || (err == nil && (h != tt.host || hpid != tt.pid)) {
				t.Errorf("Hostname() = %d, %q, %v; want %d, %q, %v", hpid, h, err, tt.pid, tt.host, tt.hostErr)
			}
		})
	}
}

func TestCgroupPathIsCachedPerInitProcess(t *testing.T) {
	proc := newFakeProc()
	proc.setCgroup(100, "docker/"+idA)
	proc.setCgroup(150, "docker/"+idA+"/restarted")
	docker := enginetest.NewMemory("docker", []engine.Container{running(idA, 100, "web")})
	r := newTestResolver(t, proc, docker)
	ctx := context.Background()

	for range 3 {
		if _, cg, err := r.CgroupPath(ctx, "web"); err != nil || cg != "docker/"+idA {
			t.Fatalf("CgroupPath() = %q, %v", cg, err)
		}
	}
	if n := proc.cgroupReads.Load(); n != 1 {
		t.Fatalf("cgroup read %d times for one init process, want 1", n)
	}
	// A relist that keeps the same init keeps the cache...
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	r.CgroupPath(ctx, "web")
	if n := proc.cgroupReads.Load(); n != 1 {
		t.Fatalf("cgroup read %d times after a relist, want 1", n)
	}
	// ...a new init process reads it afresh.
	docker.Set([]engine.Container{running(idA, 150, "web")})
	if err := r.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if _, cg, err := r.CgroupPath(ctx, "web"); err != nil || cg != "docker/"+idA+"/restarted" {
		t.Fatalf("CgroupPath() after restart = %q, %v", cg, err)
	}
}

func TestByPID(t *testing.T) {
	proc := newFakeProc()
	proc.setCgroup(100, "docker/"+idA)
	proc.setCgroup(555, "docker/"+idA)          // a process in web
	proc.setCgroup(556, "docker/"+idA+"/sub/x") // below web's cgroup
	proc.setCgroup(557, "docker/"+idA+"x")      // a sibling, not below
	proc.setCgroup(558, "system.slice/cron.service")
	proc.setCgroup(559, "") // root cgroup
	proc.setCgroup(101, "shared/cg")
	proc.setCgroup(200, "shared/cg")
	proc.setCgroup(600, "shared/cg/child")
	docker := enginetest.NewMemory("docker", []engine.Container{
		running(idA, 100, "web"),
		inCgroup(running(idB, 101, "one"), "shared/cg"),
		running(idK1, 999, "no-cgroup"), // its init has gone: left out of the map
	})
	podman := enginetest.NewMemory("podman", []engine.Container{inCgroup(running(idE, 200, "two"), "shared/cg")})
	r := newTestResolver(t, proc, docker, podman)
	ctx := context.Background()

	tests := []struct {
		pid  int
		want string
		amb  int
		err  error
	}{
		{pid: 100, want: idA},
		{pid: 555, want: idA},
		{pid: 556, want: idA},
		{pid: 200, want: idE}, // an init PID decides before the shared cgroup
		{pid: 557, err: engine.ErrNotFound},
		{pid: 558, err: engine.ErrNotFound},
		{pid: 559, err: engine.ErrNotFound},
		{pid: 777, err: unix.ESRCH},
		{pid: 0, err: engine.ErrNotFound},
		{pid: 600, amb: 2},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.pid), func(t *testing.T) {
			c, err := r.ByPID(ctx, tt.pid)
			switch {
			case tt.want != "":
				if err != nil || c.ID != tt.want {
					t.Fatalf("ByPID() = %s, %v; want %s", c.ID, err, tt.want)
				}
			case tt.amb > 0:
				var amb *engine.AmbiguousError
				if !errors.As(err, &amb) || len(amb.Candidates) != tt.amb {
					t.Fatalf("ByPID() = %s, %v; want ambiguous between %d", c.ID, err, tt.amb)
				}
			default:
				if !errors.Is(err, tt.err) || !errors.Is(err, engine.ErrNotFound) {
					t.Fatalf("ByPID() = %s, %v; want ErrNotFound and %v", c.ID, err, tt.err)
				}
			}
		})
	}

	// A container created after the index was built is found by the
	// refresh that a miss triggers.
	idN := id("new")
	proc.setCgroup(700, "docker/"+idN)
	proc.setCgroup(701, "docker/"+idN)
	docker.Upsert(running(idN, 700, "new"))
	if c, err := r.ByPID(ctx, 701); err != nil || c.ID != idN {
		t.Fatalf("ByPID(701) for a new container = %s, %v", c.ID, err)
	}
}

func TestContainersSorted(t *testing.T) {
	r := newTestResolver(t, nil,
		enginetest.NewMemory("podman", []engine.Container{running("p2", 1, "zeta"), running("p1", 2, "alpha")}),
		enginetest.NewMemory("docker", []engine.Container{stopped("d2"), running("d1", 3, "mid")}),
	)
	if got := r.Containers(); len(got) != 0 {
		t.Fatalf("Containers() before any refresh = %v", ids(got))
	}
	if err := r.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := ids(r.Containers())
	want := []string{"docker:d2", "docker:d1", "podman:p1", "podman:p2"}
	if !slices.Equal(got, want) {
		t.Fatalf("Containers() = %v, want %v", got, want)
	}
}

// TestContainersOnce: a container two engines report (the CRI's view of a
// containerd container) is listed once, as the engine first in precedence
// reports it.
func TestContainersOnce(t *testing.T) {
	r := newTestResolver(t, nil,
		enginetest.NewMemory("cri", []engine.Container{running(idA, 1, "nginx")}),
		enginetest.NewMemory("containerd", []engine.Container{running(idA, 1), running(idB, 2, "solo")}),
	)
	if err := r.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := ids(r.Containers())
	want := []string{"containerd:" + idB, "cri:" + idA}
	if !slices.Equal(got, want) {
		t.Fatalf("Containers() = %v, want %v", got, want)
	}
}

func TestEngineNamesAreNormalised(t *testing.T) {
	// An engine that breaks the contract a little: a leading "/" on a
	// name, a foreign Engine field, an entry without ID.
	e := enginetest.NewMemory("docker", nil)
	r := newTestResolver(t, nil, e)
	e.Set([]engine.Container{
		{ID: idA, Names: []string{"/web", ""}, PID: 1, State: engine.StateRunning},
		{Names: []string{"noid"}},
	})
	if err := r.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	cs := r.Containers()
	if len(cs) != 1 || cs[0].Engine != "docker" || !slices.Equal(cs[0].Names, []string{"web"}) {
		t.Fatalf("Containers() = %+v", cs)
	}
}

// TestSameIDInTwoNamespaces: containerd IDs are unique per namespace only,
// so one ID in two namespaces is two containers, never one silently chosen.
func TestSameIDInTwoNamespaces(t *testing.T) {
	inNS := func(ns string, c engine.Container) engine.Container { c.Namespace = ns; return c }
	ctr := enginetest.NewMemory("containerd", []engine.Container{
		inNS("rootd-test", running("ctr1", 400)),
		inNS("k8s.io", running("ctr1", 401)),
		inNS("rootd-test", running("solo", 402)),
	})
	proc := newFakeProc()
	proc.setCgroup(400, "rootd-test/ctr1")
	proc.setCgroup(401, "k8s.io/ctr1")
	proc.setCgroup(402, "rootd-test/solo")
	r := newTestResolver(t, proc, ctr)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-r.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("Ready not closed after Run's first List")
	}
	for _, q := range []string{"ctr1", "containerd:ctr1", "ctr"} {
		var amb *engine.AmbiguousError
		if _, err := r.Resolve(ctx, q); !errors.As(err, &amb) || len(amb.Candidates) != 2 {
			t.Errorf("Resolve(%q) = %v, want ambiguous between both namespaces", q, err)
		}
	}
	if pid, err := r.PID(ctx, "solo"); err != nil || pid != 402 {
		t.Errorf("PID(solo) = %d, %v", pid, err)
	}
	if n := len(r.Containers()); n != 3 {
		t.Errorf("Containers() has %d entries, want 3", n)
	}
	// Removing one namespace's ctr1 leaves the other resolvable.
	ctr.RemoveFrom("k8s.io", "ctr1")
	waitFor(t, "ctr1 left in one namespace", func() bool { pid, err := r.PID(ctx, "ctr1"); return err == nil && pid == 400 })
}
