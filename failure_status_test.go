package sessiontoken

import (
	"cmp"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/sim"
	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/upstream"
)

// faultCase breaks the upstream one way. Each runs twice: cold (no session: readers must get a
// clear error) and warm (a valid session due for refresh: readers must keep getting it).
type faultCase struct {
	name    string
	mfa     bool
	timeout int        // request_timeout in seconds, when the fault is about time
	fault   *sim.Fault // injected at the simulator
	breakIt func(e *env)
	heal    func(e *env)
	want    string // in the cold error
	status  int    // cold HTTP status
	// holds: upstream refuses the credentials, so the mount holds (max_refused_logins=1 here)
	// and does not recover by itself once the fault clears: an operator's write does it.
	holds bool
	// retryIn: when a cold mount tries upstream again, from its first failure. Zero: the
	// first step of the failure backoff, 10 s; a 429 waits what its Retry-After says.
	retryIn time.Duration
}

func faultCases() []faultCase {
	f := func(fl sim.Fault) *sim.Fault { fl.Provider = sim.PlexTrac; return &fl }
	restore := func(e *env) { e.sim.AddDemoUsers() }
	return []faultCase{
		{name: "500 burst", fault: f(sim.Fault{Status: 500}), want: "HTTP 500", status: 502},
		{name: "502", fault: f(sim.Fault{Status: 502}), want: "HTTP 502", status: 502},
		{name: "503", fault: f(sim.Fault{Status: 503}), want: "HTTP 503", status: 502},
		{name: "connection refused", breakIt: (*env).upstreamDown, heal: (*env).upstreamUp, want: "cannot reach upstream", status: 504},
		{name: "hang past request_timeout", timeout: 1, fault: f(sim.Fault{Delay: 3 * time.Second}), want: "no answer within request_timeout (1s)", status: 504},
		{name: "429 with Retry-After", fault: f(sim.Fault{Status: 429, RetryAfter: "90"}), want: "HTTP 429", status: 429, retryIn: 90 * time.Second},
		{name: "429 without Retry-After", fault: f(sim.Fault{Status: 429}), want: "HTTP 429", status: 429, retryIn: time.Minute},
		{name: "HTML page with 200", fault: f(sim.Fault{Body: "html"}), want: "not JSON (text/html)", status: 502},
		{name: "malformed JSON", fault: f(sim.Fault{Body: "garbage"}), want: "not JSON", status: 502},
		{name: "truncated JSON", fault: f(sim.Fault{Body: "truncated"}), want: "not JSON", status: 502},
		{name: "50 MiB body", fault: f(sim.Fault{Body: "oversized", OversizeMiB: 50}), want: "larger than 1024 KiB", status: 502},
		{name: "JWT expired at issue", fault: f(sim.Fault{Token: "expired"}), want: "expired at", status: 502},
		{name: "wrong MFA code", mfa: true, breakIt: func(e *env) {
			e.sim.AddPlexTracUser(sim.DemoPlexTracUser, sim.PlexTracUser{Password: sim.DemoPlexTracPassword, TOTPSecret: "GEZDGNBVGY3TQOJQ", TenantID: 7})
		}, heal: restore, want: "check totp_secret", status: 502, holds: true},
		{name: "credentials revoked upstream", breakIt: revokeDemoPassword, heal: restore, want: "check username and password", status: 502, holds: true},
	}
}

