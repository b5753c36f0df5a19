package sessiontoken

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/internal/session"
	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/sim"
	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/upstream"
)

// expectRejected writes config and asserts a 400 whose message names field, and that nothing
// was stored (the previous config, if any, still reads back unchanged).
func expectRejected(t *testing.T, e *env, data map[string]any, field string) string {
	t.Helper()
	before, _ := e.do(logical.ReadOperation, "config", nil)
	resp, err := e.do(logical.UpdateOperation, "config", data)
	if err != nil {
		t.Fatalf("want an error response naming %q, got Go error %v", field, err)
	}
	if resp == nil || !resp.IsError() {
		t.Fatalf("want an error naming %q, got success", field)
	}
	if code, _ := logical.RespondErrorCommon(&logical.Request{Operation: logical.UpdateOperation}, resp, nil); code != 400 {
		t.Errorf("status %d, want 400", code)
	}
	msg := errText(resp)
	if !strings.Contains(msg, field) {
		t.Errorf("error %q does not name %q", msg, field)
	}
	after, _ := e.do(logical.ReadOperation, "config", nil)
	if (before == nil) != (after == nil) || (before != nil && before.Data["url"] != after.Data["url"]) {
		t.Errorf("a rejected write changed the stored config")
	}
	assertNoSecrets(t, "error message", msg)
	return msg
}

func TestBadConfigIsRejectedNamingTheField(t *testing.T) {
	e := newEnv(t)
	p := e.plextracConfig(false)
	cases := []struct {
		name  string
		data  map[string]any
		field string
	}{
		{"no provider", map[string]any{"url": e.url}, "provider"},
		{"unknown provider", with(p, "provider", "okta"), "provider"},
		{"unknown field", with(p, "pasword", "x"), "pasword"},
		{"field of another provider", with(p, "api_key", "k"), "api_key"},
		{"org_id for plextrac", with(p, "org_id", 3), "org_id"},
		{"missing password", map[string]any{"provider": "plextrac", "url": e.url, "allow_insecure_http": true, "username": "u"}, "password"},
		{"missing url", map[string]any{"provider": "resolver", "email": "a@b", "password": "p", "org_id": 1}, "url"},
		{"resolver without org", with(e.resolverConfig(), "org_id", 0), "org_id"},
		{"url with credentials", with(p, "url", "https://u:p@acme.plextrac.com"), "url"},
		{"url scheme", with(p, "url", "ftp://acme.plextrac.com"), "url"},
		{"url not absolute", with(p, "url", "acme.plextrac.com"), "url"},
		{"http without allow_insecure_http", with(p, "allow_insecure_http", false), "allow_insecure_http"},
		{"bad totp seed", with(p, "totp_secret", "not-base32!"), "totp_secret"},
		{"bad ca_cert", with(p, "ca_cert", "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----"), "ca_cert"},
		{"ca_cert not PEM", with(p, "ca_cert", "hello"), "ca_cert"},
		{"timeout too long", with(p, "request_timeout", 7200), "request_timeout"},
		{"timeout not a duration", with(p, "request_timeout", "soon"), "request_timeout"},
		{"negative min_ttl", with(p, "min_ttl", -300), "min_ttl"},
		{"zero auth budget", with(p, "max_auth_per_minute", 0), "max_auth_per_minute"},
		{"org_id not a number", with(e.resolverConfig(), "org_id", "acme"), "org_id"},
		{"Authorization header", with(p, "headers", map[string]any{"Authorization": "x"}), "headers"},
		{"bad header name", with(p, "headers", map[string]any{"bad header": "x"}), "headers"},
		{"generic without login_path", map[string]any{"provider": "generic", "url": e.url, "allow_insecure_http": true}, "login_path"},
		{"generic body not JSON", map[string]any{"provider": "generic", "url": e.url, "allow_insecure_http": true, "login_path": "/x", "login_body": "user={{.username}}"}, "login_body"},
		{"generic bad template", map[string]any{"provider": "generic", "url": e.url, "allow_insecure_http": true, "login_path": "/x", "login_body": "{{"}, "login_body"},
		{"generic bad method", map[string]any{"provider": "generic", "url": e.url, "allow_insecure_http": true, "login_path": "/x", "refresh_method": "FETCH"}, "refresh_method"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { expectRejected(t, e, tc.data, tc.field) })
	}
	// With a good config stored, a bad update leaves it as it was.
	e.write("config", p)
	t.Run("bad update keeps stored config", func(t *testing.T) { expectRejected(t, e, map[string]any{"url": "ftp://x"}, "url") })
}

