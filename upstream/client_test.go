package upstream

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func plextracAt(t *testing.T, url string) Provider {
	t.Helper()
	p, err := newWithBudget(Config{Provider: PlexTrac, URL: url, Username: "svc@acme.com", Password: "s3cret-pass", MaxAuthPerMinute: 600,
		RequestTimeout: 2 * time.Second}, Deps{Clock: RealClock{}, Limiters: NewLimiters(), TOTPSteps: NewTOTPSteps()})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRedirectIsNotFollowedWithCredentials(t *testing.T) {
	var reached atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached.Add(1) }))
	defer other.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/api/v1/authenticate", http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	_, err := plextracAt(t, srv.URL).Login(context.Background())
	if err == nil || !strings.Contains(err.Error(), "redirect") {
		t.Fatalf("want a redirect error, got %v", err)
	}
	if reached.Load() != 0 {
		t.Fatal("the credentials were sent to the redirect target")
	}
}

func TestHostileAnswersGiveClearErrorsWithoutSecrets(t *testing.T) {
	cases := []struct {
		name    string
		handler http.HandlerFunc
		want    string
		kind    Kind
	}{
		{"html page with 200", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte("<html>oops</html>"))
		}, "not JSON", KindBadResponse},
		{"oversized body", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"token":"` + strings.Repeat("a", 3<<20) + `"}`))
		}, "larger than", KindBadResponse},
		{"error echoing the password", func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(401)
			w.Write([]byte(`{"message":"bad password s3cret-pass for user, token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.abc"}`))
		}, "upstream refused it (HTTP 401); its message is withheld; it mentions: password or credentials, token", KindRejected},
		{"5xx", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }, "HTTP 503", KindUnavailable},
		{"hang past timeout", func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
			}
		}, "request_timeout", KindUnavailable},
		{"token not a JWT and no expiry", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"status":"success","token":"opaque-token"}`))
		}, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			tok, err := plextracAt(t, srv.URL).Login(context.Background())
			if tc.kind == "" { // accepted, with the assumed 15-minute life
				if err != nil || tok.Lifetime() != DefaultLifetime {
					t.Fatalf("got %v %v", tok, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !IsKind(err, tc.kind) {
				t.Fatalf("want a %s error saying %q, got %v", tc.kind, tc.want, err)
			}
			if !strings.HasPrefix(err.Error(), "plextrac (") {
				t.Errorf("error does not name the upstream: %v", err)
			}
			if strings.Contains(err.Error(), "s3cret-pass") || strings.Contains(err.Error(), "eyJ") {
				t.Errorf("error leaks a secret: %v", err)
			}
		})
	}
}

// After an upstream 429 with Retry-After, every auth call to that host, from this account or
// another mount on the same host, fails fast with KindRateLimited and sends nothing until the
// retry time; then calls go through again.
func TestUpstream429BlocksTheHostUntilRetryAfter(t *testing.T) {
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) == 1 {
			w.Header().Set("Retry-After", "30")
			w.WriteHeader(429)
			w.Write([]byte(`{"message":"Too Many Requests"}`))
			return
		}
		w.Write([]byte(`{"status":"success","token":"opaque-after-429"}`))
	}))
	defer srv.Close()
	clock := newTestClock()
	limiters := NewLimiters()
	var mu sync.Mutex
	got := map[string]map[string]int{} // what p's Deps.Observe was told
	observe := func(op, outcome string) {
		mu.Lock()
		defer mu.Unlock()
		if got[op] == nil {
			got[op] = map[string]int{}
		}
		got[op][outcome]++
	}
	mount := func(observe func(op, outcome string)) Provider {
		p, err := newWithBudget(Config{Provider: PlexTrac, URL: srv.URL, Username: "svc", Password: "pw-secret", MaxAuthPerMinute: 600,
			RequestTimeout: 2 * time.Second}, Deps{Clock: clock, Limiters: limiters, Observe: observe})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p, other := mount(observe), mount(nil)
	start := clock.Now()
	_, err := p.Login(context.Background())
	e, ok := AsError(err)
	if !ok || e.Kind != KindRateLimited || e.Status != 429 || !e.RetryAt.Equal(start.Add(30*time.Second)) ||
		!strings.Contains(err.Error(), `HTTP 429 Too Many Requests; upstream says "Too Many Requests"`) {
		t.Fatalf("first call: %v", err)
	}
	cur := &Token{Value: "opaque-cur"}
	for _, wait := range []time.Duration{0, 29 * time.Second} {
		clock.Advance(wait)
		for name, call := range map[string]func() error{
			"login":               func() error { _, err := p.Login(context.Background()); return err },
			"refresh":             func() error { _, err := p.Refresh(context.Background(), cur); return err },
			"other mount's login": func() error { _, err := other.Login(context.Background()); return err },
		} {
			err := call()
			e, ok := AsError(err)
			if !ok || e.Kind != KindRateLimited || e.Status != 0 || !e.RetryAt.Equal(start.Add(30*time.Second)) ||
				!strings.Contains(err.Error(), "held back") {
				t.Errorf("+%s %s: %v", clock.Now().Sub(start), name, err)
			}
		}
		if n := requests.Load(); n != 1 {
			t.Fatalf("+%s: %d requests reached the upstream during the block", clock.Now().Sub(start), n)
		}
	}
	clock.Advance(time.Second) // the retry time itself
	if tok, err := p.Login(context.Background()); err != nil || tok.Value != "opaque-after-429" || requests.Load() != 2 {
		t.Fatalf("at the retry time: %v %v, %d requests", tok, err, requests.Load())
	}
	mu.Lock()
	defer mu.Unlock()
	if got[OpLogin]["rate_limited"] != 3 || got[OpLogin]["ok"] != 1 || got[OpRefresh]["rate_limited"] != 2 {
		t.Errorf("observed %v", got)
	}
}

