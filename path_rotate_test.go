package sessiontoken

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/internal/session"
	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/sim"
)

// rotate replaces the session at once: reads serve the new token, static-token's
// last_vault_rotation changes, a lease holding the replaced token renews onto the new one
// (told apart by identity, not expiry) and ends its renewability. Its answer has times, never
// the token.
func TestRotateReplacesTheSessionNow(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(true))
	lease := e.lease()
	oldStatic := e.read("static-token", nil).Data["last_vault_rotation"]
	e.clock.Advance(time.Minute)
	resp := e.write("rotate", nil)
	b, _ := json.Marshal(resp.Data)
	if strings.Contains(string(b), lease.Data["token"].(string)) || strings.Contains(string(b), "eyJ") || resp.Data["expires_at"] == nil {
		t.Fatalf("rotate answered %s; want the new session's times and no token", b)
	}
	got := e.read("token", nil).Data["token"]
	if got == lease.Data["token"] {
		t.Fatal("reads after rotate still serve the replaced token")
	}
	if st := e.read("static-token", nil).Data["last_vault_rotation"]; st == oldStatic {
		t.Error("static-token's last_vault_rotation did not change")
	}
	r := renew(t, e, lease.Secret) // outside the renewal window
	if r.Data["token"] != got || r.Secret.Renewable {
		t.Fatalf("renewing a lease of the replaced token: token changed %v, renewable %v", r.Data["token"] != lease.Data["token"], r.Secret.Renewable)
	}
	if st := e.sim.Stats(sim.PlexTrac); st.MFA != 2 {
		t.Fatalf("MFA logins %d, want 2 (config check and rotate)", st.MFA)
	}
	if _, err := e.do(logical.ReadOperation, "rotate", nil); err == nil {
		t.Error("rotate answered a read: it must need update capability")
	}
}

// rotate ends a credentials hold with one attempt, skipping the failure backoff; it respects
// the host's budget.
func TestRotateEndsAHoldAndRespectsTheBudget(t *testing.T) {
	e := newEnv(t)
	e.write("config", with(e.plextracConfig(false), "max_refused_logins", 1))
	revokeDemoPassword(e)
	e.clock.Advance(15 * time.Minute)
	e.readFailure("token")       // refused: held, and in backoff
	e.sim.AddDemoUsers()         // the account is fixed upstream
	e.clock.Advance(time.Second) // still in the failure backoff (10 s): rotate skips it
	if resp := e.write("rotate", nil); resp.Data["expires_at"] == nil {
		t.Fatalf("rotate: %v", resp.Data)
	}
	if h, _ := session.ReadHold(context.Background(), e.s); h != (session.Hold{}) {
		t.Fatalf("hold after rotate: %+v", h)
	}
	if d := e.read("status", nil).Data; d["health"] != "ok" {
		t.Fatalf("health after rotate: %v (%v)", d["health"], d["reason"])
	}
	for i := 0; ; i++ { // the host's budget (10 a minute, 5 as a burst) runs out: 429, nothing sent
		resp, err := e.do(logical.UpdateOperation, "rotate", nil)
		if resp != nil && resp.Data["expires_at"] != nil {
			if i > 10 {
				t.Fatal("rotate never ran out of the host's budget")
			}
			continue
		}
		if code, msg := failure(t, resp, err); code != 429 || !strings.Contains(msg, "retry after") {
			t.Fatalf("rotate over the host budget: %d %q", code, msg)
		}
		break
	}
}

// rotate on a mount with no config says what to write first, and calls no upstream.
func TestRotateOnAnUnconfiguredMountSaysToWriteConfig(t *testing.T) {
	e := newEnv(t)
	resp, err := e.do(logical.UpdateOperation, "rotate", nil)
	if err != nil || !resp.IsError() || !strings.Contains(errText(resp), "not configured: write") || !strings.Contains(errText(resp), "config first") {
		t.Fatalf("rotate before config: %v %s", err, errText(resp))
	}
	if st := e.sim.Stats(sim.PlexTrac); st.AuthCalls != 0 {
		t.Fatalf("rotate before config called upstream: %+v", st)
	}
}

