package engine

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name string
		b    Backoff
		want []time.Duration
	}{
		{"doubles up to max", Backoff{Min: 100 * ms, Max: 1000 * ms}, []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1000 * ms, 1000 * ms}},
		{"zero value", Backoff{}, []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 2000 * ms, 2000 * ms}},
		{"max below min", Backoff{Min: 5 * time.Second, Max: time.Second}, []time.Duration{5 * time.Second, 5 * time.Second}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []time.Duration
			for range tc.want {
				got = append(got, tc.b.Next())
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("pauses %v, want %v", got, tc.want)
			}
			tc.b.Reset()
			if d := tc.b.Next(); d != tc.want[0] {
				t.Fatalf("after Reset: %v, want %v", d, tc.want[0])
			}
		})
	}
}

func TestBackoffWaitEndsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	b := Backoff{Min: time.Hour}
	if b.Wait(ctx) {
		t.Fatal("Wait reported a full pause after its context ended")
	}
}

func TestDebounce(t *testing.T) {
	t.Run("one Resync for a burst", func(t *testing.T) {
		d := NewDebounce(20*time.Millisecond, time.Hour)
		defer d.Stop()
		if d.Pending() {
			t.Fatal("pending before any change")
		}
		for range 5 {
			d.Changed()
		}
		select {
		case <-d.C():
		case <-time.After(10 * time.Second):
			t.Fatal("no Resync after a burst")
		}
		d.Fired()
		if d.Pending() {
			t.Fatal("still pending after Fired")
		}
		select {
		case <-d.C():
			t.Fatal("a second Resync for one burst")
		case <-time.After(50 * time.Millisecond):
		}
	})
	t.Run("a steady stream still resyncs within Max", func(t *testing.T) {
		d := NewDebounce(time.Hour, 30*time.Millisecond)
		defer d.Stop()
		deadline := time.After(10 * time.Second)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				d.Changed() // each change alone would push a Quiet of an hour
			case <-d.C():
				return
			case <-deadline:
				t.Fatal("changes without pause postponed the Resync forever")
			}
		}
	})
}

func TestReachability(t *testing.T) {
	var r Reachability
	down := errors.New("connection refused")
	steps := []struct {
		err        error
		lost, back bool
	}{
		{down, true, false}, // never seen: reported lost once
		{down, false, false},
		{nil, false, true},
		{nil, false, false},
		{down, true, false},
	}
	for i, st := range steps {
		lost, back := r.Note("/run/x.sock", st.err)
		if lost != st.lost || back != st.back {
			t.Fatalf("step %d: lost %v back %v, want %v %v", i, lost, back, st.lost, st.back)
		}
	}
	if lost, back := r.Note("/run/y.sock", nil); lost || back {
		t.Fatalf("a new address that answers: lost %v back %v", lost, back)
	}
}
