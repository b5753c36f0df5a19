package sessiontoken

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/internal/session"
	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/sim"
)

// What v0.2.0 stored keeps working: testdata/storage/v0.2.0 holds what that version wrote
// (TestWriteV020StorageFixtures) for each provider, a generic account named by its API key
// and one named by its password alone, a held mount and a rotated session, each with its
// fingerprint key. Each test loads those bytes into a fresh mount of this code, whose
// upstream URL is dead: what it serves, it serves without a login.

// v020Serving are the fixtures with a session to serve (plextrac-held's has expired), and
// whose account this code names as v0.2.0 did. generic-password's account now includes its
// password (a login that names no user is named by the secrets it sends): see
// TestV020GenericNamedByItsPasswordIsAnotherAccount.
var v020Serving = []string{"plextrac-mfa", "plaspy", "resolver", "generic-apikey", "plextrac-rotated"}

func loadV020(t *testing.T, name string) v020Fixture {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "storage", "v0.2.0", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var fx v020Fixture
	if err := json.Unmarshal(b, &fx); err != nil {
		t.Fatal(err)
	}
	return fx
}

func v020Lease(fx v020Fixture) *logical.Secret {
	return &logical.Secret{InternalData: fx.Lease.InternalData,
		LeaseOptions: logical.LeaseOptions{TTL: fx.Lease.TTL, Renewable: true, IssueTime: fx.LeaseIssued}}
}

func TestV020StorageServesWithoutLogin(t *testing.T) {
	for _, name := range v020Serving {
		t.Run(name, func(t *testing.T) {
			fx := loadV020(t, name)
			e := upgradedEnv(t, fx.v010Fixture, 2*time.Minute, false)
			got := e.read("token", nil).Data
			if got["token"] != fx.Lease.Data["token"] || got["authorization"] != fx.Lease.Data["authorization"] {
				t.Fatal("the mount did not serve the session v0.2.0 stored")
			}
			for k, want := range fx.Lease.Data {
				if k != "ttl" && !sameJSON(got[k], want) {
					t.Errorf("token's %s = %v, v0.2.0 served %v", k, got[k], want)
				}
			}
			static := e.read("static-token", nil).Data
			for _, k := range []string{"token", "last_vault_rotation", "expires_at"} {
				if !sameJSON(static[k], fx.StaticRead[k]) {
					t.Errorf("static-token's %s = %v, v0.2.0 served %v", k, static[k], fx.StaticRead[k])
				}
			}
			if st := e.read("status", nil).Data; st["last_error"] != nil || st["health"] != "ok" {
				t.Errorf("status after loading v0.2.0's storage: health %v, error %v", st["health"], st["last_error"])
			}
		})
	}
}

// A lease v0.2.0 issued renews, outside its window with the same token and never past it.
func TestV020LeasesRenew(t *testing.T) {
	for _, name := range v020Serving {
		t.Run(name, func(t *testing.T) {
			fx := loadV020(t, name)
			e := upgradedEnv(t, fx.v010Fixture, fx.LeaseIssued.Add(3*time.Minute).Sub(fx.Clock), false)
			secret := v020Lease(fx)
			e.leaseData[secret] = fx.Lease.Data
			r := renew(t, e, secret)
			if r.Data["token"] != fx.Lease.Data["token"] || !r.Secret.Renewable {
				t.Fatal("renewing a v0.2.0 lease outside its window changed its token or ended renewability")
			}
			exp, _ := time.Parse(time.RFC3339, fx.Lease.Data["expires_at"].(string))
			if end := e.clock.Now().Add(r.Secret.TTL); end.After(exp.Add(-session.LeaseMargin)) || r.Secret.TTL <= 0 {
				t.Fatalf("renewed v0.2.0 lease ends %s; its token expires %s", end, exp)
			}
		})
	}
}

