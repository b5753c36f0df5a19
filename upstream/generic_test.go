package upstream

import (
	"context"
	"errors"
	"io"
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
		RequestTimeout: 2 * time.Second, Generic: g}, Deps{Clock: RealClock{}, Limiters: NewLimiters()})
}

// A config writer cannot make the shared plugin process loop or allocate without bound
// through login_body: loops, recursion and printf are refused when the config is written,
// each with an error naming login_body.
func TestLoginBodyRefusesWhatCouldRunUnbounded(t *testing.T) {
	for tmpl, want := range map[string]string{
		`{"a": 1{{range 10000000}}{{end}}}`:                           "{{range}} is not allowed",
		`{"a": 1{{range $i, $c := .password}}{{end}}}`:                "{{range}} is not allowed",
		`{{define "x"}}{{template "x" .}}{{end}}{"a": 1}`:             "{{define}} and {{block}} are not allowed",
		`{{block "x" .}}{{end}}{"a": 1}`:                              "{{define}} and {{block}} are not allowed",
		`{"a": 1{{template "login_body" .}}}`:                         "{{template}} and {{block}} are not allowed",
		`{"a": {{if .username}}{{range 9}}{{end}}{{end}}1}`:           "{{range}} is not allowed",
		`{"a": {{with .username}}1{{else}}{{range 9}}{{end}}{{end}}}`: "{{range}} is not allowed",
		`{"a": "{{printf "%0999999999d" 0}}"}`:                        `the function "printf" is not allowed`,
		`{"a": "{{print (printf "%d" 1)}}"}`:                          `the function "printf" is not allowed`,
		`{"a": "{{call .username}}"}`:                                 `the function "call" is not allowed`,
		`{"a": "` + strings.Repeat("x", 64<<10) + `"}`:                "the template is longer than 64 KiB",
		`{"a": "` + strings.Repeat("{{.password}}", 1100) + `"}`:      "the rendered body is larger than 64 KiB",
	} {
		err := GenericConfig{LoginPath: "/login", LoginBody: tmpl}.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), "login_body: ") || !strings.Contains(err.Error(), want) {
			t.Errorf("%.60s: want a login_body error saying %q, got %v", tmpl, want, err)
		}
		if _, err := genericAt(t, "http://127.0.0.1:1", "pw", GenericConfig{LoginPath: "/login", LoginBody: tmpl}); err == nil &&
			!strings.Contains(want, "rendered") {
			t.Errorf("%.60s: New accepted it", tmpl)
		}
	}
}

// What a JSON login body needs stays allowed.
func TestLoginBodyAllowsConditionsAndFunctions(t *testing.T) {
	for _, tmpl := range []string{
		DefaultLoginBody,
		`{{if .api_key}}{"key": {{json .api_key}}}{{else}}{"user": {{json .username}}}{{end}}`,
		`{{with .username}}{"user": {{json .}}}{{end}}`,
		`{{$u := .username}}{"user": {{json $u}}, "n": {{len .password}}}`,
		`{{/* a comment */}}{"user": {{json (print "x-" .username)}}, "q": "{{urlquery .username}}", "ok": {{and true (not false) (eq 1 1)}}}`,
		`{"first": {{json (slice .username 0 1)}}, "c": {{index .username 0}}}`,
	} {
		if err := (GenericConfig{LoginPath: "/login", LoginBody: tmpl}).Validate(); err != nil {
			t.Errorf("%s: %v", tmpl, err)
		}
	}
}

// The cap is 64 KiB of rendered body: 65536 bytes render, 65537 do not.
func TestLoginBodyRenderCap(t *testing.T) {
	tmpl, err := parseLoginBody(`{{.password}}`)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := renderLoginBody(tmpl, map[string]any{"password": strings.Repeat("x", 65536)}); err != nil || len(out) != 65536 {
		t.Fatalf("65536 bytes: %d %v", len(out), err)
	}
	if _, err := renderLoginBody(tmpl, map[string]any{"password": strings.Repeat("x", 65537)}); !errors.Is(err, errLoginBodyTooLarge) {
		t.Fatalf("65537 bytes: %v", err)
	}
	// The template text is capped at the same size.
	if _, err := parseLoginBody(strings.Repeat("x", 65536)); err != nil {
		t.Fatalf("65536-byte template: %v", err)
	}
	if _, err := parseLoginBody(strings.Repeat("x", 65537)); err == nil {
		t.Fatal("65537-byte template accepted")
	}
}

// At login the cap holds for the real credentials: no request is sent, and the error names
// login_body without quoting the password.
func TestLoginBodyTooLargeAtLogin(t *testing.T) {
	var reached atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		w.Write([]byte(`{"token":"opaque"}`))
	}))
	defer srv.Close()
	password := strings.Repeat("long-password-", 5000) // 70000 bytes
	p, err := genericAt(t, srv.URL, password, GenericConfig{LoginPath: "/login"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = p.Login(context.Background())
	if err == nil || !strings.Contains(err.Error(), "login_body: the rendered body is larger than 64 KiB") || !IsKind(err, KindBadResponse) {
		t.Fatalf("got %v", err)
	}
	if strings.Contains(err.Error(), "long-password") || reached.Load() != 0 {
		t.Fatalf("leaked or sent: %d requests, %v", reached.Load(), err)
	}
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
	p.HTTP().Limiter().Block(time.Now().Add(time.Hour))
	status.Store(204)
	if err := p.Logout(context.Background(), "tok-123"); err != nil {
		t.Errorf("logout held back by the auth limiter: %v", err)
	}

	none, err := genericAt(t, srv.URL, "pw-secret", GenericConfig{LoginPath: "/login"})
	if err != nil {
		t.Fatal(err)
	}
	before := calls.Load()
	if err := none.Logout(context.Background(), "tok-123"); err != nil || calls.Load() != before {
		t.Fatalf("no logout_path: err %v, %d calls", err, calls.Load()-before)
	}
}
