package upstream

import (
	"context"
	"math/rand/v2"
	"net/url"
	"sync"
	"testing"
	"time"
)

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
	return ctx.Err()
}
func (c *testClock) Advance(d time.Duration) { _ = c.Sleep(context.Background(), d) }

func newTestClock() *testClock { return &testClock{t: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)} }

// The limiter's promise: in no 60-second window do more than max_auth_per_minute calls pass,
// whatever the pattern of callers and however long they are willing to wait.
func TestLimiterNeverExceedsBudgetInAnyMinute(t *testing.T) {
	for _, perMinute := range []int{1, 2, 3, 10, 25} {
		clock := newTestClock()
		l := NewLimiters()
		l.Register("mount", "upstream.example:443", perMinute, clock.Now())
		h := l.Host("upstream.example:443", clock.Now())
		start := clock.Now()
		rng := rand.New(rand.NewPCG(1, uint64(perMinute)))
		var passed []time.Time
		for range 5000 {
			clock.Advance(time.Duration(rng.IntN(4000)) * time.Millisecond)
			wait := time.Duration(rng.IntN(20)) * time.Second
			if _, err := h.Acquire(context.Background(), clock, wait); err == nil {
				passed = append(passed, clock.Now())
			}
		}
		worst, lo := 0, 0
		for hi := range passed {
			for passed[hi].Sub(passed[lo]) >= time.Minute {
				lo++
			}
			worst = max(worst, hi-lo+1)
		}
		if worst > perMinute {
			t.Errorf("max_auth_per_minute=%d: %d calls passed within 60s", perMinute, worst)
		}
		// Over time at least half the budget must be usable, or the limiter starves callers.
		minutes := clock.Now().Sub(start).Minutes()
		if float64(len(passed)) < 0.9*minutes*float64(perMinute)/2 {
			t.Errorf("max_auth_per_minute=%d: only %d calls passed in %.0f minutes", perMinute, len(passed), minutes)
		}
	}
}

func TestLimiterRefusesWithRetryTimeInsteadOfWaitingLong(t *testing.T) {
	clock := newTestClock()
	h := NewLimiters().Host("upstream.example:443", clock.Now())
	for range 5 { // the burst: half the budget
		if _, err := h.Acquire(context.Background(), clock, 0); err != nil {
			t.Fatal(err)
		}
	}
	start := clock.Now()
	retryAt, err := h.Acquire(context.Background(), clock, time.Second)
	if err == nil || !retryAt.After(start) || clock.Now() != start {
		t.Fatalf("want an immediate refusal with a retry time, got err=%v retryAt=%v waited=%v", err, retryAt, clock.Now().Sub(start))
	}
	if _, err := h.Acquire(context.Background(), clock, time.Minute); err != nil || clock.Now() == start {
		t.Fatalf("a caller willing to wait should wait for the budget: err=%v", err)
	}
	h.Block(clock.Now().Add(30 * time.Second))
	if at, err := h.Acquire(context.Background(), clock, time.Hour); err == nil || at != clock.Now().Add(30*time.Second) {
		t.Fatalf("a 429 block must refuse until its end: %v %v", at, err)
	}
}

func TestLimitersAreSharedPerNormalizedHost(t *testing.T) {
	l := NewLimiters()
	now := time.Now()
	key := func(raw string) string {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		return HostKey(u)
	}
	for _, same := range []string{"https://LOCALHOST", "https://localhost.", "https://localhost:443/api", "HTTPS://Localhost:443"} {
		if got := key(same); got != "localhost:443" {
			t.Errorf("HostKey(%s) = %s, want localhost:443", same, got)
		}
	}
	if got := key("http://[::1]"); got != "[::1]:80" {
		t.Errorf("HostKey(http://[::1]) = %s, want [::1]:80", got)
	}
	if l.Host(key("https://LOCALHOST"), now) != l.Host(key("https://localhost.:443"), now) {
		t.Fatal("two spellings of one host must share a limiter")
	}
	if l.Host("a.example:443", now) == l.Host("b.example:443", now) {
		t.Fatal("different hosts must not share a limiter")
	}
}

// The smallest registered budget on a host wins; no mount can raise it; looking a limiter up
// (a config check that may fail) changes nothing; unregistering restores the others' budget.
func TestHostBudgetIsTheSmallestRegistered(t *testing.T) {
	l := NewLimiters()
	now := time.Now()
	h := l.Host("h:443", now)
	budget := func() int { return h.State(now).PerMinute }
	if budget() != 10 || h.State(now).Mounts != 0 {
		t.Fatalf("unregistered host: %+v, want the default 10", h.State(now))
	}
	l.Register("a", "h:443", 4, now)
	l.Register("b", "h:443", 600, now)
	if budget() != 4 {
		t.Fatalf("a=4, b=600: budget %d, want 4", budget())
	}
	l.Register("b", "h:443", 2, now)
	if budget() != 2 {
		t.Fatalf("b lowered to 2: budget %d", budget())
	}
	l.Register("b", "other:443", 600, now) // b moves to another host
	if budget() != 4 || h.State(now).Mounts != 1 {
		t.Fatalf("after b moved away: %+v, want 4 from a alone", h.State(now))
	}
	l.Host("h:443", now) // a failed config check only looks the limiter up
	if budget() != 4 {
		t.Fatalf("a lookup changed the budget to %d", budget())
	}
	l.Unregister("a", now)
	if budget() != 10 {
		t.Fatalf("no mount left: budget %d, want the default 10", budget())
	}
}

// newWithBudget is New plus what the backend does once a config is stored: register the
// config's max_auth_per_minute as a mount's budget on the upstream host.
func newWithBudget(cfg Config, deps Deps) (Provider, error) {
	p, err := New(cfg, deps)
	if err == nil && cfg.MaxAuthPerMinute > 0 {
		deps.Limiters.Register("test-mount", p.HTTP().Host(), cfg.MaxAuthPerMinute, deps.Clock.Now())
	}
	return p, err
}
