package upstream

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/internal/testclock"
)

// FuzzTokenTimes: any token and expiry field yields times the plugin can store and serve, or
// an error that says it is the upstream's answer; never a panic.
func FuzzTokenTimes(f *testing.F) {
	f.Add("eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3OTU0MzU0MDJ9.x", "2026-11-23T12:00:00Z", 0.0)
	f.Add("opaque", "", 1795435402.0)
	f.Add("a.b.c", "1795435402000", -1.0)
	f.Add("eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjI1MzQwMjMwMDgwMH0.x", "1e15", 1e15)     // exp in year 10000; year 33658
	f.Add("eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3OTU0MzUyMDV9.x", "NaN", 1795435205.0) // 5 s left
	f.Fuzz(func(t *testing.T, token, field string, num float64) {
		now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
		for _, v := range []any{field, num, nil} {
			issued, exp, err := TokenTimes(token, Expiry{Field: "expires", Value: v}, now.Add(-time.Second), now)
			if err != nil {
				if !strings.HasPrefix(err.Error(), "upstream issued a token") {
					t.Fatalf("error does not say it is the upstream's answer: %v", err)
				}
				continue
			}
			// Servable for at least 10 s, at most 365 days ahead, issued at most 365 days
			// ago and not in the future, and both times storable as JSON.
			_, eerr := exp.MarshalJSON()
			_, ierr := issued.MarshalJSON()
			if eerr != nil || ierr != nil || exp.Before(now.Add(10*time.Second)) || exp.After(now.Add(365*24*time.Hour)) ||
				issued.After(now) || issued.Before(now.Add(-365*24*time.Hour)) {
				t.Fatalf("issued %s exp %s for now %s (%v, %v)", issued, exp, now, ierr, eerr)
			}
		}
	})
}

// FuzzProviderAnswers: whatever an upstream answers to a login or refresh, every provider
// returns a usable token or an *Error, never panics, and never puts a secret in the error:
// password, api_key, TOTP seed, header value, the current token or one an upstream echoes.
func FuzzProviderAnswers(f *testing.F) {
	f.Add(200, []byte(`{"status":"success","tenant_id":0,"token":"eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3OTU0MzU0MDJ9.x"}`))
	f.Add(200, []byte(`{"mfa_enabled":true,"code":"abc"}`))
	f.Add(200, []byte(`{"success":false,"error":"Invalid API key or username. fuzz-secret-pw"}`))
	f.Add(200, []byte(`{"token":"t","expiresAt":"2030-01-01T00:00:00Z"}`))
	f.Add(401, []byte(`{"message":"bad password fuzz-secret-pw"}`))
	f.Add(401, []byte(`{"message":"unknown token fuzz-opaque-current (was fuzz-opaque-previous), tenant fuzz-secret-header, seed JBSWY3DPEHPK3PXP"}`))
	f.Add(429, []byte(`{}`))
	f.Add(302, []byte(``))
	f.Add(200, []byte(`<html>`))
	var mu sync.Mutex
	var status int
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		st, b := status, body
		mu.Unlock()
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(st)
		_, _ = w.Write(b)
	}))
	defer srv.Close()
	f.Fuzz(func(t *testing.T, st int, b []byte) {
		if st < 200 || st > 599 {
			st = 200 + (st%400+400)%400
		}
		mu.Lock()
		status, body = st, b
		mu.Unlock()
		// A clock whose Sleep advances it: the first MFA login of an account in a process
		// waits for the next TOTP step, which must not take real time under the fuzzer.
		clock := testclock.At(time.Now())
		for _, name := range Names() {
			p, err := newWithBudget(Config{Provider: name, URL: srv.URL, Username: "u", Email: "e", Password: "fuzz-secret-pw",
				APIKey: "fuzz-secret-key", TOTPSecret: "JBSWY3DPEHPK3PXP", OrgID: 1, MaxAuthPerMinute: 600,
				Headers:        map[string]string{"X-Tenant": "fuzz-secret-header"},
				RequestTimeout: 2 * time.Second, Generic: GenericConfig{LoginPath: "/login", RefreshPath: "/refresh", ExpiryField: "expiresAt"}},
				Deps{Clock: clock, Limiters: NewLimiters(), TOTPSteps: NewTOTPSteps()})
			if err != nil {
				t.Fatal(err)
			}
			cur := &Token{Value: "fuzz-opaque-current", IssuedAt: clock.Now(), ExpiresAt: clock.Now().Add(time.Minute)}
			for _, call := range []func() (*Token, error){
				func() (*Token, error) { return p.Login(context.Background()) },
				func() (*Token, error) { return p.Refresh(context.Background(), cur) },
			} {
				tok, err := call()
				switch {
				case err == nil && (tok == nil || tok.Value == "" || !tok.ExpiresAt.After(clock.Now())):
					t.Fatalf("%s: success without a usable token: %+v", name, tok)
				case err != nil:
					for _, sec := range []string{"fuzz-secret-pw", "fuzz-secret-key", "JBSWY3DPEHPK3PXP", "fuzz-secret-header", "fuzz-opaque-current", "fuzz-opaque-previous"} {
						if strings.Contains(err.Error(), sec) {
							t.Fatalf("%s: error leaks %s: %v", name, sec, err)
						}
					}
				}
			}
			p.Close()
		}
	})
}
