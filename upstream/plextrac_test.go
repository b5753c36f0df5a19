package upstream

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/internal/testclock"
)

func TestPlexTracLoginRefreshAndMFA(t *testing.T) {
	// RFC 6238's SHA-1 seed at T=1111111109: the 6-digit code is 081804.
	clock := testclock.At(time.Unix(1111111109, 0))
	rec := newRecorder(t, map[string]answer{
		"POST /api/v1/authenticate":     {200, `{"status":"success","tenant_id":7,"token":"opaque-login"}`},
		"PUT /api/v1/token/refresh":     {200, `{"status":"success","tenant_id":7,"token":"opaque-refreshed"}`},
		"POST /api/v1/authenticate/mfa": {200, `{"status":"success","token":"opaque-mfa"}`},
	})
	cfg := Config{Provider: PlexTrac, URL: rec.URL, Username: "svc@acme.com", Password: "pw-secret"}
	p := providerAt(t, cfg, clock)
	tok, err := p.Login(context.Background())
	if err != nil || tok.Value != "opaque-login" || tok.ObtainedBy != OpLogin || tok.Extras["tenant_id"] != float64(7) ||
		!tok.ExpiresAt.Equal(clock.Now().Add(15*time.Minute)) {
		t.Fatalf("login: %+v %v", tok, err)
	}
	tok, err = p.Refresh(context.Background(), tok)
	if err != nil || tok.Value != "opaque-refreshed" || tok.ObtainedBy != OpRefresh {
		t.Fatalf("refresh: %+v %v", tok, err)
	}
	got := rec.sent()
	if len(got) != 2 || got[0].method != "POST" || got[0].body["username"] != "svc@acme.com" || got[0].body["password"] != "pw-secret" ||
		got[0].authz != "" || got[1].method != "PUT" || got[1].authz != "opaque-login" {
		t.Fatalf("sent %+v", got)
	}
	if p.Authorization("x") != "x" || !errors.Is(p.Logout(context.Background(), "x"), ErrNoLogout) || len(rec.sent()) != 2 {
		t.Fatal("authorization is the bare token; logout calls nothing")
	}

	// MFA: the challenge comes back with the current step's code.
	rec.set("POST /api/v1/authenticate", answer{200, `{"mfa_enabled":true,"code":"chal-1"}`})
	cfg.TOTPSecret = rfc6238Seed
	p = providerAt(t, cfg, clock)
	knownAccount(p)
	tok, err = p.Login(context.Background())
	if err != nil || tok.Value != "opaque-mfa" || tok.ObtainedBy != OpMFA || tok.Extras != nil {
		t.Fatalf("mfa login: %+v %v", tok, err)
	}
	if mfa := rec.sent()[3]; mfa.path != "/api/v1/authenticate/mfa" || mfa.body["code"] != "chal-1" || mfa.body["token"] != "081804" {
		t.Fatalf("mfa sent %+v", mfa)
	}
	if st := p.(TOTPStepper); st.LastTOTPStep() != 1111111109/30 {
		t.Fatalf("last step %d", st.LastTOTPStep())
	}
	p.(TOTPStepper).SkipTOTPStepsThrough(1111111109/30 + 1) // further ahead is a clock skew: see totp_steps_test.go
	if p.(TOTPStepper).LastTOTPStep() != 1111111109/30+1 {
		t.Fatal("skip did not move the step")
	}
	rec.set("POST /api/v1/authenticate/mfa", answer{401, `{"message":"bad code"}`})
	_, err = p.Login(context.Background())
	wantErr(t, err, KindRejected, "mfa failed", "check totp_secret")

	// Without a seed, MFA is a clear refusal, and the stepper is inert.
	cfg.TOTPSecret = ""
	p = providerAt(t, cfg, clock)
	_, err = p.Login(context.Background())
	wantErr(t, err, KindMisconfigured, "requires MFA and no totp_secret")
	p.(TOTPStepper).SkipTOTPStepsThrough(99)
	if p.(TOTPStepper).LastTOTPStep() != 0 {
		t.Fatal("a provider without MFA has a TOTP step")
	}
	cfg.TOTPSecret = rfc6238Seed
	p = providerAt(t, cfg, clock)
	rec.set("POST /api/v1/authenticate", answer{200, `{"mfa_enabled":true}`})
	_, err = p.Login(context.Background())
	wantErr(t, err, KindBadResponse, "MFA without a challenge code")
	rec.set("POST /api/v1/authenticate", answer{200, `{"status":"success"}`})
	_, err = p.Login(context.Background())
	wantErr(t, err, KindBadResponse, "login failed: the answer has no token")

	rec.set("PUT /api/v1/token/refresh", answer{401, `{}`})
	_, err = p.Refresh(context.Background(), &Token{Value: "t"})
	wantErr(t, err, KindRejected, "refresh failed", "log in again")
	rec.set("PUT /api/v1/token/refresh", answer{403, `{}`})
	_, err = p.Refresh(context.Background(), &Token{Value: "t"})
	wantErr(t, err, KindRejected, "log in again")
	rec.set("PUT /api/v1/token/refresh", answer{200, `{}`})
	_, err = p.Refresh(context.Background(), &Token{Value: "t"})
	wantErr(t, err, KindBadResponse, "refresh failed: the answer has no token")
	rec.set("POST /api/v1/authenticate", answer{403, `{}`})
	_, err = p.Login(context.Background())
	wantErr(t, err, KindRejected, "SSO users cannot use the API login")
}