// The account fingerprint is golden: this code computes, from v0.2.0's stored config and key,
// the very bytes v0.2.0 stamped on its session and leases. The one rule that changed it
// (generic-password) changes it: that is asserted too, so the list cannot go stale.
func TestV020FingerprintsAreGolden(t *testing.T) {
	for _, name := range append(v020Serving, "plextrac-held", "generic-password") {
		t.Run(name, func(t *testing.T) {
			fx := loadV020(t, name)
			e := upgradedEnv(t, fx.v010Fixture, time.Minute, false)
			cfg, err := session.ReadConfig(context.Background(), e.s)
			if err != nil {
				t.Fatal(err)
			}
			key, err := session.ReadFingerprintKey(context.Background(), e.s, false)
			if err != nil {
				t.Fatal(err)
			}
			var session sessionRecord
			if err := json.Unmarshal(fx.Storage[sessionKey], &session); err != nil {
				t.Fatal(err)
			}
			if session.Account != fx.Fingerprint || fx.Lease.InternalData[leaseAccountKey] != fx.Fingerprint {
				t.Fatal("test setup: the fixture's session and lease are not stamped with its fingerprint")
			}
			got, changed := cfg.Fingerprint(key), name == "generic-password"
			if (got != fx.Fingerprint) != changed {
				t.Fatalf("fingerprint %s, v0.2.0 stamped %s: changed %v, want %v", got, fx.Fingerprint, got != fx.Fingerprint, changed)
			}
		})
	}
}

// A held v0.2.0 mount stays held: no read logs in, even with upstream accepting the stored
// password again, and the error says it holds (the reason v0.2.0 stored is withheld:
// TestHoldReasonStoredByAnEarlierVersionIsNotShown).
func TestV020HeldMountStaysHeld(t *testing.T) {
	fx := loadV020(t, "plextrac-held")
	e := upgradedEnv(t, fx.v010Fixture, 10*time.Minute, true)
	for range 3 {
		e.clock.Advance(10 * time.Minute)
		if code, msg := e.readFailure("token"); code != 503 || !strings.Contains(msg, "refused the stored credentials 1 times") {
			t.Fatalf("read of a held v0.2.0 mount: %d %q", code, msg)
		}
	}
	if st := e.sim.Stats(sim.PlexTrac); st.AuthCalls != 0 {
		t.Fatalf("a held v0.2.0 mount called upstream %d times", st.AuthCalls)
	}
	if h := e.read("status", nil).Data["health"]; h != "held" {
		t.Fatalf("status health %v, want held", h)
	}
}

// The TOTP step v0.2.0 stored is honoured, also by a node whose clock is a step behind the
// one that sent it (a new process skips only its own current step): the first MFA login
// waits for a later step.
func TestV020KeepsTheTOTPStep(t *testing.T) {
	fx := loadV020(t, "plextrac-mfa")
	var rec totpStepRecord
	if err := json.Unmarshal(fx.Storage[totpStepKey], &rec); err != nil || rec.Step == 0 {
		t.Fatalf("fixture has no TOTP step: %v", err)
	}
	e := upgradedEnv(t, fx.v010Fixture, time.Unix(rec.Step*30, 0).Add(-time.Second).Sub(fx.Clock), true)
	e.read("token", nil)
	if now := e.clock.Now().Unix() / 30; now <= rec.Step {
		t.Fatalf("an MFA login in step %d, which v0.2.0 had already used", now)
	}
}

// A generic mount whose login names no user is identified by the secrets
// it sends, so a v0.2.0 mount named by its password alone is another account once, at the
// upgrade: its stored session is not served and its leases do not renew (docs/upgrading.md).
func TestV020GenericNamedByItsPasswordIsAnotherAccount(t *testing.T) {
	fx := loadV020(t, "generic-password")
	e := upgradedEnv(t, fx.v010Fixture, 3*time.Minute, false)
	if code, msg := e.readFailure("token"); code != 504 || !strings.Contains(msg, "login failed") { // the dead URL
		t.Fatalf("read: %d %q, want a login tried instead of the session stamped with v0.2.0's fingerprint", code, msg)
	}
	resp, err := e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RenewOperation, Storage: e.s,
		Secret: v020Lease(fx), Data: fx.Lease.Data})
	if err != nil || !resp.IsError() || !strings.Contains(errText(resp), "account changed") {
		t.Fatalf("a v0.2.0 lease of the password-named account renewed: %v %s", err, errText(resp))
	}
}
