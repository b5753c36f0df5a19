package upstream

import (
	"context"
	"encoding/base32"
	"fmt"
	"strings"
	"testing"
	"time"
)

// Building a provider (as a config write does before its login check) leaves nothing in the
// process-wide maps, whatever the size of the user name; a URL past the bound is refused.
func TestNewLeavesNoRecords(t *testing.T) {
	clock := newTestClock()
	l, steps := NewLimiters(), NewTOTPSteps()
	for i := range 20 {
		_, err := New(Config{Provider: PlexTrac, URL: fmt.Sprintf("https://h%d.example", i), Username: strings.Repeat("u", 1<<20),
			Password: "pw-secret", TOTPSecret: seedN(i)}, Deps{Clock: clock, Limiters: l, TOTPSteps: steps})
		if err != nil {
			t.Fatal(err)
		}
	}
	if hosts, accounts := sweepBoth(l, steps, clock.Now()); hosts != 0 || accounts != 0 {
		t.Fatalf("20 providers built and dropped left %d host and %d account records", hosts, accounts)
	}
	_, err := New(Config{Provider: PlexTrac, URL: "https://h.example/" + strings.Repeat("p", MaxURLLen)}, Deps{Clock: clock, Limiters: l, TOTPSteps: steps})
	if err == nil || !strings.Contains(err.Error(), "url: longer than 2048 bytes") {
		t.Fatalf("a URL past the bound: %v", err)
	}
	base := "https://h.example/"
	if _, err := New(Config{Provider: PlexTrac, URL: base + strings.Repeat("p", MaxURLLen-len(base))}, Deps{Clock: clock, Limiters: l, TOTPSteps: steps}); err != nil {
		t.Fatalf("a URL at the bound: %v", err)
	}
}

func seedN(i int) string {
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(fmt.Appendf(nil, "seed-%012d", i))
}

// A record is dropped only once it is as a new one would be. Dropping a host's earlier would
// hand out a fresh budget; dropping an account's earlier would let a quick rewrite resend a
// code. A record a mount is registered on stays however old.
func TestRecordsAreDroppedOnlyWhenNeutral(t *testing.T) {
	clock := newTestClock()
	l, steps := NewLimiters(), NewTOTPSteps()
	src := newTOTPSource(seedN(1), clock, steps)
	if _, err := src.Code(context.Background()); err != nil { // a new account: the next step's code, 30 s on
		t.Fatal(err)
	}
	spent, blocked := l.Host("spent.example:443"), l.Host("blocked.example:443")
	if _, _, err := spent.Acquire(context.Background(), clock, 1, 0); err != nil {
		t.Fatal(err)
	}
	blocked.Block(clock.Now().Add(5 * time.Minute))
	l.registerHost("m", "registered.example:443", 4, clock.Now())
	registered := newTOTPSource(seedN(2), clock, steps)
	steps.register("m", &registered.account, clock.Now())

	if hosts, accounts := sweepBoth(l, steps, clock.Now()); hosts != 3 || accounts != 2 {
		t.Fatalf("nothing is neutral yet, but %d hosts and %d accounts are left", hosts, accounts)
	}
	burst, every := bucketFor(DefaultAuthPerMinute)
	if left := spent.State(clock.Now()).TokensLeft; left > float64(burst)-0.99 {
		t.Fatalf("the spent host's budget was reset: %.2f tokens left", left)
	}
	clock.Advance(29 * time.Second) // the step used is the current one: not past
	if _, accounts := sweepBoth(l, steps, clock.Now()); accounts != 2 {
		t.Fatalf("an account whose step is not past was dropped: %d left", accounts)
	}
	clock.Advance(time.Second)
	if hosts, accounts := sweepBoth(l, steps, clock.Now()); hosts != 2 || accounts != 1 {
		t.Fatalf("after 30 s (bucket full, step past): %d hosts, %d accounts, want 2 and 1", hosts, accounts)
	}
	if !blocked.State(clock.Now()).BlockedUntil.After(clock.Now()) {
		t.Fatal("the 429 block was forgotten")
	}
	clock.Advance(time.Hour)
	if hosts, accounts := sweepBoth(l, steps, clock.Now()); hosts != 1 || accounts != 1 {
		t.Fatalf("an hour on: %d hosts, %d accounts, want only the registered ones", hosts, accounts)
	}
	if _, _, err := l.Host("registered.example:443").Acquire(context.Background(), clock, 1, 0); err != nil {
		t.Fatal(err)
	}
	l.Unregister("m", clock.Now())
	steps.Unregister("m", clock.Now())
	// The mount spent a call just before it left: the record, back at the default budget,
	// counts it as spent and stays until it has refilled (one slot's time at the default).
	if hosts, accounts := sweepBoth(l, steps, clock.Now()); hosts != 1 || accounts != 0 {
		t.Fatalf("after the mount left: %d hosts, %d accounts, want 1 (refilling) and 0", hosts, accounts)
	}
	clock.Advance(every - time.Second)
	if hosts, _ := sweepBoth(l, steps, clock.Now()); hosts != 1 {
		t.Fatal("the left mount's spent call was dropped before it refilled")
	}
	clock.Advance(time.Second)
	if hosts, _ := sweepBoth(l, steps, clock.Now()); hosts != 0 {
		t.Fatalf("a minute after the mount left: %d hosts", hosts)
	}
	// A handle outlives its record: the host's next call makes a new one with a full budget.
	if st := spent.State(clock.Now()); st.PerMinute != DefaultAuthPerMinute || st.TokensLeft != float64(burst) {
		t.Fatalf("a dropped host reads %+v", st)
	}
}

