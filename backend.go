// Package sessiontoken is a Vault secrets engine that keeps one upstream login session per
// mount and serves its short-lived token as a lease whose TTL is the token's remaining life.
package sessiontoken

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/internal/gate"
	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/upstream"
)

const backendHelp = `
The sessiontoken secrets engine stores an upstream service account's credentials once
(write-only, at config) and serves the upstream's short-lived session token (at token) as a
lease whose TTL is the token's remaining life. One upstream session per mount is shared by
every reader and refreshed ahead of expiry; renewing a lease in the token's last third hands
out the refreshed token.
`

// backend is one mount.
type backend struct {
	*framework.Backend
	clock    upstream.Clock
	limiters *upstream.Limiters
	mountID  string                     // this mount's name for the process's host limiters, where it registers its budget
	metrics  *mountMetrics              // this mount's registry and counters (metrics.go): kept across config writes
	answers  atomic.Pointer[readAnswer] // what reads return for the account's current token (read.go)
	// dialCheck is upstream.Deps.DialCheck for every provider this mount builds: nil in
	// production; tests set one that fails them on a dial to anything but loopback.
	dialCheck func(address string) error

	// configMu runs config writes and deletes one at a time. sessionGate orders session
	// writes against them: an account stores its session under the read lock and only while
	// it is not closed, and a config change swaps accounts under the write lock, so a slow
	// session write of the replaced account can never land after the change.
	configMu    chan struct{} // a one-slot lock, so that a wait for it ends with the caller's context: lockConfig
	sessionGate gate.Gate
	// After a failed login check or rotate, the same login is not tried again until its
	// retry time (login_check.go).
	checks checkSpacing

	storageTimeout time.Duration // each storage operation under sessionGate: defaultStorageTimeout

	loadMu sync.Mutex // one load of the account from storage at a time: see account.go

	mu   sync.RWMutex
	acct *account // nil until first use after (re)configuration
	gen  uint64   // counts account swaps, so that a load that raced one is not installed

	cleaned atomic.Bool // the mount was disabled or the plugin stopped: never load or register again

	// lastServed is when this node last handled a token or static-token read or a lease
	// renewal (Unix ns; 0: none since the process started). The periodic run keeps the
	// session warm only within keep_warm of it. It is the mount's, not the account's: a
	// config write that keeps the account keeps it warm.
	lastServed atomic.Int64
}

// Factory is the plugin's logical.Factory.
func Factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	b := newBackend(upstream.RealClock{}, upstream.SharedLimiters)
	if err := b.Setup(ctx, conf); err != nil {
		return nil, err
	}
	warnIfVaultUntested(ctx, conf.System, b.Logger(), &vaultVersionWarned)
	return b, nil
}

func newBackend(clock upstream.Clock, limiters *upstream.Limiters) *backend {
	b := &backend{clock: clock, limiters: limiters, mountID: randomID(), storageTimeout: defaultStorageTimeout,
		configMu: make(chan struct{}, 1), checks: checkSpacing{clock: clock}}
	b.Backend = &framework.Backend{
		Help:        strings.TrimSpace(backendHelp),
		BackendType: logical.TypeLogical,
		PathsSpecial: &logical.Paths{
			SealWrapStorage: sealWrapped,
		},
		Paths:          []*framework.Path{b.pathConfig(), b.pathToken(), b.pathStaticToken(), b.pathStatus(), b.pathRotate(), b.pathMetrics()},
		Secrets:        []*framework.Secret{b.tokenSecret()},
		Invalidate:     b.invalidate,
		PeriodicFunc:   b.periodic,
		Clean:          b.clean,
		RunningVersion: Version,
	}
	b.metrics = newMountMetrics()
	b.registerStateGauges()
	return b
}

func randomID() string {
	var r [12]byte
	_, _ = rand.Read(r[:])
	return hex.EncodeToString(r[:])
}

// invalidate runs on other nodes when a key changes, so they reload what the writer wrote.
func (b *backend) invalidate(_ context.Context, key string) {
	if slices.Contains(reloadKeys, key) {
		b.reset()
	}
}

// clean runs when the mount is disabled or the plugin stops: its budget no longer counts.
func (b *backend) clean(context.Context) {
	b.cleaned.Store(true)
	b.reset()
	b.limiters.Unregister(b.mountID, b.clock.Now())
}

var errCleaned = errors.New("this mount is being disabled")

// periodic refreshes the shared session ahead of expiry so readers rarely wait upstream,
// while the mount is read (keepsWarm). Vault calls it about once a minute; only a node that
// can write storage refreshes.
func (b *backend) periodic(ctx context.Context, req *logical.Request) error {
	if !b.WriteSafeReplicationState() || b.cleaned.Load() {
		return nil
	}
	a, err := b.account(ctx, req.Storage)
	if err != nil || a == nil {
		return err
	}
	if !b.keepsWarm(a, a.current(), b.clock.Now()) {
		return nil // no session, or no reader within keep_warm: it lapses, and never by a login from here
	}
	return a.refreshAhead(startedBy(ctx, authByPeriodic), req.Storage)
}

// noteServed records a token or static-token read or a lease renewal, failed ones included.
func (b *backend) noteServed() { b.lastServed.Store(b.clock.Now().UnixNano()) }

// servedAt is when this node last served a read or renewal (zero: not since it started).
func (b *backend) servedAt() time.Time {
	if ns := b.lastServed.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// keepsWarm says whether the periodic run keeps a's session t (nil: none) warm at now: this
// node runs it, and a read or renewal came within keep_warm. An idle mount then costs the
// upstream nothing (its instance's login limit is shared with people); the next reader
// refreshes or logs in.
func (b *backend) keepsWarm(a *account, t *upstream.Token, now time.Time) bool {
	served := b.servedAt()
	return t != nil && b.WriteSafeReplicationState() && !served.IsZero() && now.Sub(served) < a.cfg.keepWarm(t)
}

// lockConfig takes configMu, or gives up when ctx ends first: a rotate holds it across its
// login upstream (up to its bound), and a config write or delete whose client gave up must not
// wait that long. It returns the unlock.
func (b *backend) lockConfig(ctx context.Context) (func(), error) {
	select {
	case b.configMu <- struct{}{}:
		return func() { <-b.configMu }, nil
	case <-ctx.Done():
		return nil, logical.CodedError(http.StatusServiceUnavailable,
			"not done: another config change or rotate on this mount was still in progress when the request ended; retry")
	}
}
