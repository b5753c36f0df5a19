// Package testclock is the one fake clock of the tests, shared by the backend's tests and the
// upstream clients' (they are different packages, so it cannot live in a _test.go file). It
// satisfies upstream.Clock. Sleep advances it at once, so nothing in a test waits for real
// time, and a test moves time on with Advance.
package testclock

import (
	"context"
	"sync"
	"time"
)

// Clock is a fake clock, safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// Start is when New's clocks start: a fixed instant, so tests and fixtures agree.
var Start = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

// New is a clock at Start.
func New() *Clock { return At(Start) }

// At is a clock at t.
func At(t time.Time) *Clock { return &Clock{t: t} }

// Now is the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Advance moves the clock on by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Sleep advances the clock by d at once and reports whether ctx ended.
func (c *Clock) Sleep(ctx context.Context, d time.Duration) error {
	c.Advance(d)
	return ctx.Err()
}
