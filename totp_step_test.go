package sessiontoken

import (
	"context"
	"encoding/base32"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/internal/session"
	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/sim"
)

// stallClock is the env's fake clock, except that while stalled a Sleep waits for its context
// to end, as the real clock waits out a long sleep.
type stallClock struct {
	*fakeClock
	stalled atomic.Bool
}

func (c *stallClock) Sleep(ctx context.Context, d time.Duration) error {
	if c.stalled.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	return c.fakeClock.Sleep(ctx, d)
}

// A node whose clock ran fast left a TOTP step far ahead in storage before a failover. Reads
// and config writes fail at once with a clock-skew error (not a refused login, and before any
// upstream call); other mounts of the account are not held up; a config delete clears the
// stored step, after which a rewrite logs in (once the failed check's spacing is over).
func TestTOTPStepAheadOfTheClockFailsFastAndDeleteClearsIt(t *testing.T) {
	e := newEnv(t)
	clock := &stallClock{fakeClock: e.clock}
	clock.stalled.Store(true)
	e.withClock(clock)
	e.write("config", with(e.plextracConfig(true), "verify", false))
	if err := session.WriteTOTPStep(context.Background(), e.s, e.clock.Now().Unix()/30+100); err != nil {
		t.Fatal(err)
	}
	e.withClock(clock)      // the node that takes over loads config and step
	other := e.otherMount() // same process and account, own storage, a clock that does not stall
	other.write("config", with(other.plextracConfig(true), "verify", false))

	resp, err := e.promptly(logical.ReadOperation, "token", nil)
	code, msg := failure(t, resp, err)
	if !strings.Contains(msg, "clock skew") || !strings.Contains(msg, "NTP") || code == 400 || code == 403 {
		t.Fatalf("read: %d %s, want a clock-skew error", code, msg)
	}
	if st := e.sim.Stats(sim.PlexTrac); st.MFAChallenges != 0 || st.Logins != 0 {
		t.Fatalf("the skewed mount called upstream: %+v", st)
	}
	if _, err := other.promptly(logical.ReadOperation, "token", nil); err != nil {
		t.Fatalf("another mount of the account: %v", err)
	}

	resp, err = e.promptly(logical.UpdateOperation, "config", e.plextracConfig(true))
	if err != nil || !resp.IsError() || !strings.Contains(errText(resp), "clock skew") || strings.Contains(errText(resp), "rejected") {
		t.Fatalf("rewrite: %v %s, want a clock-skew error", err, errText(resp))
	}
	if resp, err = e.promptly(logical.DeleteOperation, "config", nil); err != nil || resp.IsError() {
		t.Fatalf("delete: %v %s", err, errText(resp))
	}
	if entry, err := e.s.Get(context.Background(), totpStepKey); err != nil || entry != nil {
		t.Fatalf("the config delete left the stored TOTP step: %v", err)
	}
	clock.stalled.Store(false) // the other mount took the current step: this one waits for the next
	// The failed check's spacing outlives the delete.
	e.clock.Advance(session.FirstFailureBackoff)
	e.write("config", e.plextracConfig(true))
	if st := e.sim.Stats(sim.PlexTrac); st.MFA != 2 || st.MFAFailures != 0 {
		t.Fatalf("want 2 MFA logins and no code refused, got %+v", st)
	}
}

// offsetClock is the env's fake clock as a node whose clock runs off by off sees it.
type offsetClock struct {
	*fakeClock
	off time.Duration
}

func (c offsetClock) Now() time.Time { return c.fakeClock.Now().Add(c.off) }

