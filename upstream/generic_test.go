package upstream

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func genericAt(t *testing.T, url, password string, g GenericConfig) (Provider, error) {
	t.Helper()
	return newWithBudget(Config{Provider: Generic, URL: url, Username: "svc", Password: password, MaxAuthPerMinute: 600,
		RequestTimeout: 2 * time.Second, Generic: g}, Deps{Clock: RealClock{}, Limiters: NewLimiters(), TOTPSteps: NewTOTPSteps()})
}

// Generic logout: an upstream that no longer knows the token (401, 403, 404) has nothing left
// to end, so that is success; any other failure is returned; without logout_path nothing is
// called at all.
func TestGenericLogout(t *testing.T) {
	var calls atomic.Int32
	var status atomic.Int32
	var gotAuth atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		gotAuth.Store(r.Method + " " + r.URL.Path + " " + r.Header.Get("Authorization"))
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()
	p, err := genericAt(t, srv.URL, "pw-secret", GenericConfig{LoginPath: "/login", LogoutPath: "/logout"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		status int
		ok     bool
	}{{200, true}, {204, true}, {401, true}, {403, true}, {404, true}, {400, false}, {405, false}, {500, false}, {503, false}} {
		status.Store(int32(tc.status))
		before := calls.Load()
		err := p.Logout(context.Background(), "tok-123")
		if (err == nil) != tc.ok {
			t.Errorf("HTTP %d: got %v, want ok=%v", tc.status, err, tc.ok)
		}
		if calls.Load() != before+1 || gotAuth.Load() != "POST /logout Bearer tok-123" {
			t.Errorf("HTTP %d: %d calls, sent %v", tc.status, calls.Load()-before, gotAuth.Load())
		}
	}
	// Logout is not an auth call: it is not held back by the host's limiter.
	p.Limiter().Block(time.Now().Add(time.Hour))
	status.Store(204)
	if err := p.Logout(context.Background(), "tok-123"); err != nil {
		t.Errorf("logout held back by the auth limiter: %v", err)
	}

	none, err := genericAt(t, srv.URL, "pw-secret", GenericConfig{LoginPath: "/login"})
	if err != nil {
		t.Fatal(err)
	}
	before := calls.Load()
	if err := none.Logout(context.Background(), "tok-123"); !errors.Is(err, ErrNoLogout) || calls.Load() != before {
		t.Fatalf("no logout_path: err %v, %d calls", err, calls.Load()-before)
	}
}

// auth_scheme goes in front of the token in every reader's Authorization header, so it is one
// HTTP token or none: a line break, a space or a parameter is refused, by Validate at a write
// and by New at a load, with an error naming auth_scheme that does not quote the value.
func TestAuthSchemeIsOneHeaderToken(t *testing.T) {
	for scheme, ok := range map[string]bool{
		"": true, "Bearer": true, "Token": true, "none": true, "NONE": true, "JWT-v1.2_x!#$%&'*+^`|~": true,
		strings.Repeat("B", MaxSettingLen): true, strings.Repeat("B", MaxSettingLen+1): false,
		"Bearer x\r\nX-Injected: 1": false, "Bearer\nX-Injected: 1": false, "Bearer x": false, " Bearer": false,
		"Bearer\t": false, "Bearer,realm": false, `Bearer"`: false, "Béarer": false, "Bearer\x00": false, "Bearer:": false,
	} {
		cfg := GenericConfig{LoginPath: "/login", AuthScheme: scheme}
		err := cfg.Validate()
		_, nerr := genericAt(t, "http://127.0.0.1:1", "pw", cfg)
		if (err == nil) != ok || fmt.Sprint(err) != fmt.Sprint(nerr) {
			t.Errorf("%q: Validate %v, New %v; want ok=%v", scheme, err, nerr, ok)
		}
		if err != nil && (!strings.HasPrefix(err.Error(), "auth_scheme: ") || strings.Contains(err.Error(), "Injected") ||
			strings.Contains(err.Error(), "BBB")) {
			t.Errorf("%q: %v", scheme, err)
		}
	}
}

// Every generic setting is bounded and the error names it without quoting the long value;
// methods are one of the listed HTTP tokens, so no line break reaches the request line.
func TestGenericSettingsAreBounded(t *testing.T) {
	long := "/" + strings.Repeat("a", MaxSettingLen)
	for field, set := range map[string]func(*GenericConfig, string){
		"login_method":   func(g *GenericConfig, v string) { g.LoginMethod = v },
		"login_path":     func(g *GenericConfig, v string) { g.LoginPath = v },
		"token_field":    func(g *GenericConfig, v string) { g.TokenField = v },
		"expiry_field":   func(g *GenericConfig, v string) { g.ExpiryField = v },
		"refresh_method": func(g *GenericConfig, v string) { g.RefreshMethod = v },
		"refresh_path":   func(g *GenericConfig, v string) { g.RefreshPath = v },
		"logout_method":  func(g *GenericConfig, v string) { g.LogoutMethod = v },
		"logout_path":    func(g *GenericConfig, v string) { g.LogoutPath = v },
	} {
		cfg := GenericConfig{LoginPath: "/login", RefreshPath: "/r", LogoutPath: "/o"}
		set(&cfg, long[:MaxSettingLen])
		if err := cfg.Validate(); strings.HasSuffix(field, "_method") != (err != nil) {
			t.Errorf("%s of %d bytes: %v", field, MaxSettingLen, err) // a long method is not a method
		}
		set(&cfg, long)
		err := cfg.Validate()
		_, nerr := genericAt(t, "http://127.0.0.1:1", "pw", cfg)
		want := fmt.Sprintf("%s: %d bytes, longer than %d; shorten it", field, MaxSettingLen+1, MaxSettingLen)
		if err == nil || err.Error() != want || fmt.Sprint(nerr) != want {
			t.Errorf("%s of %d bytes: Validate %v, New %v", field, MaxSettingLen+1, err, nerr)
		}
		if strings.HasSuffix(field, "_method") {
			set(&cfg, "POST\r\nX-Injected: 1")
			if err := cfg.Validate(); err == nil || !strings.HasPrefix(err.Error(), field+": ") {
				t.Errorf("%s with a line break: %v", field, err)
			}
		}
	}
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

// A generic upstream has no refusal signal of its own: any 4xx answer to a login or its MFA
// step refuses the credentials (and counts toward the hold), but 408 and 429, which say
// nothing about them; no other status, and no other call, does.
func TestGenericRefusesWithAny4xxBut408And429(t *testing.T) {
	for status := 300; status < 600; status++ {
		want := status >= 400 && status < 500 && status != 408 && status != 429
		for _, op := range []string{OpLogin, OpMFA} {
			if got := IsRefusedLogin(&Error{Provider: Generic, Op: op, Kind: KindBadResponse, Status: status}); got != want {
				t.Errorf("generic %s answered %d: refused %v, want %v", op, status, got, want)
			}
		}
		if IsRefusedLogin(&Error{Provider: Generic, Op: OpRefresh, Kind: KindBadResponse, Status: status}) {
			t.Errorf("a refresh answered %d counted as a refused login", status)
		}
		if IsRefusedLogin(&Error{Provider: PlexTrac, Op: OpLogin, Kind: KindBadResponse, Status: status}) {
			t.Errorf("plextrac answered %d without its refusal signal: counted as refused", status)
		}
	}
}

// Every call but a logout is an auth call: AuthSent hears of each as it leaves, with the
// call's context, and of no logout.
func TestAuthSentHearsEachAuthCallButLogout(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"token": "tok-1"}`))
	}))
	defer srv.Close()
	type key struct{}
	var heard []any
	p, err := New(Config{Provider: Generic, URL: srv.URL, AllowInsecureHTTP: true, Username: "u", Password: "p",
		Generic: GenericConfig{LoginPath: "/login", RefreshPath: "/refresh", LogoutPath: "/logout"}},
		Deps{Clock: RealClock{}, Limiters: NewLimiters(), AuthSent: func(ctx context.Context) { heard = append(heard, ctx.Value(key{})) }})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := context.WithValue(context.Background(), key{}, "mine")
	tok, err := p.Login(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Refresh(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if err := p.Logout(ctx, tok.Value); err != nil {
		t.Fatal(err)
	}
	if len(heard) != 2 || heard[0] != "mine" || heard[1] != "mine" {
		t.Fatalf("AuthSent heard %v, want the login and the refresh, each with the call's context", heard)
	}
}
