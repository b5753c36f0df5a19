package sessiontoken

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/internal/session"
	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/sim"
)

// A day of readers and periodic runs against credentials upstream refuses costs the account
// exactly max_refused_logins refused logins, not the ~12 an hour a backoff alone allows.
func TestHoldStopsLoginsForADay(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(false))
	e.read("token", nil)
	revokeDemoPassword(e)
	e.sim.Forget() // the refresh is refused too: every path to a new token is a login
	for minute := 0; minute < 24*60; minute++ {
		e.clock.Advance(time.Minute)
		_ = e.b.PeriodicFunc(context.Background(), &logical.Request{Storage: e.s})
		_, _ = e.do(logical.ReadOperation, "token", nil)
	}
	if st := e.sim.Stats(sim.PlexTrac); st.LoginFailures != session.DefaultMaxRefusedLogins {
		t.Fatalf("refused logins in 24 h: %d, want %d", st.LoginFailures, session.DefaultMaxRefusedLogins)
	}
	if n := strings.Count(e.logs.String(), "[ERROR] holding"); n != 1 {
		t.Errorf("the change to held was logged %d times at error level, want once", n)
	}
	status := e.read("status", nil).Data
	if status["health"] != "held" {
		t.Errorf("status health %v, want held", status["health"])
	}
}

// The count and the hold are stored: a reload (invalidation, plugin restart, failover) keeps
// them, so a new process does not get three fresh tries.
func TestHoldSurvivesAReload(t *testing.T) {
	e := newEnv(t)
	e.write("config", with(e.plextracConfig(false), "max_refused_logins", 2))
	revokeDemoPassword(e)
	e.clock.Advance(15 * time.Minute) // the session expired: the next read logs in
	e.readFailure("token")            // refused once
	e.b.slot.Reset()
	e.clock.Advance(10 * time.Minute)
	e.readFailure("token") // twice: held
	restarted, _, _ := e.newMount(e.s, nil)
	e.b = restarted
	before := e.sim.Stats(sim.PlexTrac).LoginFailures
	for range 5 {
		e.clock.Advance(10 * time.Minute)
		if code, msg := e.readFailure("token"); code != 503 || !strings.Contains(msg, "refused the stored credentials 2 times") {
			t.Fatalf("after a restart: %d %q", code, msg)
		}
	}
	if n := e.sim.Stats(sim.PlexTrac).LoginFailures - before; n != 0 {
		t.Fatalf("a restarted process logged in %d times while held", n)
	}
}

// heldAfterOneRefusal is a mount with max_refused_logins 1 whose password upstream changed,
// held after the read that was refused.
func heldAfterOneRefusal(t *testing.T) *env {
	e := newEnv(t)
	e.write("config", with(e.plextracConfig(false), "max_refused_logins", 1))
	revokeDemoPassword(e)
	e.clock.Advance(15 * time.Minute)
	e.readFailure("token") // refused: held
	return e
}

// While held, a config write without credentials stores its change and does not log in; one
// with credentials makes one attempt, which counts.
func TestConfigWritesWhileHeld(t *testing.T) {
	e := heldAfterOneRefusal(t)
	before := e.sim.Stats(sim.PlexTrac)
	resp := e.write("config", map[string]any{"min_ttl": 120})
	if len(resp.Warnings) == 0 || !strings.Contains(resp.Warnings[0], "without a login check") {
		t.Fatalf("a write without credentials while held: warnings %v", resp.Warnings)
	}
	if c := e.read("config", nil).Data; c["min_ttl"] != 120 {
		t.Fatal("the change was not stored")
	}
	r, _ := e.do(logical.UpdateOperation, "config", map[string]any{"password": "still-wrong"})
	if !r.IsError() {
		t.Fatal("a wrong password was stored")
	}
	after := e.sim.Stats(sim.PlexTrac)
	if after.AuthCalls-before.AuthCalls != 1 {
		t.Fatalf("writes while held made %d upstream calls, want 1 (the write with credentials)", after.AuthCalls-before.AuthCalls)
	}
	if h, _ := session.ReadHold(context.Background(), e.s); !h.Held || h.Refused != 2 {
		t.Fatalf("hold after a refused attempt: %+v, want held with 2 refusals", h)
	}
	e.sim.AddDemoUsers() // fixed upstream
	e.clock.Advance(time.Minute)
	e.write("config", map[string]any{"password": sim.DemoPlexTracPassword})
	if h, _ := session.ReadHold(context.Background(), e.s); h.Held || h.Refused != 0 {
		t.Fatalf("hold after a good login: %+v", h)
	}
	e.read("token", nil)
}

