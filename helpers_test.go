package sessiontoken

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/helper/consts"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/internal/testclock"
	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/sim"
	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/upstream"
)

// fakeClock is shared by the plugin and the simulator; Sleep advances it, so nothing waits.
type fakeClock = testclock.Clock

func newFakeClock() *fakeClock { return testclock.New() }

// env is one mount of the real framework backend, in-memory storage, and a simulator.
type env struct {
	t            testing.TB
	clock        *fakeClock
	sim          *sim.Server
	url          string
	srv          *httptest.Server
	b            *backend
	s            logical.Storage
	limiters     *upstream.Limiters  // the test's plugin process's host budgets
	totpSteps    *upstream.TOTPSteps // and its TOTP steps
	logs         *syncBuffer         // everything the backend logged
	servedTokens []string            // token values reads handed out, for leak checks
	// mounts is every mount this test set up in the plugin process (this one, otherMount's,
	// standby's): at cleanup each one's log is checked for the secrets and for every token any
	// of them served.
	mounts *[]*env
	// leaseData is each lease's stored response data, as Vault keeps it and hands it to
	// renewals: the read's data, then each renewal's.
	leaseData map[*logical.Secret]map[string]any
}

func newEnv(t testing.TB) *env { return newEnvWrapped(t, nil) }

// newEnvWrapped is newEnv with the simulator's handler wrapped, for tests that watch or hold
// upstream calls. At cleanup the backend's log is checked for every demo secret and every
// token served.
func newEnvWrapped(t testing.TB, wrap func(http.Handler) http.Handler) *env {
	t.Helper()
	clock := newFakeClock()
	s := sim.New(sim.Options{Now: clock.Now})
	s.AddDemoUsers()
	h := s.Handler()
	if wrap != nil {
		h = wrap(h)
	}
	srv := httptest.NewServer(h)
	e := &env{t: t, clock: clock, sim: s, url: srv.URL, srv: srv, limiters: upstream.NewLimiters(), totpSteps: upstream.NewTOTPSteps(), leaseData: map[*logical.Secret]map[string]any{}}
	e.b, e.s, e.logs = e.newMount(nil, nil)
	e.mounts = &[]*env{e}
	t.Cleanup(func() {
		e.srv.Close()
		var served []string
		for _, m := range *e.mounts {
			served = append(served, m.servedTokens...)
		}
		for i, m := range *e.mounts {
			assertNoSecrets(t, fmt.Sprintf("mount %d's log", i), m.logs.String(), served...)
		}
	})
	return e
}

// newMount sets up another backend in the same plugin process (same clock and limiters),
// with its own in-memory storage, or on storage s when given, and system view sys if given.
func (e *env) newMount(s logical.Storage, sys logical.SystemView) (*backend, logical.Storage, *syncBuffer) {
	e.t.Helper()
	if s == nil {
		s = &logical.InmemStorage{}
	}
	logs := &syncBuffer{}
	return e.setUp(e.clock, s, sys, logs), s, logs
}

// setUp makes a backend of this env's process (its limiters) with clock, on storage s, logging
// to logs, as Vault sets up a mount.
func (e *env) setUp(clock upstream.Clock, s logical.Storage, sys logical.SystemView, logs *syncBuffer) *backend {
	e.t.Helper()
	b := newBackend(clock, e.limiters, e.totpSteps)
	b.slot.DialCheck = loopbackOnly(e.t) // before any provider is built: nil in production
	conf := logical.TestBackendConfig()
	if sys != nil {
		conf.System = sys
	}
	conf.StorageView = s
	conf.Logger = hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Trace})
	if err := b.Setup(context.Background(), conf); err != nil {
		e.t.Fatal(err)
	}
	return b
}

// anotherProcess is this mount as another plugin process runs it: a restart, a reload, or the
// node before or after a failover. It has fresh process-wide state (host budgets, TOTP
// records), a backend and log of its own, clock (nil: the test's), and this mount's storage,
// or storage of its own with ownStorage (another mount of the same account). The simulator and
// the leak check are shared.
func (e *env) anotherProcess(clock upstream.Clock, ownStorage bool) *env {
	e.t.Helper()
	o := *e
	o.limiters, o.totpSteps = upstream.NewLimiters(), upstream.NewTOTPSteps()
	o.servedTokens, o.logs = nil, &syncBuffer{}
	if ownStorage {
		o.s = &logical.InmemStorage{}
	}
	if clock == nil {
		clock = e.clock
	}
	o.b = o.setUp(clock, o.s, nil, o.logs)
	*e.mounts = append(*e.mounts, &o)
	return &o
}

