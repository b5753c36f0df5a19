package upstream

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Limiters are the plugin process's auth budgets, shared by every mount: one per upstream host
// (upstream limits are per instance, not per account). The last TOTP step used per upstream
// account is kept apart, in TOTPSteps.
//
// A record is made when first used. One a mount is registered on, or that holds a live 429
// block, is never dropped. The others (config checks against hosts no mount uses) are kept
// while they are not neutral (see hostRecord.neutral), and at most MaxIdleRecords of them: a
// new one past that drops the neutral ones first, and if that frees no room, the call is not
// sent (errNoRoom). Dropping a neutral record resets no budget, since a new one is the same.
// Clients hold handles (HostLimiter), never records.
type Limiters struct {
	mu     sync.Mutex
	m      map[string]*hostRecord
	owners map[string]string // mount -> the host key its budget is registered on
}

// DefaultAuthPerMinute is a host's budget while no mount on it has registered one, and the
// default max_auth_per_minute: half of PlexTrac's published limit (10 a minute per instance,
// for all its users), so that the plugin leaves the other half to the people who log in.
const DefaultAuthPerMinute = 5

// SharedLimiters is the process-wide set.
var SharedLimiters = NewLimiters()

func NewLimiters() *Limiters {
	return &Limiters{
		m:      map[string]*hostRecord{},
		owners: map[string]string{},
	}
}

// errNoRoom: the process keeps no more records of what (no mount is registered on them, and
// none is neutral yet); the call needing a new one is not sent.
type errNoRoom struct{ what string }

func (e errNoRoom) Error() string {
	return fmt.Sprintf("not tried: the plugin process keeps at most %d %s that no mount is configured on, and all of them are still in use", MaxIdleRecords, e.what)
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

// record returns key's record, made with the default budget if there is none. A record for
// a call (capped) is made only while fewer than MaxIdleRecords records no mount is registered
// on are kept, after dropping the neutral ones; else record returns nil. A mount's record,
// and one for a 429 upstream sent, are always made. l.mu is held.
func (l *Limiters) record(key string, now time.Time, capped bool) *hostRecord {
	r := l.m[key]
	if r == nil {
		if capped && len(l.m) >= MaxIdleRecords && l.sweep(now) >= MaxIdleRecords {
			return nil
		}
		r = &hostRecord{budgets: map[string]int{}}
		r.apply(now)
		l.m[key] = r
	}
	return r
}

// sweep drops the neutral records and says how many that no mount is registered on are
// left. l.mu is held.
func (l *Limiters) sweep(now time.Time) (idle int) {
	for k, r := range l.m {
		switch {
		case r.neutral(now):
			delete(l.m, k)
		case len(r.budgets) == 0:
			idle++
		}
	}
	return idle
}

// Sweep drops every neutral host record, and says how many are left. Records
// are also swept when a new one would pass MaxIdleRecords.
func (l *Limiters) Sweep(now time.Time) (hosts int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	return len(l.m)
}

// Register records a mount's max_auth_per_minute on p's host, moving it off the host it was
// on. A host's budget is the
// smallest one registered on it: one mount can lower what every mount on the host gets (the
// upstream's limit is per instance), but none can raise it.
func (l *Limiters) Register(mount string, p Provider, perMinute int, now time.Time) {
	l.registerHost(mount, p.Host(), perMinute, now)
}

func (l *Limiters) registerHost(mount, key string, perMinute int, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.unregister(mount, now)
	l.owners[mount] = key
	r := l.record(key, now, false)
	r.budgets[mount] = max(perMinute, 1)
	r.apply(now)
}

// Unregister drops a mount's budget (its config was deleted, or it was unmounted). The host's
// record stays until it is neutral.
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

// hostRecord is one host's budget: a token bucket of burst slots, one slot coming back every
// every, kept as the time it is full again (GCRA's "theoretical arrival time") in whole
// nanoseconds, so that "full" is exact and a slot can be given back exactly. Its fields are
// guarded by Limiters.mu.
type hostRecord struct {
	perMinute    int
	burst        int
	every        time.Duration
	fullAt       time.Time // the bucket is full from this time on
	changes      uint64    // takes and resizes so far: a give-back is exact only if none came since
	budgets      map[string]int
	blockedUntil time.Time
}

// bucketFor sizes the bucket for a budget of n auth calls per minute.
//
// A bucket of burst b with a slot back every e lets at most b + ⌊60 s / e⌋ calls through in
// any 60 s: b at once from full, then one per e. So with b = max(2, n/2) and e = 60 s / (n−b)
// in whole nanoseconds (rounded down: at most 1 ns short, far less than 60 s / (n−b)(n−b+1)),
// ⌊60 s / e⌋ = n−b and b + ⌊60 s / e⌋ = n. Where nothing is left for refills (n = 2: b = 2;
// n = 1: b = 1), e = 61 s: ⌊60/61⌋ = 0, so b calls in any 60 s.
// For example n = 2: 2 + 0; n = 3: 2 + ⌊60/60⌋ = 3; n = 4: 2 + ⌊60/30⌋ = 4; n = 10: 5 + ⌊60/12⌋
// = 10; n = 600: 300 + ⌊60/0.2⌋ = 600. A burst of 2 from n = 2 on is what an MFA login
// needs: its login and MFA calls go back to back.
func bucketFor(n int) (burst int, every time.Duration) {
	burst = min(n, max(2, n/2))
	if refills := time.Duration(n - burst); refills > 0 {
		return burst, time.Minute / refills
	}
	return burst, 61 * time.Second
}

// neutral says whether the record is as a new one would be: no mount registered, no 429
// block, a full bucket. Dropping it earlier would reset the host's budget.
func (r *hostRecord) neutral(now time.Time) bool {
	return len(r.budgets) == 0 && !now.Before(r.blockedUntil) && !r.fullAt.After(now)
}

// apply sizes the bucket to the smallest registered budget. The slots spent and not yet back
// stay spent in the new size (at most a whole bucket): a budget lowered right after many
// calls starts empty, not with a fresh burst.
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
	burst, every := bucketFor(n)
	var spent time.Duration
	if r.fullAt.After(now) {
		spent = min((r.fullAt.Sub(now)+r.every-1)/r.every, time.Duration(burst))
	}
	r.perMinute, r.burst, r.every, r.fullAt = n, burst, every, now.Add(spent*every)
	r.changes++
}

