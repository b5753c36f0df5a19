package sessiontoken

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/sim"
)

// Writing only url=<another host> must not send the stored password there: every setting
// that decides where or how credentials are sent needs the credentials in the same write.
func TestChangingWhereCredentialsGoRequiresThemAgain(t *testing.T) {
	var elsewhere atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { elsewhere.Add(1) }))
	defer other.Close()
	e := newEnv(t)
	e.write("config", with(e.plextracConfig(true), "headers", map[string]any{"cf-access-token": "cf-secret-value"}))
	for _, tc := range []struct {
		data    map[string]any
		field   string
		missing string
	}{
		{map[string]any{"url": other.URL}, "url", "headers, password, totp_secret"},
		{map[string]any{"url": other.URL, "password": sim.DemoPlexTracPassword}, "url", "headers, totp_secret"},
		{map[string]any{"ca_cert": testCACertPEM(t)}, "ca_cert", "headers, password, totp_secret"},
		{map[string]any{"provider": "plextrac", "url": strings.Replace(e.url, "127.0.0.1", "localhost", 1)}, "url", "headers, password, totp_secret"},
	} {
		msg := expectRejected(t, e, tc.data, tc.field)
		if !strings.Contains(msg, "supply "+tc.missing+" again") {
			t.Errorf("%s: %q should say to supply %s again", tc.field, msg, tc.missing)
		}
	}
	if n := elsewhere.Load(); n != 0 {
		t.Fatalf("the other host got %d requests", n)
	}
	// With the secrets (or clearing them) it is an ordinary write.
	e.write("config", map[string]any{"url": strings.Replace(e.url, "127.0.0.1", "localhost", 1), "password": sim.DemoPlexTracPassword,
		"totp_secret": sim.DemoPlexTracTOTP, "headers": map[string]any{}})

	g := newEnv(t)
	g.write("config", genericPlexTrac(g))
	for _, field := range []string{"login_path", "login_body", "token_field", "login_method"} {
		value := map[string]any{"login_path": "/api/v1/other", "login_body": `{"user": {{json .username}}, "pw": {{json .password}}}`,
			"token_field": "cookie", "login_method": "PUT"}[field]
		if msg := expectRejected(t, g, map[string]any{field: value}, field); !strings.Contains(msg, "supply password again") {
			t.Errorf("%s: %q should say to supply password again", field, msg)
		}
	}
}

func genericPlexTrac(e *env) map[string]any {
	return map[string]any{"provider": "generic", "url": e.url, "allow_insecure_http": true, "username": sim.DemoPlexTracNoMFAUser,
		"password": sim.DemoPlexTracPassword, "login_path": "/api/v1/authenticate", "logout_path": "/logout", "auth_scheme": "none"}
}

// A provider named in another case or with spaces is not a switch to another provider, which
// would start over and drop the stored secrets. It is refused, naming the spelling a read
// gives back (so Terraform sees no diff), and stores nothing; the same provider as written
// keeps the stored config.
func TestProviderNameInAnotherCaseIsNotASwitch(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(true))
	for _, spelling := range []string{" PlexTrac ", "PLEXTRAC", "plextrac\n"} {
		msg := expectRejected(t, e, map[string]any{"provider": spelling, "min_ttl": 120}, "provider")
		if !strings.Contains(msg, `write "plextrac"`) {
			t.Errorf("provider %q: %q does not give the canonical form", spelling, msg)
		}
	}
	e.write("config", map[string]any{"provider": "plextrac", "min_ttl": 120})
	c := e.read("config", nil).Data
	if c["password_set"] != true || c["totp_secret_set"] != true || c["min_ttl"] != 120 || c["provider"] != "plextrac" {
		t.Fatalf("provider=plextrac wiped the stored config: %v", c)
	}
}

// The generic logout ends a session only when the mount's account changes or its config is
// deleted; a write that keeps the account keeps the token that leases hold.
func TestGenericLogoutOnlyWhenTheAccountChanges(t *testing.T) {
	var mu sync.Mutex
	var loggedOut []string
	e := newEnvWrapped(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/logout" {
				next.ServeHTTP(w, r)
				return
			}
			mu.Lock()
			loggedOut = append(loggedOut, r.Header.Get("Authorization"))
			mu.Unlock()
			w.WriteHeader(http.StatusNoContent)
		})
	})
	logouts := func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), loggedOut...) }
	e.write("config", genericPlexTrac(e))
	tok := e.read("token", nil).Data["token"].(string)
	e.write("config", map[string]any{"min_ttl": 120})
	e.write("config", map[string]any{"password": sim.DemoPlexTracPassword, "max_auth_per_minute": 5})
	if got := logouts(); len(got) != 0 {
		t.Fatalf("writes that keep the account logged out %d sessions", len(got))
	}
	current := e.read("token", nil).Data["token"].(string)
	e.write("config", map[string]any{"username": sim.DemoPlexTracUser, "password": sim.DemoPlexTracPassword, "verify": false}) // another account
	if got := logouts(); len(got) != 1 || got[0] != current {
		t.Fatalf("account change: logouts %d, want 1 of the current session", len(got))
	}
	if _, err := e.do(logical.DeleteOperation, "config", nil); err != nil {
		t.Fatal(err)
	}
	if got := logouts(); len(got) != 1 {
		t.Fatalf("delete with no session logged out again: %d", len(got))
	}
	e.write("config", genericPlexTrac(e))
	if _, err := e.do(logical.DeleteOperation, "config", nil); err != nil {
		t.Fatal(err)
	}
	if got := logouts(); len(got) != 2 || got[1] == tok {
		t.Fatalf("delete: logouts %v, want the new session's", len(got))
	}
}

func TestURLsThatAreNeverAnUpstreamAreRefused(t *testing.T) {
	e := newEnv(t)
	for raw, why := range map[string]string{
		"http://169.254.169.254/latest": "link-local", "http://[fe80::1]:8080": "link-local", "http://[::ffff:169.254.169.254]": "link-local",
		"http://169.254.169.254./": "link-local", "http://0.0.0.0:8200": "unspecified", "http://[::]:8200": "unspecified",
	} {
		// verify=false: refused at write time, before any connection could be made.
		msg := expectRejected(t, e, with(e.plextracConfig(false), "url", raw, "verify", false), "url")
		if !strings.Contains(msg, why) {
			t.Errorf("%s: %q does not say %s", raw, msg, why)
		}
	}
	e.write("config", with(e.plextracConfig(false), "url", strings.Replace(e.url, "127.0.0.1", "localhost", 1))) // loopback stays allowed
}

func TestHeaderValuesWithLineBreaksAreRefused(t *testing.T) {
	e := newEnv(t)
	for _, v := range []string{"abc\r\nX-Injected: 1", "abc\nX-Injected: 1", "abc\x00"} {
		msg := expectRejected(t, e, with(e.plextracConfig(false), "verify", false, "headers", map[string]any{"cf-access-token": v}), "headers")
		if strings.Contains(msg, "X-Injected") || strings.Contains(msg, "abc") {
			t.Errorf("error echoes the header value: %q", msg)
		}
	}
}

func TestUnparsableURLIsNeverEchoedWithItsUserinfo(t *testing.T) {
	e := newEnv(t)
	for _, raw := range []string{"https://svc:hunter2%zz@acme.plextrac.com", "https://svc:hunter2 x@acme plextrac.com", "https://svc:hunter2@[::1"} {
		if msg := expectRejected(t, e, with(e.plextracConfig(false), "url", raw, "verify", false), "url"); strings.Contains(msg, "hunter2") {
			t.Errorf("%q echoes the URL's password", msg)
		}
	}
}
