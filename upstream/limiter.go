package upstream

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiters is the plugin process's guard state for upstreams: one auth limiter per upstream
// host, shared by every mount because upstream limits are per instance, not per account;
// and the last TOTP step used per upstream account.
type Limiters struct {
	mu     sync.Mutex
	m      map[string]*HostLimiter
	owners map[string]string // mount -> the host key its budget is registered on
	steps  map[string]*usedStep
}

// DefaultAuthPerMinute is PlexTrac's published limit, and a host's budget while no mount on
// it has registered one.
const DefaultAuthPerMinute = 10

// SharedLimiters is the process-wide set.
var SharedLimiters = NewLimiters()

func NewLimiters() *Limiters {
	return &Limiters{m: map[string]*HostLimiter{}, owners: map[string]string{}, steps: map[string]*usedStep{}}
}

// HostKey names an upstream for its limiter and TOTP record: the host in lower case without a
// trailing dot, with the scheme's default port made explicit. So LOCALHOST, localhost. and
// localhost:443 are one upstream and share one budget.
func HostKey(u *url.URL) string {
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[strings.ToLower(u.Scheme)]
	}
	return net.JoinHostPort(host, port)
}

// Host returns the limiter of the upstream host key. It changes no budget: a config write
// whose check fails must leave every other mount's budget as it was.
func (l *Limiters) Host(key string, now time.Time) *HostLimiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.host(key, now)
}

func (l *Limiters) host(key string, now time.Time) *HostLimiter {
	h := l.m[key]
	if h == nil {
		h = &HostLimiter{budgets: map[string]int{}}
		h.apply(now)
		l.m[key] = h
	}
	return h
}

// Register records a mount's max_auth_per_minute on a host, moving it off the host it was
// on. A host's budget is the smallest one registered on it: one mount can lower what every
// mount on the host gets (the upstream's limit is per instance), but none can raise it.
func (l *Limiters) Register(mount, key string, perMinute int, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.unregister(mount, now)
	l.owners[mount] = key
	h := l.host(key, now)
	h.mu.Lock()
	defer h.mu.Unlock()
	h.budgets[mount] = max(perMinute, 1)
	h.apply(now)
}

// Unregister drops a mount's budget (its config was deleted, or it was unmounted).
func (l *Limiters) Unregister(mount string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.unregister(mount, now)
}

func (l *Limiters) unregister(mount string, now time.Time) {
	key, ok := l.owners[mount]
	if !ok {
		return
	}
	delete(l.owners, mount)
	h := l.m[key]
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.budgets, mount)
	h.apply(now)
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
	budgets      map[string]int // per registered mount
	blockedUntil time.Time
}

// apply sizes the bucket to the smallest registered budget. h.mu is held (or h is new).
func (h *HostLimiter) apply(now time.Time) {
	n := DefaultAuthPerMinute
	if len(h.budgets) > 0 {
		n = math.MaxInt
		for _, b := range h.budgets {
			n = min(n, b)
		}
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
	Mounts       int // mounts of this process whose budget is registered on the host
	TokensLeft   float64
	BlockedUntil time.Time
}

// Rule says which rule set the budget.
func (s LimiterState) Rule() string {
	if s.Mounts == 0 {
		return fmt.Sprintf("default %d per minute: no configured mount on this host yet", DefaultAuthPerMinute)
	}
	return fmt.Sprintf("the smallest max_auth_per_minute of the %d mount(s) on this host", s.Mounts)
}

func (h *HostLimiter) State(now time.Time) LimiterState {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := LimiterState{PerMinute: h.perMinute, Mounts: len(h.budgets), TokensLeft: h.lim.TokensAt(now)}
	if now.Before(h.blockedUntil) {
		s.BlockedUntil = h.blockedUntil
	}
	return s
}