// revoke_previous ends the replaced token upstream where the provider has a logout.
func TestRotateRevokesThePreviousTokenWhenAsked(t *testing.T) {
	var logouts atomic.Int64
	e := newEnvWrapped(t, countPath("/logout", &logouts))
	e.write("config", genericPlexTrac(e))
	e.read("token", nil)
	e.clock.Advance(time.Minute)
	if resp := e.write("rotate", map[string]any{"revoke_previous": true}); resp.Data["previous_revoked"] != true || logouts.Load() != 1 {
		t.Fatalf("previous_revoked %v, logouts %d", resp.Data["previous_revoked"], logouts.Load())
	}
	p := newEnv(t)
	p.write("config", p.plextracConfig(false))
	if resp := p.write("rotate", map[string]any{"revoke_previous": true}); resp.Data["previous_revoked"] != false || len(resp.Warnings) == 0 {
		t.Fatalf("plextrac has no logout: %v %v", resp.Data, resp.Warnings)
	}
}

// Rotate is spaced like a failed config check, sharing its spacing (the
// same config's key, kept across a delete): a job that loops on rotate against credentials
// upstream refuses costs one login per spacing, not one per call, held or not. Each refused
// call answers 429 with the time to retry, and sends nothing.
func TestRotateIsSpacedLikeAFailedConfigCheck(t *testing.T) {
	e := newEnv(t)
	cfg := with(e.plextracConfig(false), "max_refused_logins", 1)
	e.write("config", cfg)
	revokeDemoPassword(e)
	spaced := func(what string, resp *logical.Response, err error) {
		t.Helper()
		if code, msg := failure(t, resp, err); code != 429 || !strings.Contains(msg, "retry after") || !strings.Contains(msg, "not tried") {
			t.Fatalf("%s: %d %q, want 429 with the time to retry", what, code, msg)
		}
	}
	if resp, err := e.do(logical.UpdateOperation, "rotate", nil); err == nil && resp.Data["expires_at"] != nil {
		t.Fatal("rotate with a revoked password succeeded")
	}
	for range 5 { // held now: each rotate would be one more refused login
		resp, err := e.do(logical.UpdateOperation, "rotate", nil)
		spaced("rotate right after a failed one", resp, err)
	}
	resp, err := e.do(logical.UpdateOperation, "config", cfg)
	spaced("the same config's check after a failed rotate", resp, err)
	if _, err := e.do(logical.DeleteOperation, "config", nil); err != nil {
		t.Fatal(err)
	}
	e.write("config", with(cfg, "verify", false))
	resp, err = e.do(logical.UpdateOperation, "rotate", nil)
	spaced("rotate after a delete and rewrite", resp, err)
	if st := e.sim.Stats(sim.PlexTrac); st.LoginFailures != 1 {
		t.Fatalf("refused logins %d, want 1", st.LoginFailures)
	}
	e.clock.Advance(session.FirstFailureBackoff)
	e.sim.AddDemoUsers() // fixed upstream: the next rotate, once the spacing is over, logs in
	if resp := e.write("rotate", nil); resp.Data["expires_at"] == nil {
		t.Fatalf("rotate after the spacing: %v", resp.Data)
	}
}

