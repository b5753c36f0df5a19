package sessiontoken

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/sim"
)

func TestEachProviderServesAWorkingToken(t *testing.T) {
	cases := []struct {
		name, provider, protected, authPrefix string
		config                                func(e *env) map[string]any
		extra                                 string
	}{
		{"plextrac", sim.PlexTrac, "/api/v1/whoami", "", func(e *env) map[string]any { return e.plextracConfig(false) }, "tenant_id"},
		{"plextrac-mfa", sim.PlexTrac, "/api/v1/whoami", "", func(e *env) map[string]any { return e.plextracConfig(true) }, "tenant_id"},
		{"plaspy", sim.Plaspy, "/api/Account", "Bearer ", func(e *env) map[string]any { return e.plaspyConfig() }, ""},
		{"resolver", sim.Resolver, "/user/me", "Bearer ", func(e *env) map[string]any { return e.resolverConfig() }, "org_id"},
		{"generic-as-resolver", sim.Resolver, "/user/me", "Bearer ", func(e *env) map[string]any {
			return map[string]any{"provider": "generic", "url": e.url, "allow_insecure_http": true,
				"username": sim.DemoResolverEmail, "password": sim.DemoResolverPassword,
				"login_path": "/user/authenticate", "login_body": `{"email": {{json .username}}, "password": {{json .password}}, "selectedOrg": 42, "client": "core-client"}`,
				"expiry_field": "expiresAt", "refresh_method": "GET", "refresh_path": "/user/authenticate"}
		}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.write("config", tc.config(e))
			resp := e.read("token", nil)
			tok := resp.Data["token"].(string)
			if got := resp.Data["authorization"]; got != tc.authPrefix+tok {
				t.Fatalf("authorization = %q, want %q + token", got, tc.authPrefix)
			}
			if st := e.callProtected(tc.protected, resp.Data["authorization"].(string)); st != http.StatusOK {
				t.Fatalf("the served token does not work upstream: HTTP %d", st)
			}
			if tc.extra != "" && resp.Data[tc.extra] == nil {
				t.Errorf("missing %s in %v", tc.extra, resp.Data)
			}
			if resp.Data["provider"] == nil || resp.Data["expires_at"] == nil || resp.Data["issued_at"] == nil {
				t.Errorf("missing fields: %v", resp.Data)
			}
			// config's verification login became the session: the read cost no second login.
			st := e.sim.Stats(tc.provider)
			if logins := st.Logins + st.MFA; logins != 1 {
				t.Errorf("upstream logins = %d, want 1 (the config check)", logins)
			}
		})
	}
}

func TestReadRefreshesWhenLessThanMinTTLLeft(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(false)) // 15-minute tokens, min_ttl 5m
	first := e.read("token", nil).Data["token"]
	e.clock.Advance(9 * time.Minute) // 6m left: still enough
	if got := e.read("token", nil).Data["token"]; got != first {
		t.Fatal("token changed with 6m left; min_ttl is 5m")
	}
	e.clock.Advance(2 * time.Minute) // 4m left: refresh first
	second := e.read("token", nil).Data
	if second["token"] == first {
		t.Fatal("token not refreshed with 4m left")
	}
	if st := e.sim.Stats(sim.PlexTrac); st.Refreshes != 1 || st.Logins != 1 {
		t.Fatalf("upstream saw %d refreshes and %d logins, want 1 and 1", st.Refreshes, st.Logins)
	}
	// A reader may ask for more life than min_ttl; it is capped at a third of the lifetime.
	e.clock.Advance(time.Minute)
	if got := e.read("token", map[string]any{"min_ttl": "1h"}).Data["token"]; got != second["token"] {
		t.Fatal("min_ttl=1h with 14m left should keep the token (cap: a third of 15m)")
	}
	e.clock.Advance(10 * time.Minute)
	if got := e.read("token", map[string]any{"min_ttl": "1h"}).Data["token"]; got == second["token"] {
		t.Fatal("min_ttl=1h with 4m left should refresh")
	}
}

