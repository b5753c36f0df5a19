package upstream

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiters is the plugin process's guard state for upstreams, shared by every mount: one auth
// budget per upstream host (upstream limits are per instance, not per account), and in its
// TOTPSteps the last TOTP step used per upstream account.
//
// A record is made when first used and dropped once nothing needs it: no mount is registered
// on it and it is neutral (see hostRecord.neutral). A neutral record made again is the same as
// the one dropped, so dropping it resets no budget, while the maps hold only what live mounts
// and recent traffic need. Clients hold handles (HostLimiter), never records.
type Limiters struct {
	mu        sync.Mutex
	m         map[string]*hostRecord
	owners    map[string]string // mount -> the host key its budget is registered on
	nextSweep int               // the size of m at which the next record made sweeps first
	steps     *TOTPSteps
}

// DefaultAuthPerMinute is PlexTrac's published limit, and a host's budget while no mount on
// it has registered one.
const DefaultAuthPerMinute = 10

// minSweep: below this many records the maps are not swept (sweeping is O(records)); above
// it they are swept each time they double, so a record costs O(1) sweeping.
const minSweep = 64

// SharedLimiters is the process-wide set.
var SharedLimiters = NewLimiters()

func NewLimiters() *Limiters {
	return &Limiters{m: map[string]*hostRecord{}, owners: map[string]string{}, nextSweep: minSweep, steps: newTOTPSteps()}
}

// HostKey names an upstream host for its auth budget: the host in lower case without a
// trailing dot, with the scheme's default port made explicit, and an IP literal in its
// canonical form (IPv4-mapped IPv6 unmapped, IPv6 compressed, any zone dropped). So LOCALHOST,
// localhost. and localhost:443 are one host, and so are 127.0.0.1 and [::ffff:127.0.0.1].
// Names are not resolved: a name and its address are two hosts with a budget each.
func HostKey(u *url.URL) string {
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if a, err := netip.ParseAddr(host); err == nil {
		host = a.WithZone("").Unmap().String()
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[strings.ToLower(u.Scheme)]
	}
	return net.JoinHostPort(host, port)
}

// Host returns a handle on the budget of the upstream host key. It makes no record and
// changes no budget: a config write whose check fails must leave every other mount's budget
// as it was, and must leave nothing behind that its own calls did not spend.
func (l *Limiters) Host(key string) *HostLimiter { return &HostLimiter{l: l, key: key} }

// record returns key's record, made (with the default budget) if there is none. l.mu is held.
func (l *Limiters) record(key string, now time.Time) *hostRecord {
	r := l.m[key]
	if r == nil {
		if len(l.m) >= l.nextSweep {
			l.sweep(now)
		}
		r = &hostRecord{budgets: map[string]int{}}
		r.apply(now)
		l.m[key] = r
	}
	return r
}

// sweep drops the records nothing needs any more. l.mu is held.
func (l *Limiters) sweep(now time.Time) {
	for k, r := range l.m {
		if r.neutral(now) {
			delete(l.m, k)
		}
	}
	l.nextSweep = max(minSweep, 2*len(l.m))
}

// Sweep drops every record that no mount is registered on and that is neutral at now, and
// says how many host and account records are left. Records are also swept as the maps grow.
func (l *Limiters) Sweep(now time.Time) (hosts, accounts int) {
	l.mu.Lock()
	l.sweep(now)
	hosts = len(l.m)
	l.mu.Unlock()
	return hosts, l.steps.sweep(now)
}

// Register records a mount's max_auth_per_minute on p's host, moving it off the host it was
// on, and registers the mount on p's TOTP account, if it has one. A host's budget is the
// smallest one registered on it: one mount can lower what every mount on the host gets (the
// upstream's limit is per instance), but none can raise it.
func (l *Limiters) Register(mount string, p Provider, perMinute int, now time.Time) {
	l.registerHost(mount, p.Conn().Host(), perMinute, now)
	l.steps.register(mount, totpAccount(p), now)
}

func (l *Limiters) registerHost(mount, key string, perMinute int, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.unregister(mount, now)
	l.owners[mount] = key
	r := l.record(key, now)
	r.budgets[mount] = max(perMinute, 1)
	r.apply(now)
}

