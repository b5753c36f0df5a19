package sessiontoken

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/sync/singleflight"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/internal/gate"
	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/upstream"
)

// The mount's upstream account: its lifecycle (loaded from storage on first use, replaced
// by a config write, dropped by a delete, an invalidation or Clean) and the locks that keep
// it straight.
//
// Locks, in the only order they are ever taken (a lock is taken only while holding locks to
// its left, never the other way round):
//
//	backend.configMu → backend.loadMu → backend.sessionGate → backend.mu → account.mu
//	                                                          backend.mu → upstream.Limiters.mu → upstream.TOTPSteps.mu
//
//   - backend.configMu: config writes, deletes and rotate run one at a time per mount (a
//     one-slot channel: a wait for it ends with the caller's context, lockConfig). Held
//     across storage I/O and the verify login on purpose: two writes that interleave could
//     lose a field or store a session of the wrong account.
//   - backend.loadMu: one load of the account from storage at a time, so that concurrent cold
//     reads build one account, not one each. Held across storage reads on purpose; reads of a
//     loaded account never take it.
//   - backend.sessionGate (internal/gate: its holders carry a proof): session and hold writes
//     (read lock, withSessionWrite) against account swaps and config checks' hold counts
//     (write lock, replaceAccount, reset, countCheck), so that a slow session write of a replaced
//     account never lands after the change. Held across that one storage write on purpose
//     (and the hold's, and a config change's writes), each bounded by storageTimeout
//     (boundedStorage), so that a hung storage cannot hold it, and config writes, forever.
//   - backend.mu: the loaded account and its generation. Never held across I/O.
//   - account.mu: the session's state in memory. Never held across I/O or a wait.
//   - backend.checks.mu: the check spacing (login_check.go), a leaf: short, in memory, never across
//     I/O; taken under configMu or by a rotate's shared call after its request ended.
//   - upstream.Limiters.mu, upstream.TOTPSteps.mu: short, in memory, never across I/O or a
//     wait (limiter.go, totp.go). A TOTP wait for the next step releases its lock first.
//
// No upstream call holds any of them: refreshes and logins run in the account's
// singleflight, and every wait ends with its caller's context.

// account is a mount's upstream account and its one shared session.
type account struct {
	cfg            *config
	prov           upstream.Provider
	fingerprint    string        // the upstream account's: see config.fingerprint
	legacy         string        // its v0.1.0 fingerprint, while the account is the one v0.1.0 configured
	gate           *gate.Gate    // the backend's sessionGate
	storageTimeout time.Duration // bounds each storage operation under the gate
	writable       func() bool   // whether this node may write storage (and so log in)
	clock          upstream.Clock
	logger         hclog.Logger
	sf             singleflight.Group
	closed         atomic.Bool   // replaced by a config change: must not write its session any more
	metrics        *mountMetrics // the mount's, which outlive the account

	mu          sync.Mutex
	tok         *upstream.Token
	lastRefresh time.Time
	lastErr     error
	lastErrAt   time.Time
	retryAt     time.Time
	failures    int
	hold        credentialsHold // see hold.go
}

func (b *backend) newAccount(cfg *config, p upstream.Provider, fingerprintKey []byte) *account {
	return &account{cfg: cfg, prov: p, fingerprint: cfg.fingerprint(fingerprintKey), legacy: cfg.LegacyAccount,
		gate: &b.sessionGate, storageTimeout: b.storageTimeout, writable: b.WriteSafeReplicationState, clock: b.clock, logger: b.Logger().With("provider", cfg.Provider),
		metrics: b.metrics}
}

// owns says whether a session or lease stamped with fingerprint belongs to this account.
func (a *account) owns(fingerprint string) bool {
	return fingerprint == a.fingerprint || (a.legacy != "" && fingerprint == a.legacy)
}

// load reads the stored session, so a restart or leader change costs no login. A session
// that belongs to another account than the config's is never served.
func (a *account) load(ctx context.Context, s logical.Storage) error {
	h, err := readHold(ctx, s)
	if err != nil {
		return err
	}
	a.setHold(h)
	t, stamp, err := readSession(ctx, s, a.clock.Now())

	var newer *newerFormatError
	switch {
	case errors.As(err, &newer):
		return err // never misread a newer format: fail closed
	case err != nil:
		a.logger.Warn("the stored session is not used; the next read logs in again", "reason", err)
		return nil
	case t == nil:
		return nil
	case !a.owns(stamp):
		a.logger.Warn("stored session belongs to another upstream account than the config; the next read logs in again")
		return nil
	}
	a.mu.Lock()
	a.tok = t
	a.mu.Unlock()
	return nil
}

// accountState is a consistent copy of what status and metrics show about an account.
type accountState struct {
	tok                             *upstream.Token
	lastRefresh, lastErrAt, retryAt time.Time
	lastErr                         error
	failures                        int // failed attempts since the last success
	hold                            credentialsHold
}

func (a *account) snapshot() accountState {
	a.mu.Lock()
	defer a.mu.Unlock()
	return accountState{tok: a.tok, lastRefresh: a.lastRefresh, lastErrAt: a.lastErrAt, retryAt: a.retryAt,
		lastErr: a.lastErr, failures: a.failures, hold: a.hold}
}

func (a *account) current() *upstream.Token {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.tok
}

