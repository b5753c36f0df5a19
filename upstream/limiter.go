package upstream

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiters is the plugin process's guard state for upstreams: one auth limiter per upstream
// host, shared by every mount because upstream limits are per instance, not per account;
// and the last TOTP step used per upstream account.
type Limiters struct {
	mu    sync.Mutex
	m     map[string]*HostLimiter
	steps map[string]*usedStep
}

// SharedLimiters is the process-wide set.
var SharedLimiters = NewLimiters()

func NewLimiters() *Limiters {
	return &Limiters{m: map[string]*HostLimiter{}, steps: map[string]*usedStep{}}
}

// For returns host's limiter, set to perMinute. Mounts pointing at one host share its budget;
// the last config written sets its size.
func (l *Limiters) For(host string, perMinute int, now time.Time) *HostLimiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.m[host]
	if h == nil {
		h = &HostLimiter{}
		l.m[host] = h
	}
	h.setPerMinute(perMinute, now)
	return h
}

// HostLimiter lets at most perMinute auth calls through in any 60-second window, and holds
// every call back while upstream has said 429.
//
// A token bucket of burst b refilled at r per second lets b + 60·r calls through in a minute
// window, not b; so the bucket is split: half the budget as burst, half as refill.
type HostLimiter struct {
	mu           sync.Mutex
	lim          *rate.Limiter
	perMinute    int
	blockedUntil time.Time
}

func (h *HostLimiter) setPerMinute(n int, now time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if n < 1 {
		n = 1
	}
	if n == h.perMinute {
		return
	}
	burst := max(1, n/2)
	refill := rate.Limit(float64(n-burst) / 60)
	if n == burst { // n == 1: one call, then one more only after two minutes
		refill = rate.Limit(1.0 / 120)
	}
	if h.lim == nil {
		h.lim = rate.NewLimiter(refill, burst)
	} else {
		h.lim.SetLimitAt(now, refill)
		h.lim.SetBurstAt(now, burst)
	}
	h.perMinute = n
}

// Acquire takes one auth call from the budget, waiting up to maxWait for it. It never waits
// past a 429 block: that returns a rate-limit error carrying the time to retry.
func (h *HostLimiter) Acquire(ctx context.Context, clock Clock, maxWait time.Duration) (retryAt time.Time, err error) {
	h.mu.Lock()
	now := clock.Now()
	if now.Before(h.blockedUntil) {
		until := h.blockedUntil
		h.mu.Unlock()
		return until, errRateLimited
	}
	r := h.lim.ReserveN(now, 1)
	delay := r.DelayFrom(now)
	if !r.OK() || delay > maxWait {
		r.CancelAt(now)
		h.mu.Unlock()
		return now.Add(delay), errRateLimited
	}
	h.mu.Unlock()
	if delay > 0 {
		if err := clock.Sleep(ctx, delay); err != nil {
			r.CancelAt(clock.Now())
			return time.Time{}, err
		}
	}
	return time.Time{}, nil
}

// Block holds every auth call to the host back until t (upstream said 429).
func (h *HostLimiter) Block(t time.Time) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if t.After(h.blockedUntil) {
		h.blockedUntil = t
	}
}

// LimiterState is what status shows of a limiter.
type LimiterState struct {
	PerMinute    int
	TokensLeft   float64
	BlockedUntil time.Time
}

func (h *HostLimiter) State(now time.Time) LimiterState {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := LimiterState{PerMinute: h.perMinute, TokensLeft: h.lim.TokensAt(now)}
	if now.Before(h.blockedUntil) {
		s.BlockedUntil = h.blockedUntil
	}
	return s
}
