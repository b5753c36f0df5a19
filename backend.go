// Package sessiontoken is a Vault secrets engine that keeps one upstream login session per
// mount and serves its short-lived token as a lease whose TTL is the token's remaining life.
package sessiontoken

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/upstream"
)

// Version is the plugin's semantic version, set at build time with
// -ldflags "-X github.com/sessiontoken/vault-plugin-secrets-sessiontoken.Version=v0.1.0".
var Version = "v0.1.0-dev"

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
	mountID  string        // this mount's name for the process's host limiters, where it registers its budget
	metrics  *mountMetrics // this mount's registry and counters (metrics.go): kept across config writes

	// configMu runs config writes and deletes one at a time. sessionGate orders session
	// writes against them: an account stores its session under the read lock and only while
	// it is not closed, and a config change swaps accounts under the write lock, so a slow
	// session write of the replaced account can never land after the change.
	configMu    sync.Mutex
	sessionGate sync.RWMutex
	// After a failed login check, the same config is not checked again until checkRetryAt
	// (see noteCheck). Guarded by configMu.
	checkFailed   string
	checkFailures int
	checkRetryAt  time.Time

	mu   sync.RWMutex
	acct *account // nil until first use after (re)configuration

	cleaned atomic.Bool // the mount was disabled or the plugin stopped: never load or register again
}

// Factory is the plugin's logical.Factory.
func Factory(ctx context.Context, conf *logical.BackendConfig) (logical.Backend, error) {
	b := newBackend(upstream.RealClock{}, upstream.SharedLimiters)
	if err := b.Setup(ctx, conf); err != nil {
		return nil, err
	}
	return b, nil
}

func newBackend(clock upstream.Clock, limiters *upstream.Limiters) *backend {
	b := &backend{clock: clock, limiters: limiters, mountID: randomID()}
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
	b.metrics = newMountMetrics(b)
	return b
}

func randomID() string {
	var r [12]byte
	_, _ = rand.Read(r[:])
	return hex.EncodeToString(r[:])
}

// account returns the mount's account, loading config and stored session on first use.
// It returns nil, nil when the mount has no config yet.
func (b *backend) account(ctx context.Context, s logical.Storage) (*account, error) {
	b.mu.RLock()
	a := b.acct
	b.mu.RUnlock()
	if a != nil {
		return a, nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.acct != nil {
		return b.acct, nil
	}
	if b.cleaned.Load() {
		return nil, errCleaned
	}
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
	a = b.newAccount(cfg, p, key)
	if err := a.load(ctx, s); err != nil {
		return nil, err
	}
	b.limiters.Register(b.mountID, p, cfg.MaxAuthPerMinute, b.clock.Now())
	b.acct = a
	return a, nil
}

// swap makes next the mount's account (nil: none) and returns the one it replaces, closed so
// that it never writes its session again. The caller holds sessionGate's write lock.
func (b *backend) swap(next *account) *account {
	b.mu.Lock()
	defer b.mu.Unlock()
	prev := b.acct
	if prev != nil {
		prev.closed.Store(true)
	}
	b.acct = next
	return prev
}

// reset drops the in-memory account so the next use reloads it from storage.
func (b *backend) reset() {
	b.sessionGate.Lock()
	defer b.sessionGate.Unlock()
	if prev := b.swap(nil); prev != nil {
		prev.prov.HTTP().Close()
	}
}

// invalidate runs on other nodes when a key changes, so they reload what the writer wrote.
func (b *backend) invalidate(_ context.Context, key string) {
	switch key {
	case configKey, sessionKey, fingerprintKeyKey, holdKey, legacyConfigKey, legacySessionKey:
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

// periodic refreshes the shared session ahead of expiry so readers rarely wait upstream.
// Vault calls it about once a minute; only a node that can write storage refreshes.
func (b *backend) periodic(ctx context.Context, req *logical.Request) error {
	if !b.WriteSafeReplicationState() || b.cleaned.Load() {
		return nil
	}
	a, err := b.account(ctx, req.Storage)
	if err != nil || a == nil {
		return err
	}
	return a.refreshAhead(ctx, req.Storage)
}
