package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/internal/testclock"
)

// recorder is an upstream that answers from a script and records what it was sent.
type recorder struct {
	*httptest.Server
	mu      sync.Mutex
	answers map[string]answer // "METHOD /path" -> answer
	got     []sent
}

type answer struct {
	status int
	body   string
}

type sent struct {
	method, path, authz string
	body                map[string]any
}

func newRecorder(t *testing.T, answers map[string]answer) *recorder {
	rec := &recorder{answers: answers}
	rec.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		rec.mu.Lock()
		rec.got = append(rec.got, sent{r.Method, r.URL.Path, r.Header.Get("Authorization"), m})
		a, ok := rec.answers[r.Method+" "+r.URL.Path]
		rec.mu.Unlock()
		if !ok {
			a = answer{404, `{"message":"no such route"}`}
		}
		w.WriteHeader(a.status)
		w.Write([]byte(a.body))
	}))
	t.Cleanup(rec.Close)
	return rec
}

func (r *recorder) set(route string, a answer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answers[route] = a
}

func (r *recorder) sent() []sent {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]sent(nil), r.got...)
}

func providerAt(t *testing.T, cfg Config, clock Clock) Provider {
	t.Helper()
	cfg.MaxAuthPerMinute, cfg.RequestTimeout = 600, 2*time.Second
	p, err := newWithBudget(cfg, Deps{Clock: clock, Limiters: NewLimiters()})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func wantErr(t *testing.T, err error, kind Kind, says ...string) {
	t.Helper()
	e, ok := AsError(err)
	if !ok || e.Kind != kind {
		t.Fatalf("want a %s error, got %v", kind, err)
	}
	for _, s := range says {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("want %q in: %v", s, err)
		}
	}
}

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
	if p.Authorization("x") != "x" || p.Logout(context.Background(), "x") != nil || len(rec.sent()) != 2 {
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

func TestPlaspyLogin(t *testing.T) {
	clock := newTestClock() // 2026-11-23T12:00:00Z
	rec := newRecorder(t, map[string]answer{
		"POST /api/Auth/Token": {200, `{"success":true,"token":"opaque-p","expires":"2026-11-23T12:30:00Z"}`},
	})
	p := providerAt(t, Config{Provider: Plaspy, URL: rec.URL, Username: "svc", APIKey: "key-secret"}, clock)
	tok, err := p.Login(context.Background())
	if err != nil || tok.Value != "opaque-p" || !tok.ExpiresAt.Equal(time.Date(2026, 11, 23, 12, 30, 0, 0, time.UTC)) || tok.ObtainedBy != OpLogin {
		t.Fatalf("%+v %v", tok, err)
	}
	if got := rec.sent()[0]; got.body["userName"] != "svc" || got.body["apiKey"] != "key-secret" || got.authz != "" {
		t.Fatalf("sent %+v", got)
	}
	if p.Authorization("x") != "Bearer x" || p.Logout(context.Background(), "x") != nil {
		t.Fatal("authorization or logout")
	}
	if _, err := p.Refresh(context.Background(), tok); !errors.Is(err, ErrNoRefresh) {
		t.Fatalf("refresh: %v", err)
	}
	rec.set("POST /api/Auth/Token", answer{200, `{"token":"opaque-q"}`}) // no success field: the token decides
	if tok, err := p.Login(context.Background()); err != nil || tok.Value != "opaque-q" {
		t.Fatalf("%+v %v", tok, err)
	}
	rec.set("POST /api/Auth/Token", answer{200, `{"success":false,"error":"Invalid API key key-secret"}`})
	_, err = p.Login(context.Background())
	wantErr(t, err, KindRejected, "upstream refused the credentials: Invalid API key [redacted]", "regenerating the key")
	if e, _ := AsError(err); e.Status != 200 {
		t.Fatalf("status %d", e.Status)
	}
	rec.set("POST /api/Auth/Token", answer{200, `{"success":false,"token":"opaque-but-refused"}`}) // success decides
	_, err = p.Login(context.Background())
	wantErr(t, err, KindRejected, "upstream refused the credentials")
	rec.set("POST /api/Auth/Token", answer{200, `{"success":false}`})
	_, err = p.Login(context.Background())
	wantErr(t, err, KindRejected, "failed: upstream refused the credentials; check username and api_key")
	rec.set("POST /api/Auth/Token", answer{200, `{"success":true}`})
	_, err = p.Login(context.Background())
	wantErr(t, err, KindBadResponse, "the answer has no token")
	rec.set("POST /api/Auth/Token", answer{401, `{}`})
	_, err = p.Login(context.Background())
	wantErr(t, err, KindRejected, "check username and api_key")
}

func TestResolverLoginAndRenew(t *testing.T) {
	clock := newTestClock()
	rec := newRecorder(t, map[string]answer{
		"POST /user/authenticate": {200, `{"token":"opaque-r","expiresAt":1795436100}`}, // 12:15
		"GET /user/authenticate":  {200, `{"token":"opaque-r2","expiresAt":1795436200}`},
	})
	p := providerAt(t, Config{Provider: Resolver, URL: rec.URL, Email: "svc@acme.com", Password: "pw-secret", OrgID: 42}, clock)
	tok, err := p.Login(context.Background())
	if err != nil || tok.Value != "opaque-r" || !tok.ExpiresAt.Equal(time.Unix(1795436100, 0)) || tok.Extras["org_id"] != 42 {
		t.Fatalf("%+v %v", tok, err)
	}
	got := rec.sent()[0]
	if got.body["email"] != "svc@acme.com" || got.body["password"] != "pw-secret" || got.body["selectedOrg"] != float64(42) || got.body["client"] != "core-client" {
		t.Fatalf("sent %+v", got)
	}
	tok, err = p.Refresh(context.Background(), tok)
	if err != nil || tok.Value != "opaque-r2" || tok.ObtainedBy != OpRefresh || tok.Extras["org_id"] != 42 {
		t.Fatalf("%+v %v", tok, err)
	}
	if got := rec.sent()[1]; got.method != "GET" || got.authz != "bearer opaque-r" {
		t.Fatalf("renew sent %+v", got)
	}
	if p.Authorization("x") != "Bearer x" || p.Logout(context.Background(), "x") != nil || len(rec.sent()) != 2 {
		t.Fatal("authorization or logout")
	}
	for status, says := range map[int]string{401: "passwords expire", 403: "check org_id", 404: "not an active member of any org"} {
		rec.set("POST /user/authenticate", answer{status, `{}`})
		_, err = p.Login(context.Background())
		wantErr(t, err, KindRejected, says)
	}
	rec.set("GET /user/authenticate", answer{401, `{}`})
	_, err = p.Refresh(context.Background(), tok)
	wantErr(t, err, KindRejected, "log in again")
	rec.set("GET /user/authenticate", answer{200, `{}`})
	_, err = p.Refresh(context.Background(), tok)
	wantErr(t, err, KindBadResponse, "the answer has no token")
}

func TestGenericLoginAndRefresh(t *testing.T) {
	clock := newTestClock()
	rec := newRecorder(t, map[string]answer{
		"POST /api/login": {200, `{"data":{"session":{"token":"opaque-g"},"exp":"2026-11-23T12:20:00Z"}}`},
		"PUT /api/renew":  {200, `{"data":{"session":{"token":"opaque-g2"}}}`},
	})
	g := GenericConfig{LoginPath: "/api/login", TokenField: "data.session.token", ExpiryField: "data.exp", RefreshPath: "/api/renew", RefreshMethod: "put"}
	p := providerAt(t, Config{Provider: Generic, URL: rec.URL, Username: "svc", Password: "pw-secret", Generic: g}, clock)
	tok, err := p.Login(context.Background())
	if err != nil || tok.Value != "opaque-g" || !tok.ExpiresAt.Equal(time.Date(2026, 11, 23, 12, 20, 0, 0, time.UTC)) {
		t.Fatalf("%+v %v", tok, err)
	}
	if got := rec.sent()[0]; got.body["username"] != "svc" || got.body["password"] != "pw-secret" || got.authz != "" {
		t.Fatalf("sent %+v", got)
	}
	tok, err = p.Refresh(context.Background(), tok)
	if err != nil || tok.Value != "opaque-g2" || tok.ObtainedBy != OpRefresh || !tok.ExpiresAt.Equal(clock.Now().Add(15*time.Minute)) {
		t.Fatalf("%+v %v", tok, err)
	}
	if got := rec.sent()[1]; got.method != "PUT" || got.authz != "Bearer opaque-g" {
		t.Fatalf("refresh sent %+v", got)
	}
	for scheme, want := range map[string]string{"": "Bearer t", "none": "t", "NONE": "t", "Token": "Token t"} {
		g.AuthScheme = scheme
		if got := providerAt(t, Config{Provider: Generic, URL: rec.URL, Generic: g}, clock).Authorization("t"); got != want {
			t.Errorf("auth_scheme %q: %q", scheme, got)
		}
	}
	rec.set("POST /api/login", answer{200, `{"data":{"session":"flat"}}`})
	_, err = p.Login(context.Background())
	wantErr(t, err, KindBadResponse, `no string at token_field "data.session.token"`)
	for _, status := range []int{401, 403} {
		rec.set("POST /api/login", answer{status, `{}`})
		_, err = p.Login(context.Background())
		wantErr(t, err, KindRejected, "check the credentials in config")
		rec.set("PUT /api/renew", answer{status, `{}`})
		_, err = p.Refresh(context.Background(), tok)
		wantErr(t, err, KindRejected, "log in again")
	}
	g = GenericConfig{LoginPath: "/api/login"} // no refresh_path: no refresh call
	p = providerAt(t, Config{Provider: Generic, URL: rec.URL, Generic: g}, clock)
	n := len(rec.sent())
	if _, err := p.Refresh(context.Background(), tok); !errors.Is(err, ErrNoRefresh) || len(rec.sent()) != n {
		t.Fatalf("refresh without refresh_path: %v", err)
	}
	g.RefreshPath = "/api/renew" // default refresh method: POST
	rec.set("POST /api/renew", answer{200, `{"token":"opaque-post"}`})
	if tok, err := providerAt(t, Config{Provider: Generic, URL: rec.URL, Generic: g}, clock).Refresh(context.Background(), tok); err != nil || tok.Value != "opaque-post" {
		t.Fatalf("default refresh method: %+v %v", tok, err)
	}
}

func TestGenericConfigValidate(t *testing.T) {
	for g, want := range map[GenericConfig]string{
		{}:                                                     "login_path: required",
		{LoginPath: "api/login"}:                               `login_path: "api/login" must start with /`,
		{LoginPath: "/l", RefreshPath: "r"}:                    `refresh_path: "r" must start with /`,
		{LoginPath: "/l", LogoutPath: "o"}:                     `logout_path: "o" must start with /`,
		{LoginPath: "/l", LoginMethod: "TRACE"}:                `login_method: "TRACE" is not one of`,
		{LoginPath: "/l", RefreshMethod: "HEAD"}:               `refresh_method: "HEAD" is not one of`,
		{LoginPath: "/l", LogoutMethod: "x"}:                   `logout_method: "x" is not one of`,
		{LoginPath: "/l", LoginBody: "user={{.username}}"}:     "login_body: the template does not render JSON",
		{LoginPath: "/l", LoginBody: "{{"}:                     "login_body: ",
		{LoginPath: "/l", LoginBody: `{"e": {{json .email}}}`}: "login_body: ",
	} {
		if err := g.Validate(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: want %q, got %v", g, want, err)
		}
	}
	for _, g := range []GenericConfig{
		{LoginPath: "/l"},
		{LoginPath: "/l", LoginMethod: "put", RefreshPath: "/r", RefreshMethod: "GET", LogoutPath: "/o", LogoutMethod: "delete"},
		{LoginPath: "/l", LoginBody: `{"k": {{json .api_key}}}`},
	} {
		if err := g.Validate(); err != nil {
			t.Errorf("%+v: %v", g, err)
		}
	}
}

func TestLookup(t *testing.T) {
	m := map[string]any{"a": map[string]any{"b": "x", "n": 5.0}, "s": "top"}
	for path, want := range map[string]any{"a.b": "x", "a.n": 5.0, "s": "top", "s.x": nil, "a.c": nil, "z": nil} {
		if got := lookup(m, path); got != want {
			t.Errorf("%s: %v", path, got)
		}
	}
}

// sleepFails is a clock whose waits all end in cancellation, as when the caller gives up.
type sleepFails struct{ *testClock }

func (sleepFails) Sleep(context.Context, time.Duration) error { return context.Canceled }

// A login that would have to wait (for the next TOTP step, or for the host's auth budget)
// and whose caller gives up returns an unavailable error saying so, and sends nothing more.
func TestWaitsEndWhenTheCallerGivesUp(t *testing.T) {
	clock := sleepFails{testclock.At(time.Unix(1111111109, 0))}
	rec := newRecorder(t, map[string]answer{
		"POST /api/v1/authenticate":     {200, `{"mfa_enabled":true,"code":"chal-1"}`},
		"POST /api/v1/authenticate/mfa": {200, `{"status":"success","token":"opaque-mfa"}`},
	})
	p := providerAt(t, Config{Provider: PlexTrac, URL: rec.URL, Username: "svc", Password: "pw-secret", TOTPSecret: rfc6238Seed}, clock)
	knownAccount(p)
	if _, err := p.Login(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, err := p.Login(context.Background()) // same step: must wait, and the wait is cancelled
	wantErr(t, err, KindUnavailable, "mfa failed: cancelled while waiting for the next TOTP step")
	if n := len(rec.sent()); n != 3 {
		t.Fatalf("%d requests, want 3 (no second MFA)", n)
	}

	// Two auth calls a minute: the second waits 60 s for budget (within request_timeout).
	lim, err := newWithBudget(Config{Provider: Plaspy, URL: rec.URL, Username: "svc", APIKey: "k", MaxAuthPerMinute: 2, RequestTimeout: 10 * time.Minute},
		Deps{Clock: clock, Limiters: NewLimiters()})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = lim.Login(context.Background())
	_, err = lim.Login(context.Background())
	wantErr(t, err, KindUnavailable, "cancelled while waiting for the auth limiter")
}
