package sessiontoken

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/sim"
)

// A write that keeps the upstream account keeps its session, even unverified and with the
// URL spelled another way; one that changes how the generic login is done is another account.
func TestSessionFollowsTheAccountNotTheWrite(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(false))
	first := e.read("token", nil).Data["token"]
	e.write("config", map[string]any{"min_ttl": 240, "verify": false})
	e.write("config", map[string]any{"url": e.url + "/", "password": sim.DemoPlexTracPassword, "verify": false})
	e.b.slot.Reset() // and from storage
	if got := e.read("token", nil).Data["token"]; got != first {
		t.Fatal("a write that kept the account dropped its session")
	}
	if st := e.sim.Stats(sim.PlexTrac); st.Logins != 1 {
		t.Fatalf("logins = %d, want 1", st.Logins)
	}

	g := newEnv(t)
	g.write("config", genericPlexTrac(g))
	tok := g.read("token", nil).Data["token"]
	g.write("config", map[string]any{"login_body": `{"username": {{json .username}}, "password": {{json .password}}, "x": 1}`,
		"password": sim.DemoPlexTracPassword, "verify": false})
	if got := g.read("token", nil).Data["token"]; got == tok {
		t.Fatal("a generic login of another shape kept the old account's session")
	}
}

func TestResetOfAnUnconfiguredMountIsHarmless(t *testing.T) {
	e := newEnv(t)
	e.b.slot.Reset()
	if code, msg := e.readFailure("token"); code != 400 || !strings.Contains(msg, "not configured") {
		t.Fatalf("%d %q", code, msg)
	}
	e.b.clean(context.Background())
}

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

// configWriteWaitsAtTheGate waits (at most 10 s) until a config write waits for b's session
// gate while a session write is held under it (heldStorage): the state that test races.
// sync.RWMutex turns new readers away once a writer waits, and the held session write is a
// reader, so a refused TryRLock is that signal. It reports false if the config write finished
// (done closed) first: it did not wait for the held write.
func configWriteWaitsAtTheGate(b *backend, done <-chan struct{}) bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if b.slot.SessionWriteWouldWait() {
			return true
		}
		select {
		case <-done:
			return false
		case <-time.After(time.Millisecond):
		}
	}
	return false
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
	// The config write runs as far as it can: to the session gate, where it waits for the held
	// session write. Only then is the write released, so the race is run every time.
	if reached := configWriteWaitsAtTheGate(e.b, writing); !reached {
		close(release)
		<-reading
		t.Fatal("the config write finished, or never reached the session gate, while a session write of the account it replaces was held")
	}
	close(release)
	<-reading
	<-writing
	if old == "" {
		t.Fatal("the first read got no token")
	}
	for _, reload := range []bool{false, true} {
		if reload { // a restart or a standby reload starts from storage
			e.b.slot.Reset()
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
	e.b.slot.Reset()
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
		if a, _ := e.b.slot.Account(context.Background(), e.s); a == nil || a.Config().MinTTLSeconds != minTTL {
			t.Fatalf("round %d: the account in memory does not match the stored config", round)
		}
	}
}

// hungStorage is storage whose writes of one key hang until their context ends, as Vault's
// storage does when its backend stops answering. hung is closed when the first one starts.
type hungStorage struct {
	logical.Storage
	key  string
	once *sync.Once
	hung chan struct{}
}

func (s hungStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	if e.Key == s.key {
		s.once.Do(func() { close(s.hung) })
		<-ctx.Done()
		return ctx.Err()
	}
	return s.Storage.Put(ctx, e)
}

// Every storage operation made under the session gate has its own bound.
// A session write that hangs (its storage stopped answering) holds the gate only that long,
// so config writes, which swap accounts under the gate, go on.
func TestAHungSessionWriteDoesNotBlockConfigWrites(t *testing.T) {
	e := newEnv(t)
	e.b.slot.StorageTimeout = 100 * time.Millisecond
	e.write("config", with(e.plextracConfig(false), "verify", false))
	hung := hungStorage{e.s, sessionKey, &sync.Once{}, make(chan struct{})}
	e.s = hung
	go func() { _, _ = e.do(logical.ReadOperation, "token", nil) }() // logs in; its session write hangs
	<-hung.hung
	done := make(chan error, 1)
	go func() {
		resp, err := e.do(logical.UpdateOperation, "config", map[string]any{"min_ttl": 120, "verify": false})
		if err == nil && resp.IsError() {
			err = resp.Error()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("config write after a hung session write: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a config write waited on a hung session write for 5 s (its bound is 100 ms)")
	}
}

// A config write that changes the account and fails stores nothing: the old config stays, and
// so does its stored session (dropped only once the new config is stored), so the next read
// costs no login of the old account that nothing asked for.
func TestAFailedAccountChangeKeepsTheOldSession(t *testing.T) {
	e := newEnv(t)
	mem := &logical.InmemStorage{}
	e.b, e.s, e.logs = e.newMount(mem, nil)
	cfg := e.plextracConfig(false)
	e.write("config", cfg)
	e.read("token", nil)
	e.b, e.s, e.logs = e.newMount(unstorable{mem, configKey}, nil)
	resp, err := e.do(logical.UpdateOperation, "config", with(cfg, "username", "someone-else@example.com", "verify", false))
	if err == nil && (resp == nil || !resp.IsError()) {
		t.Fatal("setup: the write succeeded")
	}
	if ent, _ := mem.Get(context.Background(), sessionKey); ent == nil {
		t.Error("the failed config write deleted the stored session of the config it left in place")
	}
	logins := e.sim.Stats(sim.PlexTrac).Logins
	e.b, e.s, e.logs = e.newMount(mem, nil)
	e.read("token", nil)
	if n := e.sim.Stats(sim.PlexTrac).Logins; n != logins {
		t.Errorf("a read after the failed write logged in again (%d logins, want %d)", n, logins)
	}
}
