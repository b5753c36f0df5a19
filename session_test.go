package sessiontoken

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/sim"
)

func TestRefreshRejectedFallsBackToLogin(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(true))
	first := e.read("token", nil).Data["token"]
	e.sim.Forget()                    // upstream restarted: it no longer knows the token
	e.clock.Advance(11 * time.Minute) // inside min_ttl: the read refreshes
	resp := e.read("token", nil)
	if resp.Data["token"] == first {
		t.Fatal("token not replaced")
	}
	if st := e.callProtected("/api/v1/whoami", resp.Data["authorization"].(string)); st != 200 {
		t.Fatalf("new token rejected: %d", st)
	}
	st := e.sim.Stats(sim.PlexTrac)
	if st.RefreshFailures != 1 || st.MFA != 2 {
		t.Fatalf("want 1 refused refresh then a full MFA login (2 MFA in all), got %+v", st)
	}
}

func TestExpiredSessionLogsInAgain(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plaspyConfig()) // Plaspy has no refresh call
	first := e.read("token", nil).Data["token"]
	e.clock.Advance(11 * time.Minute)
	if got := e.read("token", nil).Data["token"]; got == first {
		t.Fatal("token not replaced")
	}
	if st := e.sim.Stats(sim.Plaspy); st.Logins != 2 {
		t.Fatalf("logins = %d, want 2", st.Logins)
	}
}

// The periodic run refreshes a session that is due (min_ttl plus one periodic interval left),
// readers get the refreshed token, and it is stored: a new backend instance (restart,
// failover) serves it without logging in. (Where storage is not writable it does not refresh:
// TestReadOnlyNodeForwardsInsteadOfLoggingIn.)
func TestPeriodicRefreshIsServedAndStored(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(false))
	tok := e.read("token", nil).Data["token"]
	periodic := func() {
		if err := e.b.PeriodicFunc(context.Background(), &logical.Request{Storage: e.s}); err != nil {
			t.Fatal(err)
		}
	}
	e.clock.Advance(5 * time.Minute) // 10m left: not due
	periodic()
	if st := e.sim.Stats(sim.PlexTrac); st.Refreshes != 0 {
		t.Fatal("refreshed too early")
	}
	e.clock.Advance(4 * time.Minute) // 6m left: due (min_ttl 5m + one periodic interval)
	periodic()
	if st := e.sim.Stats(sim.PlexTrac); st.Refreshes != 1 {
		t.Fatalf("periodic refreshes = %d, want 1", st.Refreshes)
	}
	if got := e.read("token", nil).Data["token"]; got == tok {
		t.Fatal("readers did not get the refreshed token")
	}
	// The refreshed session is in storage: a new backend instance (restart, failover) serves
	// it without logging in.
	e.b.slot.Reset()
	e.read("token", nil)
	if st := e.sim.Stats(sim.PlexTrac); st.Logins != 1 || st.Refreshes != 1 {
		t.Fatalf("reload cost upstream calls: %+v", st)
	}
}

// The periodic function refreshes once the token has min_ttl + 75 s left (6m15s with 15-minute
// tokens and the default 5m), not a second earlier, for a mount that is read.
func TestPeriodicRefreshStartsAtMinTTLPlus75Seconds(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(false))
	e.read("token", nil) // a read keeps the session warm (keep_warm)
	periodic := func() {
		if err := e.b.PeriodicFunc(context.Background(), &logical.Request{Storage: e.s}); err != nil {
			t.Fatal(err)
		}
	}
	e.clock.Advance(8*time.Minute + 44*time.Second) // 6m16s left
	periodic()
	if st := e.sim.Stats(sim.PlexTrac); st.Refreshes != 0 {
		t.Fatal("refreshed with 6m16s left")
	}
	e.clock.Advance(time.Second) // 6m15s left
	periodic()
	if st := e.sim.Stats(sim.PlexTrac); st.Refreshes != 1 {
		t.Fatalf("refreshes with 6m15s left = %d, want 1", st.Refreshes)
	}
	if strings.Contains(e.logs.String(), "did not succeed") {
		t.Fatal("a successful periodic refresh was logged as failed")
	}
}

