package session

import (
	"context"
	"errors"
	"fmt"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/internal/gate"
	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/upstream"
)

// Store makes c the mount's config, with prov its provider and key the fingerprint key: the
// config is stored, then the account takes the mount's place, with no session write of the
// account it replaces landing in between. checked is the config check's login (nil: none
// made); its token becomes the session, so that the first read costs no login. clearHold ends
// the credentials hold, but only once the config is stored: a write that fails keeps the
// hold. The caller holds the mount's config lock.
func (b *Slot) Store(ctx context.Context, s logical.Storage, c *Config, prov upstream.Provider, key []byte, checked *upstream.Token, clearHold bool) error {
	next := b.newAccount(c, prov, key)
	prevAcct, err := b.replaceAccount(ctx, s, next, func(w gate.Write, s logical.Storage, sameAccount bool) error {
		switch {
		case checked == nil && sameAccount: // its stored session (in either format) still serves
			if err := next.load(ctx, s); err != nil {
				return err
			}
		case checked == nil: // another account: the stored session is not its own, the hold is the mount's
			h, err := ReadHold(ctx, s)
			if err != nil {
				return err
			}
			next.setHold(h)
		}
		undo, err := putConfig(ctx, s, c)
		if err != nil {
			return err
		}
		if clearHold { // only now that the config is stored; a failure puts the old one back
			if err := writeHold(ctx, s, Hold{}); err != nil {
				if uerr := undo(); uerr != nil {
					return errors.Join(err, fmt.Errorf("the new config stays stored, held: %w", uerr))
				}
				return err
			}
			next.setHold(Hold{})
		}
		// The config is stored: the write succeeded. What fails from here is logged, not
		// returned; a record left behind is never served (its account's fingerprint differs).
		drop := legacyRecordKeys
		if !sameAccount { // the replaced account's session is nobody's now
			drop = append([]string{sessionKey}, drop...)
		}
		for _, k := range drop {
			if err := s.Delete(ctx, k); err != nil {
				b.Logger().Warn("could not delete a record of the replaced config; the new config is stored", "key", k, "error", err)
			}
		}
		var serr error
		if checked != nil { // the check's login is a good session: the first read costs no login
			serr = next.keep(ctx, s, checked, w.Read())
		} else if t := next.Current(); t != nil { // stored again in the current format
			serr = writeSession(ctx, s, next.fingerprint, t)
		}
		if serr != nil {
			b.Logger().Warn("could not store the session; the next read logs in", "error", serr)
		}
		return nil
	})
	if err != nil {
		return err
	}
	b.register(prov, c.MaxAuthPerMinute)
	b.endSession(ctx, prevAcct, next.fingerprint)
	return nil
}

// Delete removes the mount's config and every record of its account (deleteAccount). The
// stored TOTP step too: a step from a node whose clock ran fast would otherwise outlive every
// rewrite. This process's own record of the account still protects a quick rewrite until its
// step is past. The caller holds the mount's config lock.
func (b *Slot) Delete(ctx context.Context, s logical.Storage) error {
	prev, err := b.replaceAccount(ctx, s, nil, func(_ gate.Write, s logical.Storage, _ bool) error {
		return deleteAccount(ctx, s)
	})
	if err != nil {
		return err
	}
	b.unregister()
	b.endSession(ctx, prev, "")
	return nil
}

// CountCheck records how a config write's login check ended in the stored hold, for a write
// that is not (yet) storing its config. The count is read again and written under the session
// gate's write lock: a reader's refusal that was stored while the check was upstream counts
// too, rather than being overwritten by a count read before the check. The loaded account
// keeps the result in memory. The caller holds configMu.
func (b *Slot) CountCheck(ctx context.Context, s logical.Storage, err error, max int) error {
	return b.sessionGate.WithWrite(func(gate.Write) error {
		s := boundedStorage{s, b.StorageTimeout}
		h, rerr := ReadHold(ctx, s)
		if rerr != nil {
			return rerr
		}
		h, changed := h.next(err, max, b.Clock.Now())
		if !changed {
			return nil
		}
		if werr := writeHold(ctx, s, h); werr != nil {
			return werr
		}
		if a, _ := b.Loaded(); a != nil {
			a.setHold(h)
		}
		return nil
	})
}