// otherMount is a second mount of the same plugin process against the same simulator.
func (e *env) otherMount() *env {
	o := *e
	o.b, o.s, o.logs = e.newMount(nil, nil)
	o.servedTokens = nil
	*e.mounts = append(*e.mounts, &o)
	return &o
}

// standby is this mount as a performance standby node sees it: the same storage, read only,
// and a replication state that is not write-safe.
func (e *env) standby() *env {
	o := *e
	sv := logical.TestSystemView()
	sv.ReplicationStateVal = consts.ReplicationPerformanceStandby
	o.b, o.s, o.logs = e.newMount(readOnlyStorage{e.s}, sv)
	o.servedTokens = nil
	*e.mounts = append(*e.mounts, &o)
	return &o
}

type readOnlyStorage struct{ logical.Storage }

func (readOnlyStorage) Put(context.Context, *logical.StorageEntry) error { return logical.ErrReadOnly }
func (readOnlyStorage) Delete(context.Context, string) error             { return logical.ErrReadOnly }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// upstreamDown closes the simulator's port: connections are refused until upstreamUp.
func (e *env) upstreamDown() { e.srv.Close() }

func (e *env) upstreamUp() {
	e.t.Helper()
	l, err := net.Listen("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		e.t.Fatal(err)
	}
	e.srv = httptest.NewUnstartedServer(e.sim.Handler())
	e.srv.Listener = l
	e.srv.Start()
}

func (e *env) do(op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	e.t.Helper()
	return e.doCtx(context.Background(), op, path, data)
}

func (e *env) doCtx(ctx context.Context, op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	req := &logical.Request{Operation: op, Path: path, Data: data, Storage: e.s, MountPoint: "plextrac/"}
	return e.b.HandleRequest(ctx, req)
}

// write, read: errors (Go errors and error responses) fail the test.
func (e *env) write(path string, data map[string]any) *logical.Response {
	e.t.Helper()
	resp, err := e.do(logical.UpdateOperation, path, data)
	if err != nil || resp.IsError() {
		e.t.Fatalf("write %s: err=%v resp=%v", path, err, errText(resp))
	}
	if resp != nil && resp.Data[logical.HTTPStatusCode] != nil { // a raw error answer (429, 502, …)
		e.t.Fatalf("write %s: HTTP %v %v", path, resp.Data[logical.HTTPStatusCode], resp.Data[logical.HTTPRawBody])
	}
	return resp
}

func (e *env) read(path string, data map[string]any) *logical.Response {
	e.t.Helper()
	resp, err := e.do(logical.ReadOperation, path, data)
	if err != nil || resp == nil || resp.IsError() {
		e.t.Fatalf("read %s: err=%v resp=%v", path, err, errText(resp))
	}
	if tok, ok := resp.Data["token"].(string); ok {
		e.servedTokens = append(e.servedTokens, tok)
	}
	if resp.Secret != nil {
		e.leaseData[resp.Secret] = resp.Data
	}
	return resp
}

// lease reads token as Vault issues a lease for it: the answer, with the issue time Vault
// stamps on the lease (renewals measure the lease's life from it).
func (e *env) lease() *logical.Response {
	e.t.Helper()
	resp := e.read("token", nil)
	resp.Secret.IssueTime = e.clock.Now()
	return resp
}

// renew renews a lease as Vault does: it hands the renewal the lease's stored response data,
// and stores the renewal's.
func renew(t *testing.T, e *env, secret *logical.Secret) *logical.Response {
	t.Helper()
	resp, err := e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RenewOperation, Storage: e.s,
		Secret: secret, Data: e.leaseData[secret]})
	if err != nil || resp.IsError() {
		t.Fatalf("renew: %v %s", err, errText(resp))
	}
	if resp.Secret != nil {
		e.leaseData[resp.Secret] = resp.Data
	}
	return resp
}

// vaultRenewTTL is the lease TTL Vault's framework.CalculateTTL gives a renewal that asked for
// increment: the increment, capped at IssueTime.Truncate(1s)+MaxTTL-now.Truncate(1s).
func vaultRenewTTL(s *logical.Secret, now time.Time, increment time.Duration) time.Duration {
	return min(increment, s.IssueTime.Truncate(time.Second).Add(s.MaxTTL).Sub(now.Truncate(time.Second)))
}

// revokeDemoPassword changes the demo account's password upstream, as an admin would: the
// stored password is refused from then on (sim.AddDemoUsers restores it).
func revokeDemoPassword(e *env) {
	e.sim.AddPlexTracUser(sim.DemoPlexTracNoMFAUser, sim.PlexTracUser{Password: "rotated-elsewhere", TenantID: 7})
}

