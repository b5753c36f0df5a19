package sessiontoken

import (
	"testing"
	"time"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/sim"
)

func TestStaticTokenHasNoLeaseAndSaysWhenToReadAgain(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(false)) // 15-minute tokens, min_ttl 5m
	resp := e.read("static-token", nil)
	if resp.Secret != nil {
		t.Fatalf("static-token created a lease: %+v", resp.Secret)
	}
	d := resp.Data
	// Fresh 15-minute token, switch when 5 minutes are left: 10 minutes.
	if d["ttl"] != 600 || d["rotation_period"] != 600 {
		t.Fatalf("ttl %v rotation_period %v, want 600 and 600", d["ttl"], d["rotation_period"])
	}
	if _, err := time.Parse(time.RFC3339, d["last_vault_rotation"].(string)); err != nil {
		t.Fatalf("last_vault_rotation %q is not RFC 3339", d["last_vault_rotation"])
	}
	leased := e.read("token", nil).Data
	for _, k := range []string{"token", "authorization", "expires_at", "issued_at", "provider", "tenant_id"} {
		if d[k] != leased[k] {
			t.Errorf("%s: static-token %v, token %v", k, d[k], leased[k])
		}
	}
	if st := e.callProtected("/api/v1/whoami", d["authorization"].(string)); st != 200 {
		t.Fatalf("static token rejected upstream: %d", st)
	}
	if d := e.read("static-token", map[string]any{"min_ttl": "3m"}).Data; d["ttl"] != 720 {
		t.Errorf("min_ttl=3m: ttl %v, want 720", d["ttl"])
	}
}

// A reader that comes back ttl+1 s later (Vault Agent) or ttl+0.5 s later (Vault Secrets
// Operator) always gets a newer token, with at least min_ttl left; one that comes back early
// keeps the same one. Over many cycles, one upstream call per token lifetime.
func TestStaticTokenReadersSwitchOnTimeWithRoomToSpare(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after time.Duration
	}{{"agent", time.Second}, {"vso", 500 * time.Millisecond}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.write("config", e.plextracConfig(false))
			e.clock.Advance(1300 * time.Millisecond) // reads do not fall on whole seconds
			d := e.read("static-token", nil).Data
			const cycles = 6
			for i := range cycles {
				ttl := time.Duration(d["ttl"].(int)) * time.Second
				e.clock.Advance(ttl - time.Second)
				if early := e.read("static-token", nil).Data; early["token"] != d["token"] {
					t.Fatalf("cycle %d: a read 1 s before ttl ran out already switched tokens", i)
				}
				e.clock.Advance(time.Second + tc.after)
				next := e.read("static-token", nil).Data
				if next["token"] == d["token"] || next["last_vault_rotation"] == d["last_vault_rotation"] {
					t.Fatalf("cycle %d: read at ttl+%s still served the old token", i, tc.after)
				}
				oldExp, _ := time.Parse(time.RFC3339, d["expires_at"].(string))
				if left := oldExp.Sub(e.clock.Now()); left < 5*time.Minute-2*time.Second {
					t.Fatalf("cycle %d: the old token had only %s left when readers moved on", i, left)
				}
				if st := e.callProtected("/api/v1/whoami", next["authorization"].(string)); st != 200 {
					t.Fatalf("cycle %d: new token rejected upstream: %d", i, st)
				}
				d = next
			}
			if st := e.sim.Stats(sim.PlexTrac); st.AuthCalls != cycles+1 {
				t.Errorf("%d cycles cost %d upstream auth calls, want %d", cycles, st.AuthCalls, cycles+1)
			}
		})
	}
}
