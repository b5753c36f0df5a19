package sessiontoken

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/sim"
)

// The refresh window is the token's last third. With 15-minute tokens, a renewal with 5m01s
// left keeps the token: no upstream call, still renewable. From 4m59s on it hands out the
// refreshed token on a non-renewable lease (so Agent and VSO read the path again), which the
// other readers then share. Either way the lease ends 5 s before its token, with MaxTTL
// measured from the lease's issue time truncated to the second, as Vault measures it.
func TestRenewWindowStartsAtTheLastThird(t *testing.T) {
	for _, tc := range []struct {
		left    time.Duration
		refresh bool
	}{{5*time.Minute + time.Second, false}, {5*time.Minute - time.Second, true}} {
		t.Run(tc.left.String()+" left", func(t *testing.T) {
			e := newEnv(t)
			e.write("config", e.plextracConfig(false))
			lease := e.lease()
			issue := e.clock.Now().Add(300 * time.Millisecond)
			lease.Secret.IssueTime = issue
			e.clock.Advance(15*time.Minute - tc.left)
			before := e.sim.Stats(sim.PlexTrac)
			r := renew(t, e, lease.Secret)
			tok := r.Data["token"].(string)
			if got := tok != lease.Data["token"]; got != tc.refresh {
				t.Fatalf("new token %v, want %v", got, tc.refresh)
			}
			if r.Secret.Renewable == tc.refresh {
				t.Fatalf("renewable %v with a new token %v: a renewal that hands out a new token ends renewability, one that keeps it does not", r.Secret.Renewable, tc.refresh)
			}
			if st := e.callProtected("/api/v1/whoami", tok); st != 200 {
				t.Fatalf("the renewal's token is rejected upstream: %d", st)
			}
			exp, _ := time.Parse(time.RFC3339, r.Data["expires_at"].(string))
			if want := exp.Add(-5 * time.Second).Sub(e.clock.Now()); r.Secret.TTL != want {
				t.Errorf("TTL %s, want %s", r.Secret.TTL, want)
			}
			if want := exp.Add(-5 * time.Second).Sub(issue.Truncate(time.Second)); r.Secret.MaxTTL != want {
				t.Errorf("MaxTTL %s, want %s (from the issue time truncated to the second)", r.Secret.MaxTTL, want)
			}
			wantRefreshes := before.Refreshes
			if tc.refresh {
				wantRefreshes++
			}
			if st := e.sim.Stats(sim.PlexTrac); st.Refreshes != wantRefreshes || st.AuthCalls-before.AuthCalls != wantRefreshes-before.Refreshes {
				t.Errorf("the renewal made %d upstream auth calls, want %d", st.AuthCalls-before.AuthCalls, wantRefreshes-before.Refreshes)
			}
			if got := e.read("token", nil).Data["token"]; got != tok {
				t.Error("a read after the renewal did not return the renewal's token, the shared one")
			}
			if st := e.sim.Stats(sim.PlexTrac); st.AuthCalls-before.AuthCalls != wantRefreshes-before.Refreshes {
				t.Error("a read after the renewal called upstream")
			}
		})
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

// An early renewal asking for a large increment keeps the same token and never makes the
// lease outlive it: Vault gives the increment, capped by the MaxTTL the plugin returns.
func TestEarlyRenewalWithALargeIncrementNeverOutlivesTheToken(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(false))
	e.clock.Advance(400 * time.Millisecond)
	lease := e.lease()
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

// Revoking a lease makes no upstream call and leaves the shared session to the other
// readers, also for a provider with a logout. And it never fails (DESIGN: "revocation never
// fails"), since Vault retries a failed revocation for days: not after the upstream forgot
// the token, not after the mount's config was deleted.
func TestRevokeLeavesTheSharedSessionAlone(t *testing.T) {
	var logouts atomic.Int64
	e := newEnvWrapped(t, countPath("/logout", &logouts))
	e.write("config", genericPlexTrac(e))
	lease := e.read("token", nil)
	if !strings.HasPrefix(lease.Secret.InternalData["secret_type"].(string), "sessiontoken") {
		t.Fatal("lease is not routed to the token secret")
	}
	revoke := func(when string) {
		t.Helper()
		before, logoutsBefore := e.sim.Stats(sim.PlexTrac), logouts.Load()
		r, err := e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RevokeOperation, Storage: e.s, Secret: lease.Secret})
		if err != nil || r.IsError() {
			t.Fatalf("revoke %s: %v %s", when, err, errText(r))
		}
		if after := e.sim.Stats(sim.PlexTrac); after != before || logouts.Load() != logoutsBefore {
			t.Fatalf("revoke %s called upstream: %d logouts, stats %+v -> %+v", when, logouts.Load()-logoutsBefore, before, after)
		}
	}
	revoke("of a live session")
	other := e.read("token", nil).Data["token"].(string)
	if other != lease.Data["token"] || e.callProtected("/api/v1/whoami", other) != 200 {
		t.Fatal("after one lease was revoked the other readers lost the shared session")
	}
	e.sim.Forget()
	revoke("after the upstream forgot the token")
	if _, err := e.do(logical.DeleteOperation, "config", nil); err != nil {
		t.Fatal(err)
	}
	revoke("after the config was deleted")
}