// mfaAtTwoAMinute is a PlexTrac account with MFA that its process has known for long, on an
// upstream that asks for MFA, the one mount on its host, with max_auth_per_minute 2.
func mfaAtTwoAMinute(t *testing.T, clock Clock, timeout time.Duration) (Provider, *recorder, *Limiters) {
	rec := newRecorder(t, map[string]answer{
		"POST /api/v1/authenticate":     {200, `{"mfa_enabled":true,"code":"chal-1"}`},
		"POST /api/v1/authenticate/mfa": {200, `{"status":"success","token":"opaque-mfa"}`},
	})
	l, steps := NewLimiters(), NewTOTPSteps()
	p, err := New(Config{Provider: PlexTrac, URL: rec.URL, Username: "svc", Password: "pw-secret", TOTPSecret: rfc6238Seed,
		RequestTimeout: timeout}, Deps{Clock: clock, Limiters: l, TOTPSteps: steps})
	if err != nil {
		t.Fatal(err)
	}
	l.Register("mine", p, 2, clock.Now())
	knownAccount(p)
	return p, rec, l
}

// An MFA login takes both of its calls from the host's budget before sending either, and
// sends them back to back: at 2 a minute both go at once. When upstream asks for no MFA, or
// refuses the login, the MFA call's slot goes back. On a host whose budget lets only one call
// through at once (another mount's 1 a minute) it fails at once, naming the rule and the
// mount count, and sends nothing.
func TestMFALoginTakesBothCallsTogether(t *testing.T) {
	clock := testclock.At(time.Unix(1111111109, 0))
	p, rec, l := mfaAtTwoAMinute(t, clock, 10*time.Second)
	start := clock.Now()
	if _, err := p.Login(context.Background()); err != nil {
		t.Fatal(err)
	}
	tokensLeft := func() float64 { return p.Limiter().State(clock.Now()).TokensLeft }
	if n := len(rec.sent()); n != 2 || clock.Now() != start || tokensLeft() != 0 {
		t.Fatalf("%d calls, %s after the start, %.2f calls left: want login and MFA at once, the budget spent", n, clock.Now().Sub(start), tokensLeft())
	}

	for _, a := range []answer{{200, `{"status":"success","token":"opaque-login"}`}, {401, `{}`}} {
		clock.Advance(3 * time.Minute) // the bucket is full again, the step past
		rec.set("POST /api/v1/authenticate", a)
		_, _ = p.Login(context.Background())
		if left := tokensLeft(); left != 1 {
			t.Fatalf("after a login answered %d (no MFA call sent): %.2f calls left, want 1", a.status, left)
		}
	}

	other, err := New(Config{Provider: Plaspy, URL: rec.URL, Username: "someone", APIKey: "made-up"}, Deps{Clock: clock, Limiters: l})
	if err != nil {
		t.Fatal(err)
	}
	l.Register("theirs", other, 1, clock.Now()) // another team's mount on the host asks 1 a minute
	rec.set("POST /api/v1/authenticate", answer{200, `{"mfa_enabled":true,"code":"chal-2"}`})
	clock.Advance(3 * time.Minute)
	sent := len(rec.sent())
	_, err = p.Login(context.Background())
	wantErr(t, err, KindRateLimited, "login failed: not tried", "the smallest max_auth_per_minute of the 2 mount(s) on this host", "2 or more")
	if IsRefusedLogin(err) || len(rec.sent()) != sent {
		t.Fatalf("refused login: %v; %d calls sent", IsRefusedLogin(err), len(rec.sent())-sent)
	}
}

