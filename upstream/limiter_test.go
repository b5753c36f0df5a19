package upstream

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"testing"
	"time"
)

// The limiter's promise: in no 60-second window do more than max_auth_per_minute calls pass,
// whatever the pattern of callers, however long they are willing to wait, and whether they
// take one call or an MFA login's two together (giving the second back or not).
func TestLimiterNeverExceedsBudgetInAnyMinute(t *testing.T) {
	for _, perMinute := range []int{1, 2, 3, 4, 10, 25} {
		clock := newTestClock()
		l := NewLimiters()
		l.registerHost("mount", "upstream.example:443", perMinute, clock.Now())
		h := l.Host("upstream.example:443")
		start := clock.Now()
		rng := rand.New(rand.NewPCG(1, uint64(perMinute)))
		var passed []time.Time
		for range 5000 {
			clock.Advance(time.Duration(rng.IntN(4000)) * time.Millisecond)
			wait := time.Duration(rng.IntN(20)) * time.Second
			calls := 1 + rng.IntN(min(perMinute, 2))
			slots, _, err := h.Acquire(context.Background(), clock, calls, wait)
			if err != nil {
				continue
			}
			if calls == 2 && rng.IntN(2) == 0 {
				clock.Advance(time.Duration(rng.IntN(3000)) * time.Millisecond) // the login call's answer
				slots.GiveBack(1, clock.Now())                                  // upstream asked for no MFA
				calls = 1
			}
			for range calls {
				passed = append(passed, clock.Now())
			}
		}
		worst, lo := 0, 0
		for hi := range passed {
			for passed[hi].Sub(passed[lo]) > time.Minute { // a closed window: 60 s apart is in one
				lo++
			}
			worst = max(worst, hi-lo+1)
		}
		if worst > perMinute {
			t.Errorf("max_auth_per_minute=%d: %d calls passed within 60s", perMinute, worst)
		}
		// Over time at least ⌊n/2⌋ calls a minute (one for n < 4, whose burst of 2 leaves less
		// to refill) must be usable, or the limiter starves callers.
		minutes := clock.Now().Sub(start).Minutes()
		if float64(len(passed)) < 0.9*minutes*float64(max(1, perMinute/2)) {
			t.Errorf("max_auth_per_minute=%d: only %d calls passed in %.0f minutes", perMinute, len(passed), minutes)
		}
	}
}

// Every budget from 2 on lets 2 calls through at once (an MFA login), and none lets more than
// the budget through in a minute: burst + ⌊60 s / refill interval⌋ ≤ n, the whole budget for
// n ≥ 3. One more than a full bucket is never taken, however long the caller would wait.
func TestEveryBudgetFromTwoOnHasABurstOfTwo(t *testing.T) {
	for n := 1; n <= 600; n++ {
		burst, every := bucketFor(n)
		perMinute := burst + int(time.Minute/every)
		if perMinute > n || (n >= 2 && burst < 2) || (n >= 3 && perMinute != n) {
			t.Errorf("max_auth_per_minute=%d: burst %d, a call back every %s: %d in a minute", n, burst, every, perMinute)
		}
	}
	clock := newTestClock()
	l := NewLimiters()
	for n := 1; n <= 4; n++ {
		key := fmt.Sprintf("h%d.example:443", n)
		l.registerHost("mount", key, n, clock.Now())
		_, _, err := l.Host(key).Acquire(context.Background(), clock, 2, time.Hour)
		if want := n >= 2; (err == nil) != want {
			t.Errorf("max_auth_per_minute=%d: two calls together from a full bucket: %v", n, err)
		}
		if n == 1 && !errors.Is(err, errPastBurst) {
			t.Errorf("max_auth_per_minute=1: two calls together: %v, want errPastBurst at once", err)
		}
	}
}

func TestLimiterRefusesWithRetryTimeInsteadOfWaitingLong(t *testing.T) {
	clock := newTestClock()
	h := NewLimiters().Host("upstream.example:443")
	burst, _ := bucketFor(DefaultAuthPerMinute)
	for range burst {
		if _, _, err := h.Acquire(context.Background(), clock, 1, 0); err != nil {
			t.Fatal(err)
		}
	}
	start := clock.Now()
	_, retryAt, err := h.Acquire(context.Background(), clock, 1, time.Second)
	if err == nil || !retryAt.After(start) || clock.Now() != start {
		t.Fatalf("want an immediate refusal with a retry time, got err=%v retryAt=%v waited=%v", err, retryAt, clock.Now().Sub(start))
	}
	if _, _, err := h.Acquire(context.Background(), clock, 1, time.Minute); err != nil || clock.Now() == start {
		t.Fatalf("a caller willing to wait should wait for the budget: err=%v", err)
	}
	h.Block(clock.Now().Add(30 * time.Second))
	if _, at, err := h.Acquire(context.Background(), clock, 1, time.Hour); err == nil || at != clock.Now().Add(30*time.Second) {
		t.Fatalf("a 429 block must refuse until its end: %v %v", at, err)
	}
}

func hostKeyOf(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return HostKey(u)
}