// The config delete takes the stored step, but this process's record of the account still
// keeps a quick rewrite from sending a code upstream already took. Here the step came from
// the node before a failover, whose clock ran 30 s fast (within the one step tolerated).
func TestConfigDeleteKeepsTheProcessRecordOfTheStep(t *testing.T) {
	e := newEnv(t)
	fast := e.anotherProcess(offsetClock{e.clock, 30 * time.Second}, false) // the node before the failover
	fast.write("config", e.plextracConfig(true))                            // sends the code of the step after this one
	// The failover: this node loads the mount, then its config is deleted and written again.
	if _, err := e.do(logical.DeleteOperation, "config", nil); err != nil {
		t.Fatal(err)
	}
	if entry, err := e.s.Get(context.Background(), totpStepKey); err != nil || entry != nil {
		t.Fatalf("the config delete left the stored TOTP step: %v", err)
	}
	e.write("config", e.plextracConfig(true)) // at once
	if st := e.sim.Stats(sim.PlexTrac); st.MFA != 2 || st.MFAFailures != 0 {
		t.Fatalf("the rewrite resent the code the other node sent: %+v", st)
	}
}

// After a failover, another process serves another mount of the same account (own storage)
// within the step the old process used: its first login waits for the next step.
func TestAnotherMountOfTheAccountInANewProcessSkipsTheCurrentStep(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(true))
	f := e.anotherProcess(nil, true)
	f.write("config", f.plextracConfig(true))
	if st := e.sim.Stats(sim.PlexTrac); st.MFA != 2 || st.MFAFailures != 0 {
		t.Fatalf("want 2 MFA logins and no replayed code, got %+v", st)
	}
}

// The TOTP record is the account, not the host: a name and an address of one upstream (two
// budgets) still never send one step's code twice.
func TestTOTPRecordIsTheAccountNotTheHost(t *testing.T) {
	a := newEnv(t)
	b := a.otherMount()
	port := a.url[strings.LastIndex(a.url, ":"):]
	a.write("config", with(a.plextracConfig(true), "url", "http://localhost"+port, "verify", false))
	b.write("config", with(b.plextracConfig(true), "url", "http://127.0.0.1"+port, "verify", false))
	a.clock.Advance(time.Minute) // long known to the process: no first-login skip hides a shared step
	a.read("token", nil)
	b.read("token", nil) // at once: must wait for the next step
	if st := a.sim.Stats(sim.PlexTrac); st.MFA != 2 || st.MFAFailures != 0 {
		t.Fatalf("want 2 MFA logins and no replayed code, got %+v", st)
	}
	if limiterOf(a)["host"] == limiterOf(b)["host"] {
		t.Fatal("a name and an address share a budget: names are not resolved")
	}
}

// [::ffff:127.0.0.1] is 127.0.0.1: one host, one budget.
func TestIPv4MappedAddressSharesTheHostBudget(t *testing.T) {
	a := newEnv(t)
	b := a.otherMount()
	port := a.url[strings.LastIndex(a.url, ":"):]
	a.write("config", with(a.plextracConfig(false), "url", "http://127.0.0.1"+port, "max_auth_per_minute", 1, "verify", false))
	b.write("config", with(b.plextracConfig(false), "url", "http://[::ffff:127.0.0.1]"+port, "max_auth_per_minute", 1, "verify", false))
	if la, lb := limiterOf(a), limiterOf(b); la["host"] != "127.0.0.1"+port || lb["host"] != la["host"] || lb["mounts_on_host"] != 2 {
		t.Fatalf("one host spelled two ways: %v / %v", la, lb)
	}
	a.read("token", nil) // the host's one call for the next 61 s
	if code, msg := b.readFailure("token"); code != 429 || !strings.Contains(msg, "auth limiter") {
		t.Fatalf("the other spelling got a budget of its own: %d %s", code, msg)
	}
	if st := a.sim.Stats(sim.PlexTrac); st.Logins != 1 {
		t.Fatalf("upstream saw %d logins, want 1", st.Logins)
	}
}

