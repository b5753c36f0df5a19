package sessiontoken

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// fakeLogin serves a generic login at /login and a refresh at /refresh that answer what the
// test sets, in place of the simulator.
type fakeLogin struct {
	login, refresh atomic.Value // func() (status int, body any)
	calls          atomic.Int64 // logins and refreshes answered
}

func (f *fakeLogin) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var answer atomic.Value
		switch r.URL.Path {
		case "/login":
			answer = f.login
		case "/refresh":
			answer = f.refresh
		default:
			next.ServeHTTP(w, r)
			return
		}
		f.calls.Add(1)
		status, body := answer.Load().(func() (int, any))()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(body)
	})
}

func genericFake(e *env) map[string]any {
	return map[string]any{"provider": "generic", "url": e.url, "allow_insecure_http": true, "username": "svc",
		"password": "fake-login-password", "login_path": "/login", "refresh_path": "/refresh", "expiry_field": "expires"}
}

func answer(status int, body any) func() (int, any) { return func() (int, any) { return status, body } }

// An upstream that echoes the current opaque (non-JWT) token in a refresh error never gets it
// into status, errors or the log, before and after a reload from storage.
func TestOpaqueTokenEchoedByUpstreamIsScrubbed(t *testing.T) {
	f := &fakeLogin{}
	e := newEnvWrapped(t, f.wrap)
	const tok = "opaque-session-value-1"
	f.login.Store(answer(200, map[string]any{"token": tok}))
	f.refresh.Store(answer(500, map[string]any{"message": "token " + tok + " is not valid here"}))
	e.write("config", genericFake(e))
	e.read("token", nil)
	for _, reload := range []bool{false, true} {
		if reload {
			e.b.reset() // the token now comes from storage
			// Refresh refused, so it logs in, and the login failure echoes the stored token.
			f.refresh.Store(answer(401, map[string]any{"message": "session ended"}))
			f.login.Store(answer(503, map[string]any{"message": "down; your token was " + tok}))
		}
		e.clock.Advance(map[bool]time.Duration{false: 11 * time.Minute, true: 30 * time.Second}[reload]) // refresh due (past the backoff)
		resp := e.read("token", nil)
		if len(resp.Warnings) == 0 {
			t.Fatalf("reload=%v: no refresh failure to check", reload)
		}
		status := e.read("status", nil).Data
		if status["last_error"] == nil {
			t.Fatalf("reload=%v: status has no last_error", reload)
		}
		assertNoSecrets(t, "status", status, tok, "fake-login-password")
		assertNoSecrets(t, "warnings", resp.Warnings, tok, "fake-login-password")
	}
}

// Expiries the plugin cannot store or serve are bad responses at login, with a clear error,
// never a half-stored session whose leases cannot renew.
func TestImplausibleExpiriesAreBadResponsesAtLogin(t *testing.T) {
	f := &fakeLogin{}
	e := newEnvWrapped(t, f.wrap)
	for name, tc := range map[string]struct {
		expires any
		want    string
	}{
		"past year 9999 in ms":       {1e15, "expire"},
		"ten thousand years out":     {"9999-12-31T23:59:59Z", "expire"},
		"lives less than the margin": {e.clock.Now().Add(8 * time.Second).Unix(), "expire"},
	} {
		f.login.Store(answer(200, map[string]any{"token": "opaque-token-x", "expires": tc.expires}))
		resp, _ := e.do(logical.UpdateOperation, "config", genericFake(e))
		if !resp.IsError() || !strings.Contains(errText(resp), tc.want) || !strings.Contains(errText(resp), "login") {
			t.Fatalf("%s: config write %q, want the login check to refuse the expiry", name, errText(resp))
		}
		e.write("config", with(genericFake(e), "verify", false))
		code, msg := e.readFailure("token")
		if code != 502 || !strings.Contains(msg, "generic") {
			t.Fatalf("%s: read %d %q, want 502 naming the upstream", name, code, msg)
		}
		e.clock.Advance(time.Minute) // past the failure backoff and the auth budget
	}
}