func TestRenewOutsideWindowKeepsTokenAndExpiry(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(false))
	resp := e.lease()
	e.clock.Advance(3 * time.Minute) // 12m left of 15: outside the last third
	r := renew(t, e, resp.Secret)
	if r.Data["token"] != resp.Data["token"] {
		t.Fatal("renewal outside the window changed the token")
	}
	exp, _ := time.Parse(time.RFC3339, resp.Data["expires_at"].(string))
	if end := e.clock.Now().Add(r.Secret.TTL); end.After(exp.Add(-5 * time.Second)) {
		t.Fatalf("lease extended to %s, past the token's expiry %s less skew", end, exp)
	}
	if !r.Secret.Renewable {
		t.Error("lease became non-renewable without a new token")
	}
	if st := e.sim.Stats(sim.PlexTrac); st.Refreshes != 0 {
		t.Errorf("renewal outside the window called upstream %d times", st.Refreshes)
	}
}

func TestRenewInsideWindowHandsOutRefreshedToken(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(false))
	resp := e.read("token", nil)
	issue := e.clock.Now().Add(300 * time.Millisecond)
	resp.Secret.IssueTime = issue
	e.clock.Advance(11 * time.Minute) // 4m left: inside the last third
	r := renew(t, e, resp.Secret)
	newTok := r.Data["token"].(string)
	if newTok == resp.Data["token"] {
		t.Fatal("renewal inside the window kept the old token")
	}
	if st := e.callProtected("/api/v1/whoami", newTok); st != 200 {
		t.Fatalf("renewed token rejected upstream: %d", st)
	}
	if r.Secret.Renewable {
		t.Fatal("a renewal that hands out a new token must make the lease non-renewable (so Agent re-reads)")
	}
	exp, _ := time.Parse(time.RFC3339, r.Data["expires_at"].(string))
	if want := exp.Add(-5 * time.Second).Sub(e.clock.Now()); r.Secret.TTL != want {
		t.Errorf("TTL %s, want %s", r.Secret.TTL, want)
	}
	if want := exp.Add(-5 * time.Second).Sub(issue.Truncate(time.Second)); r.Secret.MaxTTL != want {
		t.Errorf("MaxTTL %s, want %s (from the issue time truncated to the second)", r.Secret.MaxTTL, want)
	}
	// Other readers now get the same refreshed token without another upstream call.
	if got := e.read("token", nil).Data["token"]; got != newTok {
		t.Error("a read after the renewal did not return the refreshed shared token")
	}
	if st := e.sim.Stats(sim.PlexTrac); st.Refreshes != 1 {
		t.Errorf("upstream refreshes = %d, want 1", st.Refreshes)
	}
}

func TestRevokeSucceedsAfterUpstreamForgotToken(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(false))
	resp := e.read("token", nil)
	e.sim.Forget()
	r, err := e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RevokeOperation, Storage: e.s, Secret: resp.Secret})
	if err != nil || r.IsError() {
		t.Fatalf("revoke failed: %v %s", err, errText(r))
	}
	// and after the mount's config is gone
	e.write("config", e.plextracConfig(false))
	if _, err := e.do(logical.DeleteOperation, "config", nil); err != nil {
		t.Fatal(err)
	}
	if r, err := e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RevokeOperation, Storage: e.s, Secret: resp.Secret}); err != nil || r.IsError() {
		t.Fatalf("revoke without config failed: %v %s", err, errText(r))
	}
}

