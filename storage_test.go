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

// What v0.1.0 stored keeps working after an upgrade: testdata/storage/v0.1.0 holds what that
// version wrote for each provider (its config, session and TOTP step, byte for byte) and a
// lease it issued. Each test loads those bytes into a fresh mount of this code.

// v010Cases are the fixtures whose config this version still takes as it is. generic-if's
// login_body uses {{if}}, which the bounded login body language no longer has: see
// TestV010LoginBodyOutsideTheLanguageIsRefusedClearly.
var v010Cases = []string{"plextrac-mfa", "plaspy", "resolver", "generic-apikey"}

func loadV010(t *testing.T, name string) v010Fixture {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "storage", "v0.1.0", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var fx v010Fixture
	if err := json.Unmarshal(b, &fx); err != nil {
		t.Fatal(err)
	}
	return fx
}

// upgradedEnv is a mount of this code on storage that an earlier version wrote, with the
// clock at when it wrote it plus elapsed. The fixture's upstream URL is dead (its port was the
// simulator's of that run), so any upstream call fails: serving without one is the point.
// With pointAtSim, the stored URL is rewritten to this run's simulator first (and the session
// dropped, since it belongs to the old URL's account), for tests of what a login does with
// the stored settings.
func upgradedEnv(t *testing.T, fx v010Fixture, elapsed time.Duration, pointAtSim bool) *env {
	t.Helper()
	e := newEnv(t)
	e.clock.Advance(fx.Clock.Sub(e.clock.Now()) + elapsed)
	for k, v := range fx.Storage {
		if (k == legacyConfigKey || k == configKey) && pointAtSim {
			var c map[string]any
			if err := json.Unmarshal(v, &c); err != nil {
				t.Fatal(err)
			}
			c["url"] = e.url
			v, _ = json.Marshal(c)
		}
		if (k == legacySessionKey || k == sessionKey) && pointAtSim {
			continue
		}
		if err := e.s.Put(context.Background(), &logical.StorageEntry{Key: k, Value: v}); err != nil {
			t.Fatal(err)
		}
	}
	if tok, _ := fx.Lease.Data["token"].(string); tok != "" {
		e.servedTokens = append(e.servedTokens, tok)
	}
	return e
}

func TestUpgradeFromV010ServesTheStoredSessionWithoutLogin(t *testing.T) {
	for _, name := range v010Cases {
		t.Run(name, func(t *testing.T) {
			fx := loadV010(t, name)
			e := upgradedEnv(t, fx, 2*time.Minute, false)
			got := e.read("token", nil).Data
			if got["token"] != fx.Lease.Data["token"] || got["authorization"] != fx.Lease.Data["authorization"] {
				t.Fatal("after the upgrade the mount did not serve the session v0.1.0 stored")
			}
			for _, k := range []string{"expires_at", "issued_at", "provider", "tenant_id", "org_id"} {
				if want, ok := fx.Lease.Data[k]; ok && !sameJSON(got[k], want) {
					t.Errorf("%s = %v after the upgrade, v0.1.0 served %v", k, got[k], want)
				}
			}
			static := e.read("static-token", nil).Data
			if static["last_vault_rotation"] != fx.StaticRead["last_vault_rotation"] {
				t.Errorf("static-token's last_vault_rotation changed across the upgrade: %v, was %v",
					static["last_vault_rotation"], fx.StaticRead["last_vault_rotation"])
			}
			if st := e.read("status", nil).Data; st["last_error"] != nil {
				t.Errorf("status shows an error after the upgrade: %v", st["last_error"])
			}
		})
	}
}

func TestUpgradeFromV010LeasesRenewAndRevoke(t *testing.T) {
	for _, name := range v010Cases {
		t.Run(name, func(t *testing.T) {
			fx := loadV010(t, name)
			e := upgradedEnv(t, fx, 3*time.Minute, false) // outside the renewal window: no upstream call
			secret := &logical.Secret{InternalData: fx.Lease.InternalData,
				LeaseOptions: logical.LeaseOptions{TTL: fx.Lease.TTL, Renewable: true, IssueTime: fx.Clock}}
			r := renew(t, e, secret)
			if r.Data["token"] != fx.Lease.Data["token"] {
				t.Fatal("renewing a v0.1.0 lease changed its token outside the window")
			}
			exp, _ := time.Parse(time.RFC3339, fx.Lease.Data["expires_at"].(string))
			if end := e.clock.Now().Add(r.Secret.TTL); end.After(exp.Add(-session.LeaseMargin)) || r.Secret.TTL <= 0 {
				t.Fatalf("renewed v0.1.0 lease ends %s; its token expires %s", end, exp)
			}
			resp, err := e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RevokeOperation,
				Storage: e.s, Secret: &logical.Secret{InternalData: fx.Lease.InternalData}})
			if err != nil || resp.IsError() {
				t.Fatalf("revoking a v0.1.0 lease failed: %v %s", err, errText(resp))
			}
		})
	}
}