// The errors say what to write instead: an unknown provider short enough to be a typo is
// quoted back (a longer one is not, so an error stays small), with the list to choose from;
// a field the provider does not take lists the provider's own fields.
func TestConfigErrorsSayWhatToWriteInstead(t *testing.T) {
	e := newEnv(t)
	p := e.plextracConfig(false)
	for _, tc := range []struct {
		provider string
		quoted   bool
	}{{"plextrak", true}, {strings.Repeat("x", 32), true}, {strings.Repeat("x", 33), false}} {
		msg := expectRejected(t, e, with(p, "provider", tc.provider), "provider")
		if strings.Contains(msg, tc.provider) != tc.quoted || !strings.Contains(msg, strings.Join(upstream.Names(), ", ")) {
			t.Errorf("provider of %d bytes: %q (want it quoted: %v, and the list)", len(tc.provider), msg, tc.quoted)
		}
	}
	msg := expectRejected(t, e, with(p, "api_key", "k"), "api_key")
	if _, takes, _ := strings.Cut(msg, "it takes"); !strings.Contains(takes, "totp_secret") || strings.Contains(takes, "ca_cert") {
		t.Errorf("%q: want plextrac's own fields listed, not the ones every provider takes", msg)
	}
}

func TestFailedLoginCheckStoresNothing(t *testing.T) {
	e := newEnv(t)
	cases := []struct {
		name string
		data map[string]any
		want string
	}{
		{"plextrac wrong password", with(e.plextracConfig(false), "password", "wrong-password"), "username and password"},
		{"plextrac MFA without seed", with(e.plextracConfig(true), "totp_secret", ""), "totp_secret"},
		{"plextrac wrong seed", with(e.plextracConfig(true), "totp_secret", "GEZDGNBVGY3TQOJQ"), "totp_secret"},
		{"plaspy success:false", with(e.plaspyConfig(), "api_key", "wrong-key-123"), "Invalid API key or username"},
		{"resolver user in no org", with(e.resolverConfig(), "email", sim.DemoResolverNoOrg), "not an active member of any org"},
		{"resolver wrong org", with(e.resolverConfig(), "org_id", 7), "org_id"},
		{"unreachable", with(e.plextracConfig(false), "url", "http://127.0.0.1:1"), "cannot reach upstream"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.clock.Advance(time.Minute) // each check is an auth call: stay inside max_auth_per_minute
			resp, err := e.do(logical.UpdateOperation, "config", tc.data)
			if err != nil || !resp.IsError() {
				t.Fatalf("want a rejected write, got %v %v", err, resp)
			}
			msg := errText(resp)
			if !strings.Contains(msg, tc.want) || !strings.Contains(msg, "config not saved") {
				t.Errorf("error %q should say %q and that nothing was saved", msg, tc.want)
			}
			assertNoSecrets(t, "error", msg, "wrong-password", "wrong-key-123", "GEZDGNBVGY3TQOJQ")
			if r, _ := e.do(logical.ReadOperation, "config", nil); r != nil {
				t.Errorf("config stored after a failed check: %v", r.Data)
			}
		})
	}
}

func TestConfigReadNeverShowsSecrets(t *testing.T) {
	e := newEnv(t)
	e.write("config", with(e.plextracConfig(true), "headers", map[string]any{"cf-access-token": "cf-secret-value"}))
	resp := e.read("config", nil)
	assertNoSecrets(t, "config read", resp.Data, "cf-secret-value")
	if resp.Data["password_set"] != true || resp.Data["totp_secret_set"] != true {
		t.Errorf("want password_set and totp_secret_set true: %v", resp.Data)
	}
	if names := resp.Data["header_names"].([]string); len(names) != 1 || names[0] != "cf-access-token" {
		t.Errorf("header_names = %v", names)
	}
	if resp.Data["username"] != sim.DemoPlexTracUser {
		t.Errorf("username = %v", resp.Data["username"])
	}
	status := e.read("status", nil)
	assertNoSecrets(t, "status read", status.Data, "cf-secret-value")
}

func TestConfigUpdateMergesAndDropsSession(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(false))
	first := e.read("token", nil).Data["token"]
	// An update naming only min_ttl keeps the credentials, logs in again and drops the old session.
	e.write("config", map[string]any{"min_ttl": 120})
	r := e.read("config", nil)
	if r.Data["min_ttl"] != 120 || r.Data["password_set"] != true {
		t.Fatalf("merge lost fields: %v", r.Data)
	}
	if got := e.read("token", nil).Data["token"]; got == first {
		t.Error("config change kept the old session")
	}
	// Changing provider starts over: plextrac fields do not leak into the plaspy config.
	e.write("config", e.plaspyConfig())
	if r := e.read("config", nil); r.Data["password_set"] != nil || r.Data["provider"] != "plaspy" {
		t.Errorf("provider switch kept old fields: %v", r.Data)
	}
}

