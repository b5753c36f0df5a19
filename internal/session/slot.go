package session

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"

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
//	backend.configMu → Slot.loadMu → Slot.sessionGate → Slot.mu → Account.mu
//	                                                     Slot.mu → upstream.Limiters.mu, then upstream.TOTPSteps.mu (never both at once)
//
//   - backend.configMu (the root package's): config writes, deletes and rotate run one at a
//     time per mount (a one-slot channel: a wait for it ends with the caller's context).
//     Held across storage I/O and the verify login on purpose: two writes that interleave
//     could lose a field or store a session of the wrong account. Store, Delete, Rotate and
//     CountCheck are called under it.
//   - Slot.loadMu: one load of the account from storage at a time, so that concurrent cold
//     reads build one account, not one each. Held across storage reads on purpose; reads of a
//     loaded account never take it.
//   - Slot.sessionGate (internal/gate: its holders carry a proof): session and hold writes
//     (read lock, withSessionWrite) against account swaps and config checks' hold counts
//     (write lock, replaceAccount, Reset, CountCheck), so that a slow session write of a
//     replaced account never lands after the change. Held across that one storage write on
//     purpose (and the hold's, and a config change's writes), each bounded by StorageTimeout
//     (boundedStorage), so that a hung storage cannot hold it, and config writes, forever.
//   - Slot.mu: the loaded account and its generation. Never held across I/O.
//   - Account.mu: the session's state in memory. Never held across I/O or a wait.
//   - backend.checks.mu (the root package's check spacing), a leaf: short, in memory, never
//     across I/O; taken under configMu or by a rotate's shared call after its request ended.
//   - upstream.Limiters.mu, upstream.TOTPSteps.mu: short, in memory, never across I/O or a
//     wait (limiter.go, totp.go). A TOTP wait for the next step releases its lock first.
//
// No upstream call holds any of them: refreshes and logins run in the account's
// singleflight, and every wait ends with its caller's context.

// Slot is a mount's place for its upstream account: the account loaded from storage (or
// none), replaced by a config write, dropped by a delete, an invalidation or Clean, and the
// locks that keep it straight (their order is above).
type Slot struct {
	Deps

	loadMu      sync.Mutex // one load of the account from storage at a time: see the lock order above
	sessionGate gate.Gate  // session and hold writes against account swaps: see the lock order above

	mu   sync.RWMutex
	acct *Account // nil until first use after (re)configuration
	gen  uint64   // counts account swaps, so that a load that raced one is not installed

	cleaned atomic.Bool // the mount was disabled or the plugin stopped: never load or register again
}

// Deps are what a mount's slot takes from its backend and process.
type Deps struct {
	MountID        string // the mount's name for the process's host limiters
	Clock          upstream.Clock
	Limiters       *upstream.Limiters  // the process's host budgets
	TOTPSteps      *upstream.TOTPSteps // the process's record of TOTP steps per account
	StorageTimeout time.Duration       // bounds each storage operation under the session gate (0: DefaultStorageTimeout)
	Logger         func() hclog.Logger
	Writable       func() bool // whether this node may write storage (and so log in)
	Counters       Counters
	// DialCheck is upstream.Deps.DialCheck for every provider the slot builds: nil in
	// production; tests set one that fails them on a dial to anything but loopback.
	DialCheck func(address string) error
}

// NewSlot is an empty slot: the account loads on first use.
func NewSlot(d Deps) *Slot {
	if d.StorageTimeout == 0 {
		d.StorageTimeout = DefaultStorageTimeout
	}
	return &Slot{Deps: d}
}

// ErrCleaned refuses a load after the mount was disabled or the plugin stopped.
var ErrCleaned = errors.New("this mount is being disabled")

// Clean ends the slot: its account goes, it never loads another, and its budget and TOTP
// account no longer count in the process.
func (b *Slot) Clean() {
	b.cleaned.Store(true)
	b.Reset()
	b.unregister()
}

// register records the mount's budget on p's host and the mount on p's TOTP account.
func (b *Slot) register(p upstream.Provider, perMinute int) {
	now := b.Clock.Now()
	b.Limiters.Register(b.MountID, p, perMinute, now)
	b.TOTPSteps.Register(b.MountID, p, now)
}

// unregister takes the mount off its host's budget and its TOTP account.
func (b *Slot) unregister() {
	now := b.Clock.Now()
	b.Limiters.Unregister(b.MountID, now)
	b.TOTPSteps.Unregister(b.MountID, now)
}

// Cleaned says whether Clean ran.
func (b *Slot) Cleaned() bool { return b.cleaned.Load() }