func errText(resp *logical.Response) string {
	if resp == nil {
		return "<nil>"
	}
	if err := resp.Error(); err != nil {
		return err.Error()
	}
	return ""
}

// Configs for the simulator's demo accounts.
// oldDefaultBudget is max_auth_per_minute's default up to v0.2.0: the configs below set it, so
// that tests written against it keep their intent; TestDefaultHostBudgetLeavesHalfTheInstanceToPeople
// tests the default itself.
const oldDefaultBudget = 10

func (e *env) plextracConfig(mfa bool) map[string]any {
	c := map[string]any{"provider": "plextrac", "url": e.url, "allow_insecure_http": true, "max_auth_per_minute": oldDefaultBudget,
		"username": sim.DemoPlexTracNoMFAUser, "password": sim.DemoPlexTracPassword}
	if mfa {
		c["username"], c["totp_secret"] = sim.DemoPlexTracUser, sim.DemoPlexTracTOTP
	}
	return c
}

func (e *env) plaspyConfig() map[string]any {
	return map[string]any{"provider": "plaspy", "url": e.url, "allow_insecure_http": true, "max_auth_per_minute": oldDefaultBudget,
		"username": sim.DemoPlaspyUser, "api_key": sim.DemoPlaspyKey}
}

func (e *env) resolverConfig() map[string]any {
	return map[string]any{"provider": "resolver", "url": e.url, "allow_insecure_http": true, "max_auth_per_minute": oldDefaultBudget,
		"email": sim.DemoResolverEmail, "password": sim.DemoResolverPassword, "org_id": sim.DemoResolverOrg}
}

func with(m map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

// callProtected calls the simulator's protected endpoint with an Authorization header value,
// as an app holding the served token would, and returns the HTTP status.
func (e *env) callProtected(path, authorization string) int {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.url+path, nil)
	req.Header.Set("Authorization", authorization)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// assertNoSecrets fails if any demo secret, or the given token values, appear in v.
func assertNoSecrets(t testing.TB, what string, v any, tokens ...string) {
	t.Helper()
	b, _ := json.Marshal(v)
	s := string(b)
	for _, sec := range append([]string{sim.DemoPlexTracPassword, sim.DemoPlexTracTOTP, sim.DemoPlaspyKey, sim.DemoResolverPassword, "eyJ"}, tokens...) {
		if sec != "" && strings.Contains(s, sec) {
			t.Errorf("%s contains a secret (%.6s…)", what, sec)
		}
	}
}

// failure returns the HTTP status and message Vault would send for a failed request.
func failure(t testing.TB, resp *logical.Response, err error) (int, string) {
	t.Helper()
	if resp != nil && resp.Data[logical.HTTPStatusCode] != nil {
		var body struct{ Errors []string }
		if json.Unmarshal([]byte(resp.Data[logical.HTTPRawBody].(string)), &body) != nil || len(body.Errors) != 1 {
			t.Fatalf("raw error body is not Vault's error shape: %v", resp.Data[logical.HTTPRawBody])
		}
		return resp.Data[logical.HTTPStatusCode].(int), body.Errors[0]
	}
	if err == nil && !resp.IsError() {
		t.Fatal("request succeeded, want a failure")
	}
	code, _ := logical.RespondErrorCommon(&logical.Request{}, resp, err)
	if err != nil {
		return code, err.Error()
	}
	return code, errText(resp)
}

// readFailure reads path, which must fail, and returns the HTTP status and message.
func (e *env) readFailure(path string) (int, string) {
	e.t.Helper()
	resp, err := e.do(logical.ReadOperation, path, nil)
	return failure(e.t, resp, err)
}

// holdPath holds upstream calls to path until release is closed.
func holdPath(path string, release <-chan struct{}) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == path {
				<-release
			}
			next.ServeHTTP(w, r)
		})
	}
}

// countPath answers calls to path with 204 and counts them; other calls go upstream.
func countPath(path string, n *atomic.Int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != path {
				next.ServeHTTP(w, r)
				return
			}
			n.Add(1)
			w.WriteHeader(http.StatusNoContent)
		})
	}
}

func genericPlexTrac(e *env) map[string]any {
	return map[string]any{"provider": "generic", "url": e.url, "allow_insecure_http": true, "max_auth_per_minute": oldDefaultBudget, "username": sim.DemoPlexTracNoMFAUser,
		"password": sim.DemoPlexTracPassword, "login_path": "/api/v1/authenticate", "logout_path": "/logout", "auth_scheme": "none"}
}

