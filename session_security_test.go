package sessiontoken

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/sim"
)

// heldStorage holds the next session write until released, as a slow storage backend would.
type heldStorage struct {
	logical.Storage
	mu      sync.Mutex
	release chan struct{}
	holding chan struct{} // closed once a session write is being held
}

// holdNextSessionWrite returns a channel closed once the write is held, and one to release it.
func (h *heldStorage) holdNextSessionWrite() (holding <-chan struct{}, release chan<- struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.release, h.holding = make(chan struct{}), make(chan struct{})
	return h.holding, h.release
}

func (h *heldStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	h.mu.Lock()
	release, holding := h.release, h.holding
	if e.Key == sessionKey {
		h.release = nil
	}
	h.mu.Unlock()
	if e.Key == sessionKey && release != nil {
		close(holding)
		<-release
	}
	return h.Storage.Put(ctx, e)
}

// A slow session write of an account that a config write replaces must never become the
// mount's session: not in memory, and not after a reload from storage.
func TestSlowSessionWriteOfReplacedAccountIsNeverServed(t *testing.T) {
	e := newEnv(t)
	held := &heldStorage{Storage: e.s}
	e.s = held
	e.write("config", with(e.plextracConfig(false), "verify", false))
	holding, release := held.holdNextSessionWrite()
	var old string
	reading := make(chan struct{})
	go func() { // account A logs in; its session write is held
		defer close(reading)
		resp, err := e.do(logical.ReadOperation, "token", nil)
		if err == nil && resp != nil && !resp.IsError() {
			old, _ = resp.Data["token"].(string)
		}
	}()
	<-holding
	writing := make(chan struct{})
	go func() { // meanwhile the mount is moved to another account
		defer close(writing)
		resp, err := e.do(logical.UpdateOperation, "config", e.plaspyConfig())
		if err != nil || resp.IsError() {
			t.Errorf("config write: %v %s", err, errText(resp))
		}
	}()
	time.Sleep(50 * time.Millisecond) // let the config write run as far as it can
	close(release)
	<-reading
	<-writing
	if old == "" {
		t.Fatal("the first read got no token")
	}
	for _, reload := range []bool{false, true} {
		if reload { // a restart or a standby reload starts from storage
			e.b.reset()
		}
		resp := e.read("token", nil)
		if resp.Data["token"] == old || resp.Data["provider"] != "plaspy" {
			t.Fatalf("reload=%v: the mount serves the replaced account's token", reload)
		}
		if st := e.callProtected("/api/Account", resp.Data["authorization"].(string)); st != 200 {
			t.Fatalf("reload=%v: served token rejected by plaspy: %d", reload, st)
		}
	}
	// The config check's session is the one in storage: the late write did not replace it.
	if st := e.sim.Stats(sim.Plaspy); st.Logins != 1 {
		t.Fatalf("plaspy logins = %d, want 1: the replaced account's late write overwrote the new session", st.Logins)
	}
}

func TestStoredSessionOfAnotherAccountIsNeverServed(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(false))
	first := e.read("token", nil).Data["token"]
	// The stored session is relabelled as another account's (as a config changed elsewhere).
	entry, _ := e.s.Get(context.Background(), sessionKey)
	var ss sessionRecord
	if err := entry.DecodeJSON(&ss); err != nil || ss.Account == "" {
		t.Fatalf("stored session has no account: %v", err)
	}
	ss.Account = "another-account"
	entry, _ = logical.StorageEntryJSON(sessionKey, ss)
	_ = e.s.Put(context.Background(), entry)
	e.b.reset()
	if got := e.read("token", nil).Data["token"]; got == first {
		t.Fatal("served a stored session labelled with another account")
	}
	if st := e.sim.Stats(sim.PlexTrac); st.Logins != 2 {
		t.Fatalf("logins = %d, want 2 (the foreign session was not used)", st.Logins)
	}
}

// Overlapping partial config writes are serialized: neither loses the other's field.
func TestConcurrentConfigWritesDoNotLoseFields(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(false))
	for round := range 10 {
		var wg sync.WaitGroup
		minTTL, timeout := (round+2)*60, round+5
		for _, data := range []map[string]any{{"min_ttl": minTTL}, {"request_timeout": timeout}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				e.clock.Advance(7 * time.Second) // stay inside the auth budget
				if resp, err := e.do(logical.UpdateOperation, "config", data); err != nil || resp.IsError() {
					t.Errorf("write %v: %v %s", data, err, errText(resp))
				}
			}()
		}
		wg.Wait()
		c := e.read("config", nil).Data
		if c["min_ttl"] != minTTL || c["request_timeout"] != timeout {
			t.Fatalf("round %d: config %v lost a concurrent write (want min_ttl %d, request_timeout %d)", round, c, minTTL, timeout)
		}
		if a, _ := e.b.account(context.Background(), e.s); a == nil || a.cfg.minTTL() != time.Duration(minTTL)*time.Second {
			t.Fatalf("round %d: the account in memory does not match the stored config", round)
		}
	}
}