// A burst of 50 cold readers while upstream fails costs one login attempt; each reader gets
// an error naming the upstream, what happened and when to retry, with no secret; and at that
// time, not before, the next read logs in once upstream has healed.
func TestUpstreamFaultsColdReadersGetClearBoundedErrors(t *testing.T) {
	for _, fc := range faultCases() {
		t.Run(fc.name, func(t *testing.T) {
			e := newEnv(t)
			cfg := with(e.plextracConfig(fc.mfa), "verify", false)
			if fc.timeout != 0 {
				cfg["request_timeout"] = fc.timeout
			}
			if fc.holds {
				cfg["max_refused_logins"] = 1
			}
			e.write("config", cfg)
			breakUpstream(e, fc)
			var failedAt time.Time
			for i := range 50 {
				code, msg := e.readFailure("token")
				if i == 0 {
					failedAt = e.clock.Now()
				}
				if code != fc.status {
					t.Fatalf("read %d: status %d, want %d", i, code, fc.status)
				}
				if i == 0 || i == 49 {
					if !strings.Contains(msg, fc.want) || !strings.Contains(msg, "plextrac (") || !strings.Contains(msg, "retry after") {
						t.Fatalf("read %d: %q; want it to name plextrac, %q and when to retry", i, msg, fc.want)
					}
					assertNoSecrets(t, "error", msg, "rotated-elsewhere", "GEZDGNBVGY3TQOJQ")
				}
			}
			attempt := 1 // auth calls of one login attempt
			if fc.mfa {
				attempt = 2
			}
			if calls := e.sim.Stats(sim.PlexTrac).AuthCalls; calls > attempt {
				t.Fatalf("50 failing reads made %d upstream auth calls; want at most one login attempt (%d)", calls, attempt)
			}
			healUpstream(e, fc)
			if fc.holds {
				heldUntilAnOperatorActs(t, e, fc)
				return
			}
			retryIn := cmp.Or(fc.retryIn, 10*time.Second)
			e.clock.Advance(failedAt.Add(retryIn - time.Second).Sub(e.clock.Now()))
			before := e.sim.Stats(sim.PlexTrac).AuthCalls
			if code, msg := e.readFailure("token"); code != fc.status || e.sim.Stats(sim.PlexTrac).AuthCalls != before {
				t.Fatalf("a read 1 s before the retry time: %d %q; want the held failure and no upstream call", code, msg)
			}
			e.clock.Advance(time.Second)
			logins := e.sim.Stats(sim.PlexTrac).Logins
			resp, err := e.do(logical.ReadOperation, "token", nil)
			auth, _ := resp.Data["authorization"].(string)
			if err != nil || auth == "" {
				t.Fatalf("a read at the retry time, upstream healed, got no token: %v %v", err, resp.Data)
			}
			if st := e.callProtected("/api/v1/whoami", auth); st != 200 {
				t.Fatalf("the token read at the retry time is rejected upstream: %d", st)
			}
			if n := e.sim.Stats(sim.PlexTrac).Logins - logins; n != 1 {
				t.Fatalf("the read at the retry time made %d logins, want 1", n)
			}
		})
	}
}

func TestUpstreamFaultsWarmReadersKeepTheValidToken(t *testing.T) {
	for _, fc := range faultCases() {
		t.Run(fc.name, func(t *testing.T) {
			e := newEnv(t)
			cfg := e.plextracConfig(fc.mfa)
			if fc.timeout != 0 {
				cfg["request_timeout"] = fc.timeout
			}
			if fc.holds {
				cfg["max_refused_logins"] = 1
			}
			e.write("config", cfg)
			held := e.read("token", nil).Data["token"].(string)
			e.sim.Forget() // refresh is refused too, so every path to a new token meets the fault
			e.clock.Advance(11 * time.Minute)
			before := e.sim.Stats(sim.PlexTrac).AuthCalls
			breakUpstream(e, fc)
			for range 20 {
				resp := e.read("token", nil)
				if resp.Data["token"] != held || len(resp.Warnings) == 0 {
					t.Fatalf("want the still-valid token with a warning, got a new one or none: %v", resp.Warnings)
				}
				if resp.Secret.TTL > 4*time.Minute-5*time.Second { // the held token has 4m left
					t.Fatalf("lease %s outlives the token", resp.Secret.TTL)
				}
			}
			if calls := e.sim.Stats(sim.PlexTrac).AuthCalls - before; calls > 3 {
				t.Fatalf("20 reads made %d upstream auth calls; want one refresh and one login attempt", calls)
			}
			healUpstream(e, fc)
			if fc.holds {
				heldUntilAnOperatorActs(t, e, fc)
				return
			}
			recoverWithinOneCycle(t, e, held)
		})
	}
}