func TestConcurrentColdReadsCostOneLogin(t *testing.T) {
	e := newEnv(t)
	e.write("config", with(e.plextracConfig(true), "verify", false)) // no session yet
	const readers = 200
	var wg sync.WaitGroup
	tokens := make([]string, readers)
	errs := make(chan error, readers)
	for i := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := e.do(logical.ReadOperation, "token", nil)
			if err != nil || resp.IsError() {
				errs <- fmt.Errorf("%v %s", err, errText(resp))
				return
			}
			tokens[i] = resp.Data["token"].(string)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st := e.sim.Stats(sim.PlexTrac)
	if st.MFAChallenges != 1 || st.MFA != 1 || st.AuthCalls != 2 {
		t.Fatalf("%d cold reads made %d logins, %d MFA, %d auth calls; want 1, 1, 2", readers, st.MFAChallenges, st.MFA, st.AuthCalls)
	}
	for _, tok := range tokens {
		if tok != tokens[0] {
			t.Fatal("readers got different tokens")
		}
	}
}

// Vault Secrets Operator renews with increment = the lease duration it holds, ignores the
// renewal's data, and reads the path again only when the renewed lease comes back shorter
// than that increment. A renewal that hands out a newer token must therefore come back
// shorter, whatever the sub-second offsets of the lease's issue time and of now.
func TestRenewWithIncrementHandsOutNewTokenOnAShorterLease(t *testing.T) {
	for _, issueFrac := range []time.Duration{0, 1, 300, 999} {
		for _, nowFrac := range []time.Duration{0, 1, 500, 999} {
			e := newEnv(t)
			e.write("config", e.plextracConfig(false))
			e.clock.Advance(nowFrac * time.Millisecond)
			resp := e.read("token", nil)
			resp.Secret.IssueTime = e.clock.Now().Add(issueFrac * time.Millisecond)
			increment := resp.Secret.TTL.Truncate(time.Second) // what VSO holds as D
			e.clock.Advance(increment * 7 / 10)                // VSO renews at 67–77 % of D
			resp.Secret.Increment = increment
			r := renew(t, e, resp.Secret)
			if r.Data["token"] == resp.Data["token"] || r.Secret.Renewable {
				t.Fatalf("issue+%dms now+%dms: want a new token on a non-renewable lease", issueFrac, nowFrac)
			}
			got := vaultRenewTTL(r.Secret, e.clock.Now(), increment)
			if got >= increment || got < time.Second {
				t.Fatalf("issue+%dms now+%dms: Vault would make the lease %s for increment %s; want shorter, and at least 1s",
					issueFrac, nowFrac, got, increment)
			}
			exp, _ := time.Parse(time.RFC3339, r.Data["expires_at"].(string))
			if e.clock.Now().Add(got).After(exp) {
				t.Fatalf("renewed lease outlives its token")
			}
		}
	}
}

// A read keeps the token while it has min_ttl or more left, refreshes when it has less; and
// min_ttl=0 asks for no margin at all.
func TestMinTTLBoundary(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(false)) // 15-minute tokens, min_ttl 5m
	first := e.read("token", nil).Data["token"]
	e.clock.Advance(10 * time.Minute) // exactly 5m left
	if got := e.read("token", nil).Data["token"]; got != first {
		t.Fatal("refreshed with exactly min_ttl left")
	}
	e.clock.Advance(4 * time.Minute)
	if got := e.read("token", map[string]any{"min_ttl": 0}).Data["token"]; got != first {
		t.Fatal("min_ttl=0 with 1m left refreshed")
	}
	// Whatever min_ttl asks, a token with less than 6 s left is refreshed: its lease would
	// be under a second.
	e.clock.Advance(55*time.Second + 500*time.Millisecond) // 5.5 s left
	if r := e.read("token", map[string]any{"min_ttl": 0}); r.Data["token"] == first || r.Secret.TTL < time.Second {
		t.Fatalf("min_ttl=0 with 5.5 s left served a lease of %s on the old token", r.Secret.TTL)
	}
	resp, err := e.do(logical.ReadOperation, "token", map[string]any{"min_ttl": -1})
	if code, msg := failure(t, resp, err); code != 400 || !strings.Contains(msg, "min_ttl") {
		t.Fatalf("min_ttl=-1: %d %q, want 400 naming min_ttl", code, msg)
	}
}