// A session stored before v0.1.0 recorded obtained_at counts as obtained when it was
// issued: static-token's last_vault_rotation is its issued_at, not the zero time.
func TestUpgradeOfASessionWithoutObtainedAtCountsItsIssue(t *testing.T) {
	fx := loadV010(t, "plaspy")
	var session struct {
		Account string         `json:"account"`
		Token   map[string]any `json:"token"`
	}
	if err := json.Unmarshal(fx.Storage[legacySessionKey], &session); err != nil {
		t.Fatal(err)
	}
	delete(session.Token, "obtained_at")
	fx.Storage[legacySessionKey], _ = json.Marshal(session)
	e := upgradedEnv(t, fx, 2*time.Minute, false)
	if got := e.read("static-token", nil).Data["last_vault_rotation"]; got != session.Token["issued_at"] {
		t.Fatalf("last_vault_rotation = %v, want the session's issued_at %v", got, session.Token["issued_at"])
	}
}

// A stored v0.1.0 config logs in with what it stored: its credentials, headers and, for
// generic, its login body.
func TestUpgradeFromV010LogsInWithTheStoredConfig(t *testing.T) {
	for _, name := range v010Cases {
		t.Run(name, func(t *testing.T) {
			fx := loadV010(t, name)
			e := upgradedEnv(t, fx, time.Minute, true)
			tok := e.read("token", nil).Data
			path := map[string]string{"plaspy": "/api/Account", "resolver": "/user/me"}[name]
			if path == "" {
				path = "/api/v1/whoami"
			}
			if st := e.callProtected(path, tok["authorization"].(string)); st != 200 {
				t.Fatalf("the token from the stored config's login is refused upstream: %d", st)
			}
		})
	}
}

// v0.1.0 recorded the last TOTP step it sent; after the upgrade, a login in that step waits
// for the next one instead of resending the code. Also when this node's clock is a step
// behind the node that sent it: a new process skips only its own current step, so only the
// stored record keeps it from sending the code of the next.
func TestUpgradeFromV010KeepsTheTOTPStep(t *testing.T) {
	fx := loadV010(t, "plextrac-mfa")
	var step int64
	if err := json.Unmarshal(fx.Storage[legacyTOTPStepKey], &step); err != nil || step == 0 {
		t.Fatalf("fixture has no TOTP step: %v", err)
	}
	for _, tc := range []struct {
		name    string
		elapsed time.Duration
		inStep  int64
	}{
		{"in the stored step", 10 * time.Second, step},
		{"a step behind it", time.Unix(step*30, 0).Add(-time.Second).Sub(fx.Clock), step - 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := upgradedEnv(t, fx, tc.elapsed, true)
			if now := e.clock.Now().Unix() / 30; now != tc.inStep {
				t.Fatalf("test setup: clock in step %d, want %d", now, tc.inStep)
			}
			e.read("token", nil)
			if now := e.clock.Now().Unix() / 30; now <= step {
				t.Fatalf("an MFA login in step %d, which v0.1.0 had already used", now)
			}
			if st := e.sim.Stats(sim.PlexTrac); st.MFA != 1 {
				t.Fatalf("MFA calls = %d, want 1", st.MFA)
			}
		})
	}
}

// Deleting the config of a mount upgraded from v0.1.0 deletes what v0.1.0 stored too: the
// config does not come back from its old key, nor the TOTP step from its old one.
func TestConfigDeleteAfterTheUpgradeLeavesNothingOfV010(t *testing.T) {
	fx := loadV010(t, "plextrac-mfa")
	e := upgradedEnv(t, fx, 10*time.Second, false)
	if _, err := e.do(logical.DeleteOperation, "config", nil); err != nil {
		t.Fatal(err)
	}
	if r, err := e.do(logical.ReadOperation, "config", nil); err != nil || (r != nil && r.Data != nil) {
		t.Fatalf("config read after delete: %v %v", r, err)
	}
	for k := range fx.Storage {
		if entry, _ := e.s.Get(context.Background(), k); entry != nil {
			t.Errorf("v0.1.0's %q is still stored after config delete", k)
		}
	}
}

func sameJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return strings.EqualFold(string(x), string(y))
}