// Credentials written without a login check while held are an operator's fix: the count
// starts over and the next read logs in with them.
func TestNewCredentialsWithoutACheckEndTheHold(t *testing.T) {
	e := heldAfterOneRefusal(t)
	e.sim.AddDemoUsers() // fixed upstream
	e.write("config", map[string]any{"password": sim.DemoPlexTracPassword, "verify": false})
	if h, _ := session.ReadHold(context.Background(), e.s); h != (session.Hold{}) {
		t.Fatalf("hold after new credentials: %+v, want none", h)
	}
	e.read("token", nil) // logs in
	if h := e.read("status", nil).Data["health"]; h != "ok" {
		t.Errorf("status health %v, want ok", h)
	}
}

// A config write whose login check upstream refuses stores no config, but upstream counted
// the refusal towards the user's lockout: the mount still serving the stored config holds
// at once (status says so) instead of spending another login to find out.
func TestRefusedLoginCheckCountsForTheLoadedMount(t *testing.T) {
	e := newEnv(t)
	e.write("config", with(e.plextracConfig(false), "max_refused_logins", 1))
	e.read("token", nil)
	if r, _ := e.do(logical.UpdateOperation, "config", map[string]any{"password": "wrong"}); !r.IsError() {
		t.Fatal("a wrong password passed the login check")
	}
	if h := e.read("status", nil).Data["health"]; h != "held" {
		t.Fatalf("status health %v after a refused check reached max_refused_logins, want held", h)
	}
}

// unstorable is storage that fails every write of one key.
type unstorable struct {
	logical.Storage
	key string
}

func (s unstorable) Put(ctx context.Context, e *logical.StorageEntry) error {
	if e.Key == s.key {
		return errors.New("storage unavailable")
	}
	return s.Storage.Put(ctx, e)
}

// A hold that cannot be stored is kept in memory with a warning: the reader is told what
// upstream said, not that storage failed, and the mount holds.
func TestAHoldThatCannotBeStoredIsKeptInMemory(t *testing.T) {
	e := newEnv(t)
	e.b, e.s, e.logs = e.newMount(unstorable{&logical.InmemStorage{}, holdKey}, nil)
	e.write("config", with(e.plextracConfig(false), "max_refused_logins", 1))
	revokeDemoPassword(e)
	e.clock.Advance(15 * time.Minute)
	if _, msg := e.readFailure("token"); strings.Contains(msg, "storage unavailable") || !strings.Contains(msg, "plextrac") {
		t.Fatalf("the reader was told %q, want what upstream said", msg)
	}
	if !strings.Contains(e.logs.String(), "could not store the credentials hold") {
		t.Error("no warning that the hold was not stored")
	}
	if h := e.read("status", nil).Data["health"]; h != "held" {
		t.Errorf("status health %v, want held", h)
	}
}

// Refreshing a still-valid token is not a credential login: it goes on while held.
func TestRefreshGoesOnWhileHeld(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(false))
	first := e.read("token", nil).Data["token"]
	held, err := logical.StorageEntryJSON(holdKey, session.Hold{Format: 1, Refused: 3, Held: true, Reason: "test", At: e.clock.Now()})
	if err != nil || e.s.Put(context.Background(), held) != nil {
		t.Fatal(err)
	}
	e.b.slot.Reset() // as another node's hold reaches this one (invalidate): loaded with the session
	e.clock.Advance(11 * time.Minute)
	if got := e.read("token", nil); got.Data["token"] == first || len(got.Warnings) != 0 {
		t.Fatalf("a valid token was not refreshed while held: %v", got.Warnings)
	}
}