// take takes calls slots together if the last of them comes within maxWait, and says when
// the calls may go. Limiters.mu is held.
func (r *hostRecord) take(now time.Time, calls int, maxWait time.Duration) (at time.Time, ok bool) {
	end := r.fullAt
	if end.Before(now) {
		end = now
	}
	end = end.Add(time.Duration(calls) * r.every)
	at = end.Add(-time.Duration(r.burst) * r.every)
	if at.Before(now) {
		at = now
	}
	if at.Sub(now) > maxWait {
		return at, false
	}
	r.fullAt = end
	r.changes++
	return at, true
}

// Slots are auth calls taken from a host's budget together.
type Slots struct {
	l       *Limiters
	rec     *hostRecord
	calls   int
	changes uint64 // the record's changes right after the take
}

// GiveBack returns calls of the slots that were not sent. When nothing was taken from the
// budget or resized since, the bucket is then exactly as if they had never been taken;
// otherwise they stay spent, which errs on the safe side.
func (s *Slots) GiveBack(calls int, now time.Time) {
	s.l.mu.Lock()
	defer s.l.mu.Unlock()
	calls = min(calls, s.calls)
	if s.rec.changes != s.changes {
		return
	}
	s.calls -= calls
	s.rec.fullAt = s.rec.fullAt.Add(-time.Duration(calls) * s.rec.every)
	if s.rec.fullAt.Before(now) {
		s.rec.fullAt = now
	}
}

var (
	errRateLimited = errors.New("rate limited")
	// errPastBurst: more calls asked together than the host's bucket holds; no wait helps.
	errPastBurst = errors.New("more calls together than the budget lets through at once")
)

