package resolver

import (
	"context"
	"errors"
	"testing"

	"github.com/rootd-project/rootd/engine"
	"github.com/rootd-project/rootd/engine/enginetest"
)

func TestDescribe(t *testing.T) {
	proc := newFakeProc()
	proc.setCgroup(100, "docker/"+idA)
	proc.hostnames[100] = "web-host"
	proc.setCgroup(101, "docker/"+idB) // no hostname: the read fails with ESRCH
	proc.setCgroup(300, "")            // root cgroup
	docker := enginetest.NewMemory("docker", []engine.Container{
		running(idA, 100, "web"),
		running(idB, 101, "dying"),
		stopped(idS, "old"),
		running(idE, 300, "rootcg"),
		running(hexID("aaaa2", "0"), 0, "other"),
	})
	r := newTestResolver(t, proc, docker)
	ctx := context.Background()

	tests := []struct {
		query     string
		wantID    string // "" when nothing is described
		cgroup    string
		host      string
		err       error
		ambiguous int
	}{
		{query: "web", wantID: idA, cgroup: "docker/" + idA, host: "web-host"},
		{query: "docker:web", wantID: idA, cgroup: "docker/" + idA, host: "web-host"},
		{query: idA[:10], wantID: idA, cgroup: "docker/" + idA, host: "web-host"},
		{query: "old", wantID: idS, err: engine.ErrNotRunning},
		{query: "dying", wantID: idB, cgroup: "docker/" + idB, err: engine.ErrNotRunning},
		{query: "rootcg", wantID: idE, err: ErrUnverified},
		{query: "aaaa", ambiguous: 2},
		{query: "nosuch", err: engine.ErrNotFound},
		{query: "", err: engine.ErrInvalidName},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			d, err := r.Describe(ctx, tt.query)
			if tt.ambiguous > 0 {
				var amb *engine.AmbiguousError
				if !errors.As(err, &amb) || len(amb.Candidates) != tt.ambiguous {
					t.Fatalf("got %+v, %v; want %d candidates", d, err, tt.ambiguous)
				}
				return
			}
			if !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Fatalf("error %v, want %v", err, tt.err)
			}
			if d.ID != tt.wantID || d.Cgroup != tt.cgroup || d.Hostname != tt.host {
				t.Fatalf("described %s cgroup %q host %q; want %s %q %q", d.ID, d.Cgroup, d.Hostname, tt.wantID, tt.cgroup, tt.host)
			}
		})
	}
}

func TestDescribePID(t *testing.T) {
	proc := newFakeProc()
	proc.setCgroup(100, "docker/"+idA)
	proc.hostnames[100] = "web-host"
	proc.setCgroup(555, "docker/"+idA+"/sub") // a process below web's cgroup
	proc.setCgroup(558, "system.slice/cron.service")
	docker := enginetest.NewMemory("docker", []engine.Container{running(idA, 100, "web")})
	r := newTestResolver(t, proc, docker)
	ctx := context.Background()
	for _, pid := range []int{100, 555} {
		d, err := r.DescribePID(ctx, pid)
		if err != nil || d.ID != idA || d.PID != 100 || d.Cgroup != "docker/"+idA || d.Hostname != "web-host" {
			t.Errorf("pid %d: %+v, %v", pid, d, err)
		}
	}
	for _, pid := range []int{558, 777, 0, -1} {
		if d, err := r.DescribePID(ctx, pid); !errors.Is(err, engine.ErrNotFound) {
			t.Errorf("pid %d: %+v, %v; want ErrNotFound", pid, d, err)
		}
	}
}