// Retry-After is read as seconds or an HTTP date, believed between 1 s and 10 min, and
// defaults to 1 min (the limits are per minute).
func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	for h, want := range map[string]time.Duration{
		"":      60 * time.Second,
		"soon":  60 * time.Second,
		"-5":    60 * time.Second,
		"0":     1 * time.Second,
		"1":     1 * time.Second,
		"2":     2 * time.Second,
		" 7 ":   7 * time.Second,
		"599":   599 * time.Second,
		"600":   600 * time.Second,
		"601":   600 * time.Second,
		"86400": 600 * time.Second,
		// Issue 33: a number past int64 nanoseconds must not wrap to a 1 s block, and an
		// over-long number is the cap, not the one-minute default.
		"9223372037":                                      600 * time.Second,
		"18446744073709551615":                            600 * time.Second,
		"99999999999999999999999":                         600 * time.Second,
		"0000000000000000000005":                          5 * time.Second,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Hour).Format(http.TimeFormat):       1 * time.Second,
		now.Add(time.Hour).Format(http.TimeFormat):        600 * time.Second,
	} {
		if got := retryAfter(h, now); got != want {
			t.Errorf("Retry-After %q: %s, want %s", h, got, want)
		}
	}
}

// How each upstream status is classified (PlexTrac login: 401 and 403 are its refusals).
func TestStatusClassification(t *testing.T) {
	for _, tc := range []struct {
		status int
		kind   Kind
		says   string
	}{
		{300, KindBadResponse, "redirect (HTTP 300)"},
		{399, KindBadResponse, "redirect (HTTP 399)"},
		{400, KindBadResponse, "upstream answered HTTP 400; its message is withheld"},
		{401, KindRejected, "upstream refused it (HTTP 401); its message is withheld; check username and password"},
		{403, KindRejected, "upstream refused it (HTTP 403); its message is withheld"},
		{404, KindBadResponse, "upstream answered HTTP 404; its message is withheld"},
		{429, KindRateLimited, "HTTP 429 Too Many Requests; its message is withheld"},
		{499, KindBadResponse, "upstream answered HTTP 499; its message is withheld"},
		{500, KindUnavailable, "upstream error HTTP 500; its message is withheld"},
		{599, KindUnavailable, "upstream error HTTP 599; its message is withheld"},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(tc.status)
			w.Write([]byte(`{"message":"nope"}`))
		}))
		_, err := plextracAt(t, srv.URL).Login(context.Background())
		srv.Close()
		e, ok := AsError(err)
		if !ok || e.Kind != tc.kind || e.Status != tc.status || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("HTTP %d: want %s saying %q, got %v", tc.status, tc.kind, tc.says, err)
		}
	}
}

