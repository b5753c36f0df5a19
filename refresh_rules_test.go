package sessiontoken

import (
	"encoding/base64"
	"fmt"
	"testing"
	"time"
)

// fixedJWT is an (unsigned) JWT with these times: the plugin reads exp and iat unverified.
func fixedJWT(iat, exp time.Time) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." +
		enc([]byte(fmt.Sprintf(`{"iat":%d,"exp":%d}`, iat.Unix(), exp.Unix()))) + "." + enc([]byte("sig"))
}

// Defect 5: a refresh that does not give a later token is a failure for the backoff. Before,
// an upstream whose refresh returned the same token made every read past min_ttl refresh
// again (30 reads: 8 auth calls, the host's budget emptied for every other mount on it).
func TestRefreshThatDoesNotHelpBacksOff(t *testing.T) {
	f := &fakeLogin{}
	e := newEnvWrapped(t, f.wrap)
	same := fixedJWT(e.clock.Now(), e.clock.Now().Add(15*time.Minute))
	f.login.Store(answer(200, map[string]any{"token": same}))
	f.refresh.Store(answer(200, map[string]any{"token": same}))
	e.write("config", with(genericFake(e), "max_auth_per_minute", 100))
	calls := func() int { return int(f.calls.Load()) }
	before := calls()
	e.clock.Advance(11 * time.Minute) // 4m left: below min_ttl (5m), a read refreshes
	for i := 0; i < 30; i++ {
		resp := e.read("token", nil)
		if resp.Data["token"] != same {
			t.Fatal("the still-valid token was not served")
		}
		e.clock.Advance(time.Second)
	}
	if n := calls() - before; n > 2 {
		t.Fatalf("30 reads cost %d upstream auth calls; a refresh that does not help must back off", n)
	}
}

// Defect 5: renewing a lease whose refresh gives no later token ends its renewability, so the
// holder reads the path again instead of costing a refresh per renewal.
func TestRenewalWhoseRefreshDoesNotHelpEndsRenewability(t *testing.T) {
	f := &fakeLogin{}
	e := newEnvWrapped(t, f.wrap)
	exp := e.clock.Now().Add(15 * time.Minute)
	f.login.Store(answer(200, map[string]any{"token": "opaque-first", "expires": exp.Unix()}))
	f.refresh.Store(answer(200, map[string]any{"token": "opaque-shorter", "expires": exp.Add(-time.Minute).Unix()}))
	e.write("config", with(genericFake(e), "max_auth_per_minute", 100))
	lease := e.read("token", nil)
	lease.Secret.IssueTime = e.clock.Now()
	before := f.calls.Load()
	e.clock.Advance(11 * time.Minute) // inside the renewal window
	r := renew(t, e, lease.Secret)
	if r.Data["token"] != "opaque-first" || r.Secret.Renewable {
		t.Fatalf("renewal: token %v renewable %v; want the held token and no more renewals", r.Data["token"], r.Secret.Renewable)
	}
	if n := f.calls.Load() - before; n != 1 {
		t.Fatalf("upstream calls %d, want 1", n)
	}
}
