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

func TestUpstreamFailureIsClearAndBounded(t *testing.T) {
	e := newEnv(t)
	e.write("config", with(e.plextracConfig(false), "verify", false))
	e.sim.AddFault(sim.Fault{Provider: sim.PlexTrac, Status: 503})
	var msg string
	for range 50 { // a burst of readers while upstream is down
		resp, err := e.do(logical.ReadOperation, "token", nil)
		var code int
		if code, msg = failure(t, resp, err); code != 502 {
			t.Fatalf("status %d, want 502", code)
		}
	}
	for _, want := range []string{"plextrac", "HTTP 503", "retry after"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	assertNoSecrets(t, "error", msg)
	if st := e.sim.Stats(sim.PlexTrac); st.AuthCalls != 1 {
		t.Fatalf("50 failing reads made %d upstream calls; the backoff should hold them to 1", st.AuthCalls)
	}
	// Upstream recovers: after the backoff a read logs in.
	e.sim.ClearFaults()
	e.clock.Advance(10 * time.Second) // the first backoff step
	e.read("token", nil)
	if st := e.sim.Stats(sim.PlexTrac); st.Logins != 1 {
		t.Fatalf("logins after recovery = %d, want 1", st.Logins)
	}
}

func TestUpstream429HoldsEveryCallerUntilRetryAfter(t *testing.T) {
	e := newEnv(t)
	e.write("config", with(e.plextracConfig(false), "verify", false))
	e.sim.AddFault(sim.Fault{Provider: sim.PlexTrac, Status: 429, RetryAfter: "40", Times: 1})
	code, msg := e.readFailure("token")
	if code != 429 || !strings.Contains(msg, "HTTP 429") {
		t.Fatalf("want a 429 naming the upstream's 429, got %d %q", code, msg)
	}
	want := e.clock.Now().Add(40 * time.Second).UTC().Format(time.RFC3339)
	if !strings.Contains(msg, want) {
		t.Errorf("error %q should say retry after %s", msg, want)
	}
	e.clock.Advance(30 * time.Second) // past the plugin's own backoff, not past Retry-After
	if code, _ := e.readFailure("token"); code != 429 {
		t.Fatalf("read before Retry-After: status %d, want 429", code)
	}
	if st := e.sim.Stats(sim.PlexTrac); st.AuthCalls != 1 {
		t.Fatalf("upstream saw %d auth calls before Retry-After, want 1", st.AuthCalls)
	}
	e.clock.Advance(11 * time.Second)
	e.read("token", nil)
}

func TestRefreshFailureServesStillValidToken(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(false))
	first := e.read("token", nil).Data["token"]
	e.sim.AddFault(sim.Fault{Provider: sim.PlexTrac, Status: 502})
	e.clock.Advance(11 * time.Minute) // 4m left: wants a refresh, which fails
	resp := e.read("token", nil)
	if resp.Data["token"] != first || len(resp.Warnings) == 0 {
		t.Fatalf("want the still-valid token with a warning, got %v %v", resp.Data["token"] == first, resp.Warnings)
	}
	if resp.Secret.TTL > 4*time.Minute {
		t.Errorf("lease TTL %s outlives the token", resp.Secret.TTL)
	}
}

func TestPeriodicRefreshesAheadOnlyWhereWritable(t *testing.T) {
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
	e.b.reset()
	e.read("token", nil)
	if st := e.sim.Stats(sim.PlexTrac); st.Logins != 1 || st.Refreshes != 1 {
		t.Fatalf("reload cost upstream calls: %+v", st)
	}
}

func TestStatusShowsSessionAndCalls(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(true))
	e.read("token", nil)
	st := e.read("status", nil).Data
	session := st["session"].(map[string]any)
	if session["state"] != "valid" || session["obtained_by"] != "mfa" {
		t.Errorf("session = %v", session)
	}
	calls := st["upstream_calls"].(map[string]map[string]int)
	if calls["login"]["ok"] != 1 || calls["mfa"]["ok"] != 1 {
		t.Errorf("upstream_calls = %v", calls)
	}
	if lim := st["limiter"].(map[string]any); lim["max_auth_per_minute"] != 10 {
		t.Errorf("limiter = %v", lim)
	}
}

// The periodic function refreshes once the token has min_ttl + 75 s left (6m15s with 15-minute
// tokens and the default 5m), not a second earlier.
func TestPeriodicRefreshStartsAtMinTTLPlus75Seconds(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(false))
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
