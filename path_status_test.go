package sessiontoken

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/sim"
)

// status shows health, one of ok, degraded, failing and held, with a reason and an action.
func TestStatusHealth(t *testing.T) {
	e := newEnv(t)
	e.write("config", with(e.plextracConfig(false), "verify", false))
	health := func() (string, string, string) {
		d := e.read("status", nil).Data
		return d["health"].(string), d["reason"].(string), d["action"].(string)
	}
	if h, r, _ := health(); h != "ok" || !strings.Contains(r, "first read") {
		t.Fatalf("never read: %s %q", h, r)
	}
	e.read("token", nil)
	if h, _, a := health(); h != "ok" || a != "none" {
		t.Fatalf("serving: %s %q", h, a)
	}
	e.sim.AddFault(sim.Fault{Provider: sim.PlexTrac, Status: 503})
	e.clock.Advance(11 * time.Minute) // refresh due; it fails, the token still serves
	e.read("token", nil)
	if h, r, _ := health(); h != "degraded" || !strings.Contains(r, "valid token") {
		t.Fatalf("refresh failing: %s %q", h, r)
	}
	e.clock.Advance(5 * time.Minute) // the token expired
	e.readFailure("token")
	if h, _, a := health(); h != "failing" || !strings.Contains(a, "last_error") {
		t.Fatalf("no servable token: %s %q", h, a)
	}
	e.sim.ClearFaults()
	revokeDemoPassword(e)
	for range 3 {
		e.clock.Advance(10 * time.Minute)
		e.readFailure("token")
	}
	if h, r, a := health(); h != "held" || !strings.Contains(r, "3 times") || !strings.Contains(a, "rotate") {
		t.Fatalf("held: %s %q %q", h, r, a)
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
	if want := map[string]map[string]int{"login": {"ok": 1}, "mfa": {"ok": 1}}; !reflect.DeepEqual(calls, want) {
		t.Errorf("upstream_calls = %v, want %v: the calls made, none at zero", calls, want)
	}
	if lim := st["limiter"].(map[string]any); lim["max_auth_per_minute"] != 10 {
		t.Errorf("limiter = %v", lim)
	}
}