// A rotate request that ends during its login (the client gave up)
// returns at once; the login goes on under the shared call's own bounded context, so a reader
// that joined it gets the new token rather than the rotate request's cancellation. Run with
// -race: the replaced token comes back through the shared call, not through a variable the
// cancelled request returns from meanwhile.
func TestRotateCancelledDuringItsLoginLeavesReadersTheNewToken(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	e := newEnvWrapped(t, stallPath("/api/v1/authenticate", arrived, release))
	e.write("config", with(e.plextracConfig(false), "verify", false))
	ctx, cancel := context.WithCancel(context.Background())
	rotating := make(chan error, 1)
	go func() {
		_, err := e.doCtx(ctx, logical.UpdateOperation, "rotate", nil)
		rotating <- err
	}()
	<-arrived // rotate's login is upstream, stalled; no session yet, so a reader joins it
	reading := make(chan *logical.Response, 1)
	go func() {
		resp, _ := e.do(logical.ReadOperation, "token", nil)
		reading <- resp
	}()
	for counterValue(e.b.metrics.waited) == 0 && len(reading) == 0 {
		time.Sleep(time.Millisecond) // until the reader waits on the shared call
	}
	time.Sleep(20 * time.Millisecond) // from the count to the call: a few lines
	cancel()
	if err := <-rotating; err == nil {
		t.Fatal("a rotate whose request ended reported success")
	}
	// The next rotate waits for that login, then makes its own: the ended request's login is
	// not its, and no failed rotate (the request that gave up does not know how it ended), so
	// it is not spaced out either.
	rotated := make(chan error, 1)
	go func() {
		resp, err := e.do(logical.UpdateOperation, "rotate", nil)
		if err == nil && resp.Data["expires_at"] == nil {
			_, msg := failure(t, resp, err)
			err = errors.New(msg)
		}
		rotated <- err
	}()
	time.Sleep(20 * time.Millisecond) // let it join the login in flight
	close(release)
	resp := <-reading
	if resp == nil || resp.IsError() || resp.Data["token"] == nil {
		t.Fatalf("the reader that joined the cancelled rotate got %s, want the new token", errText(resp))
	}
	e.servedTokens = append(e.servedTokens, resp.Data["token"].(string))
	if err := <-rotated; err != nil {
		t.Fatalf("rotate after one whose request ended: %v", err)
	}
	if st := e.sim.Stats(sim.PlexTrac); st.Logins != 2 {
		t.Fatalf("logins %d, want 2: the reader shared the first rotate's, the second rotate made its own", st.Logins)
	}
}

// For -race: rotate requests that end as the shared call starts (the
// client gave up) return while the call goes on. The call hands the replaced token back
// through its value; a result variable it wrote would race with the request's return (seen
// as a DATA RACE in each of four runs with one).
func TestRotateWhoseRequestEndedRacesNothing(t *testing.T) {
	e := newEnv(t)
	e.write("config", with(e.plextracConfig(false), "verify", false))
	for range 50 {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, _ = e.doCtx(ctx, logical.UpdateOperation, "rotate", nil)
		e.clock.Advance(20 * time.Second) // within the host's budget
	}
	e.read("token", nil)
}

// A rotate loop whose client gives up while the login is upstream (a client timeout shorter
// than the login) is spaced like any failed rotate: the shared call, which runs to its end,
// notes the outcome, not the request. Otherwise each round sends one more refused login,
// with max_refused_logins=1 and the mount held after the first.
func TestRotateWhoseClientGaveUpIsStillSpaced(t *testing.T) {
	var mu sync.Mutex
	var giveUp context.CancelFunc
	e := newEnvWrapped(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/api/v1/authenticate" {
				mu.Lock()
				if giveUp != nil {
					giveUp() // the client's timeout fires while the login is upstream
					giveUp = nil
				}
				mu.Unlock()
				time.Sleep(50 * time.Millisecond)
			}
			next.ServeHTTP(w, r)
		})
	})
	e.write("config", with(e.plextracConfig(false), "max_refused_logins", 1, "verify", false))
	revokeDemoPassword(e)
	for round := 1; round <= 4; round++ {
		ctx, cancel := context.WithCancel(context.Background())
		mu.Lock()
		giveUp = cancel
		mu.Unlock()
		_, _ = e.doCtx(ctx, logical.UpdateOperation, "rotate", nil)
		cancel()
		// the login goes on in the shared call: wait until upstream answered it
		deadline := time.Now().Add(5 * time.Second)
		for e.sim.Stats(sim.PlexTrac).LoginFailures < round && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond) // the call stores its outcome
	}
	if n := e.sim.Stats(sim.PlexTrac).LoginFailures; n > 1 {
		t.Fatalf("4 rotates whose client gave up, each within a second, sent %d refused logins (max_refused_logins=1): want 1, the rest spaced out (429)", n)
	}
}
