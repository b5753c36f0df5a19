package sim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func setup(t *testing.T) (*Server, *clock, string) {
	c := &clock{t: time.Date(2026, 11, 23, 12, 0, 10, 0, time.UTC)}
	s := New(Options{Now: c.now})
	s.AddDemoUsers()
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return s, c, srv.URL
}

func post(t *testing.T, method, url string, body any, authz string) (int, http.Header, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, resp.Header, out
}

func TestPlexTracLimitCountsFailuresAndAnswers429(t *testing.T) {
	s, c, url := setup(t)
	for i := range 10 {
		pw := DemoPlexTracPassword
		if i%2 == 0 {
			pw = "wrong"
		}
		if st, _, _ := post(t, "POST", url+"/api/v1/authenticate", map[string]string{"username": DemoPlexTracNoMFAUser, "password": pw}, ""); st == 429 {
			t.Fatalf("call %d refused; the limit is 10", i+1)
		}
		c.add(time.Second)
	}
	st, h, body := post(t, "POST", url+"/api/v1/authenticate", map[string]string{"username": DemoPlexTracNoMFAUser, "password": DemoPlexTracPassword}, "")
	if st != 429 || h.Get("Retry-After") != "50" || body["statusCode"] != float64(429) {
		t.Fatalf("11th call: %d Retry-After=%q %v", st, h.Get("Retry-After"), body)
	}
	c.add(50 * time.Second)
	if st, _, _ := post(t, "POST", url+"/api/v1/authenticate", map[string]string{"username": DemoPlexTracNoMFAUser, "password": DemoPlexTracPassword}, ""); st != 200 {
		t.Fatalf("after Retry-After: %d", st)
	}
	if got := s.Stats(PlexTrac); got.RateLimited != 1 || got.LoginFailures != 5 || got.MaxAuthIn60s != 10 {
		t.Fatalf("stats %+v", got)
	}
}

func TestPlexTracMFARejectsReplayAndRefreshNeedsValidToken(t *testing.T) {
	_, c, url := setup(t)
	login := func() string {
		_, _, r := post(t, "POST", url+"/api/v1/authenticate", map[string]string{"username": DemoPlexTracUser, "password": DemoPlexTracPassword}, "")
		if r["mfa_enabled"] != true {
			t.Fatalf("no MFA challenge: %v", r)
		}
		return r["code"].(string)
	}
	code, _ := totp.GenerateCode(DemoPlexTracTOTP, c.now())
	st, _, r := post(t, "POST", url+"/api/v1/authenticate/mfa", map[string]string{"code": login(), "token": code}, "")
	if st != 200 || r["token"] == nil {
		t.Fatalf("MFA: %d %v", st, r)
	}
	if st, _, _ := post(t, "POST", url+"/api/v1/authenticate/mfa", map[string]string{"code": login(), "token": code}, ""); st != 401 {
		t.Fatalf("replayed TOTP code accepted: %d", st)
	}
	tok := r["token"].(string)
	if st, _, _ := post(t, "PUT", url+"/api/v1/token/refresh", nil, tok); st != 200 {
		t.Fatalf("refresh with a valid token: %d", st)
	}
	c.add(16 * time.Minute)
	if st, _, _ := post(t, "PUT", url+"/api/v1/token/refresh", nil, tok); st != 401 {
		t.Fatalf("refresh with an expired token: %d", st)
	}
}

func TestPlaspyFailsWithSuccessFalseAndResolverWith404(t *testing.T) {
	_, _, url := setup(t)
	st, _, r := post(t, "POST", url+"/api/Auth/Token", map[string]string{"userName": DemoPlaspyUser, "apiKey": "nope"}, "")
	if st != 200 || r["success"] != false {
		t.Fatalf("plaspy bad key: %d %v", st, r)
	}
	st, _, _ = post(t, "POST", url+"/user/authenticate", map[string]any{"email": DemoResolverNoOrg, "password": DemoResolverPassword, "selectedOrg": 1}, "")
	if st != 404 {
		t.Fatalf("resolver user in no org: %d", st)
	}
}

// The token-checking and refresh endpoints read Authorization as UPSTREAMS.md says each upstream
// does: PlexTrac takes the bare token or "Bearer <token>"; Plaspy and Resolver Core only
// "Bearer <token>" (the scheme word in any case), so a bare token is refused there.
func TestAuthorizationHeaderAsEachUpstreamReadsIt(t *testing.T) {
	_, _, url := setup(t)
	login := func(path string, body map[string]any) string {
		t.Helper()
		st, _, r := post(t, "POST", url+path, body, "")
		tok, _ := r["token"].(string)
		if st != 200 || tok == "" {
			t.Fatalf("login at %s: %d", path, st)
		}
		return tok
	}
	plextrac := login("/api/v1/authenticate", map[string]any{"username": DemoPlexTracNoMFAUser, "password": DemoPlexTracPassword})
	plaspy := login("/api/Auth/Token", map[string]any{"userName": DemoPlaspyUser, "apiKey": DemoPlaspyKey})
	resolver := login("/user/authenticate", map[string]any{"email": DemoResolverEmail, "password": DemoResolverPassword, "selectedOrg": DemoResolverOrg})
	for _, c := range []struct {
		name, method, path, authz string
		want                      int
	}{
		{"plextrac bare", "GET", "/api/v1/whoami", plextrac, 200},
		{"plextrac Bearer", "GET", "/api/v1/whoami", "Bearer " + plextrac, 200},
		{"plaspy bare", "GET", "/api/Account", plaspy, 401},
		{"plaspy Bearer", "GET", "/api/Account", "Bearer " + plaspy, 200},
		{"resolver bare", "GET", "/user/me", resolver, 401},
		{"resolver bearer", "GET", "/user/me", "bearer " + resolver, 200},
		{"resolver renew bare", "GET", "/user/authenticate", resolver, 401},
		{"resolver renew bearer", "GET", "/user/authenticate", "bearer " + resolver, 200},
	} {
		if st, _, _ := post(t, c.method, url+c.path, nil, c.authz); st != c.want {
			t.Errorf("%s: HTTP %d, want %d", c.name, st, c.want)
		}
	}
}