// An MFA login's code goes within its TOTP step: when the budget's two calls would come only
// after the step it claimed has ended, the login is held back (with the time to retry) and
// sends nothing, however long request_timeout would let it wait.
func TestMFALoginSendsItsCodeWithinItsStep(t *testing.T) {
	start := time.Unix(30*37037037, 0) // a step's start
	clock := testclock.At(start)
	p, rec, _ := mfaAtTwoAMinute(t, clock, 300*time.Second) // both calls back 122 s after they were spent
	if _, err := p.Login(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, at := range []time.Duration{60 * time.Second, 100 * time.Second} { // steps ending before start+122 s
		clock.Advance(at - clock.Now().Sub(start))
		_, err := p.Login(context.Background())
		wantErr(t, err, KindRateLimited, "held back by the plugin's auth limiter", "retry after")
		if len(rec.sent()) != 2 || clock.Now().Sub(start) != at {
			t.Fatalf("at +%s: %d calls sent, waited until +%s", at, len(rec.sent())-2, clock.Now().Sub(start))
		}
	}
	clock.Advance(120*time.Second - clock.Now().Sub(start)) // a step that lasts until after the calls come back
	if _, err := p.Login(context.Background()); err != nil || len(rec.sent()) != 4 || clock.Now().Sub(start) != 122*time.Second {
		t.Fatalf("%v; %d calls sent at +%s", err, len(rec.sent()), clock.Now().Sub(start))
	}
}

// Issue 33, defect 1: PlexTrac's own refusal signal decides, whatever the status says: its
// {"status":"error","statusCode":401} body under HTTP 200 is a refused login, not "no token",
// and an MFA code refused with 400 or 422 is a refused code. A 5xx stays unavailable.
func TestPlexTracRefusalsInItsOwnForm(t *testing.T) {
	clock := testclock.At(time.Unix(1111111109, 0))
	rec := newRecorder(t, map[string]answer{
		"POST /api/v1/authenticate": {200, `{"status":"error","statusCode":401,"error":"Unauthorized","message":"Invalid username or password"}`},
	})
	cfg := Config{Provider: PlexTrac, URL: rec.URL, Username: "svc@acme.com", Password: "pw-secret"}
	p := providerAt(t, cfg, clock)
	_, err := p.Login(context.Background())
	wantErr(t, err, KindRejected, "login failed: upstream refused the credentials", "SSO users cannot use the API login")
	if !IsRefusedLogin(err) {
		t.Fatalf("not counted as a refused login: %v", err)
	}
	rec.set("PUT /api/v1/token/refresh", answer{200, `{"status":"error","statusCode":401,"error":"Unauthorized"}`})
	_, err = p.Refresh(context.Background(), &Token{Value: "t"})
	wantErr(t, err, KindRejected, "refresh failed", "log in again")
	rec.set("POST /api/v1/authenticate", answer{503, `{"status":"error","statusCode":401}`})
	_, err = p.Login(context.Background())
	wantErr(t, err, KindUnavailable, "HTTP 503")

	rec.set("POST /api/v1/authenticate", answer{200, `{"mfa_enabled":true,"code":"chal-1"}`})
	cfg.TOTPSecret = rfc6238Seed
	p = providerAt(t, cfg, clock)
	knownAccount(p)
	for _, status := range []int{400, 422} {
		rec.set("POST /api/v1/authenticate/mfa", answer{status, `{"status":"error","statusCode":400,"message":"Invalid MFA code"}`})
		_, err = p.Login(context.Background())
		wantErr(t, err, KindRejected, "mfa failed: upstream refused the MFA code", "check totp_secret")
		if !IsRefusedLogin(err) {
			t.Fatalf("HTTP %d: not counted as a refused login: %v", status, err)
		}
		clock.Advance(30 * time.Second) // a code is sent once per step
	}
	rec.set("POST /api/v1/authenticate/mfa", answer{200, `{"status":"error","statusCode":401,"message":"Invalid MFA code"}`})
	_, err = p.Login(context.Background())
	wantErr(t, err, KindRejected, "mfa failed: upstream refused the MFA code", "check totp_secret")
}