func limiterOf(e *env) map[string]any { return e.read("status", nil).Data["limiter"].(map[string]any) }

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
	return map[string]any{"provider": "generic", "url": e.url, "allow_insecure_http": true, "max_auth_per_minute": oldDefaultBudget, "username": "svc",
		"password": "fake-login-password", "login_path": "/login", "refresh_path": "/refresh", "expiry_field": "expires"}
}

func answer(status int, body any) func() (int, any) { return func() (int, any) { return status, body } }

// fixedJWT is an (unsigned) JWT with these times: the plugin reads exp and iat unverified.
func fixedJWT(iat, exp time.Time) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." +
		enc([]byte(fmt.Sprintf(`{"iat":%d,"exp":%d}`, iat.Unix(), exp.Unix()))) + "." + enc([]byte("sig"))
}

// testCACertPEM is a real CA certificate (an httptest TLS server's), for config writes.
func testCACertPEM(t *testing.T) string {
	srv := httptest.NewTLSServer(nil)
	defer srv.Close()
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
}

// withClock makes e's mount a backend of the same process (limiters) on the same storage,
// with clock.
func (e *env) withClock(clock upstream.Clock) {
	e.t.Helper()
	e.b = e.setUp(clock, e.s, nil, e.logs)
}

// promptly runs a request with a deadline and fails the test unless it returns before the
// deadline: a request that waits out its context, or hangs past it, is wedged.
func (e *env) promptly(op logical.Operation, path string, data map[string]any) (*logical.Response, error) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	type result struct {
		resp *logical.Response
		err  error
	}
	done := make(chan result, 1)
	go func() { r, err := e.doCtx(ctx, op, path, data); done <- result{r, err} }()
	select {
	case r := <-done:
		if ctx.Err() != nil {
			e.t.Fatalf("%s %s returned only when its context ended: %v %s", op, path, r.err, errText(r.resp))
		}
		return r.resp, r.err
	case <-time.After(30 * time.Second):
		e.t.Fatalf("%s %s hung past its context's deadline", op, path)
	}
	return nil, nil
}

// undeletable is storage whose Delete of one key fails.
type undeletable struct {
	logical.Storage
	key string
}

func (s undeletable) Delete(ctx context.Context, k string) error {
	if k == s.key {
		return errors.New("storage unavailable")
	}
	return s.Storage.Delete(ctx, k)
}

// loopbackOnly is a mount's dial check in tests: a dial to anything but loopback (127.0.0.0/8,
// ::1) fails the test and is stopped before a connection is made, so a test that writes a
// non-loopback URL (with verify=false, to check that it is stored or refused) can never send
// it traffic, whatever the code under test does.
func loopbackOnly(t testing.TB) func(address string) error {
	return func(address string) error {
		host, _, err := net.SplitHostPort(address)
		if err == nil {
			if addr, perr := netip.ParseAddr(host); perr == nil && addr.Unmap().IsLoopback() {
				return nil
			}
		}
		t.Errorf("a test dialled %s: tests send traffic only to loopback", address)
		return fmt.Errorf("test dial check: %s is not loopback", address)
	}
}

// What the mount stores, written out here rather than taken from internal/session: these
// tests pin the stored format, so a key or field renamed in the code must fail them, not be
// carried along.
const (
	configKey         = "config/v2"
	sessionKey        = "session/v2"
	totpStepKey       = "totp_step/v2"
	fingerprintKeyKey = "fingerprint_key"
	holdKey           = "credentials_hold"
	legacyConfigKey   = "config"
	legacySessionKey  = "session"
	legacyTOTPStepKey = "totp_step"
	leaseDataKey      = "lease"   // in a lease's InternalData
	leaseAccountKey   = "account" // in a lease's InternalData
)

// sessionRecord is the stored session (sessionKey).
type sessionRecord struct {
	Format     int            `json:"version"`
	Account    string         `json:"account"`
	Value      string         `json:"value"`
	IssuedAt   time.Time      `json:"issued_at"`
	ExpiresAt  time.Time      `json:"expires_at"`
	Extras     map[string]any `json:"extras,omitempty"`
	ObtainedBy string         `json:"obtained_by"`
	ObtainedAt time.Time      `json:"obtained_at"`
}

// totpStepRecord is the stored TOTP step (totpStepKey).
type totpStepRecord struct {
	Format int   `json:"version"`
	Step   int64 `json:"step"`
}
