package resolver

import (
	"context"
	"testing"

	"github.com/rootd-project/rootd/engine"
	"github.com/rootd-project/rootd/engine/enginetest"
)

func TestListing(t *testing.T) {
	shared := id("shared")
	inNS := func(ns string, c engine.Container) engine.Container { c.Namespace = ns; return c }
	docker := enginetest.NewMemory("docker", []engine.Container{running(shared, 10, "web"), stopped(id("old"), "old")})
	ctrd := enginetest.NewMemory("containerd", []engine.Container{
		inNS("moby", running(shared, 10, shared)),
		inNS("b", running("ctr1", 401)),
		inNS("a", running("ctr1", 400)),
	})
	proc := newFakeProc()
	proc.setCgroup(10, "docker/"+shared)
	proc.setCgroup(400, "a/ctr1")
	r := newTestResolver(t, proc, docker, ctrd)
	if err := r.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	gen, got := r.Listing()
	type row struct{ engine, ns, id, cgroup string }
	want := []row{
		{"docker", "", id("old"), ""},
		{"docker", "", shared, "docker/" + shared},
		{"containerd", "a", "ctr1", "a/ctr1"},
		{"containerd", "b", "ctr1", ""}, // its /proc could not be read
	}
	if len(got) != len(want) {
		t.Fatalf("Listing has %d entries: %+v", len(got), got)
	}
	// docker's two are in ID order; which comes first depends on the hashes.
	if got[0].ID != want[0].id {
		want[0], want[1] = want[1], want[0]
	}
	for i, w := range want {
		g := got[i]
		if (row{g.Engine, g.Namespace, g.ID, g.Cgroup}) != w {
			t.Errorf("Listing[%d] = %+v, want %+v", i, row{g.Engine, g.Namespace, g.ID, g.Cgroup}, w)
		}
	}
	// Cgroups are read once per init process.
	reads := proc.cgroupReads.Load()
	if gen2, _ := r.Listing(); gen2 != gen {
		t.Errorf("gen changed without a change: %d -> %d", gen, gen2)
	}
	// Only the unreadable one is tried again, and verification may refuse
	// it (its process does not exist) before its cgroup is read.
	if n := proc.cgroupReads.Load() - reads; n > 1 {
		t.Errorf("second Listing read %d cgroups", n)
	}
}