// Failed config writes to many hosts and accounts leave records only while they matter: a
// host's spent budget until it has refilled, an account's TOTP step until it is past. Then
// nothing of them is left.
func TestFailedConfigWritesLeaveNoRecordsBehind(t *testing.T) {
	e := newEnv(t)
	port := e.url[strings.LastIndex(e.url, ":"):] // nothing listens there on 127.0.0.2 and up
	const n = 30
	for i := range n {
		seed := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(fmt.Appendf(nil, "seed-%012d", i))
		resp, err := e.do(logical.UpdateOperation, "config", with(e.plextracConfig(true), "url", fmt.Sprintf("http://127.0.0.%d%s", i+2, port),
			"username", fmt.Sprintf("%d-%s@acme.com", i, strings.Repeat("u", 200)), "totp_secret", seed))
		if err != nil || !resp.IsError() || !strings.Contains(errText(resp), "cannot reach upstream") {
			t.Fatalf("write %d: %v %s", i, err, errText(resp))
		}
	}
	// Each write's MFA login first waited for its new account's next TOTP step (up to 30 s),
	// so only the last write's records are not neutral yet: a call spent, a step not past.
	spent := e.limiters.Host(fmt.Sprintf("127.0.0.%d%s", n+1, port))
	if hosts, accounts := e.limiters.Sweep(e.clock.Now()), e.totpSteps.Sweep(e.clock.Now()); hosts != 1 || accounts != 1 {
		t.Fatalf("right after the writes: %d host and %d account records, want 1 and 1 (the last write's)", hosts, accounts)
	}
	// The default budget (5 a minute: a burst of 2, a slot back every 20 s) refills the spent
	// call 20 s on.
	e.clock.Advance(19 * time.Second)
	if hosts := e.limiters.Sweep(e.clock.Now()); hosts != 1 || spent.State(e.clock.Now()).TokensLeft >= 2 {
		t.Fatalf("11 s on, a budget not yet refilled was dropped or reset: %d hosts", hosts)
	}
	e.clock.Advance(time.Second)
	if hosts, accounts := e.limiters.Sweep(e.clock.Now()), e.totpSteps.Sweep(e.clock.Now()); hosts != 0 || accounts != 1 {
		t.Fatalf("once refilled: %d host and %d account records left, want 0 and 1 (its step is not past)", hosts, accounts)
	}
	e.clock.Advance(10 * time.Second)
	if hosts, accounts := e.limiters.Sweep(e.clock.Now()), e.totpSteps.Sweep(e.clock.Now()); hosts != 0 || accounts != 0 {
		t.Fatalf("once the step is past: %d host and %d account records left", hosts, accounts)
	}
}

func TestSameTOTPStepIsNeverReplayed(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(true)) // an MFA login at this 30 s step
	// Rewriting the config logs in again at the same instant, with a new provider instance:
	// it must wait for the next step rather than resend the code upstream already took.
	start := e.clock.Now()
	e.write("config", e.plextracConfig(true))
	if st := e.sim.Stats(sim.PlexTrac); st.MFAFailures != 0 || st.MFA != 2 {
		t.Fatalf("want 2 MFA logins and no replay refused, got %+v", st)
	}
	if e.clock.Now().Unix()/30 == start.Unix()/30 {
		t.Fatal("the second MFA login did not move to the next TOTP step")
	}
}

// A new plugin process (restart, reload, failover to another node) starts with no memory of
// the TOTP step used last: it must come from storage.
func TestTOTPStepSurvivesAnotherPluginProcess(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(true))
	e.anotherProcess(nil, false).write("config", e.plextracConfig(true)) // same instant: must wait for the next step
	if st := e.sim.Stats(sim.PlexTrac); st.MFAFailures != 0 || st.MFA != 2 {
		t.Fatalf("want 2 MFA logins and no replay refused, got %+v", st)
	}
}