// Renewing a lease whose refresh gives no later token ends its renewability, so the
// holder reads the path again instead of costing a refresh per renewal.
func TestRenewalWhoseRefreshDoesNotHelpEndsRenewability(t *testing.T) {
	f := &fakeLogin{}
	e := newEnvWrapped(t, f.wrap)
	exp := e.clock.Now().Add(15 * time.Minute)
	f.login.Store(answer(200, map[string]any{"token": "opaque-first", "expires": exp.Unix()}))
	f.refresh.Store(answer(200, map[string]any{"token": "opaque-shorter", "expires": exp.Add(-time.Minute).Unix()}))
	e.write("config", with(genericFake(e), "max_auth_per_minute", 100))
	lease := e.lease()
	before := f.calls.Load()
	e.clock.Advance(11 * time.Minute) // inside the renewal window
	r := renew(t, e, lease.Secret)
	if r.Data["token"] != "opaque-first" || r.Secret.Renewable {
		t.Fatalf("renewal: token %v renewable %v; want the held token and no more renewals", r.Data["token"], r.Secret.Renewable)
	}
	if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "could not refresh upstream, keeping the current token") {
		t.Errorf("renewal warnings %q: want one saying the refresh failed and the token is kept", r.Warnings)
	}
	if n := f.calls.Load() - before; n != 1 {
		t.Fatalf("upstream calls %d, want 1", n)
	}
}

func TestRenewAfterTheAccountChangedIsRefused(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(false))
	lease := e.lease()
	e.write("config", map[string]any{"min_ttl": 240}) // same account: its leases still renew
	renew(t, e, lease.Secret)
	e.write("config", e.plextracConfig(true))                           // another user: another account
	for _, at := range []time.Duration{time.Minute, 10 * time.Minute} { // outside and inside the window
		e.clock.Advance(at)
		resp, err := e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RenewOperation, Storage: e.s, Secret: lease.Secret, Data: lease.Data})
		if err != nil || !resp.IsError() || !strings.Contains(errText(resp), "account changed") {
			t.Fatalf("renewing a lease of the replaced account: %v %v", err, resp)
		}
		if resp.Data["token"] != nil || resp.Secret != nil {
			t.Fatal("a refused renewal handed out a token")
		}
	}
}

// Renewal failures caused by the upstream carry the status and message a read would get.
func TestRenewFailureCarriesTheUpstreamStatus(t *testing.T) {
	for _, tc := range []struct {
		fault sim.Fault
		code  int
	}{
		{sim.Fault{Provider: sim.PlexTrac, Status: 429, RetryAfter: "30"}, 429},
		{sim.Fault{Provider: sim.PlexTrac, Status: 503}, 502},
	} {
		e := newEnv(t)
		e.write("config", e.plextracConfig(false))
		lease := e.lease()
		e.sim.AddFault(tc.fault)
		e.clock.Advance(15*time.Minute - 5500*time.Millisecond) // too close to expiry to keep the token
		_, err := e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RenewOperation, Storage: e.s, Secret: lease.Secret, Data: lease.Data})
		var coded logical.HTTPCodedError
		if !errors.As(err, &coded) || coded.Code() != tc.code || !strings.Contains(err.Error(), "plextrac") {
			t.Fatalf("fault %d: renewal error %v, want a coded %d naming the upstream", tc.fault.Status, err, tc.code)
		}
		if code, msg := e.readFailure("token"); code != tc.code || !strings.Contains(err.Error(), strings.TrimPrefix(msg, "cannot renew: ")) {
			t.Fatalf("fault %d: read says %d %q, renewal %v", tc.fault.Status, code, msg, err)
		}
	}
}

// A routine refresh of the session before a lease's renewal window does not move the lease:
// an early renewal keeps its token and stays renewable (only rotate moves leases early).
func TestEarlyRenewalKeepsItsTokenAfterARoutineRefresh(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(false))
	lease := e.lease()
	e.clock.Advance(9 * time.Minute) // 6m left: the periodic run refreshes (5m + 75 s ahead); the window is the last 5m
	if err := e.b.PeriodicFunc(context.Background(), &logical.Request{Storage: e.s}); err != nil {
		t.Fatal(err)
	}
	if a, _ := e.b.slot.Account(context.Background(), e.s); a.Current().Value == lease.Data["token"] {
		t.Fatal("test setup: the periodic run did not refresh the session")
	}
	if r := renew(t, e, lease.Secret); r.Data["token"] != lease.Data["token"] || !r.Secret.Renewable {
		t.Fatalf("an early renewal after a routine refresh: moved %v, renewable %v", r.Data["token"] != lease.Data["token"], r.Secret.Renewable)
	}
}

// A renewal handed no response data still renews while the session holds the lease's token:
// the lease's own record holds only a hash of it, so the answer comes from the session.
func TestRenewalWithoutTheLeasesDataUsesTheSession(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(false))
	lease := e.lease()
	r, err := e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RenewOperation, Storage: e.s, Secret: lease.Secret})
	if err != nil || r.IsError() || r.Data["token"] != lease.Data["token"] {
		t.Fatalf("renewal without data while the session holds the token: %v %s", err, errText(r))
	}
}