func TestRenewAfterTheAccountChangedIsRefused(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(false))
	lease := e.read("token", nil)
	lease.Secret.IssueTime = e.clock.Now()
	e.write("config", map[string]any{"min_ttl": 240}) // same account: its leases still renew
	renew(t, e, lease.Secret)
	e.write("config", e.plextracConfig(true))                           // another user: another account
	for _, at := range []time.Duration{time.Minute, 10 * time.Minute} { // outside and inside the window
		e.clock.Advance(at)
		resp, err := e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RenewOperation, Storage: e.s, Secret: lease.Secret, Data: lease.Data})
		if err != nil || !resp.IsError() || !strings.Contains(errText(resp), "account changed") {
			t.Fatalf("renewing a lease of the replaced account: %v %v", err, resp)
		}
		if resp.Data["token"] != nil || resp.Secret != nil {
			t.Fatal("a refused renewal handed out a token")
		}
	}
}

// A performance standby serves a stored, fresh session, but never logs in or refreshes by
// itself: it answers ErrReadOnly, so that Vault forwards the request to the active node.
func TestReadOnlyNodeForwardsInsteadOfLoggingIn(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(true))
	lease := e.read("token", nil)
	lease.Secret.IssueTime = e.clock.Now()
	standby := e.standby()
	before := e.sim.Stats(sim.PlexTrac)
	if got := standby.read("token", nil).Data["token"]; got != lease.Data["token"] {
		t.Fatal("standby did not serve the stored session")
	}
	e.clock.Advance(11 * time.Minute) // refresh due: inside min_ttl and the renew window
	for _, op := range []struct {
		name string
		do   func() (*logical.Response, error)
	}{
		{"read", func() (*logical.Response, error) { return standby.do(logical.ReadOperation, "token", nil) }},
		{"static read", func() (*logical.Response, error) { return standby.do(logical.ReadOperation, "static-token", nil) }},
		{"renew", func() (*logical.Response, error) {
			return standby.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RenewOperation, Storage: standby.s, Secret: lease.Secret, Data: lease.Data})
		}},
		{"config write", func() (*logical.Response, error) {
			return standby.do(logical.UpdateOperation, "config", map[string]any{"min_ttl": 60})
		}},
		{"config delete", func() (*logical.Response, error) { return standby.do(logical.DeleteOperation, "config", nil) }},
	} {
		if _, err := op.do(); !errors.Is(err, logical.ErrReadOnly) {
			t.Errorf("%s on a standby: err %v, want logical.ErrReadOnly", op.name, err)
		}
	}
	if err := standby.b.PeriodicFunc(context.Background(), &logical.Request{Storage: standby.s}); err != nil {
		t.Fatal(err)
	}
	if after := e.sim.Stats(sim.PlexTrac); after != before {
		t.Fatalf("the standby called upstream: before %+v after %+v", before, after)
	}
	// The active node does the refresh the standby forwarded.
	if got := e.read("token", nil).Data["token"]; got == lease.Data["token"] {
		t.Fatal("active node did not refresh")
	}
}

// A reader whose request ends stops waiting at once; the refresh it started goes on, and the
// next reader gets its token with no second upstream call.
func TestReaderStopsWaitingWhenItsRequestEnds(t *testing.T) {
	release := make(chan struct{})
	e := newEnvWrapped(t, holdPath("/api/v1/authenticate", release))
	e.write("config", with(e.plextracConfig(false), "verify", false))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	done := make(chan struct{})
	var resp *logical.Response
	var err error
	go func() { resp, err = e.doCtx(ctx, logical.ReadOperation, "token", nil); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("the reader was still waiting on the upstream 10 s after its 50 ms deadline")
	}
	if code, msg := failure(t, resp, err); code != 504 || !strings.Contains(msg, "goes on") {
		t.Fatalf("gave-up reader: %d %q, want 504 saying the refresh goes on", code, msg)
	}
	close(release)
	e.read("token", nil)
	if st := e.sim.Stats(sim.PlexTrac); st.Logins != 1 {
		t.Fatalf("logins = %d, want 1: the refresh started for the first reader serves the next", st.Logins)
	}
}

// Renewal failures caused by the upstream carry the status and message a read would get.
func TestRenewFailureCarriesTheUpstreamStatus(t *testing.T) {
	for _, tc := range []struct {
		fault sim.Fault
		code  int
	}{
		{sim.Fault{Provider: sim.PlexTrac, Status: 429, RetryAfter: "30"}, 429},
		{sim.Fault{Provider: sim.PlexTrac, Status: 503}, 502},
	} {
		e := newEnv(t)
		e.write("config", e.plextracConfig(false))
		lease := e.read("token", nil)
		lease.Secret.IssueTime = e.clock.Now()
		e.sim.AddFault(tc.fault)
		e.clock.Advance(15*time.Minute - 5500*time.Millisecond) // too close to expiry to keep the token
		_, err := e.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RenewOperation, Storage: e.s, Secret: lease.Secret, Data: lease.Data})
		var coded logical.HTTPCodedError
		if !errors.As(err, &coded) || coded.Code() != tc.code || !strings.Contains(err.Error(), "plextrac") {
			t.Fatalf("fault %d: renewal error %v, want a coded %d naming the upstream", tc.fault.Status, err, tc.code)
		}
		if code, msg := e.readFailure("token"); code != tc.code || !strings.Contains(err.Error(), strings.TrimPrefix(msg, "cannot renew: ")) {
			t.Fatalf("fault %d: read says %d %q, renewal %v", tc.fault.Status, code, msg, err)
		}
	}
}
