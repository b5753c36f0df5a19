package sessiontoken

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/sim"
	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/upstream"
)

// fakeClock is shared by the plugin and the simulator; Sleep advances it, so nothing waits.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.Advance(d)
	return ctx.Err()
}

// env is one mount of the real framework backend, in-memory storage, and a simulator.
type env struct {
	t     *testing.T
	clock *fakeClock
	sim   *sim.Server
	url   string
	srv   *httptest.Server
	b     *backend
	s     logical.Storage
}

func newEnv(t *testing.T) *env {
	t.Helper()
	clock := newFakeClock()
	s := sim.New(sim.Options{Now: clock.Now})
	s.AddDemoUsers()
	srv := httptest.NewServer(s.Handler())
	b := newBackend(clock, upstream.NewLimiters())
	conf := logical.TestBackendConfig()
	conf.StorageView = &logical.InmemStorage{}
	if err := b.Setup(context.Background(), conf); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, clock: clock, sim: s, url: srv.URL, srv: srv, b: b, s: conf.StorageView}
	t.Cleanup(func() { e.srv.Close() })
	return e
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
	req := &logical.Request{Operation: op, Path: path, Data: data, Storage: e.s, MountPoint: "plextrac/"}
	return e.b.HandleRequest(context.Background(), req)
}

// write, read: errors (Go errors and error responses) fail the test.
func (e *env) write(path string, data map[string]any) *logical.Response {
	e.t.Helper()
	resp, err := e.do(logical.UpdateOperation, path, data)
	if err != nil || resp.IsError() {
		e.t.Fatalf("write %s: err=%v resp=%v", path, err, errText(resp))
	}
	return resp
}

func (e *env) read(path string, data map[string]any) *logical.Response {
	e.t.Helper()
	resp, err := e.do(logical.ReadOperation, path, data)
	if err != nil || resp == nil || resp.IsError() {
		e.t.Fatalf("read %s: err=%v resp=%v", path, err, errText(resp))
	}
	return resp
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
func (e *env) plextracConfig(mfa bool) map[string]any {
	c := map[string]any{"provider": "plextrac", "url": e.url, "allow_insecure_http": true,
		"username": sim.DemoPlexTracNoMFAUser, "password": sim.DemoPlexTracPassword}
	if mfa {
		c["username"], c["totp_secret"] = sim.DemoPlexTracUser, sim.DemoPlexTracTOTP
	}
	return c
}

func (e *env) plaspyConfig() map[string]any {
	return map[string]any{"provider": "plaspy", "url": e.url, "allow_insecure_http": true,
		"username": sim.DemoPlaspyUser, "api_key": sim.DemoPlaspyKey}
}

func (e *env) resolverConfig() map[string]any {
	return map[string]any{"provider": "resolver", "url": e.url, "allow_insecure_http": true,
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
func assertNoSecrets(t *testing.T, what string, v any, tokens ...string) {
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
func failure(t *testing.T, resp *logical.Response, err error) (int, string) {
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
