package sessiontoken

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/internal/session"
	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/sim"
	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/upstream"
)

// Every max_auth_per_minute a config write accepts lets a login through, with MFA (login
// call + MFA call) and without: the write's check, two logins at once where the budget's
// burst allows (every budget from 2 on), then a login every two minutes. Upstream never sees
// more than the budget in any 60 s. With MFA, 1 a minute is refused at config write, naming
// the field and why, and nothing is sent or stored.
func TestEveryAcceptedBudgetLetsALoginThrough(t *testing.T) {
	for n := 1; n <= 4; n++ {
		for _, mfa := range []bool{false, true} {
			t.Run(fmt.Sprintf("max_auth_per_minute=%d,mfa=%v", n, mfa), func(t *testing.T) {
				e := newEnv(t)
				resp, err := e.do(logical.UpdateOperation, "config", with(e.plextracConfig(mfa), "max_auth_per_minute", n))
				if mfa && n == 1 {
					msg := errText(resp)
					if err != nil || !resp.IsError() || !strings.HasPrefix(msg, "config not saved: max_auth_per_minute: 1 is too low with totp_secret") ||
						!strings.Contains(msg, "2 auth calls") || !strings.Contains(msg, "set 2 or more") {
						t.Fatalf("want a refusal naming max_auth_per_minute and why, got %v %s", err, msg)
					}
					if st := e.sim.Stats(sim.PlexTrac); st.AuthCalls != 0 {
						t.Fatalf("the refused write sent %d auth calls", st.AuthCalls)
					}
					if cfg, err := session.ReadConfig(t.Context(), e.s); err != nil || cfg != nil {
						t.Fatalf("the refused write stored a config: %v", err)
					}
					return
				}
				if err != nil || resp.IsError() {
					t.Fatalf("config write (its check is a login): %v %s", err, errText(resp))
				}
				second, err := e.do(logical.UpdateOperation, "rotate", nil) // a login right after it
				switch {
				case n == 1 || mfa:
					// 1 a minute has room for one call; an MFA login took the burst of 2.
					if code, msg := failure(t, second, err); code != 429 || !strings.Contains(msg, "retry after") {
						t.Fatalf("a login right after the write's: %d %s, want 429 with the time to retry", code, msg)
					}
				case err != nil || second.Data[logical.HTTPStatusCode] != nil:
					t.Fatalf("a second login at once, within a burst of 2: %v %v", err, second.Data[logical.HTTPRawBody])
				}
				for i := range 5 {
					e.clock.Advance(2 * time.Minute)
					if resp, err := e.do(logical.UpdateOperation, "rotate", nil); err != nil || resp.Data[logical.HTTPStatusCode] != nil {
						t.Fatalf("login %d, two minutes after the one before: %v %v", i+1, err, resp.Data[logical.HTTPRawBody])
					}
				}
				st := e.sim.Stats(sim.PlexTrac)
				if st.MaxAuthIn60s > n || st.RateLimited != 0 || st.MFAFailures != 0 || (mfa && st.MFA != 6) {
					t.Fatalf("upstream saw %+v: want at most %d auth calls in any 60 s, no 429, no refused code", st, n)
				}
			})
		}
	}
}

