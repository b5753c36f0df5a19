package upstream

import (
	"context"
	"crypto/sha256"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/internal/testclock"
)

// waitClock is a fake clock whose Sleep really waits: until the test advances the clock past
// its end, or its context ends. Each Sleep announces itself on sleeping first.
type waitClock struct {
	mu       sync.Mutex
	t        time.Time
	changed  chan struct{} // closed on each Advance
	sleeping chan time.Duration
}

func newWaitClock(t time.Time) *waitClock {
	return &waitClock{t: t, changed: make(chan struct{}), sleeping: make(chan time.Duration, 16)}
}

func (c *waitClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *waitClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
	close(c.changed)
	c.changed = make(chan struct{})
}

func (c *waitClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	end := c.t.Add(d)
	c.mu.Unlock()
	c.sleeping <- d
	for {
		c.mu.Lock()
		now, changed := c.t, c.changed
		c.mu.Unlock()
		if !now.Before(end) {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// waitFor returns the length of the next Sleep, failing the test if the call it waits for
// returns without sleeping.
func (c *waitClock) waitFor(t *testing.T, done <-chan error) time.Duration {
	t.Helper()
	select {
	case d := <-c.sleeping:
		return d
	case err := <-done:
		t.Fatalf("returned without waiting: %v", err)
	}
	return 0
}

// midStep is 10 s into a 30 s step.
var midStep = time.Unix(1111111080+10, 0)

// A new process (a failover or reload) cannot know which code another process sent last for
// an account, so its first code for the account is the next step's: one wait, at most 30 s.
func TestFirstCodeOfAnAccountInAProcessSkipsTheCurrentStep(t *testing.T) {
	clock := testclock.At(midStep)
	steps := NewTOTPSteps()
	first, err := newTOTPSource(rfc6238Seed, clock, steps).Code(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if waited := clock.Now().Sub(midStep); waited != 20*time.Second || validAt(t, first, rfc6238Seed, midStep) ||
		!validAt(t, first, rfc6238Seed, clock.Now()) {
		t.Fatalf("waited %s and sent %s: want the next step's code, 20 s later", waited, first)
	}
	// Once known, later steps are not skipped.
	clock.Advance(5 * time.Minute)
	at := clock.Now()
	if _, err := newTOTPSource(rfc6238Seed, clock, steps).Code(context.Background()); err != nil || clock.Now() != at {
		t.Fatalf("a known account waited again: %v, %s", err, clock.Now().Sub(at))
	}
}

// The record is the account, whoever logs in with its seed and wherever the URL points: two
// providers on two spellings of a host (or two hosts) with two user spellings never send one
// step's code twice. The record is named by a keyed hash, never the seed.
func TestTOTPRecordIsTheAccountNotTheHostOrUser(t *testing.T) {
	clock := testclock.At(midStep)
	rec := newRecorder(t, map[string]answer{
		"POST /api/v1/authenticate":     {200, `{"mfa_enabled":true,"code":"chal"}`},
		"POST /api/v1/authenticate/mfa": {200, `{"status":"success","token":"opaque-mfa"}`},
	})
	l, steps := NewLimiters(), NewTOTPSteps()
	port := rec.URL[strings.LastIndex(rec.URL, ":"):]
	var ps []Provider
	for _, cfg := range []Config{
		{URL: "http://localhost" + port, Username: "svc@acme.com", TOTPSecret: rfc6238Seed},
		{URL: "http://127.0.0.1" + port, Username: "SVC@acme.com", TOTPSecret: strings.ToLower(rfc6238Seed) + "===="},
	} {
		cfg.Provider, cfg.Password, cfg.RequestTimeout = PlexTrac, "pw-secret", 2*time.Second
		p, err := New(cfg, Deps{Clock: clock, Limiters: l, TOTPSteps: steps})
		if err != nil {
			t.Fatal(err)
		}
		knownAccount(p) // long known to the process: no first-code skip hides a shared step
		ps = append(ps, p)
	}
	var codes []string
	for _, p := range ps {
		if _, err := p.Login(context.Background()); err != nil {
			t.Fatal(err)
		}
		codes = append(codes, rec.sent()[len(rec.sent())-1].body["token"].(string))
	}
	if codes[0] == codes[1] || clock.Now().Sub(midStep) != 20*time.Second {
		t.Fatalf("codes %v after %s: the second login resent the first one's step", codes, clock.Now().Sub(midStep))
	}
	for k := range steps.m {
		if k == sha256.Sum256([]byte(rfc6238Seed)) || strings.Contains(string(k[:]), rfc6238Seed) {
			t.Fatal("the record is named by the seed or its plain hash")
		}
		if k == NewTOTPSteps().keyOf(rfc6238Seed) {
			t.Fatal("two processes name the account alike: the key is not per process")
		}
	}
}

// A step stored by a node whose clock ran fast: the login fails at once, before any upstream
// call, with a clock-skew error that is not a refused login and says when codes can be sent
// again. One step ahead is tolerated (a wait of at most a minute).
func TestTOTPStepAheadOfTheClockFailsFast(t *testing.T) {
	clock := newWaitClock(midStep)
	rec := newRecorder(t, map[string]answer{
		"POST /api/v1/authenticate":     {200, `{"mfa_enabled":true,"code":"chal"}`},
		"POST /api/v1/authenticate/mfa": {200, `{"status":"success","token":"opaque-mfa"}`},
	})
	cfg := Config{Provider: PlexTrac, URL: rec.URL, Username: "svc", Password: "pw-secret", TOTPSecret: rfc6238Seed, RequestTimeout: 2 * time.Second}
	l, steps := NewLimiters(), NewTOTPSteps()
	p, err := New(cfg, Deps{Clock: clock, Limiters: l, TOTPSteps: steps})
	if err != nil {
		t.Fatal(err)
	}
	q, _ := New(cfg, Deps{Clock: clock, Limiters: l, TOTPSteps: steps}) // another provider of the account: see below
	knownAccount(q)
	cur := stepAt(midStep)
	p.(TOTPStepper).SkipTOTPStepsThrough(cur + 100) // as storage says after a fast node
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err = p.Login(ctx)
	wantErr(t, err, KindUnavailable, "clock skew", "49m50s after this node's clock", "NTP")
	if e, _ := AsError(err); !e.RetryAt.Equal(stepStart(cur+101)) || ctx.Err() != nil || len(rec.sent()) != 0 {
		t.Fatalf("retry at %s (want %s), ctx %v, %d upstream calls (want 0)", e.RetryAt, stepStart(cur+101), ctx.Err(), len(rec.sent()))
	}
	if p.(TOTPStepper).LastTOTPStep() != cur+100 {
		t.Fatal("the stored step was forgotten: it would be stored lower")
	}
	// The process's record of the account is not poisoned: another provider (the config
	// rewritten after its delete cleared the stored step) logs in.
	if _, err := q.Login(ctx); err != nil {
		t.Fatalf("another provider of the account: %v", err)
	}

	// One step ahead: wait until it is past, then log in.
	q.(TOTPStepper).SkipTOTPStepsThrough(cur + 1)
	done := make(chan error, 1)
	go func() { _, err := q.Login(ctx); done <- err }()
	if d := clock.waitFor(t, done); d != 50*time.Second {
		t.Fatalf("waits %s, want 50 s (to the step after the next)", d)
	}
	clock.Advance(50 * time.Second)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// Waiting for the next step holds no lock: while one login waits, the other mounts of the
// account (and a config write telling the provider the stored step) go on, and a caller that
// gives up gets its context's error at once.
func TestTOTPWaitHoldsNoLockAndFollowsTheCallersContext(t *testing.T) {
	clock := newWaitClock(midStep)
	steps := NewTOTPSteps()
	waiter, other := newTOTPSource(rfc6238Seed, clock, steps), newTOTPSource(rfc6238Seed, clock, steps)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := waiter.Code(ctx); done <- err }() // a new account: waits for the next step
	clock.waitFor(t, done)

	other.skipThrough(stepAt(midStep))
	_ = other.lastStep()
	gaveUp, stop := context.WithCancel(context.Background())
	stop()
	if _, err := other.Code(gaveUp); err != context.Canceled {
		t.Fatalf("a caller that gave up: %v", err)
	}
	<-clock.sleeping // its wait, ended at once
	if ctx.Err() != nil {
		t.Fatal("the other source's calls waited for the waiting login to give up: a lock is held while waiting")
	}
	clock.Advance(20 * time.Second)
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// A waiter whose caller gives up returns its context's error, and spends no step.
	last := waiter.lastStep()
	ctx2, cancel2 := context.WithCancel(context.Background())
	go func() { _, err := waiter.Code(ctx2); done <- err }()
	clock.waitFor(t, done)
	cancel2()
	if err := <-done; err != context.Canceled || waiter.lastStep() != last {
		t.Fatalf("got %v, last step %d (was %d)", err, waiter.lastStep(), last)
	}
}

// A waiter looks again when it wakes: a step taken meanwhile (another login, or a step read
// from storage) is not sent again.
func TestTOTPWaiterLooksAgainAfterWaking(t *testing.T) {
	clock := newWaitClock(midStep)
	steps := NewTOTPSteps()
	waiter, other := newTOTPSource(rfc6238Seed, clock, steps), newTOTPSource(rfc6238Seed, clock, steps)
	cur := stepAt(midStep)
	got := make(chan string, 1)
	go func() { code, _ := waiter.Code(context.Background()); got <- code }()
	select { // a new account: waits for cur+1
	case <-clock.sleeping:
	case code := <-got:
		t.Fatalf("a new account's first code %s was sent without waiting", code)
	}
	other.skipThrough(cur + 1)      // another node used cur+1, as storage now says
	clock.Advance(20 * time.Second) // cur+1 begins
	select {
	case d := <-clock.sleeping:
		if d != 30*time.Second {
			t.Fatalf("after waking the waiter slept %s, want 30 s to the step after", d)
		}
	case code := <-got:
		t.Fatalf("on waking the waiter sent %s, the code of step %d that was taken meanwhile", code, cur+1)
	}
	clock.Advance(30 * time.Second)
	if code := <-got; !validAt(t, code, rfc6238Seed, stepStart(cur+2)) || waiter.lastStep() != cur+2 {
		t.Fatalf("sent %s, last step %d: want the code of step %d", code, waiter.lastStep(), cur+2)
	}
}