// Risk "failing config writes": a writer retrying a wrong password in a loop must not hold
// the host's shared auth budget at zero for every other mount on it. Identical retries are
// spaced out (429 with the time to retry, nothing sent); a changed config is checked at once.
func TestFailingConfigRetriesAreSpacedOut(t *testing.T) {
	e := newEnv(t)
	wrong := with(e.plextracConfig(false), "password", "wrong-password")
	for i := 0; i < 20; i++ {
		resp, _ := e.do(logical.UpdateOperation, "config", wrong)
		if i > 0 {
			if code, msg := failure(t, resp, nil); code != 429 || !strings.Contains(msg, "retry after") {
				t.Fatalf("retry %d: %d %q, want 429 with the time to retry", i, code, msg)
			}
		}
	}
	if st := e.sim.Stats(sim.PlexTrac); st.LoginFailures != 1 {
		t.Fatalf("20 identical failing writes reached upstream %d times, want 1", st.LoginFailures)
	}
	e.write("config", e.plextracConfig(false)) // fixed: checked at once
	e.clock.Advance(10 * time.Second)
	resp, _ := e.do(logical.UpdateOperation, "config", wrong)
	if !resp.IsError() {
		t.Fatal("the wrong password was stored")
	}
}

// Config reads show each provider's non-secret fields and whether each secret is set.
func TestConfigReadShowsFieldsAndWhichSecretsAreSet(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plaspyConfig())
	if c := e.read("config", nil).Data; c["api_key_set"] != true || c["username"] != sim.DemoPlaspyUser || c["login_path"] != nil {
		t.Fatalf("plaspy config read: %v", c)
	}
	e.write("config", e.resolverConfig())
	if c := e.read("config", nil).Data; c["email"] != sim.DemoResolverEmail || c["org_id"] != sim.DemoResolverOrg || c["password_set"] != true {
		t.Fatalf("resolver config read: %v", c)
	}
	e.write("config", genericPlexTrac(e))
	if c := e.read("config", nil).Data; c["login_path"] != "/api/v1/authenticate" || c["logout_path"] != "/logout" || c["api_key_set"] != false {
		t.Fatalf("generic config read: %v", c)
	}
}

// Every check runs whatever else the write holds: a valid CA does not end validation early.
func TestValidCACertDoesNotSkipTheOtherChecks(t *testing.T) {
	e := newEnv(t)
	expectRejected(t, e, with(e.plextracConfig(false), "ca_cert", testCACertPEM(t), "headers", map[string]any{"bad header": "x"}), "headers")
	for _, name := range []string{"X-Api-Key_0.9", "cf-access-token"} {
		e.write("config", with(e.plextracConfig(false), "headers", map[string]any{name: "v"}, "verify", false))
	}
}

// The everyday operations log nothing at warning level or above: operators alert on those.
// Nor do their config writes answer with warnings, or anything else.
func TestEverydayOperationsLogNoWarnings(t *testing.T) {
	var logouts atomic.Int64
	e := newEnvWrapped(t, countPath("/logout", &logouts))
	write := func(data map[string]any) {
		t.Helper()
		if r := e.write("config", data); r != nil { // Vault answers 204, and the CLI prints only "Success!"
			t.Errorf("config write answered %v %q, want nothing: there is nothing to warn about", r.Data, r.Warnings)
		}
	}
	write(with(e.plextracConfig(true), "verify", false))
	e.read("token", nil) // logs in (with MFA) from the read path
	write(e.plextracConfig(true))
	e.read("token", nil)
	write(map[string]any{"min_ttl": 240})
	e.clock.Advance(12 * time.Minute)
	e.read("token", nil)
	write(genericPlexTrac(e))
	e.read("token", nil)
	write(map[string]any{"username": sim.DemoPlexTracUser, "password": sim.DemoPlexTracPassword, "verify": false}) // logs the old session out
	if _, err := e.do(logical.DeleteOperation, "config", nil); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(e.logs.String(), "\n") {
		if strings.Contains(line, "[WARN]") || strings.Contains(line, "[ERROR]") {
			t.Errorf("logged: %s", line)
		}
	}
	if n := strings.Count(e.logs.String(), "verified=true"); n != 3 || logouts.Load() != 1 {
		t.Errorf("want 3 config writes logged as verified and 1 logout, got %d and %d", n, logouts.Load())
	}
}

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
	e.clock.Advance(time.Minute) // the host's budget, back at the default with no mount, refills
	e.write("config", genericPlexTrac(e))
	if _, err := e.do(logical.DeleteOperation, "config", nil); err != nil {
		t.Fatal(err)
	}
	if got := logouts(); len(got) != 2 || got[1] == tok {
		t.Fatalf("delete: logouts %v, want the new session's", len(got))
	}
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