// MFA required and no totp_secret: no retry can fix it, so the mount holds at once, without
// counting a refused login.
func TestMisconfiguredMFAHoldsAtOnce(t *testing.T) {
	e := newEnv(t)
	e.write("config", with(e.plextracConfig(false), "username", sim.DemoPlexTracUser, "verify", false))
	code, msg := e.readFailure("token")
	if code != 502 || !strings.Contains(msg, "requires MFA") {
		t.Fatalf("%d %q", code, msg)
	}
	h, _ := session.ReadHold(context.Background(), e.s)
	if !h.Held || h.Refused != 0 {
		t.Fatalf("hold %+v, want held with no refusal counted", h)
	}
	e.clock.Advance(10 * time.Minute)
	if code, msg := e.readFailure("token"); code != 503 || !strings.Contains(msg, "cannot log in") {
		t.Fatalf("%d %q", code, msg)
	}
}

// stallPath holds the first upstream call to path: it closes arrived when that call comes in
// and passes it on when release is closed. Later calls go straight through.
func stallPath(path string, arrived, release chan struct{}) func(http.Handler) http.Handler {
	var once sync.Once
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == path {
				once.Do(func() { close(arrived); <-release })
			}
			next.ServeHTTP(w, r)
		})
	}
}

// oldPasswordInFlight is a mount (max_refused_logins 1, on the storage wrap makes of its own
// when wrap is given) whose password upstream has just changed to "rotated-elsewhere", with a
// reader's login with the old one stalled upstream: closing release lets upstream refuse it,
// and reading is closed once that read has ended.
func oldPasswordInFlight(t *testing.T, wrap func(logical.Storage) logical.Storage) (e *env, release, reading chan struct{}) {
	arrived := make(chan struct{})
	release, reading = make(chan struct{}), make(chan struct{})
	e = newEnvWrapped(t, stallPath("/api/v1/authenticate", arrived, release))
	if wrap != nil {
		e.s = wrap(e.s)
	}
	e.write("config", with(e.plextracConfig(false), "max_refused_logins", 1, "verify", false))
	revokeDemoPassword(e) // upstream now takes only "rotated-elsewhere"
	go func() {
		defer close(reading)
		_, _ = e.do(logical.ReadOperation, "token", nil)
	}()
	<-arrived
	return e, release, reading
}

// A replaced account's refusal holds nothing. A reader's login with the old password is in
// flight when the operator writes the right one (verify=false); upstream then refuses the old
// login. That refusal is the replaced account's: it holds nothing and counts nothing, so
// after a restart the mount logs in with the new, correct password instead of answering 503.
func TestReplacedAccountsRefusalHoldsNothing(t *testing.T) {
	e, release, reading := oldPasswordInFlight(t, nil)
	e.write("config", map[string]any{"password": "rotated-elsewhere", "verify": false})
	close(release) // upstream refuses the old password
	<-reading
	if h, _ := session.ReadHold(context.Background(), e.s); h != (session.Hold{}) {
		t.Fatalf("the replaced account's refusal was stored: %+v", h)
	}
	restarted, _, _ := e.newMount(e.s, nil)
	e.b = restarted
	if resp, err := e.do(logical.ReadOperation, "token", nil); err != nil || resp.IsError() || resp.Data["token"] == nil {
		code, msg := failure(t, resp, err)
		t.Fatalf("after a restart the mount with the right password answers %d %q", code, msg)
	}
}