func breakUpstream(e *env, fc faultCase) {
	if fc.fault != nil {
		e.sim.AddFault(*fc.fault)
	}
	if fc.breakIt != nil {
		fc.breakIt(e)
	}
}

func healUpstream(e *env, fc faultCase) {
	e.sim.ClearFaults()
	if fc.heal != nil {
		fc.heal(e)
	}
}

// heldUntilAnOperatorActs: after upstream refused the credentials, the mount holds. Once the
// account is fixed upstream, neither readers nor periodic runs log in again (that is what
// protects the account from a lockout); a config write with the credentials ends the hold.
func heldUntilAnOperatorActs(t *testing.T, e *env, fc faultCase) {
	t.Helper()
	before := e.sim.Stats(sim.PlexTrac).AuthCalls
	for range 3 {
		e.clock.Advance(10 * time.Minute) // past every backoff
		if err := e.b.PeriodicFunc(context.Background(), &logical.Request{Storage: e.s}); err != nil {
			t.Fatal(err)
		}
		code, msg := e.readFailure("token")
		if code != 503 || !strings.Contains(msg, "not tried") || !strings.Contains(msg, fc.want) || !strings.Contains(msg, "write the credentials to config") {
			t.Fatalf("held mount: %d %q; want 503 saying it stopped trying, why, and what to do", code, msg)
		}
	}
	if calls := e.sim.Stats(sim.PlexTrac).AuthCalls - before; calls != 0 {
		t.Fatalf("a held mount made %d upstream auth calls", calls)
	}
	e.write("config", map[string]any{"password": sim.DemoPlexTracPassword})
	if st := e.callProtected("/api/v1/whoami", e.read("token", nil).Data["authorization"].(string)); st != 200 {
		t.Fatalf("after the operator's write the token is refused: %d", st)
	}
}

// recoverWithinOneCycle: once upstream heals, the next periodic run after the backoff (at
// most one refresh cycle) restores a working session in place of old without any reader
// asking.
func recoverWithinOneCycle(t *testing.T, e *env, old string) {
	t.Helper()
	e.clock.Advance(2 * time.Minute) // the longest backoff these faults reach (a 90 s Retry-After)
	if err := e.b.PeriodicFunc(context.Background(), &logical.Request{Storage: e.s}); err != nil {
		t.Fatal(err)
	}
	a, _ := e.b.slot.Account(context.Background(), e.s)
	cur := a.Current()
	if cur == nil || cur.Value == old {
		t.Fatal("no new session after the fault cleared")
	}
	if st := e.callProtected("/api/v1/whoami", cur.Value); st != 200 {
		t.Fatalf("recovered token rejected upstream: %d", st)
	}
	resp := e.read("token", nil)
	if len(resp.Warnings) != 0 || resp.Data["token"] != cur.Value {
		t.Fatalf("reads after recovery: %v", resp.Warnings)
	}
}

func TestTokenShapesThatAreAcceptedWithAnAssumedLife(t *testing.T) {
	for _, shape := range []string{"notjwt", "noexp"} {
		t.Run(shape, func(t *testing.T) {
			e := newEnv(t)
			// The simulator's tokens live 7 minutes here, not the plugin's assumed 15: a life
			// of 15 minutes can then only be the plugin's fallback, not something it read.
			e.sim.SetTokenLifetime(7 * time.Minute)
			e.write("config", with(e.plextracConfig(false), "verify", false))
			e.sim.AddFault(sim.Fault{Provider: sim.PlexTrac, Op: "login", Token: shape, Times: 1})
			resp := e.read("token", nil)
			exp, _ := time.Parse(time.RFC3339, resp.Data["expires_at"].(string))
			if !exp.Equal(e.clock.Now().Add(upstream.DefaultLifetime)) || upstream.DefaultLifetime != 15*time.Minute {
				t.Fatalf("a token without exp should get the assumed 15 minutes, got %s", exp)
			}
		})
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