// account returns the mount's account, loading config and stored session on first use.
// It returns nil, nil when the mount has no config yet.
func (b *backend) account(ctx context.Context, s logical.Storage) (*account, error) {
	if a, _ := b.loaded(); a != nil {
		return a, nil
	}
	b.loadMu.Lock()
	defer b.loadMu.Unlock()
	for range 3 { // a config change may swap accounts while this one loads: load again
		a, gen := b.loaded()
		if a != nil {
			return a, nil
		}
		if b.cleaned.Load() {
			return nil, errCleaned
		}
		a, err := b.loadAccount(ctx, s)
		if err != nil || a == nil {
			return nil, err
		}
		if b.install(a, gen) {
			return a, nil
		}
		a.prov.Close()
	}
	return nil, errors.New("the mount's config kept changing while it loaded; try again")
}

// loaded is the loaded account (nil: none) and the generation it belongs to.
func (b *backend) loaded() (*account, uint64) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.acct, b.gen
}

// install makes a the mount's account and registers its budget, unless accounts were swapped
// since generation gen (a's config may be gone).
func (b *backend) install(a *account, gen uint64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.gen != gen || b.acct != nil {
		return false
	}
	b.acct = a
	b.limiters.Register(b.mountID, a.prov, a.cfg.MaxAuthPerMinute, b.clock.Now())
	return true
}

// loadAccount builds the account from storage: config, fingerprint key, provider, session and
// hold. It returns nil, nil when the mount has no config yet.
func (b *backend) loadAccount(ctx context.Context, s logical.Storage) (*account, error) {
	cfg, err := readConfig(ctx, s)
	if err != nil || cfg == nil {
		return nil, err
	}
	key, err := readFingerprintKey(ctx, s, b.WriteSafeReplicationState())
	if err != nil {
		return nil, err
	}
	p, err := b.newProvider(ctx, s, cfg)
	if err != nil { // e.g. a v0.1.0 login_body that uses template features no longer run
		return nil, fmt.Errorf("the stored config cannot be used: %w; write config again with that field fixed", err)
	}
	a := b.newAccount(cfg, p, key)
	if err := a.load(ctx, s); err != nil {
		p.Close()
		return nil, err
	}
	return a, nil
}

// The session gate (internal/gate) hands a proof to whoever holds it: swap takes only a write
// proof, keep a read proof, and each checks the proof is live (gate.go says what the compiler
// checks and what the run does).

// withSessionWrite runs fn under the session gate of account a (its read lock: a's session
// and hold writes against account swaps), with s bounded (boundedStorage): a hung write must
// not hold the gate forever.
func (a *account) withSessionWrite(s logical.Storage, fn func(r gate.Read, s logical.Storage) error) error {
	return a.gate.WithRead(func(r gate.Read) error { return fn(r, boundedStorage{s, a.storageTimeout}) })
}

// swap makes next the mount's account (nil: none) and returns the one it replaces, closed so
// that it never writes its session again.
func (b *backend) swap(w gate.Write, next *account) *account {
	w.Check()
	b.mu.Lock()
	defer b.mu.Unlock()
	prev := b.acct
	if prev != nil {
		prev.closed.Store(true)
	}
	b.acct = next
	b.gen++
	return prev
}

// reset drops the in-memory account so the next use reloads it from storage.
func (b *backend) reset() {
	_ = b.sessionGate.WithWrite(func(w gate.Write) error {
		if prev := b.swap(w, nil); prev != nil {
			prev.prov.Close()
		}
		return nil
	})
}

// replaceAccount makes next the mount's account (nil: none) with no session write of the
// account it replaces landing in between: under the session gate it closes the current
// account and runs write, each storage operation bounded (boundedStorage: the gate is held
// meanwhile). write is told whether next is the same upstream account as the replaced one
// (false when none was loaded): if not, write drops the replaced account's stored session,
// once its own change is stored, so that a write that fails leaves that session in place. It
// returns the replaced account, if one was loaded.
func (b *backend) replaceAccount(ctx context.Context, s logical.Storage, next *account, write func(w gate.Write, s logical.Storage, sameAccount bool) error) (*account, error) {
	prev, err := b.account(ctx, s)
	if err != nil {
		b.Logger().Warn("the current config could not be loaded; replacing it", "error", err)
	}
	err = b.sessionGate.WithWrite(func(w gate.Write) error {
		b.swap(w, nil)
		if err := write(w, boundedStorage{s, b.storageTimeout}, next != nil && prev != nil && prev.fingerprint == next.fingerprint); err != nil {
			return err
		}
		b.swap(w, next)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return prev, nil
}

// endSession lets go of a replaced account. Only when the upstream account itself changed
// (or the config was deleted) is its session logged out, where the provider has a logout:
// a write that keeps the account (min_ttl, a new password) must not kill the token that
// outstanding leases still hold.
func (b *backend) endSession(ctx context.Context, prev *account, nextFingerprint string) {
	if prev == nil {
		return
	}
	defer prev.prov.Close()
	if prev.fingerprint == nextFingerprint {
		return
	}
	if t := prev.current(); prev.usable(t) {
		ctx, cancel := context.WithTimeout(ctx, prev.cfg.requestTimeout())
		defer cancel()
		if err := prev.prov.Logout(ctx, t.Value); err != nil {
			prev.logger.Warn("upstream logout failed; the token will expire on its own", "error", err)
		}
	}
}