// A config write that supplies credentials ends the hold only once the
// config is stored. When storing the config fails, the hold stays (stored and in memory), and
// the old credentials are not tried: a failed write stores nothing.
func TestAFailedConfigWriteKeepsTheHold(t *testing.T) {
	for _, verify := range []bool{false, true} {
		e := heldAfterOneRefusal(t)
		e.sim.AddDemoUsers() // the stored password works again upstream
		e.s = unstorable{e.s, configKey}
		e.clock.Advance(time.Minute)
		resp, err := e.do(logical.UpdateOperation, "config", map[string]any{"password": sim.DemoPlexTracPassword, "verify": verify})
		if err == nil && !resp.IsError() {
			t.Fatalf("verify=%v: the config write succeeded on storage that fails it", verify)
		}
		if h, _ := session.ReadHold(context.Background(), e.s); !h.Held {
			t.Fatalf("verify=%v: the hold is gone after a config write that stored nothing: %+v", verify, h)
		}
		before := e.sim.Stats(sim.PlexTrac).AuthCalls
		for _, b := range []*backend{e.b, func() *backend { r, _, _ := e.newMount(e.s, nil); return r }()} {
			e.b = b
			e.clock.Advance(10 * time.Minute)
			if code, _ := e.readFailure("token"); code != 503 {
				t.Fatalf("verify=%v: a read after the failed write answered %d, want 503 (held)", verify, code)
			}
		}
		if n := e.sim.Stats(sim.PlexTrac).AuthCalls - before; n != 0 {
			t.Fatalf("verify=%v: the old credentials were tried %d times after the failed write", verify, n)
		}
	}
}

// Issue 35: an upstream error that says nothing about the credentials (a refused connection,
// a 5xx, a 429) keeps the count of refused logins as it is, neither raising nor resetting it.
// With the default of 3: refused, refused, an outage, refused → held. A flapping upstream must
// not keep a wrong password from ever holding.
func TestARefusalCountSurvivesAnOutage(t *testing.T) {
	fault := func(f sim.Fault) func(*env) { return func(e *env) { e.sim.AddFault(f) } }
	for _, outage := range []struct {
		name       string
		start, end func(e *env)
		code       int
	}{
		{"connection refused", (*env).upstreamDown, (*env).upstreamUp, 504},
		{"503", fault(sim.Fault{Provider: sim.PlexTrac, Status: 503, Times: 1}), func(*env) {}, 502},
		{"429", fault(sim.Fault{Provider: sim.PlexTrac, Status: 429, RetryAfter: "5", Times: 1}), func(*env) {}, 429},
	} {
		t.Run(outage.name, func(t *testing.T) {
			e := newEnv(t)
			e.write("config", e.plextracConfig(false))
			revokeDemoPassword(e)
			e.clock.Advance(15 * time.Minute) // the session expired: each read logs in
			refusals := func(want int, what string) {
				t.Helper()
				if h, _ := session.ReadHold(context.Background(), e.s); h.Refused != want || h.Held != (want >= session.DefaultMaxRefusedLogins) {
					t.Fatalf("after %s: %+v, want %d refusals", what, h, want)
				}
			}
			for i := 1; i <= 2; i++ {
				e.clock.Advance(10 * time.Minute) // past the backoff
				e.readFailure("token")
				refusals(i, "a refused login")
			}
			outage.start(e)
			e.clock.Advance(10 * time.Minute)
			if code, _ := e.readFailure("token"); code != outage.code {
				t.Fatalf("read during the outage: %d, want %d", code, outage.code)
			}
			refusals(2, "the outage")
			outage.end(e)
			e.clock.Advance(10 * time.Minute)
			e.readFailure("token")
			refusals(3, "a third refused login")
			e.clock.Advance(10 * time.Minute)
			if code, msg := e.readFailure("token"); code != 503 || !strings.Contains(msg, "3 times in a row") {
				t.Fatalf("after three refusals around an outage: %d %q, want 503 (held)", code, msg)
			}
		})
	}
}