func TestLimitersAreSharedPerNormalizedHost(t *testing.T) {
	for want, spellings := range map[string][]string{
		"localhost:443": {"https://LOCALHOST", "https://localhost.", "https://localhost:443/api", "HTTPS://Localhost:443"},
		"[::1]:80":      {"http://[::1]", "http://[0:0:0:0:0:0:0:1]:80", "http://[::0001]"},
		// IP literals in canonical form: an IPv4-mapped IPv6 address is its IPv4 address, and
		// a zone (which names the interface, not the host) is dropped.
		"127.0.0.1:8200":      {"http://127.0.0.1:8200", "http://[::ffff:127.0.0.1]:8200", "http://[::FFFF:7F00:1]:8200", "http://127.0.0.1.:8200"},
		"[2001:db8::1]:443":   {"https://[2001:DB8:0:0::1]", "https://[2001:db8::0:1]:443"},
		"[fe80::1]:443":       {"https://[fe80::1%25eth0]", "https://[FE80::1%25eth1]:443"},
		"10.0.0.5:443":        {"https://[::ffff:a00:5]"},
		"acme.example.com:80": {"http://Acme.Example.COM."},
	} {
		for _, raw := range spellings {
			if got := hostKeyOf(t, raw); got != want {
				t.Errorf("HostKey(%s) = %s, want %s", raw, got, want)
			}
		}
	}
	// Names are not resolved: a name and its address are two hosts.
	if hostKeyOf(t, "http://localhost:80") == hostKeyOf(t, "http://127.0.0.1:80") {
		t.Error("a name and an address share a key")
	}

	// One budget per key: what one spelling spends, the other cannot spend again.
	clock := newTestClock()
	l := NewLimiters()
	a, b := l.Host(hostKeyOf(t, "http://127.0.0.1:8200")), l.Host(hostKeyOf(t, "http://[::ffff:127.0.0.1]:8200"))
	for range DefaultAuthPerMinute / 2 {
		if _, _, err := a.Acquire(context.Background(), clock, 1, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := b.Acquire(context.Background(), clock, 1, 0); err == nil {
		t.Fatal("[::ffff:127.0.0.1] got a budget of its own beside 127.0.0.1")
	}
	if _, _, err := l.Host("other.example:443").Acquire(context.Background(), clock, 1, 0); err != nil {
		t.Fatalf("different hosts must not share a budget: %v", err)
	}
}

// The smallest registered budget on a host wins; no mount can raise it; looking a limiter up
// (a config check that may fail) changes nothing; unregistering restores the others' budget.
func TestHostBudgetIsTheSmallestRegistered(t *testing.T) {
	l := NewLimiters()
	now := time.Now()
	h := l.Host("h:443")
	budget := func() int { return h.State(now).PerMinute }
	if budget() != DefaultAuthPerMinute || h.State(now).Mounts != 0 {
		t.Fatalf("unregistered host: %+v, want the default %d", h.State(now), DefaultAuthPerMinute)
	}
	l.registerHost("a", "h:443", 4, now)
	l.registerHost("b", "h:443", 600, now)
	if budget() != 4 {
		t.Fatalf("a=4, b=600: budget %d, want 4", budget())
	}
	l.registerHost("b", "h:443", 2, now)
	if budget() != 2 {
		t.Fatalf("b lowered to 2: budget %d", budget())
	}
	l.registerHost("b", "other:443", 600, now) // b moves to another host
	if budget() != 4 || h.State(now).Mounts != 1 {
		t.Fatalf("after b moved away: %+v, want 4 from a alone", h.State(now))
	}
	l.Host("h:443") // a failed config check only looks the limiter up
	if budget() != 4 {
		t.Fatalf("a lookup changed the budget to %d", budget())
	}
	l.Unregister("a", now)
	if budget() != DefaultAuthPerMinute {
		t.Fatalf("no mount left: budget %d, want the default %d", budget(), DefaultAuthPerMinute)
	}
}

// newWithBudget is New plus what the backend does once a config is stored: register the
// config's max_auth_per_minute as a mount's budget on the upstream host.
func newWithBudget(cfg Config, deps Deps) (Provider, error) {
	p, err := New(cfg, deps)
	if err == nil && cfg.MaxAuthPerMinute > 0 {
		deps.Limiters.Register("test-mount", p, cfg.MaxAuthPerMinute, deps.Clock.Now())
	}
	return p, err
}

// An unused slot given back is as if it was never taken, unless another take came between:
// then it stays spent, since the bucket may have refilled to full meanwhile.
func TestGivenBackSlotIsFreeOnlyIfNothingCameBetween(t *testing.T) {
	clock := newTestClock()
	l := NewLimiters()
	l.registerHost("mount", "h:443", 2, clock.Now())
	h := l.Host("h:443")
	take := func(calls int) (*Slots, error) {
		s, _, err := h.Acquire(context.Background(), clock, calls, 0)
		return s, err
	}
	mfa, err := take(2)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second) // the login call answers: no MFA asked
	mfa.GiveBack(1, clock.Now())
	if _, err := take(1); err != nil {
		t.Fatalf("the slot given back is not free: %v", err)
	}
	if _, err := take(1); err == nil {
		t.Fatal("a budget of 2 let a third call through")
	}

	clock.Advance(3 * time.Minute) // full again
	mfa, err = take(2)
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(122 * time.Second)   // a login call that took long: meanwhile the bucket refilled
	if _, err := take(1); err != nil { // and another caller took one of the two
		t.Fatal(err)
	}
	mfa.GiveBack(1, clock.Now())
	if _, err := take(1); err != nil {
		t.Fatal(err)
	}
	if _, err := take(1); err == nil {
		t.Fatal("a slot given back after the bucket refilled came free: 3 calls at once on a budget of 2")
	}
}
