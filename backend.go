// Package sessiontoken is a Vault secrets engine that keeps one upstream login session per
// mount and serves its short-lived token as a lease whose TTL is the token's remaining life.
package sessiontoken

import (
	"context"
	"strings"
	"sync"

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

	mu   sync.RWMutex
	acct *account // nil until first use after (re)configuration
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
	b := &backend{clock: clock, limiters: limiters}
	b.Backend = &framework.Backend{
		Help:        strings.TrimSpace(backendHelp),
		BackendType: logical.TypeLogical,
		PathsSpecial: &logical.Paths{
			SealWrapStorage: []string{configKey, sessionKey},
		},
		Paths:          []*framework.Path{b.pathConfig(), b.pathToken(), b.pathStaticToken(), b.pathStatus()},
		Secrets:        []*framework.Secret{b.tokenSecret()},
		Invalidate:     b.invalidate,
		PeriodicFunc:   b.periodic,
		Clean:          b.clean,
		RunningVersion: Version,
	}
	return b
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
	cfg, err := readConfig(ctx, s)
	if err != nil || cfg == nil {
		return nil, err
	}
	p, err := b.newProvider(ctx, s, cfg)
	if err != nil {
		return nil, err
	}
	a = b.newAccount(cfg, p)
	if err := a.load(ctx, s); err != nil {
		return nil, err
	}
	b.acct = a
	return a, nil
}

// install makes a freshly configured account current, with the session its config check got.
func (b *backend) install(ctx context.Context, s logical.Storage, a *account, tok *upstream.Token) {
	b.reset()
	b.mu.Lock()
	b.acct = a
	b.mu.Unlock()
	if tok != nil {
		a.store(ctx, s, tok)
	}
}

// reset drops the in-memory account so the next use reloads it from storage.
func (b *backend) reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.acct != nil {
		b.acct.closed.Store(true)
		b.acct.prov.HTTP().Close()
	}
	b.acct = nil
}

// dropSession ends the mount's upstream session because its config is being replaced or
// deleted: a provider with a logout (generic logout_path) is logged out, errors only logged.
func (b *backend) dropSession(ctx context.Context, s logical.Storage) {
	if a, err := b.account(ctx, s); err == nil && a != nil {
		a.closed.Store(true)
		if t := a.current(); a.usable(t) {
			ctx, cancel := context.WithTimeout(ctx, a.cfg.RequestTimeout)
			if err := a.prov.Logout(ctx, t.Value); err != nil {
				a.logger.Warn("upstream logout failed; the token will expire on its own", "error", err)
			}
			cancel()
		}
	}
	b.reset()
}

// invalidate runs on other nodes when a key changes, so they reload what the writer wrote.
func (b *backend) invalidate(_ context.Context, key string) {
	if key == configKey || key == sessionKey {
		b.reset()
	}
}

func (b *backend) clean(context.Context) { b.reset() }

// periodic refreshes the shared session ahead of expiry so readers rarely wait upstream.
// Vault calls it about once a minute; only a node that can write storage refreshes.
func (b *backend) periodic(ctx context.Context, req *logical.Request) error {
	if !b.WriteSafeReplicationState() {
		return nil
	}
	a, err := b.account(ctx, req.Storage)
	if err != nil || a == nil {
		return err
	}
	return a.refreshAhead(ctx, req.Storage)
}