// Unregister drops a mount's budget and TOTP account (its config was deleted, or it was
// unmounted). Their records stay until they are neutral.
func (l *Limiters) Unregister(mount string, now time.Time) {
	l.mu.Lock()
	l.unregister(mount, now)
	l.mu.Unlock()
	l.steps.register(mount, nil, now)
}

func (l *Limiters) unregister(mount string, now time.Time) {
	key, ok := l.owners[mount]
	if !ok {
		return
	}
	delete(l.owners, mount)
	r := l.m[key] // never nil: a record with a budget registered is never dropped
	delete(r.budgets, mount)
	r.apply(now)
}

// HostLimiter lets at most perMinute auth calls to one host through in any 60-second window,
// and holds every call back while upstream has said 429. It is a handle: each call finds the
// host's record under the Limiters' lock, so every handle of a host shares one budget even
// across a drop of a neutral record.
type HostLimiter struct {
	l   *Limiters
	key string
}

// hostRecord is one host's budget. Its fields are guarded by Limiters.mu.
//
// A token bucket of burst b refilled at r per second lets b + 60·r calls through in a minute
// window, not b; so the bucket is split: half the budget as burst, half as refill.
type hostRecord struct {
	lim          *rate.Limiter
	perMinute    int
	budgets      map[string]int // per registered mount
	blockedUntil time.Time
}

// neutral says whether the record is as a new one would be: no mount registered, no 429
// block, a full bucket. Dropping it earlier would reset the host's budget.
func (r *hostRecord) neutral(now time.Time) bool {
	const refilled = 1e-6 // a bucket refilled in float steps can end a rounding error short of full
	return len(r.budgets) == 0 && !now.Before(r.blockedUntil) && r.lim.TokensAt(now) >= float64(r.lim.Burst())-refilled
}

// apply sizes the bucket to the smallest registered budget.
func (r *hostRecord) apply(now time.Time) {
	n := DefaultAuthPerMinute
	if len(r.budgets) > 0 {
		n = math.MaxInt
		for _, b := range r.budgets {
			n = min(n, b)
		}
	}
	if n == r.perMinute {
		return
	}
	burst := max(1, n/2)
	refill := rate.Limit(float64(n-burst) / 60)
	if n == burst { // n == 1: one call, then one more only after two minutes
		refill = rate.Limit(1.0 / 120)
	}
	if r.lim == nil {
		r.lim = rate.NewLimiter(refill, burst)
	} else {
		r.lim.SetLimitAt(now, refill)
		r.lim.SetBurstAt(now, burst)
	}
	r.perMinute = n
}

// Acquire takes one auth call from the budget, waiting up to maxWait for it. It never waits
// past a 429 block: that returns a rate-limit error carrying the time to retry. The wait
// holds no lock, and the reservation it waits on keeps the record from being dropped.
func (h *HostLimiter) Acquire(ctx context.Context, clock Clock, maxWait time.Duration) (retryAt time.Time, err error) {
	h.l.mu.Lock()
	now := clock.Now()
	rec := h.l.record(h.key, now)
	if now.Before(rec.blockedUntil) {
		until := rec.blockedUntil
		h.l.mu.Unlock()
		return until, errRateLimited
	}
	r := rec.lim.ReserveN(now, 1)
	delay := r.DelayFrom(now)
	if !r.OK() || delay > maxWait {
		r.CancelAt(now)
		h.l.mu.Unlock()
		return now.Add(delay), errRateLimited
	}
	h.l.mu.Unlock()
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
	h.l.mu.Lock()
	defer h.l.mu.Unlock()
	rec := h.l.m[h.key]
	if rec == nil { // dropped while the call that saw the 429 waited longer than its bucket's refill
		rec = &hostRecord{budgets: map[string]int{}}
		rec.apply(t)
		h.l.m[h.key] = rec
	}
	if t.After(rec.blockedUntil) {
		rec.blockedUntil = t
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

// State shows the host's budget; a host with no record has a new one's.
func (h *HostLimiter) State(now time.Time) LimiterState {
	h.l.mu.Lock()
	defer h.l.mu.Unlock()
	rec := h.l.m[h.key]
	if rec == nil {
		rec = &hostRecord{}
		rec.apply(now)
	}
	s := LimiterState{PerMinute: rec.perMinute, Mounts: len(rec.budgets), TokensLeft: rec.lim.TokensAt(now)}
	if now.Before(rec.blockedUntil) {
		s.BlockedUntil = rec.blockedUntil
	}
	return s
}
