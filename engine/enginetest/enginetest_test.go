package enginetest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rootd-project/rootd/engine"
)

// waitLimit bounds how long a test waits for something asynchronous.
const waitLimit = 10 * time.Second

// memoryRuntime drives a Memory engine as the suite drives a real runtime.
type memoryRuntime struct{ e *Memory }

func (r memoryRuntime) Create(_ context.Context, name string) (string, error) {
	id := "id-" + name
	r.e.Upsert(engine.Container{ID: id, Names: []string{name}, PID: 4242, State: engine.StateRunning})
	return id, nil
}

func (r memoryRuntime) Pause(_ context.Context, id string) error {
	r.e.Upsert(engine.Container{ID: id, Names: []string{strings.TrimPrefix(id, "id-")}, PID: 4242, State: engine.StatePaused})
	return nil
}

func (r memoryRuntime) Stop(_ context.Context, id string) error {
	r.e.Upsert(engine.Container{ID: id, Names: []string{strings.TrimPrefix(id, "id-")}, State: engine.StateStopped})
	return nil
}

func (r memoryRuntime) Remove(_ context.Context, id string) error { r.e.Remove(id); return nil }
func (r memoryRuntime) StopRuntime(context.Context) error         { r.e.SetAvailable(false); return nil }
func (r memoryRuntime) StartRuntime(context.Context) error        { r.e.SetAvailable(true); return nil }

func memoryHarness(e engine.Engine, rt *memoryRuntime) Harness {
	absent := NewMemory("mem", nil)
	absent.SetAvailable(false)
	h := Harness{
		Open:       func(context.Context) (engine.Engine, error) { return e, nil },
		OpenAbsent: func(context.Context) (engine.Engine, error) { return absent, nil },
		Expect:     []engine.Container{{ID: "a1", Names: []string{"web"}, State: engine.StateRunning}},
		Timeout:    waitLimit,
	}
	if rt != nil {
		h.Runtime, h.Outage = rt, rt
	}
	return h
}

func seed() []engine.Container {
	return []engine.Container{
		{ID: "a1", Names: []string{"web"}, PID: 10, State: engine.StateRunning},
		{ID: "b2", State: engine.StateStopped},
	}
}

// TestMemoryPassesSuite shows the suite can be passed: Memory keeps every
// rule, through a whole container lifecycle and an outage.
func TestMemoryPassesSuite(t *testing.T) {
	e := NewMemory("mem", seed())
	Run(t, memoryHarness(e, &memoryRuntime{e}))
}

// Engines that each break one rule of the contract. The suite must fail
// them, naming the rule.

type noResync struct{ *Memory }

// Watch drops the initial Resync, as the docker and lxc watchers once did.
func (n noResync) Watch(ctx context.Context, events chan<- engine.Event) {
	inner := make(chan engine.Event)
	go n.Memory.Watch(ctx, inner)
	first := true
	for {
		select {
		case ev := <-inner:
			if first && ev.Kind == engine.Resync {
				first = false
				continue
			}
			if !engine.Send(ctx, events, ev) {
				return
			}
		case <-ctx.Done():
			return
		}
	}
}

type wrongField struct {
	*Memory
	mutate func([]engine.Container)
}

func (w wrongField) List(ctx context.Context) ([]engine.Container, error) {
	cs, err := w.Memory.List(ctx)
	w.mutate(cs)
	return cs, err
}

type absentFails struct{ *Memory }

func (absentFails) List(context.Context) ([]engine.Container, error) {
	return nil, errors.New("dial unix /run/x.sock: connect: no such file or directory")
}

type closesEvents struct{ *Memory }

func (c closesEvents) Watch(ctx context.Context, events chan<- engine.Event) {
	c.Memory.Watch(ctx, events)
	close(events)
}

func TestSuiteCatchesBrokenEngines(t *testing.T) {
	tests := []struct {
		name    string
		harness func() Harness
		want    string
	}{
		{"no initial Resync", func() Harness {
			h := memoryHarness(noResync{NewMemory("mem", seed())}, nil)
			h.Timeout = 300 * time.Millisecond
			return h
		}, "a watch starts with Resync"},
		{"wrong Engine field", func() Harness {
			return memoryHarness(wrongField{NewMemory("mem", seed()), func(cs []engine.Container) { cs[0].Engine = "other" }}, nil)
		}, `List: container a1: Engine "other", want "mem"`},
		{"duplicate ID", func() Harness {
			m := NewMemory("mem", seed())
			return memoryHarness(wrongField{m, func(cs []engine.Container) { cs[1].ID = "a1" }}, nil)
		}, "ID a1 listed twice"},
		{"running without PID on a live runtime", func() Harness {
			h := memoryHarness(wrongField{NewMemory("mem", seed()), func(cs []engine.Container) { cs[0].PID = 0 }}, nil)
			h.Live = true
			return h
		}, "container a1 is running but has no PID"},
		{"stopped with a PID", func() Harness {
			return memoryHarness(wrongField{NewMemory("mem", seed()), func(cs []engine.Container) { cs[1].PID = 77 }}, nil)
		}, "container b2 is stopped but has PID 77"},
		{"leading slash", func() Harness {
			return memoryHarness(wrongField{NewMemory("mem", seed()), func(cs []engine.Container) { cs[0].Names = []string{"/web"} }}, nil)
		}, `name "/web" is empty or has a leading /`},
		{"absent runtime not ErrUnavailable", func() Harness {
			h := memoryHarness(NewMemory("mem", seed()), nil)
			h.OpenAbsent = func(context.Context) (engine.Engine, error) { return absentFails{NewMemory("mem", nil)}, nil }
			return h
		}, "want an error wrapping engine.ErrUnavailable"},
		{"expected container missing", func() Harness {
			h := memoryHarness(NewMemory("mem", seed()), nil)
			h.Expect = append(h.Expect, engine.Container{ID: "zz"})
			return h
		}, "expected container zz"},
		{"closes its channel", func() Harness {
			return memoryHarness(closesEvents{NewMemory("mem", seed())}, nil)
		}, "must never close it"},
		{"no Remove after rm", func() Harness {
			m := NewMemory("mem", seed())
			rt := &memoryRuntime{m}
			h := memoryHarness(m, rt)
			h.Runtime = forgetfulRemove{rt}
			h.Timeout = 300 * time.Millisecond
			return h
		}, "Remove on rm: the engine did not report it"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Test(tc.harness())
			if err == nil {
				t.Fatal("the suite passed an engine that breaks the contract")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("the suite's message does not say what broke:\n%v\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

// forgetfulRemove deletes the container without the engine telling anyone.
type forgetfulRemove struct{ *memoryRuntime }

func (f forgetfulRemove) Remove(_ context.Context, id string) error { return nil }