// A v0.1.0 lease names the account by v0.1.0's fingerprint. It renews after a write that
// keeps the account (the config now stored in the new format), and not after one that
// changes it.
func TestV010LeasesFollowTheAccountAcrossNewWrites(t *testing.T) {
	fx := loadV010(t, "plaspy")
	e := upgradedEnv(t, fx, 3*time.Minute, false)
	secret := func() *logical.Secret {
		return &logical.Secret{InternalData: fx.Lease.InternalData,
			LeaseOptions: logical.LeaseOptions{TTL: fx.Lease.TTL, Renewable: true, IssueTime: fx.Clock}}
	}
	e.write("config", map[string]any{"min_ttl": 120, "verify": false})
	for _, k := range []string{legacyConfigKey, legacySessionKey} {
		if entry, _ := e.s.Get(context.Background(), k); entry != nil {
			t.Errorf("v0.1.0's %q is still stored after a newer write: a rolled-back v0.1.0 would read it", k)
		}
	}
	if got := e.read("token", nil).Data["token"]; got != fx.Lease.Data["token"] {
		t.Fatal("a write that kept the account dropped v0.1.0's session")
	}
	renew(t, e, secret())
	e.write("config", map[string]any{"username": "svc-other", "api_key": sim.DemoPlaspyKey, "verify": false})
	resp, err := e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RenewOperation, Storage: e.s, Secret: secret()})
	if err != nil || !resp.IsError() || !strings.Contains(errText(resp), "account changed") {
		t.Fatalf("a v0.1.0 lease of the replaced account renewed: %v %s", err, errText(resp))
	}
}

// A record in a format newer than this binary understands is refused, never misread.
func TestNewerStoredFormatsAreRefused(t *testing.T) {
	for _, key := range []string{configKey, sessionKey, totpStepKey, fingerprintKeyKey} {
		t.Run(key, func(t *testing.T) {
			e := newEnv(t)
			e.write("config", e.plextracConfig(true))
			e.read("token", nil)
			entry, _ := e.s.Get(context.Background(), key)
			var m map[string]any
			if err := json.Unmarshal(entry.Value, &m); err != nil {
				t.Fatal(err)
			}
			m["version"] = 99
			entry.Value, _ = json.Marshal(m)
			_ = e.s.Put(context.Background(), entry)
			e.b.slot.Reset()
			e.clock.Advance(15 * time.Minute) // a login would be needed (and the TOTP step read)
			resp, err := e.do(logical.ReadOperation, "token", nil)
			if err == nil && !resp.IsError() {
				t.Fatalf("served with a stored %s of version 99", key)
			}
			msg := errText(resp)
			if err != nil {
				msg = err.Error()
			}
			if !strings.Contains(msg, "newer than this plugin") {
				t.Fatalf("error %q does not say the format is newer", msg)
			}
		})
	}
	e := newEnv(t)
	e.write("config", e.plextracConfig(false))
	lease := e.lease()
	var d map[string]any
	_ = json.Unmarshal([]byte(lease.Secret.InternalData[leaseDataKey].(string)), &d)
	d["v"] = 99
	b, _ := json.Marshal(d)
	lease.Secret.InternalData[leaseDataKey] = string(b)
	resp, err := e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RenewOperation, Storage: e.s, Secret: lease.Secret, Data: lease.Data})
	if err != nil || !resp.IsError() || !strings.Contains(errText(resp), "newer than this plugin") {
		t.Fatalf("renewed a lease with data of version 99: %v %s", err, errText(resp))
	}
}

// A v0.1.0 login_body that uses what the bounded language dropped ({{if}}) is refused with an
// error that names the field and what to do, on reads and renewals alike; writing login_body
// again fixes the mount.
func TestV010LoginBodyOutsideTheLanguageIsRefusedClearly(t *testing.T) {
	fx := loadV010(t, "generic-if")
	e := upgradedEnv(t, fx, time.Minute, true)
	_, err := e.do(logical.ReadOperation, "token", nil)
	if err == nil || !strings.Contains(err.Error(), "login_body") || !strings.Contains(err.Error(), "write config again") {
		t.Fatalf("read with a v0.1.0 {{if}} login_body: %v", err)
	}
	_, err = e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RenewOperation, Storage: e.s,
		Secret: &logical.Secret{InternalData: fx.Lease.InternalData, LeaseOptions: logical.LeaseOptions{IssueTime: fx.Clock}}})
	if err == nil || !strings.Contains(err.Error(), "login_body") {
		t.Fatalf("renewal with a v0.1.0 {{if}} login_body: %v", err)
	}
	e.write("config", map[string]any{"login_body": `{"username": {{json .username}}, "password": {{json .password}}}`,
		"password": sim.DemoPlexTracPassword})
	if st := e.callProtected("/api/v1/whoami", e.read("token", nil).Data["authorization"].(string)); st != 200 {
		t.Fatalf("after login_body was written again the token is refused: %d", st)
	}
}