// With tokens shorter than the periodic look-ahead, the periodic refresh does not refresh a
// token in the first half of its life, so readers and the periodic function together cost
// one refresh per two thirds of a lifetime, not one per periodic run plus the readers'.
func TestShortTokensAreNotRefreshedTwice(t *testing.T) {
	e := newEnv(t)
	e.sim.SetTokenLifetime(60 * time.Second)
	e.write("config", e.plextracConfig(false))
	for sec := 1; sec <= 600; sec++ { // 10 minutes: a read every second, periodic every minute
		e.clock.Advance(time.Second)
		e.read("token", nil)
		if sec%60 == 0 {
			if err := e.b.PeriodicFunc(context.Background(), &logical.Request{Storage: e.s}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Readers alone refresh at 20 s left: every 40 s, 15 in 10 minutes.
	if st := e.sim.Stats(sim.PlexTrac); st.AuthCalls > 16 {
		t.Fatalf("10 minutes of 60 s tokens cost %d upstream auth calls, want at most 16", st.AuthCalls)
	}
}

// After failed refreshes the mount waits 10 s, then twice as long each time, at most 5 minutes.
func TestFailureBackoffDoublesUpToFiveMinutes(t *testing.T) {
	e := newEnv(t)
	e.write("config", with(e.plextracConfig(false), "verify", false))
	e.sim.AddFault(sim.Fault{Provider: sim.PlexTrac, Status: 503})
	for i, want := range []time.Duration{10, 20, 40, 80, 160, 300, 300} {
		e.readFailure("token")
		retry, _ := time.Parse(time.RFC3339, e.read("status", nil).Data["retry_after"].(string))
		if got := retry.Sub(e.clock.Now()); got != want*time.Second {
			t.Fatalf("failure %d: retry after %s, want %ds", i+1, got, want)
		}
		e.clock.Advance(want * time.Second)
	}
	if st := e.sim.Stats(sim.PlexTrac); st.AuthCalls != 7 {
		t.Fatalf("7 backoff steps made %d upstream calls", st.AuthCalls)
	}
}

// Issue 35: the TOTP step a session's login used is stored, whether a token read, a renewal or
// the periodic run logged in, so that another process (a reload, a failover) never sends a code
// of that step. Here the node that logged in ran 30 s fast, within the step tolerated: the
// process that takes over skips only its own current step, so only the stored record keeps it
// from resending the code of the next.
func TestEveryLoginRecordsItsTOTPStep(t *testing.T) {
	for name, login := range map[string]func(fast *env){
		"read": func(fast *env) { fast.read("token", nil) },
		"renewal": func(fast *env) {
			lease := fast.lease()
			fast.clock.Advance(11 * time.Minute) // the renewal window: refresh refused, so a login
			fast.sim.Forget()
			renew(t, fast, lease.Secret)
		},
		"periodic run": func(fast *env) {
			fast.read("token", nil)
			fast.clock.Advance(9 * time.Minute) // the periodic look-ahead: refresh refused, so a login
			fast.sim.Forget()
			if err := fast.b.PeriodicFunc(context.Background(), &logical.Request{Storage: fast.s}); err != nil {
				t.Fatal(err)
			}
		},
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			fast := e.anotherProcess(offsetClock{e.clock, 30 * time.Second}, false) // the node before the failover
			fast.write("config", with(e.plextracConfig(true), "verify", false))
			login(fast)
			mfa := e.sim.Stats(sim.PlexTrac).MFA
			if want := map[string]int{"read": 1, "renewal": 2, "periodic run": 2}[name]; mfa != want { // the first read's, then the one tested
				t.Fatalf("test setup: %d MFA logins, want %d", mfa, want)
			}
			e.write("config", map[string]any{"min_ttl": 240}) // this node's login check, at once
			if st := e.sim.Stats(sim.PlexTrac); st.MFAFailures != 0 || st.MFA != mfa+1 {
				t.Fatalf("the other process resent the code of the step the %s's login used: %+v", name, st)
			}
		})
	}
}

// A refresh that does not give a later token is a failure for the backoff: otherwise an
// upstream whose refresh returned the same token made every read past min_ttl refresh again
// (30 reads: 8 auth calls, the host's budget emptied for every other mount on it).
func TestRefreshThatDoesNotHelpBacksOff(t *testing.T) {
	f := &fakeLogin{}
	e := newEnvWrapped(t, f.wrap)
	same := fixedJWT(e.clock.Now(), e.clock.Now().Add(15*time.Minute))
	f.login.Store(answer(200, map[string]any{"token": same}))
	f.refresh.Store(answer(200, map[string]any{"token": same}))
	e.write("config", with(genericFake(e), "max_auth_per_minute", 100))
	calls := func() int { return int(f.calls.Load()) }
	before := calls()
	e.clock.Advance(11 * time.Minute) // 4m left: below min_ttl (5m), a read refreshes
	for i := 0; i < 30; i++ {
		resp := e.read("token", nil)
		if resp.Data["token"] != same {
			t.Fatal("the still-valid token was not served")
		}
		e.clock.Advance(time.Second)
	}
	if n := calls() - before; n > 2 {
		t.Fatalf("30 reads cost %d upstream auth calls; a refresh that does not help must back off", n)
	}
}

// An upstream that echoes the current opaque (non-JWT) token in a refresh error never gets it
// into status, errors or the log, before and after a reload from storage.
func TestOpaqueTokenEchoedByUpstreamIsScrubbed(t *testing.T) {
	f := &fakeLogin{}
	e := newEnvWrapped(t, f.wrap)
	const tok = "opaque-session-value-1"
	f.login.Store(answer(200, map[string]any{"token": tok}))
	f.refresh.Store(answer(500, map[string]any{"message": "token " + tok + " is not valid here"}))
	e.write("config", genericFake(e))
	e.read("token", nil)
	for _, reload := range []bool{false, true} {
		if reload {
			e.b.slot.Reset() // the token now comes from storage
			// Refresh refused, so it logs in, and the login failure echoes the stored token.
			f.refresh.Store(answer(401, map[string]any{"message": "session ended"}))
			f.login.Store(answer(503, map[string]any{"message": "down; your token was " + tok}))
		}
		e.clock.Advance(map[bool]time.Duration{false: 11 * time.Minute, true: 30 * time.Second}[reload]) // refresh due (past the backoff)
		resp := e.read("token", nil)
		if len(resp.Warnings) == 0 {
			t.Fatalf("reload=%v: no refresh failure to check", reload)
		}
		status := e.read("status", nil).Data
		if status["last_error"] == nil {
			t.Fatalf("reload=%v: status has no last_error", reload)
		}
		assertNoSecrets(t, "status", status, tok, "fake-login-password")
		assertNoSecrets(t, "warnings", resp.Warnings, tok, "fake-login-password")
	}
}

// Expiries the plugin cannot store or serve are bad responses at login, with a clear error,
// never a half-stored session whose leases cannot renew.
func TestImplausibleExpiriesAreBadResponsesAtLogin(t *testing.T) {
	f := &fakeLogin{}
	e := newEnvWrapped(t, f.wrap)
	for name, tc := range map[string]struct {
		expires any
		want    string
	}{
		"1e15 µs (2001)":             {1e15, "expire"},
		"unreadable (issue 33)":      {"soon", "expires is stated but cannot be read"},
		"ten thousand years out":     {"9999-12-31T23:59:59Z", "expire"},
		"lives less than the margin": {e.clock.Now().Add(8 * time.Second).Unix(), "expire"},
	} {
		f.login.Store(answer(200, map[string]any{"token": "opaque-token-x", "expires": tc.expires}))
		resp, _ := e.do(logical.UpdateOperation, "config", genericFake(e))
		if !resp.IsError() || !strings.Contains(errText(resp), tc.want) || !strings.Contains(errText(resp), "login") {
			t.Fatalf("%s: config write %q, want the login check to refuse the expiry", name, errText(resp))
		}
		e.write("config", with(genericFake(e), "verify", false))
		code, msg := e.readFailure("token")
		if code != 502 || !strings.Contains(msg, "generic") {
			t.Fatalf("%s: read %d %q, want 502 naming the upstream", name, code, msg)
		}
		e.clock.Advance(time.Minute) // past the failure backoff and the auth budget
	}
}