// A replaced account's login records nothing about the credentials,
// but still the TOTP step it sent, so that no process resends that code. Here the node ran
// 30 s fast (within the step tolerated) and the next login is another process's, a step
// behind: only the stored record keeps it from resending the code.
func TestReplacedAccountsLoginStillRecordsItsTOTPStep(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	e := newEnvWrapped(t, stallPath("/api/v1/authenticate/mfa", arrived, release))
	fast := e.anotherProcess(offsetClock{e.clock, 30 * time.Second}, false)
	fast.write("config", with(e.plextracConfig(true), "verify", false))
	reading := make(chan struct{})
	go func() { // its MFA code is sent, and stalled upstream
		defer close(reading)
		_, _ = fast.do(logical.ReadOperation, "token", nil)
	}()
	<-arrived
	fast.write("config", map[string]any{"password": sim.DemoPlexTracPassword, "verify": false}) // replaces the account
	close(release)
	<-reading
	mfa := e.sim.Stats(sim.PlexTrac).MFA
	e.write("config", map[string]any{"min_ttl": 240}) // this node's login check, at once
	if st := e.sim.Stats(sim.PlexTrac); st.MFAFailures != 0 || st.MFA != mfa+1 {
		t.Fatalf("the replaced account's TOTP step was not stored: its code was sent again: %+v", st)
	}
}

// pausingStorage, once armed, pauses the next read of key after reading it: paused is closed
// then, and the read returns what it read when resume is closed.
type pausingStorage struct {
	logical.Storage
	key            string
	armed          atomic.Bool
	paused, resume chan struct{}
}

func (s *pausingStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	e, err := s.Storage.Get(ctx, key)
	if key == s.key && s.armed.CompareAndSwap(true, false) {
		close(s.paused)
		<-s.resume
	}
	return e, err
}

// A replaced account's refusal holds nothing, also in the narrower window where it lands
// after the config write read the hold and before it swapped the account. Credentials the
// write supplies end whatever hold is stored when the write lands, so the refusal still
// holds nothing.
func TestARefusalDuringTheConfigWriteHoldsNothing(t *testing.T) {
	var ps *pausingStorage
	e, release, reading := oldPasswordInFlight(t, func(s logical.Storage) logical.Storage {
		ps = &pausingStorage{Storage: s, key: holdKey, paused: make(chan struct{}), resume: make(chan struct{})}
		return ps
	})
	ps.armed.Store(true)
	writing := make(chan *logical.Response, 1)
	go func() {
		resp, _ := e.do(logical.UpdateOperation, "config", map[string]any{"password": "rotated-elsewhere", "verify": false})
		writing <- resp
	}()
	<-ps.paused    // the write has read the hold: none yet
	close(release) // upstream refuses the old password, before the write swaps the account
	<-reading
	close(ps.resume)
	if resp := <-writing; resp.IsError() {
		t.Fatalf("config write: %s", errText(resp))
	}
	if h, _ := session.ReadHold(context.Background(), e.s); h != (session.Hold{}) {
		t.Fatalf("the old password's refusal holds the new one: %+v", h)
	}
	e.read("token", nil)
}

// Issue 33, defect 1: a refusal the provider signals in its own form counts toward the hold
// whatever the HTTP status says: Plaspy's success:false under HTTP 400 (as after its key is
// regenerated), PlexTrac's statusCode 401 under HTTP 200, a PlexTrac MFA code refused with 422.
// Six hours of readers and periodic runs cost exactly max_refused_logins refused logins.
func TestRefusalsInTheProvidersOwnFormHold(t *testing.T) {
	for _, tc := range []struct {
		name   string
		config func(*env) map[string]any
		fault  sim.Fault
	}{
		{"plaspy success:false under 400", (*env).plaspyConfig, sim.Fault{Provider: sim.Plaspy, Op: "login", Body: "refusal", Status: 400}},
		{"plextrac statusCode 401 under 200", func(e *env) map[string]any { return e.plextracConfig(false) },
			sim.Fault{Provider: sim.PlexTrac, Op: "login", Body: "refusal", Status: 200}},
		{"plextrac mfa code refused with 422", func(e *env) map[string]any { return e.plextracConfig(true) },
			sim.Fault{Provider: sim.PlexTrac, Op: "mfa", Body: "refusal", Status: 422}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.write("config", tc.config(e))
			e.read("token", nil)
			e.sim.AddFault(tc.fault)
			e.sim.Forget() // the refresh is refused too: every path to a new token is a login
			for minute := 0; minute < 6*60; minute++ {
				e.clock.Advance(time.Minute)
				_ = e.b.PeriodicFunc(context.Background(), &logical.Request{Storage: e.s})
				_, _ = e.do(logical.ReadOperation, "token", nil)
			}
			if st := e.sim.Stats(tc.fault.Provider); st.Faults != session.DefaultMaxRefusedLogins {
				t.Errorf("refused answers in 6 h: %d, want %d", st.Faults, session.DefaultMaxRefusedLogins)
			}
			if status := e.read("status", nil).Data; status["health"] != "held" {
				t.Errorf("status health %v, want held", status["health"])
			}
		})
	}
}