// A stored record this binary cannot read (of a newer version, after a rollback, or
// unreadable) makes reads fail with advice to delete config and write it again,
// and that advice works: delete removes every record of the account it ends, and the rewrite
// serves. (An unreadable session is not an error: the next read logs in again.)
func TestConfigDeleteRemovesEveryRecordOfTheAccount(t *testing.T) {
	for _, key := range []string{configKey, sessionKey, totpStepKey, holdKey, fingerprintKeyKey} {
		for name, value := range map[string]string{"newer": `{"version": 99}`, "unreadable": `{"version": "x"`} {
			if key == sessionKey && name == "unreadable" {
				continue
			}
			t.Run(key+" "+name, func(t *testing.T) {
				e := newEnv(t)
				e.write("config", e.plextracConfig(true))
				e.read("token", nil)
				if err := e.s.Put(context.Background(), &logical.StorageEntry{Key: key, Value: []byte(value)}); err != nil {
					t.Fatal(err)
				}
				e.b.slot.Reset()
				_, err := e.do(logical.ReadOperation, "token", nil)
				if err == nil || !strings.Contains(err.Error(), "delete config and write it again") {
					t.Fatalf("read with a %s %s: %v, want the advice to delete config and write it again", name, key, err)
				}
				for _, k := range []string{legacyConfigKey, legacySessionKey, legacyTOTPStepKey} { // as v0.1.0 left them
					if err := e.s.Put(context.Background(), &logical.StorageEntry{Key: k, Value: []byte(`{}`)}); err != nil {
						t.Fatal(err)
					}
				}
				if _, err := e.do(logical.DeleteOperation, "config", nil); err != nil {
					t.Fatal(err)
				}
				if keys, _ := logical.CollectKeys(context.Background(), e.s); len(keys) != 0 {
					t.Fatalf("config delete left %v", keys)
				}
				e.clock.Advance(time.Minute)
				e.write("config", e.plextracConfig(true))
				e.read("token", nil)
			})
		}
	}
}

// A lease from before a config delete never renews after a rewrite, even of the same account:
// the delete ended the account, and its fingerprint key with it.
func TestLeasesFromBeforeAConfigDeleteNeverRenew(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(false))
	lease := e.lease()
	if _, err := e.do(logical.DeleteOperation, "config", nil); err != nil {
		t.Fatal(err)
	}
	e.write("config", e.plextracConfig(false))
	resp, err := e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RenewOperation, Storage: e.s, Secret: lease.Secret, Data: lease.Data})
	if err != nil || !resp.IsError() || !strings.Contains(errText(resp), "account changed") {
		t.Fatalf("a lease from before the delete renewed after a rewrite: %v %s", err, errText(resp))
	}
}

// A delete does not reset the spacing of a failed config check, so a loop of delete and write with a wrong password costs the upstream one login, not one a round.
func TestCheckSpacingSurvivesADelete(t *testing.T) {
	e := newEnv(t)
	wrong := with(e.plextracConfig(false), "password", "wrong-password")
	for i := range 5 {
		resp, _ := e.do(logical.UpdateOperation, "config", wrong)
		if i > 0 {
			if code, msg := failure(t, resp, nil); code != 429 || !strings.Contains(msg, "retry after") {
				t.Fatalf("round %d: %d %q, want 429 with the time to retry", i, code, msg)
			}
		}
		if _, err := e.do(logical.DeleteOperation, "config", nil); err != nil {
			t.Fatal(err)
		}
	}
	if st := e.sim.Stats(sim.PlexTrac); st.LoginFailures != 1 {
		t.Fatalf("5 rounds of delete and write reached upstream %d times, want 1", st.LoginFailures)
	}
}

