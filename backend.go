// Package sessiontoken is a Vault secrets engine that keeps one upstream login session per
// mount and serves its short-lived token as a lease whose TTL is the token's remaining life.
package sessiontoken

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/internal/session"
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
	clock   upstream.Clock
	mountID string        // this mount's name for the process's host limiters, where it registers its budget
	metrics *mountMetrics // this mount's registry and counters (metrics.go): kept across config writes
	answers atomic.Value  // what reads return for the account's current token: read.go's answer, built once per token

	// configMu runs config writes, deletes and rotate one at a time (a one-slot lock, so that
	// a wait for it ends with the caller's context: lockConfig).
	configMu chan struct{}
	// slot is the mount's upstream account: loaded from storage on first use, replaced by a
	// config write (internal/session; the lock order is in its slot.go).
	slot *session.Slot
	// After a failed login check or rotate, the same login is not tried again until its
	// retry time (login_check.go).
	checks checkSpacing
}

// Factory is the plugin's logical.Factory.
func Factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	b := newBackend(upstream.RealClock{}, upstream.SharedLimiters, upstream.SharedTOTPSteps)
	if err := b.Setup(ctx, conf); err != nil {
		return nil, err
	}
	warnIfVaultUntested(ctx, conf.System, b.Logger(), &vaultVersionWarned)
	return b, nil
}

func newBackend(clock upstream.Clock, limiters *upstream.Limiters, steps *upstream.TOTPSteps) *backend {
	b := &backend{clock: clock, mountID: randomID(),
		configMu: make(chan struct{}, 1), checks: checkSpacing{clock: clock}}
	b.Backend = &framework.Backend{
		Help:        strings.TrimSpace(backendHelp),
		BackendType: logical.TypeLogical,
		PathsSpecial: &logical.Paths{
			SealWrapStorage: session.SealWrapped,
		},
		Paths:          []*framework.Path{b.pathConfig(), b.pathToken(), b.pathStaticToken(), b.pathStatus(), b.pathRotate(), b.pathMetrics()},
		Secrets:        []*framework.Secret{b.tokenSecret()},
		Invalidate:     b.invalidate,
		PeriodicFunc:   b.periodic,
		Clean:          b.clean,
		RunningVersion: Version,
	}
	b.metrics = newMountMetrics()
	b.slot = session.NewSlot(session.Deps{MountID: b.mountID, Clock: clock, Limiters: limiters, TOTPSteps: steps,
		Logger: b.Logger, Writable: b.WriteSafeReplicationState, Counters: b.metrics})
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
	if slices.Contains(session.ReloadKeys, key) {
		b.slot.Reset()
	}
}

// clean runs when the mount is disabled or the plugin stops: its budget no longer counts.
func (b *backend) clean(context.Context) {
	b.slot.Clean()
}

// periodic refreshes the shared session ahead of expiry so readers rarely wait upstream,
// while the mount is read (keepsWarm). Vault calls it about once a minute; only a node that
// can write storage refreshes.
func (b *backend) periodic(ctx context.Context, req *logical.Request) error {
	if !b.WriteSafeReplicationState() || b.slot.Cleaned() {
		return nil
	}
	a, err := b.slot.Account(ctx, req.Storage)
	if err != nil || a == nil {
		return err
	}
	if !b.keepsWarm(a, a.Current(), b.clock.Now()) {
		return nil // no session, or no reader within keep_warm: it lapses, and never by a login from here
	}
	return a.RefreshAhead(startedBy(ctx, authByPeriodic), req.Storage)
}

// keepsWarm says whether the periodic run keeps a's session t (nil: none) warm at now: this
// node runs it, and a read or renewal came within keep_warm. An idle mount then costs the
// upstream nothing (its instance's login limit is shared with people); the next reader
// refreshes or logs in.
func (b *backend) keepsWarm(a *session.Account, t *upstream.Token, now time.Time) bool {
	served := b.metrics.servedAt()
	return t != nil && b.WriteSafeReplicationState() && !served.IsZero() && now.Sub(served) < a.Config().KeepWarm(t)
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
