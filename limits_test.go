package sessiontoken

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/sim"
)

func limiterOf(e *env) map[string]any { return e.read("status", nil).Data["limiter"].(map[string]any) }

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
