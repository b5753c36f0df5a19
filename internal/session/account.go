package session

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/sync/singleflight"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/internal/gate"
	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/upstream"
)

// Account is a mount's upstream account and its one shared session.
type Account struct {
	cfg            *Config
	prov           upstream.Provider
	fingerprint    string        // the upstream account's: see Config.Fingerprint
	legacy         string        // its v0.1.0 fingerprint, while the account is the one v0.1.0 configured
	gate           *gate.Gate    // the slot's sessionGate
	storageTimeout time.Duration // bounds each storage operation under the gate
	writable       func() bool   // whether this node may write storage (and so log in)
	clock          upstream.Clock
	logger         hclog.Logger
	sf             singleflight.Group
	closed         atomic.Bool // replaced by a config change: must not write its session any more
	counters       Counters    // the mount's, which outlive the account

	mu          sync.Mutex
	tok         *upstream.Token
	lastRefresh time.Time
	lastErr     error
	lastErrAt   time.Time
	retryAt     time.Time
	failures    int
	hold        Hold // see hold.go
}

// Owns says whether a session or lease stamped with fingerprint belongs to this account.
func (a *Account) Owns(fingerprint string) bool {
	return fingerprint == a.fingerprint || (a.legacy != "" && fingerprint == a.legacy)
}

// load reads the stored session, so a restart or leader change costs no login. A session
// that belongs to another account than the config's is never served.
func (a *Account) load(ctx context.Context, s logical.Storage) error {
	h, err := ReadHold(ctx, s)
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
	case !a.Owns(stamp):
		a.logger.Warn("stored session belongs to another upstream account than the config; the next read logs in again")
		return nil
	}
	a.mu.Lock()
	a.tok = t
	a.mu.Unlock()
	return nil
}

// State is a consistent copy of what status and metrics show about an account.
type State struct {
	Token                           *upstream.Token
	LastRefresh, LastErrAt, RetryAt time.Time
	LastErr                         error
	Failures                        int // failed attempts since the last success
	Hold                            Hold
}

func (a *Account) Snapshot() State {
	a.mu.Lock()
	defer a.mu.Unlock()
	return State{
		Token:       a.tok,
		LastRefresh: a.lastRefresh,
		LastErrAt:   a.lastErrAt,
		RetryAt:     a.retryAt,
		LastErr:     a.lastErr,
		Failures:    a.failures,
		Hold:        a.hold,
	}
}

// The session gate (internal/gate) hands a proof to whoever holds it: swap takes only a write
// proof, keep a read proof, and each checks the proof is live (gate.go says what the compiler
// checks and what the run does).

// withSessionWrite runs fn under the session gate of account a (its read lock: a's session
// and hold writes against account swaps), with s bounded (boundedStorage): a hung write must
// not hold the gate forever.
func (a *Account) withSessionWrite(s logical.Storage, fn func(r gate.Read, s logical.Storage) error) error {
	return a.gate.WithRead(func(r gate.Read) error { return fn(r, boundedStorage{s, a.storageTimeout}) })
}

// Config is the account's config; read only.
func (a *Account) Config() *Config { return a.cfg }

// Provider is the account's upstream provider.
func (a *Account) Provider() upstream.Provider { return a.prov }

// ID is the account's fingerprint, which its session and its leases are stamped with.
func (a *Account) ID() string { return a.fingerprint }

func (a *Account) holdState() Hold {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.hold
}

func (a *Account) setHold(h Hold) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.hold = h
}

func (a *Account) Usable(t *upstream.Token) bool { return servable(t, a.clock.Now()) }

// Counters are the mount's metrics that an account adds to: they live on the mount, which
// outlives every account a config write replaces.
type Counters interface {
	// Waited counts a read or renewal that waited on an upstream call.
	Waited()
	// ObserveUpstream is upstream.Deps.Observe: how an upstream call ended.
	ObserveUpstream(op, outcome string)
	// AuthSent is upstream.Deps.AuthSent: an auth call left for the upstream.
	AuthSent(ctx context.Context)
}