// Failed logins to many hosts and accounts, one a second: the maps never hold more than
// MaxIdleRecords records no mount is on, and a new host or account always finds room, since
// the old ones are neutral by then (a budget refilled, a step past).
func TestRecordsStayBoundedUnderManyFailedLogins(t *testing.T) {
	clock := newTestClock()
	l, steps := NewLimiters(), NewTOTPSteps()
	for i := range 3000 {
		clock.Advance(time.Second)
		if _, _, err := l.Host(fmt.Sprintf("h%d.example:443", i)).Acquire(context.Background(), clock, 1, 0); err != nil {
			t.Fatal(err)
		}
		src := newTOTPSource(seedN(i), clock, steps)
		src.skipThrough(stepAt(clock.Now()) - 1) // as storage tells a new provider
		if _, _, err := src.take(); err != nil {
			t.Fatal(err)
		}
		if len(l.m) > MaxIdleRecords || len(steps.m) > MaxIdleRecords {
			t.Fatalf("after %d logins: %d host and %d account records", i+1, len(l.m), len(steps.m))
		}
	}
}

// Past MaxIdleRecords records no mount is on, none of them neutral (hosts under a 429 block,
// accounts whose step is not past), a login that needs a new host or account record fails at
// once (no_room) and sends nothing; a mount's host and account are always kept; once the
// blocks end and the steps pass, there is room again.
func TestIdleRecordsAreCapped(t *testing.T) {
	clock := newTestClock()
	l, steps := NewLimiters(), NewTOTPSteps()
	for i := range MaxIdleRecords {
		l.Host(fmt.Sprintf("h%d.example:443", i)).Block(clock.Now().Add(10 * time.Minute))
		newTOTPSource(seedN(i), clock, steps).skipThrough(stepAt(clock.Now()) + 1) // a node ahead of the clock used it
	}
	rec := newRecorder(t, map[string]answer{
		"POST /api/v1/authenticate":     {200, `{"mfa_enabled":true,"code":"chal-1"}`},
		"POST /api/v1/authenticate/mfa": {200, `{"status":"success","token":"opaque-mfa"}`},
	})
	login := func(mfa bool) (Provider, error) {
		cfg := Config{Provider: PlexTrac, URL: rec.URL, Username: "svc", Password: "pw-secret"}
		if mfa {
			cfg.TOTPSecret = seedN(-1)
		} else { // another host: the mount's record stays until a new one needs room
			cfg.URL = strings.Replace(rec.URL, "127.0.0.1", "localhost", 1)
			rec.set("POST /api/v1/authenticate", answer{200, `{"status":"success","token":"opaque-login"}`})
		}
		p, err := New(cfg, Deps{Clock: clock, Limiters: l, TOTPSteps: steps})
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.Login(context.Background())
		return p, err
	}
	p, err := login(true)
	wantErr(t, err, KindNoRoom, "not tried", "at most 1024 TOTP accounts")
	if hosts, _ := sweepBoth(l, steps, clock.Now()); hosts != MaxIdleRecords || len(rec.sent()) != 0 {
		t.Fatalf("a login that found no room for its account sent %d calls and left %d host records", len(rec.sent()), hosts)
	}
	l.Register("mine", p, 10, clock.Now()) // a mount's account and host: always kept
	steps.Register("mine", p, clock.Now())
	if _, err := p.Login(context.Background()); err != nil {
		t.Fatalf("a mount's login: %v", err)
	}
	l.Unregister("mine", clock.Now())
	steps.Unregister("mine", clock.Now())
	clock.Advance(time.Minute) // its records are neutral now, the others not

	_, err = login(false)
	wantErr(t, err, KindNoRoom, "not tried", "at most 1024 upstream hosts' auth budgets")
	if len(rec.sent()) != 2 {
		t.Fatalf("a login that found no room for its host sent %d calls", len(rec.sent())-2)
	}
	clock.Advance(9 * time.Minute) // the 429 blocks end
	if _, err := login(false); err != nil {
		t.Fatalf("once the blocks ended: %v", err)
	}
}

// sweepBoth sweeps a process's host and TOTP records, and says how many of each are left.
func sweepBoth(l *Limiters, steps *TOTPSteps, now time.Time) (hosts, accounts int) {
	return l.Sweep(now), steps.Sweep(now)
}