// A config delete that fails halfway, whichever record it stops at, fails closed: once the
// config is gone, a lease from before the delete never renews after the config is written
// again (the fingerprint key goes first). Deleting the key last let a delete that stopped at it
// leave an unconfigured mount with the old key, and the old leases renewed on the rewrite.
func TestADeleteThatFailsHalfwayLetsNoOldLeaseRenew(t *testing.T) {
	for _, k := range []string{configKey, legacyConfigKey, sessionKey, legacySessionKey, totpStepKey, legacyTOTPStepKey, holdKey, fingerprintKeyKey} {
		e := newEnv(t)
		mem := &logical.InmemStorage{}
		e.b, e.s, e.logs = e.newMount(mem, nil)
		e.write("config", e.plextracConfig(false))
		lease := e.lease()
		e.b, e.s, e.logs = e.newMount(undeletable{mem, k}, nil)
		if _, err := e.do(logical.DeleteOperation, "config", nil); err == nil {
			t.Fatalf("setup: the delete succeeded though %s could not be deleted", k)
		}
		if c, _ := session.ReadConfig(context.Background(), mem); c != nil {
			continue // the config is still there: the delete did not end the account
		}
		e.b, e.s, e.logs = e.newMount(mem, nil) // storage is back
		e.write("config", e.plextracConfig(false))
		resp, err := e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RenewOperation, Storage: e.s, Secret: lease.Secret, Data: lease.Data})
		if err != nil || !resp.IsError() || !strings.Contains(errText(resp), "account changed") {
			t.Errorf("a delete that stopped at %s: a lease from before it renewed after the rewrite: %v %s", k, err, errText(resp))
		}
	}
}

// Each failed login is spaced on its own: a loop that alternates two wrong passwords sends one
// refused login of each, then each identical retry is spaced out (429, nothing sent). A spacing
// that remembered only the last failed config let every write of such a loop through.
func TestEachFailedLoginIsSpacedOnItsOwn(t *testing.T) {
	e := newEnv(t)
	cfg := e.plextracConfig(false)
	e.write("config", cfg)
	for range 3 { // no time passes: each identical retry is within its spacing
		for _, pw := range []string{"wrong-one", "wrong-two"} {
			_, _ = e.do(logical.UpdateOperation, "config", with(cfg, "password", pw))
		}
	}
	if n := e.sim.Stats(sim.PlexTrac).LoginFailures; n > 2 {
		t.Fatalf("3 rounds of two wrong passwords, no time passing, sent %d refused logins: want 2 (each identical retry spaced out)", n)
	}
}

// A retry is the same login whatever else changed: a write that sends the very same wrong login
// with only a setting the login does not use (min_ttl) changed is spaced out, not checked at
// once (the spacing keys on what the login sends, not on the whole config).
func TestARetryOfTheSameLoginIsSpacedWhateverElseChanged(t *testing.T) {
	e := newEnv(t)
	wrong := with(e.plextracConfig(false), "password", "wrong-password")
	for i := range 3 { // no time passes
		_, _ = e.do(logical.UpdateOperation, "config", with(wrong, "min_ttl", 120+i))
	}
	if n := e.sim.Stats(sim.PlexTrac).LoginFailures; n > 1 {
		t.Fatalf("3 writes of the same wrong login (only min_ttl differing), no time passing, sent %d refused logins: want 1", n)
	}
}

// No wait holds a lock past its caller: rotate holds the config lock across its login upstream,
// and a config delete (or write) whose client gives up meanwhile stops waiting for it and says
// to retry, rather than waiting on with sync.Mutex.Lock until the login ends.
func TestAConfigDeleteStopsWaitingWhenItsRequestEnds(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	e := newEnvWrapped(t, stallPath("/api/v1/authenticate", arrived, release))
	e.write("config", with(e.plextracConfig(false), "verify", false))
	rotating := make(chan struct{})
	go func() {
		defer close(rotating)
		_, _ = e.do(logical.UpdateOperation, "rotate", nil)
	}()
	<-arrived // rotate's login hangs upstream, configMu held
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	deleted := make(chan error, 1)
	go func() {
		_, err := e.doCtx(ctx, logical.DeleteOperation, "config", nil)
		deleted <- err
	}()
	select {
	case err := <-deleted:
		if err == nil || !strings.Contains(err.Error(), "retry") {
			t.Errorf("a config delete that gave up waiting behind a rotate answered %v, want an error that says to retry", err)
		}
	case <-time.After(3 * time.Second):
		close(release)
		<-rotating
		<-deleted
		t.Fatal("a config delete whose context ended after 200 ms was still waiting 3 s later (configMu held across rotate's login)")
	}
	close(release)
	<-rotating
}