// Which field of an error body is shown (see Shown): message, else error, else detail;
// strings only.
func TestUpstreamSays(t *testing.T) {
	for body, want := range map[string]string{
		`{"detail":"d","error":"invalid_grant","message":"Invalid MFA code"}`: `; upstream says "Invalid MFA code"`,
		`{"detail":"d","error":"invalid_grant"}`:                              `; upstream says "invalid_grant"`,
		`{"detail":"invalid_grant"}`:                                          `; upstream says "invalid_grant"`,
		`{"message":"","detail":"invalid_grant"}`:                             `; upstream says "invalid_grant"`,
		`{"message":5,"error":"invalid_grant"}`:                               `; upstream says "invalid_grant"`,
		`{"message":"Account LOCKED after 5 tries","error":"invalid_grant"}`:  "; its message is withheld; it mentions: locked",
		`{"message":"invalid_grant "}`:                                        "; its message is withheld",
		`{"other":"x"}`:                                                       "",
		`not json`:                                                            "",
	} {
		if got := upstreamSays([]byte(body)); got != want {
			t.Errorf("%s: %q, want %q", body, got, want)
		}
	}
}

// Answers up to 1 MiB (1048576 bytes) are read; one byte more is refused unread.
func TestAnswerSizeCap(t *testing.T) {
	for _, tc := range []struct {
		size int
		ok   bool
	}{{1048576, true}, {1048577, false}} {
		// Padded with a field the client ignores: the token itself has a smaller bound (MaxTokenLen).
		head, tail := `{"status":"success","token":"tok-ok","pad":"`, `"}`
		body := head + strings.Repeat("a", tc.size-len(head)-len(tail)) + tail
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(body)) }))
		tok, err := plextracAt(t, srv.URL).Login(context.Background())
		srv.Close()
		if tc.ok && (err != nil || tok.Value != "tok-ok") {
			t.Errorf("%d bytes: %v", tc.size, err)
		}
		if !tc.ok && (err == nil || !IsKind(err, KindBadResponse) || !strings.Contains(err.Error(), "larger than 1024 KiB")) {
			t.Errorf("%d bytes: %v", tc.size, err)
		}
	}
}

// request_timeout 0 means the 10 s default, not "no time at all".
func TestZeroRequestTimeoutMeansDefault(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"status":"success","token":"opaque"}`))
	}))
	defer srv.Close()
	p, err := newWithBudget(Config{Provider: PlexTrac, URL: srv.URL, Username: "u", Password: "pw-secret", MaxAuthPerMinute: 600},
		Deps{Clock: RealClock{}, Limiters: NewLimiters(), TOTPSteps: NewTOTPSteps()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Login(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := clientOf(p).timeout; got != 10*time.Second {
		t.Fatalf("timeout %s", got)
	}
}

func TestErrorText(t *testing.T) {
	e := &Error{Provider: "plextrac", Host: "h:1", Op: OpLogin, Kind: KindRateLimited, Msg: "m", Hint: "do x",
		RetryAt: time.Date(2026, 11, 23, 13, 0, 0, 0, time.FixedZone("X", 3600))}
	if got := e.Error(); got != "plextrac (h:1) login failed: m; do x; retry after 2026-11-23T12:00:00Z" {
		t.Fatalf("got %q", got)
	}
	if got := (&Error{Provider: "p", Host: "h", Op: OpMFA, Msg: "m"}).Error(); got != "p (h) mfa failed: m" {
		t.Fatalf("got %q", got)
	}
	wrapped := fmt.Errorf("outer: %w", e)
	if got, ok := AsError(wrapped); !ok || got != e || !IsKind(wrapped, KindRateLimited) || IsKind(wrapped, KindRejected) || IsKind(errors.New("x"), KindRateLimited) {
		t.Fatal("AsError/IsKind")
	}
}

// An upstream that answers with something that is not HTTP answered: a bad response (fix the
// url), not an unavailable upstream (retry).
func TestAnAnswerThatIsNotHTTPIsABadResponse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write([]byte("SSH-2.0-OpenSSH_9.6\r\n\r\n"))
			_ = c.Close()
		}
	}()
	p, err := genericAt(t, "http://"+ln.Addr().String(), "pw", GenericConfig{LoginPath: "/login"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.Login(context.Background()); !IsKind(err, KindBadResponse) {
		t.Fatalf("an answer that is not HTTP: %v, want a bad response", err)
	}
}