// Two mounts of one plugin process on one upstream host share its auth budget however the
// host is spelled; the budget is the smallest one configured on the host; a write that fails
// its check, or asks for more, changes nothing the other mount gets.
func TestMountsOnOneHostShareTheSmallestBudget(t *testing.T) {
	a := newEnv(t)
	b, c := a.otherMount(), a.otherMount()
	port := a.url[strings.LastIndex(a.url, ":"):]
	a.write("config", with(a.plextracConfig(false), "url", "http://localhost"+port, "max_auth_per_minute", 8))
	// b never connects (verify=false, no reads): a trailing-dot name would be resolved by DNS.
	b.write("config", with(b.plextracConfig(false), "url", "http://LOCALHOST."+port+"/", "max_auth_per_minute", 8, "verify", false))
	if la, lb := limiterOf(a), limiterOf(b); la["host"] != lb["host"] || la["host"] != "localhost"+port || la["mounts_on_host"] != 2 {
		t.Fatalf("one host spelled two ways: %v / %v", la, lb)
	}
	for _, failing := range []int{1, 600} { // wrong password: the write fails its check
		a.clock.Advance(10 * time.Second)
		resp, _ := c.do(logical.UpdateOperation, "config", with(c.plextracConfig(false), "url", "http://LocalHost"+port,
			"password", "wrong-password", "max_auth_per_minute", failing))
		if !resp.IsError() || !strings.Contains(errText(resp), "login failed") {
			t.Fatalf("a wrong password was not refused by the login check: %s", errText(resp))
		}
		if got := limiterOf(a)["max_auth_per_minute"]; got != 8 {
			t.Fatalf("a failed write asking %d changed the host's budget to %v", failing, got)
		}
	}
	b.write("config", map[string]any{"max_auth_per_minute": 3, "verify": false})
	if la := limiterOf(a); la["max_auth_per_minute"] != 3 || !strings.Contains(la["rule"].(string), "smallest") || la["this_mount_asked"] != 8 {
		t.Fatalf("b lowered the budget to 3: a sees %v", la)
	}
	b.write("config", map[string]any{"max_auth_per_minute": 600, "verify": false})
	if got := limiterOf(a)["max_auth_per_minute"]; got != 8 {
		t.Fatalf("b asked 600: a's host budget is %v, want 8 (no mount raises it past another's)", got)
	}
	if _, err := b.do(logical.DeleteOperation, "config", nil); err != nil {
		t.Fatal(err)
	}
	if la := limiterOf(a); la["max_auth_per_minute"] != 8 || la["mounts_on_host"] != 1 {
		t.Fatalf("after b's config was deleted: %v", la)
	}
}

// Two mounts for one MFA account, with the host spelled differently, never send the same
// TOTP code: the used-step record is keyed by the account (its seed).
func TestTOTPStepIsSharedAcrossSpellingsOfOneAccount(t *testing.T) {
	a := newEnv(t)
	b := a.otherMount()
	port := a.url[strings.LastIndex(a.url, ":"):]
	a.write("config", with(a.plextracConfig(true), "url", "http://localhost"+port))
	b.write("config", with(b.plextracConfig(true), "url", "http://LOCALHOST"+port))
	if st := a.sim.Stats(sim.PlexTrac); st.MFAFailures != 0 || st.MFA != 2 {
		t.Fatalf("want 2 MFA logins and no replayed code, got %+v", st)
	}
}

// A configured mount keeps its TOTP account's record in the process however long it is idle,
// so that no other mount of the account resends the step it used; a config delete lets the
// record go once its step is past, as the host's budget goes once it has refilled.
func TestAMountKeepsItsTOTPAccountWhileConfigured(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(true))
	e.clock.Advance(time.Hour)
	if accounts := e.totpSteps.Sweep(e.clock.Now()); accounts != 1 {
		t.Fatalf("an hour after the write: %d TOTP account records, want the mount's", accounts)
	}
	if _, err := e.do(logical.DeleteOperation, "config", nil); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute)
	if hosts, accounts := e.limiters.Sweep(e.clock.Now()), e.totpSteps.Sweep(e.clock.Now()); hosts != 0 || accounts != 0 {
		t.Fatalf("a minute after the delete: %d host and %d TOTP account records left", hosts, accounts)
	}
}
