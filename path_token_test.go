package sessiontoken

import (
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

// A read keeps the token while it has min_ttl or more left, and refreshes it (one refresh, no
// login) when it has less. A reader's min_ttl is capped at a third of the token's life;
// min_ttl=0 asks for no margin, yet a token with less than 6 s left is refreshed whatever
// min_ttl asks (its lease would be under a second); a negative min_ttl is refused by name.
func TestReadRefreshesWhenLessThanMinTTLLeft(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(false)) // 15-minute tokens, min_ttl 5m
	first := e.read("token", nil).Data["token"]
	e.clock.Advance(10 * time.Minute) // exactly 5m left: still enough
	if got := e.read("token", nil).Data["token"]; got != first {
		t.Fatal("token refreshed with exactly min_ttl (5m) left")
	}
	e.clock.Advance(time.Second) // 4m59s left: refresh first
	second := e.read("token", nil).Data["token"]
	if second == first {
		t.Fatal("token not refreshed with 4m59s left; min_ttl is 5m")
	}
	if st := e.sim.Stats(sim.PlexTrac); st.Refreshes != 1 || st.Logins != 1 {
		t.Fatalf("upstream saw %d refreshes and %d logins, want 1 and 1", st.Refreshes, st.Logins)
	}
	e.clock.Advance(time.Minute) // 14m left: min_ttl=1h is capped at a third of 15m
	if got := e.read("token", map[string]any{"min_ttl": "1h"}).Data["token"]; got != second {
		t.Fatal("min_ttl=1h with 14m left should keep the token (cap: a third of 15m)")
	}
	e.clock.Advance(8*time.Minute + 59*time.Second)
	if got := e.read("token", map[string]any{"min_ttl": "1h"}).Data["token"]; got != second {
		t.Fatal("min_ttl=1h with 5m01s left should keep the token (cap: a third of 15m)")
	}
	e.clock.Advance(2 * time.Second)
	third := e.read("token", map[string]any{"min_ttl": "1h"}).Data["token"]
	if third == second {
		t.Fatal("min_ttl=1h with 4m59s left should refresh")
	}
	e.clock.Advance(14 * time.Minute)
	if got := e.read("token", map[string]any{"min_ttl": 0}).Data["token"]; got != third {
		t.Fatal("min_ttl=0 with 1m left refreshed")
	}
	e.clock.Advance(55*time.Second + 500*time.Millisecond) // 5.5 s left
	if r := e.read("token", map[string]any{"min_ttl": 0}); r.Data["token"] == third || r.Secret.TTL < time.Second {
		t.Fatalf("min_ttl=0 with 5.5 s left served a lease of %s on the old token", r.Secret.TTL)
	}
	resp, err := e.do(logical.ReadOperation, "token", map[string]any{"min_ttl": -1})
	if code, msg := failure(t, resp, err); code != 400 || !strings.Contains(msg, "min_ttl") {
		t.Fatalf("min_ttl=-1: %d %q, want 400 naming min_ttl", code, msg)
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