// Acquire takes calls auth calls from the budget together, waiting up to maxWait for them.
// It never waits past a 429 block (errRateLimited with its end), and fails at once when the
// bucket cannot hold that many (errPastBurst) or a new record finds no room (errNoRoom). The
// wait holds no lock; a wait that ctx ends gives the slots back.
func (h *HostLimiter) Acquire(ctx context.Context, clock Clock, calls int, maxWait time.Duration) (*Slots, time.Time, error) {
	h.l.mu.Lock()
	now := clock.Now()
	rec := h.l.record(h.key, now, true)
	var at time.Time
	var err error
	switch {
	case rec == nil:
		err = errNoRoom{"upstream hosts' auth budgets"}
	case now.Before(rec.blockedUntil):
		at, err = rec.blockedUntil, errRateLimited
	case calls > rec.burst:
		err = errPastBurst
	default:
		var ok bool
		if at, ok = rec.take(now, calls, maxWait); !ok {
			err = errRateLimited
		}
	}
	var s *Slots
	if err == nil {
		s = &Slots{l: h.l, rec: rec, calls: calls, changes: rec.changes}
	}
	h.l.mu.Unlock()
	if err != nil {
		return nil, at, err
	}
	if d := at.Sub(now); d > 0 {
		if err := clock.Sleep(ctx, d); err != nil {
			s.GiveBack(calls, clock.Now())
			return nil, time.Time{}, err
		}
	}
	return s, time.Time{}, nil
}

// takeSlots takes calls auth calls from the host's budget together, waiting at most maxWait,
// or says why not as an *Error of op.
func (c *Client) takeSlots(ctx context.Context, op string, calls int, maxWait time.Duration) (*Slots, error) {
	slots, retryAt, err := c.limiter.Acquire(ctx, c.clock, calls, maxWait)
	var noRoom errNoRoom
	switch {
	case err == nil:
		return slots, nil
	case errors.As(err, &noRoom):
		return nil, c.noRoom(op, noRoom)
	case errors.Is(err, errPastBurst):
		st := c.limiter.State(c.clock.Now())
		return nil, c.fail(op, KindRateLimited, 0, fmt.Sprintf("not tried: an MFA login sends its %d auth calls back to back, and this host's budget of %d per minute (%s) lets fewer through at once",
			calls, st.PerMinute, st.Rule()), "an MFA login needs max_auth_per_minute of 2 or more on every mount of this host", time.Time{})
	case errors.Is(err, errRateLimited):
		return nil, c.fail(op, KindRateLimited, 0, "held back by the plugin's auth limiter for this host (max_auth_per_minute, or a 429 from upstream)", "", retryAt)
	}
	return nil, c.fail(op, KindUnavailable, 0, "cancelled while waiting for the auth limiter: "+err.Error(), "", time.Time{})
}

// noRoom is the error of a call not sent for want of room for its record.
func (c *Client) noRoom(op string, err errNoRoom) *Error {
	return c.fail(op, KindNoRoom, 0, err.Error(), "retry in a few minutes: records of hosts and accounts no mount uses are dropped once their budget has refilled, their 429 has ended and their TOTP step is past", time.Time{})
}

// Block holds every auth call to the host back until t (upstream said 429).
func (h *HostLimiter) Block(t time.Time) {
	h.l.mu.Lock()
	defer h.l.mu.Unlock()
	// The call that saw the 429 made a record; a long call may have seen it dropped since.
	rec := h.l.record(h.key, t, false)
	if t.After(rec.blockedUntil) {
		rec.blockedUntil = t
	}
}

// LimiterState is what status shows of a limiter: the host's, summed over every mount of the
// process on it (docs/security.md says what that tells a reader of one mount).
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
	s := LimiterState{
		PerMinute:  rec.perMinute,
		Mounts:     len(rec.budgets),
		TokensLeft: float64(rec.burst),
	}
	if rec.fullAt.After(now) {
		s.TokensLeft -= float64(rec.fullAt.Sub(now)) / float64(rec.every)
	}
	if now.Before(rec.blockedUntil) {
		s.BlockedUntil = rec.blockedUntil
	}
	return s
}
