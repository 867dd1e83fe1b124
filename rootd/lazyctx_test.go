package rootd

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestLazyDeadline(t *testing.T) {
	type key struct{}
	parent := context.WithValue(context.Background(), key{}, "v")

	t.Run("unarmed", func(t *testing.T) {
		c := newLazyDeadline(parent, time.Now().Add(time.Hour))
		if c.Err() != nil || c.Value(key{}) != "v" {
			t.Fatalf("Err %v, Value %v", c.Err(), c.Value(key{}))
		}
		if dl, ok := c.Deadline(); !ok || time.Until(dl) < 59*time.Minute {
			t.Fatalf("Deadline %v %v", dl, ok)
		}
		if c.armed.Load() {
			t.Fatal("Err or Deadline armed a timer")
		}
		c.release()
	})
	t.Run("expires while waited on", func(t *testing.T) {
		c := newLazyDeadline(parent, time.Now().Add(20*time.Millisecond))
		defer c.release()
		select {
		case <-c.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("Done never closed")
		}
		if !errors.Is(c.Err(), context.DeadlineExceeded) {
			t.Fatalf("Err = %v", c.Err())
		}
	})
	t.Run("expired before anyone waited", func(t *testing.T) {
		c := newLazyDeadline(parent, time.Now().Add(time.Millisecond))
		time.Sleep(5 * time.Millisecond)
		if !errors.Is(c.Err(), context.DeadlineExceeded) {
			t.Fatalf("Err = %v", c.Err())
		}
		<-c.Done() // armed already past its deadline: closed at once
	})
	t.Run("parent cancelled", func(t *testing.T) {
		p, cancel := context.WithCancel(parent)
		c := newLazyDeadline(p, time.Now().Add(time.Hour))
		defer c.release()
		cancel()
		if !errors.Is(c.Err(), context.Canceled) {
			t.Fatalf("Err = %v", c.Err())
		}
		<-c.Done()
	})
	t.Run("derived contexts follow it", func(t *testing.T) {
		c := newLazyDeadline(parent, time.Now().Add(20*time.Millisecond))
		defer c.release()
		d, cancel := context.WithCancel(c)
		defer cancel()
		select {
		case <-d.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("derived context not cancelled at the deadline")
		}
	})
}
