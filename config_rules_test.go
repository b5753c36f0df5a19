package sessiontoken

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/sim"
)

// A write that keeps the upstream account keeps its session, even unverified and with the
// URL spelled another way; one that changes how the generic login is done is another account.
func TestSessionFollowsTheAccountNotTheWrite(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(false))
	first := e.read("token", nil).Data["token"]
	e.write("config", map[string]any{"min_ttl": 240, "verify": false})
	e.write("config", map[string]any{"url": e.url + "/", "password": sim.DemoPlexTracPassword, "verify": false})
	e.b.reset() // and from storage
	if got := e.read("token", nil).Data["token"]; got != first {
		t.Fatal("a write that kept the account dropped its session")
	}
	if st := e.sim.Stats(sim.PlexTrac); st.Logins != 1 {
		t.Fatalf("logins = %d, want 1", st.Logins)
	}

	g := newEnv(t)
	g.write("config", genericPlexTrac(g))
	tok := g.read("token", nil).Data["token"]
	g.write("config", map[string]any{"login_body": `{"username": {{json .username}}, "password": {{json .password}}, "x": 1}`,
		"password": sim.DemoPlexTracPassword, "verify": false})
	if got := g.read("token", nil).Data["token"]; got == tok {
		t.Fatal("a generic login of another shape kept the old account's session")
	}
}

// Config reads show each provider's non-secret fields and whether each secret is set.
func TestConfigReadShowsFieldsAndWhichSecretsAreSet(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plaspyConfig())
	if c := e.read("config", nil).Data; c["api_key_set"] != true || c["username"] != sim.DemoPlaspyUser || c["login_path"] != nil {
		t.Fatalf("plaspy config read: %v", c)
	}
	e.write("config", e.resolverConfig())
	if c := e.read("config", nil).Data; c["email"] != sim.DemoResolverEmail || c["org_id"] != sim.DemoResolverOrg || c["password_set"] != true {
		t.Fatalf("resolver config read: %v", c)
	}
	e.write("config", genericPlexTrac(e))
	if c := e.read("config", nil).Data; c["login_path"] != "/api/v1/authenticate" || c["logout_path"] != "/logout" || c["api_key_set"] != false {
		t.Fatalf("generic config read: %v", c)
	}
}

// Every check runs whatever else the write holds: a valid CA does not end validation early.
func TestValidCACertDoesNotSkipTheOtherChecks(t *testing.T) {
	e := newEnv(t)
	expectRejected(t, e, with(e.plextracConfig(false), "ca_cert", testCACertPEM(t), "headers", map[string]any{"bad header": "x"}), "headers")
	for _, name := range []string{"X-Api-Key_0.9", "cf-access-token"} {
		e.write("config", with(e.plextracConfig(false), "headers", map[string]any{name: "v"}, "verify", false))
	}
}

// The everyday operations log nothing at warning level or above: operators alert on those.
func TestEverydayOperationsLogNoWarnings(t *testing.T) {
	var logouts atomic.Int64
	e := newEnvWrapped(t, countPath("/logout", &logouts))
	e.write("config", with(e.plextracConfig(true), "verify", false))
	e.read("token", nil) // logs in (with MFA) from the read path
	e.write("config", e.plextracConfig(true))
	e.read("token", nil)
	e.write("config", map[string]any{"min_ttl": 240})
	e.clock.Advance(12 * time.Minute)
	e.read("token", nil)
	e.write("config", genericPlexTrac(e))
	e.read("token", nil)
	e.write("config", map[string]any{"username": sim.DemoPlexTracUser, "password": sim.DemoPlexTracPassword, "verify": false}) // logs the old session out
	if _, err := e.do(logical.DeleteOperation, "config", nil); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(line, "[WARN]") || strings.Contains(line, "[ERROR]") {
			t.Errorf("logged: %s", line)
		}
	}
	if n := strings.Count(e.logs.String(), "verified=true"); n != 3 || logouts.Load() != 1 {
		t.Errorf("want 3 config writes logged as verified and 1 logout, got %d and %d", n, logouts.Load())
	}
}

func TestResetOfAnUnconfiguredMountIsHarmless(t *testing.T) {
	e := newEnv(t)
	e.b.reset()
	if code, msg := e.readFailure("token"); code != 400 || !strings.Contains(msg, "not configured") {
		t.Fatalf("%d %q", code, msg)
	}
	e.b.clean(nil)
}
