package enginetest

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/rootd-project/rootd/engine"
)

func TestMemoryEngine(t *testing.T) {
	e := NewMemory("docker", []engine.Container{{ID: "a1", Names: []string{"web"}, PID: 10, State: engine.StateRunning}})
	if e.Name() != "docker" {
		t.Fatalf("Name() = %q", e.Name())
	}
	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan engine.Event)
	done := make(chan struct{})
	go func() { defer close(done); e.Watch(ctx, events) }()
	defer func() { cancel(); <-done }()

	next := func() engine.Event {
		t.Helper()
		select {
		case ev := <-events:
			return ev
		case <-time.After(waitLimit):
			t.Fatal("no event")
			return engine.Event{}
		}
	}
	ids := func() []string {
		t.Helper()
		cs, err := e.List(ctx)
		if err != nil {
			t.Fatalf("List() error = %v", err)
		}
		out := []string{}
		for _, c := range cs {
			if c.Engine != "docker" {
				t.Fatalf("container %s has engine %q", c.ID, c.Engine)
			}
			out = append(out, c.ID)
		}
		return out
	}

	if ev := next(); ev.Kind != engine.Resync {
		t.Fatalf("first event = %v, want resync", ev.Kind)
	}
	if got := ids(); !reflect.DeepEqual(got, []string{"a1"}) {
		t.Fatalf("ids = %v", got)
	}

	e.Upsert(engine.Container{ID: "b2", State: engine.StateStopped})
	if ev := next(); ev.Kind != engine.Upsert || ev.Container.ID != "b2" || ev.Container.Engine != "docker" {
		t.Fatalf("event = %+v, want upsert of b2", ev)
	}
	e.Remove("a1")
	if ev := next(); ev.Kind != engine.Remove || ev.ID != "a1" {
		t.Fatalf("event = %+v, want remove of a1", ev)
	}
	if got := ids(); !reflect.DeepEqual(got, []string{"b2"}) {
		t.Fatalf("ids = %v", got)
	}

	e.SetAvailable(false)
	if ev := next(); ev.Kind != engine.Unavailable || !errors.Is(ev.Err, engine.ErrUnavailable) {
		t.Fatalf("event = %+v, want unavailable", ev)
	}
	if _, err := e.List(ctx); !errors.Is(err, engine.ErrUnavailable) {
		t.Fatalf("List() while unavailable: %v", err)
	}
	e.Set([]engine.Container{{ID: "c3"}})
	if ev := next(); ev.Kind != engine.Resync {
		t.Fatalf("event = %+v, want resync", ev)
	}
	if got := ids(); !reflect.DeepEqual(got, []string{"c3"}) {
		t.Fatalf("ids after Set = %v", got)
	}

	boom := errors.New("boom")
	e.SetListErr(boom)
	if _, err := e.List(ctx); !errors.Is(err, boom) {
		t.Fatalf("List() with SetListErr: %v", err)
	}
	e.SetListErr(nil)
	// Every call counts, failed ones too: three ids() calls and two failing Lists.
	if n := e.ListCalls(); n != 5 {
		t.Fatalf("ListCalls() = %d, want 5", n)
	}
}

func TestMemoryEngineCopiesInput(t *testing.T) {
	in := []engine.Container{{ID: "a"}}
	e := NewMemory("podman", in)
	in[0].ID = "changed"
	cs, _ := e.List(context.Background())
	if cs[0].ID != "a" || cs[0].Engine != "podman" {
		t.Fatalf("List() = %+v, want the original copy", cs)
	}
}
