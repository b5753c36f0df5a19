package session

import (
	"context"
	"encoding/json"

	"github.com/hashicorp/vault/sdk/logical"
)

// ReadConfig returns the mount's config (nil when there is none), upgraded from whatever
// format it was stored in.
func ReadConfig(ctx context.Context, s logical.Storage) (*Config, error) {
	e, err := s.Get(ctx, configKey)
	if err != nil {
		return nil, err
	}
	if e != nil {
		if _, err := storedVersion("config", e.Value, configVersion); err != nil {
			return nil, err
		}
		var c Config
		if err := json.Unmarshal(e.Value, &c); err != nil {
			return nil, errUnreadable("config", err)
		}
		return &c, nil
	}
	return readConfigV010(ctx, s)
}

// putConfig stores c in the current format. It returns undo, which puts back what was stored
// at configKey before (or removes c, when nothing was): a config write that fails after this
// Put must not leave c stored.
func putConfig(ctx context.Context, s logical.Storage, c *Config) (undo func() error, err error) {
	old, err := s.Get(ctx, configKey)
	if err != nil {
		return nil, err
	}
	c.Format = configVersion
	entry, err := logical.StorageEntryJSON(configKey, c)
	if err != nil {
		return nil, err
	}
	entry.SealWrap = true
	if err := s.Put(ctx, entry); err != nil {
		return nil, err
	}
	return func() error {
		if old == nil {
			return s.Delete(ctx, configKey)
		}
		return s.Put(ctx, old)
	}, nil
}

// deleteAccount removes every record of the mount's account, in both formats: a config delete
// ends the account, and what is left of it must not outlive it. Leases of the account then
// never renew after a rewrite (the fingerprint key goes too), and a record this binary cannot
// read goes with the rest, so "delete config and write it again" always works. The order fails
// closed when a delete stops halfway: the fingerprint key first (a config left behind gets a
// new key, so no lease of before renews and no stored session is served), then the sessions,
// then the config, and the TOTP steps and the hold last, so that they outlive the config they
// protect, never the other way round.
func deleteAccount(ctx context.Context, s logical.Storage) error {
	for _, k := range []string{fingerprintKeyKey, sessionKey, legacySessionKey, configKey, legacyConfigKey, totpStepKey, legacyTOTPStepKey, holdKey} {
		if err := s.Delete(ctx, k); err != nil {
			return err
		}
	}
	return nil
}