// Another team's mount on the host, with made-up credentials and verify=false, sets the
// host's budget low. At 3 a minute every MFA mount of the host still logs in and rotates. At
// 1, an MFA login fails at once with a rate-limit error naming the rule and the mount count:
// nothing is sent, and it does not count toward the credentials hold.
func TestAnotherTeamsLowBudgetLeavesMFALoginsWorkingOrFailsThemAtOnce(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(true))
	theirs := e.otherMount()
	theirs.write("config", with(theirs.plextracConfig(false), "username", "made-up@acme.com", "password", "made-up-password",
		"max_auth_per_minute", 3, "verify", false))
	for i := range 3 {
		e.clock.Advance(2 * time.Minute)
		if resp, err := e.do(logical.UpdateOperation, "rotate", nil); err != nil || resp.Data[logical.HTTPStatusCode] != nil {
			t.Fatalf("rotate %d with another team's 3 a minute on the host: %v %v", i+1, err, resp.Data[logical.HTTPRawBody])
		}
	}

	theirs.write("config", map[string]any{"max_auth_per_minute": 1, "verify": false})
	before := e.sim.Stats(sim.PlexTrac)
	for i := range 5 { // more than max_refused_logins (3)
		e.clock.Advance(2 * time.Minute)
		resp, err := e.do(logical.UpdateOperation, "rotate", nil)
		code, msg := failure(t, resp, err)
		if code != 429 || !strings.Contains(msg, "not tried") || !strings.Contains(msg, "the smallest max_auth_per_minute of the 2 mount(s) on this host") {
			t.Fatalf("rotate %d with another team's 1 a minute on the host: %d %s", i+1, code, msg)
		}
	}
	if after := e.sim.Stats(sim.PlexTrac); after.AuthCalls != before.AuthCalls {
		t.Fatalf("%d auth calls were sent", after.AuthCalls-before.AuthCalls)
	}
	st := e.read("status", nil).Data
	if hold := st["credentials_hold"].(map[string]any); hold["held"] != false || hold["refused_in_a_row"] != 0 {
		t.Fatalf("the budget's refusals counted toward the hold: %v", hold)
	}
	if n := st["upstream_calls"].(map[string]map[string]int)["login"]["rate_limited"]; n != 5 {
		t.Fatalf("%d logins counted as rate_limited, want 5 (the rate-limit alert counts them)", n)
	}
}

// With MaxIdleRecords hosts no mount is on under a 429 block, a config check against a new
// host answers 503 and sends nothing; a write with verify=false still configures the mount,
// whose host is then always kept.
func TestConfigCheckPastTheRecordCapAnswers503(t *testing.T) {
	e := newEnv(t)
	for i := range upstream.MaxIdleRecords {
		e.limiters.Host(fmt.Sprintf("h%d.example:443", i)).Block(e.clock.Now().Add(10 * time.Minute))
	}
	resp, err := e.do(logical.UpdateOperation, "config", e.plextracConfig(false))
	if code, msg := failure(t, resp, err); code != 503 || !strings.Contains(msg, "config not saved") || !strings.Contains(msg, "not tried") {
		t.Fatalf("a check past the cap: %d %s, want 503", code, msg)
	}
	if st := e.sim.Stats(sim.PlexTrac); st.AuthCalls != 0 {
		t.Fatalf("the check past the cap sent %d auth calls", st.AuthCalls)
	}
	e.write("config", with(e.plextracConfig(false), "verify", false))
	e.read("token", nil)
}

// A mount that does not set max_auth_per_minute takes half of PlexTrac's published 10 a
// minute per instance, leaving the other half to the people who log in there: status and
// the gauge show 5, and upstream never sees more than 5 auth calls in any 60 s however hard
// rotates push, while they get the whole 5.
func TestDefaultHostBudgetLeavesHalfTheInstanceToPeople(t *testing.T) {
	e := newEnv(t)
	cfg := e.plextracConfig(false)
	delete(cfg, "max_auth_per_minute") // the default
	e.write("config", cfg)
	if lim := limiterOf(e); lim["max_auth_per_minute"] != 5 || lim["this_mount_asked"] != 5 {
		t.Fatalf("the default budget: %v, want 5 (half of PlexTrac's 10 a minute)", lim)
	}
	_, fams := scrape(t, e)
	if got := value(t, fams, "sessiontoken_host_auth_budget_per_minute"); got != 5 {
		t.Fatalf("sessiontoken_host_auth_budget_per_minute = %v, want 5", got)
	}
	for range 120 { // 20 minutes of a rotate (a login) every 10 s
		e.clock.Advance(10 * time.Second)
		_, _ = e.do(logical.UpdateOperation, "rotate", nil)
	}
	if st := e.sim.Stats(sim.PlexTrac); st.MaxAuthIn60s > 5 || st.RateLimited != 0 || st.AuthCalls < 5*19 {
		t.Fatalf("upstream saw at most %d auth calls in 60 s (want 5 at most), %d in all (want the budget used: 95 or more), %d answered 429",
			st.MaxAuthIn60s, st.AuthCalls, st.RateLimited)
	}
}
