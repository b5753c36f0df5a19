package sessiontoken

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/sim"
)

// The refresh window is the token's last third: with 15-minute tokens, renewals up to 5m01s
// before expiry keep the token; from 4m59s on they hand out the refreshed one.
func TestRenewWindowStartsAtTheLastThird(t *testing.T) {
	for _, tc := range []struct {
		left    time.Duration
		refresh bool
	}{{5*time.Minute + time.Second, false}, {5*time.Minute - time.Second, true}} {
		e := newEnv(t)
		e.write("config", e.plextracConfig(false))
		lease := e.read("token", nil)
		lease.Secret.IssueTime = e.clock.Now()
		e.clock.Advance(15*time.Minute - tc.left)
		r := renew(t, e, lease.Secret)
		if got := r.Data["token"] != lease.Data["token"]; got != tc.refresh {
			t.Fatalf("renewal with %s left: new token %v, want %v", tc.left, got, tc.refresh)
		}
	}
}

// An early renewal asking for a large increment keeps the same token and never makes the
// lease outlive it: Vault gives the increment, capped by the MaxTTL the plugin returns.
func TestEarlyRenewalWithALargeIncrementNeverOutlivesTheToken(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(false))
	e.clock.Advance(400 * time.Millisecond)
	lease := e.read("token", nil)
	lease.Secret.IssueTime = e.clock.Now()
	exp, _ := time.Parse(time.RFC3339, lease.Data["expires_at"].(string))
	e.clock.Advance(2 * time.Minute)
	lease.Secret.Increment = time.Hour
	r := renew(t, e, lease.Secret)
	if r.Data["token"] != lease.Data["token"] || !r.Secret.Renewable {
		t.Fatal("an early renewal changed the token or ended renewability")
	}
	got := vaultRenewTTL(r.Secret, e.clock.Now(), time.Hour)
	if end := e.clock.Now().Add(got); end.After(exp.Add(-4 * time.Second)) {
		t.Fatalf("with -increment=1h Vault would end the lease at %s, past its token's expiry %s less the 5 s margin (1 s of Vault's truncation allowed)", end, exp)
	}
	if got < 12*time.Minute {
		t.Fatalf("the renewed lease is %s; the token has 13 minutes left", got)
	}
}

// Leases end 5 seconds before their token: a number users rely on, so pinned as one.
func TestLeaseEndsFiveSecondsBeforeTheToken(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(false))
	e.clock.Advance(2 * time.Minute)
	resp := e.read("token", nil)
	exp, _ := time.Parse(time.RFC3339, resp.Data["expires_at"].(string))
	if left := exp.Sub(e.clock.Now()); left != 13*time.Minute || resp.Secret.TTL != 13*time.Minute-5*time.Second {
		t.Fatalf("token has %s left, lease TTL %s; want 13m and 12m55s", left, resp.Secret.TTL)
	}
	if resp.Secret.MaxTTL != resp.Secret.TTL || resp.Data["ttl"] != 775 {
		t.Fatalf("MaxTTL %s, ttl field %v; want 12m55s and 775", resp.Secret.MaxTTL, resp.Data["ttl"])
	}
}

// Another node reloads what the writer wrote when Vault invalidates config or session.
func TestInvalidateMakesAStandbyServeWhatTheActiveWrote(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(false))
	standby := e.standby()
	first := standby.read("token", nil).Data["token"]
	e.clock.Advance(11 * time.Minute)
	second := e.read("token", nil).Data["token"] // the active node refreshes
	standby.b.InvalidateKey(context.Background(), sessionKey)
	if got := standby.read("token", nil).Data["token"]; got != second || got == first {
		t.Fatal("after the session key was invalidated the standby did not serve the active node's new session")
	}
	e.write("config", e.plaspyConfig())
	standby.b.InvalidateKey(context.Background(), configKey)
	if got := standby.read("token", nil).Data["provider"]; got != "plaspy" {
		t.Fatalf("after the config key was invalidated the standby serves provider %v", got)
	}
}

// Unmounting (Clean) takes the mount's auth budget off its host.
func TestCleanTakesTheBudgetOffTheHost(t *testing.T) {
	a := newEnv(t)
	b := a.otherMount()
	a.write("config", with(a.plextracConfig(false), "max_auth_per_minute", 8))
	b.write("config", with(b.plextracConfig(false), "max_auth_per_minute", 2))
	b.b.Clean(context.Background())
	if la := limiterOf(a); la["max_auth_per_minute"] != 8 || la["mounts_on_host"] != 1 {
		t.Fatalf("after the other mount was cleaned up: %v", la)
	}
	// Defect 14: Clean is final. A periodic run or a request that arrives after it (Vault
	// may have started one before disabling the mount) never loads the mount again, so its
	// budget stays off the host.
	b.clock.Advance(14 * time.Minute) // a periodic refresh would be due
	if err := b.b.periodic(context.Background(), &logical.Request{Storage: b.s}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.do(logical.ReadOperation, "token", nil); err == nil {
		t.Error("a cleaned mount served a read")
	}
	if la := limiterOf(a); la["max_auth_per_minute"] != 8 || la["mounts_on_host"] != 1 {
		t.Fatalf("a cleaned mount registered its budget again: %v", la)
	}
}

// A login from a read stores the TOTP step it used, so a plugin process started right after
// (reload, failover) does not resend that code.
func TestReadPathLoginRecordsItsTOTPStep(t *testing.T) {
	e := newEnv(t)
	e.write("config", with(e.plextracConfig(true), "verify", false))
	e.read("token", nil) // logs in with MFA
	fresh := *e
	fresh.limiters = newEnv(t).limiters // another process: no memory of the step
	fresh.b, _, fresh.logs = fresh.newMount(e.s, nil)
	fresh.write("config", map[string]any{"min_ttl": 240}) // same instant: must wait a step
	if st := e.sim.Stats(sim.PlexTrac); st.MFAFailures != 0 || st.MFA != 2 {
		t.Fatalf("want 2 MFA logins and no replayed code, got %+v", st)
	}
}

// Revoking a lease makes no upstream call and leaves the shared session to the other
// readers, also for a provider with a logout.
func TestRevokeLeavesTheSharedSessionAlone(t *testing.T) {
	var logouts atomic.Int64
	e := newEnvWrapped(t, countPath("/logout", &logouts))
	e.write("config", genericPlexTrac(e))
	lease := e.read("token", nil)
	before := e.sim.Stats(sim.PlexTrac)
	r, err := e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RevokeOperation, Storage: e.s, Secret: lease.Secret})
	if err != nil || r.IsError() {
		t.Fatalf("revoke: %v %s", err, errText(r))
	}
	if after := e.sim.Stats(sim.PlexTrac); after != before || logouts.Load() != 0 {
		t.Fatalf("revoke called upstream: %d logouts, stats %+v -> %+v", logouts.Load(), before, after)
	}
	other := e.read("token", nil).Data["token"].(string)
	if other != lease.Data["token"] || e.callProtected("/api/v1/whoami", other) != 200 {
		t.Fatal("after one lease was revoked the other readers lost the shared session")
	}
	if !strings.HasPrefix(lease.Secret.InternalData["secret_type"].(string), "sessiontoken") {
		t.Fatal("lease is not routed to the token secret")
	}
}