// A config write's refused login check and a reader's refused login that lands while the check
// is upstream both count: the check's refusal is added to the stored count under the session
// gate, not written over it from a count read before its login. With max_refused_logins=2 the
// mount holds after the two, so the next reader sends no third refused login.
func TestARefusedCheckCountsBesideAReadersRefusal(t *testing.T) {
	arrived, release := make(chan struct{}), make(chan struct{})
	var n atomic.Int64
	e := newEnvWrapped(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/api/v1/authenticate" && n.Add(1) == 1 { // only the first login stalls
				close(arrived)
				<-release
			}
			next.ServeHTTP(w, r)
		})
	})
	cfg := with(e.plextracConfig(false), "max_refused_logins", 2)
	e.write("config", with(cfg, "verify", false))
	n.Store(0)
	revokeDemoPassword(e) // the stored password is refused from now on
	writing := make(chan struct{})
	go func() {
		defer close(writing)
		_, _ = e.do(logical.UpdateOperation, "config", with(cfg, "password", "also-wrong")) // its check stalls upstream
	}()
	<-arrived
	_, _ = e.do(logical.ReadOperation, "token", nil) // a reader's login with the stored password: refused, counted
	close(release)                                   // the check is refused too
	<-writing
	if n := e.sim.Stats(sim.PlexTrac).LoginFailures; n != 2 {
		t.Fatalf("setup: %d refused logins, want 2", n)
	}
	h, err := session.ReadHold(context.Background(), e.s)
	if err != nil {
		t.Fatal(err)
	}
	if h.Refused != 2 || !h.Held {
		t.Fatalf("stored hold after 2 refused logins with max_refused_logins=2: refused=%d held=%v, want refused=2 held=true", h.Refused, h.Held)
	}
}

// A config write that supplies the right password to a held mount, and cannot clear the hold,
// fails and stores nothing: the old config is put back. Otherwise the operator is told the
// write failed while the new password is stored, and the mount holds it (a 503 blaming
// credentials it never tried).
func TestAWriteThatCannotEndTheHoldStoresNothing(t *testing.T) {
	e := newEnv(t)
	mem := &logical.InmemStorage{}
	e.b, e.s, e.logs = e.newMount(mem, nil)
	cfg := with(e.plextracConfig(false), "max_refused_logins", 1)
	e.write("config", with(cfg, "verify", false))
	revokeDemoPassword(e)
	_, _ = e.do(logical.ReadOperation, "token", nil) // refused: held
	if h, _ := session.ReadHold(context.Background(), mem); !h.Held {
		t.Fatal("setup: not held")
	}
	e.b, e.s, e.logs = e.newMount(undeletable{mem, holdKey}, nil)
	resp, err := e.do(logical.UpdateOperation, "config", map[string]any{"password": "rotated-elsewhere", "verify": false})
	if err == nil && (resp == nil || !resp.IsError()) {
		t.Fatal("setup: the write succeeded")
	}
	c, _ := session.ReadConfig(context.Background(), mem)
	if c.Password == "rotated-elsewhere" {
		t.Fatalf("the write failed (%v), yet the new password is stored (and the mount still holds: %v)", err, func() bool { h, _ := session.ReadHold(context.Background(), mem); return h.Held }())
	}
	if msg := fmt.Sprint(err) + errText(resp); strings.Contains(msg, "stays stored") {
		t.Fatalf("the old config was put back, yet the error says the new one stays stored: %s", msg)
	}
}