// SessionWriteWouldWait says whether a session write would wait at the session gate now: a
// config change holds it or waits for it. For tests that must see a config write queued
// behind a held session write before they go on.
func (b *Slot) SessionWriteWouldWait() bool { return b.sessionGate.ReaderWouldWait() }

func (b *Slot) newAccount(cfg *Config, p upstream.Provider, fingerprintKey []byte) *Account {
	return &Account{
		cfg:            cfg,
		prov:           p,
		fingerprint:    cfg.Fingerprint(fingerprintKey),
		legacy:         cfg.LegacyAccount,
		gate:           &b.sessionGate,
		storageTimeout: b.StorageTimeout,
		writable:       b.Writable,
		clock:          b.Clock,
		logger:         b.Logger().With("provider", cfg.Provider),
		counters:       b.Counters,
	}
}

// Account returns the mount's Account, loading config and stored session on first use.
// It returns nil, nil when the mount has no config yet.
func (b *Slot) Account(ctx context.Context, s logical.Storage) (*Account, error) {
	if a, _ := b.Loaded(); a != nil {
		return a, nil
	}
	b.loadMu.Lock()
	defer b.loadMu.Unlock()
	for range 3 { // a config change may swap accounts while this one loads: load again
		a, gen := b.Loaded()
		if a != nil {
			return a, nil
		}
		if b.cleaned.Load() {
			return nil, ErrCleaned
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

// Loaded is the Loaded account (nil: none) and the generation it belongs to.
func (b *Slot) Loaded() (*Account, uint64) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.acct, b.gen
}

// install makes a the mount's account and registers its budget, unless accounts were swapped
// since generation gen (a's config may be gone).
func (b *Slot) install(a *Account, gen uint64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.gen != gen || b.acct != nil {
		return false
	}
	b.acct = a
	b.register(a.prov, a.cfg.MaxAuthPerMinute)
	return true
}

// loadAccount builds the account from storage: config, fingerprint key, provider, session and
// hold. It returns nil, nil when the mount has no config yet.
func (b *Slot) loadAccount(ctx context.Context, s logical.Storage) (*Account, error) {
	cfg, err := ReadConfig(ctx, s)
	if err != nil || cfg == nil {
		return nil, err
	}
	key, err := ReadFingerprintKey(ctx, s, b.Writable())
	if err != nil {
		return nil, err
	}
	p, err := b.NewProvider(ctx, s, cfg)
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

// swap makes next the mount's account (nil: none) and returns the one it replaces, closed so
// that it never writes its session again.
func (b *Slot) swap(w gate.Write, next *Account) *Account {
	w.Check(&b.sessionGate)
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

// Reset drops the in-memory account so the next use reloads it from storage.
func (b *Slot) Reset() {
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
func (b *Slot) replaceAccount(ctx context.Context, s logical.Storage, next *Account, write func(w gate.Write, s logical.Storage, sameAccount bool) error) (*Account, error) {
	prev, err := b.Account(ctx, s)
	if err != nil {
		b.Logger().Warn("the current config could not be loaded; replacing it", "error", err)
	}
	err = b.sessionGate.WithWrite(func(w gate.Write) error {
		b.swap(w, nil)
		if err := write(w, boundedStorage{s, b.StorageTimeout}, next != nil && prev != nil && prev.fingerprint == next.fingerprint); err != nil {
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
func (b *Slot) endSession(ctx context.Context, prev *Account, nextFingerprint string) {
	if prev == nil {
		return
	}
	defer prev.prov.Close()
	if prev.fingerprint == nextFingerprint {
		return
	}
	if t := prev.Current(); prev.Usable(t) {
		ctx, cancel := context.WithTimeout(ctx, prev.cfg.RequestTimeout())
		defer cancel()
		if err := prev.prov.Logout(ctx, t.Value); err != nil && !errors.Is(err, upstream.ErrNoLogout) {
			prev.logger.Warn("upstream logout failed; the token will expire on its own", "error", err)
		}
	}
}

// NewProvider builds cfg's provider, told which TOTP step was used last by any node.
func (b *Slot) NewProvider(ctx context.Context, s logical.Storage, cfg *Config) (upstream.Provider, error) {
	p, err := upstream.New(cfg.upstreamConfig(), upstream.Deps{Clock: b.Clock, Limiters: b.Limiters,
		TOTPSteps: b.TOTPSteps, Observe: b.Counters.ObserveUpstream, AuthSent: b.Counters.AuthSent, DialCheck: b.DialCheck})
	if err != nil {
		return nil, err
	}
	if st := p.TOTP(); st != nil {
		step, err := readTOTPStep(ctx, s)
		if err != nil {
			return nil, err
		}
		if step > 0 { // no step stored: leave the process's record (if any) as it is
			st.SkipTOTPStepsThrough(step)
		}
	}
	return p, nil
}
