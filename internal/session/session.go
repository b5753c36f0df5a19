package session

import (
	"context"
	"errors"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/internal/gate"
	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/upstream"
)

// Current is the shared session's token (nil: none).
func (a *Account) Current() *upstream.Token {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.tok
}

// minTTL is the configured min_ttl: the least life a read wants left by default.
func (a *Account) minTTL() time.Duration { return time.Duration(a.cfg.MinTTLSeconds) * time.Second }

// GetForRead is Get for a read that wants want of life left on its token (the configured
// min_ttl when want is negative): it returns the token and the floor it was read with
// (ReadFloor, which caps want at the token's last share of life), refreshing first when the
// token has less.
func (a *Account) GetForRead(ctx context.Context, s logical.Storage, want time.Duration) (*upstream.Token, time.Duration, error) {
	if want < 0 {
		want = a.minTTL()
	}
	t, err := a.Get(ctx, s, func(t *upstream.Token) bool { return t.ExpiresAt.Sub(a.clock.Now()) >= ReadFloor(t, want) })
	if t == nil {
		return nil, 0, err
	}
	return t, ReadFloor(t, want), err
}

// Get returns the shared token when good(token) holds; otherwise it refreshes first, with
// one upstream call for all concurrent callers. When the refresh fails and the shared token
// is still usable, that token is returned along with the error, for the caller to decide.
func (a *Account) Get(ctx context.Context, s logical.Storage, good func(*upstream.Token) bool) (*upstream.Token, error) {
	seen := a.Current()
	if seen != nil && good(seen) {
		return seen, nil
	}
	if !a.writable() {
		// A performance standby or secondary must not log in by itself: that would spend the
		// host's budget per node and may resend a TOTP code. Vault forwards the request to
		// the node that can write.
		return nil, logical.ErrReadOnly
	}
	a.counters.Waited()
	t, err := a.refresh(ctx, s, seen)
	if err != nil {
		if cur := a.Current(); a.Usable(cur) && !errors.Is(err, logical.ErrReadOnly) {
			return cur, err
		}
		return nil, err
	}
	return t, nil
}

// refresh replaces seen with a new token; concurrent callers share one upstream call, and a
// caller that saw a token already replaced gets the replacement without another call. A
// caller whose request ends stops waiting at once; the refresh goes on for the others.
func (a *Account) refresh(ctx context.Context, s logical.Storage, seen *upstream.Token) (*upstream.Token, error) {
	ch := a.sf.DoChan("refresh", func() (any, error) {
		if cur := a.Current(); cur != seen && a.Usable(cur) {
			return cur, nil
		}
		ctx, cancel := a.sharedCallContext(ctx)
		defer cancel()
		return a.refreshOrLogin(ctx, s)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return sharedToken(r.Val), nil
	case <-ctx.Done():
		return nil, &upstream.Error{
			Provider: a.cfg.Provider,
			Host:     a.prov.Host(),
			Op:       "refresh",
			Kind:     upstream.KindUnavailable,
			Msg:      "this request ended while waiting for the upstream (" + ctx.Err().Error() + "); the refresh goes on",
			Hint:     "read again shortly",
		}
	}
}

// sharedCallContext is the context of a shared upstream call (a refresh, login or rotate that
// readers join): not the request's that started it, which may end while others wait on the
// call, but bounded by what the call can take: its upstream calls (a refresh, then a login's
// password and MFA steps: request_timeout each), one TOTP step's wait, and its storage writes
// (the TOTP step, the hold, the session: the storage bound each). With the defaults, 90 s.
func (a *Account) sharedCallContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 3*a.cfg.RequestTimeout()+totpStep+3*a.storageTimeout)
}

// sharedToken is the token a shared call's value holds: a refresh's token, or a rotation's new one.
func sharedToken(v any) *upstream.Token {
	if r, ok := v.(rotation); ok {
		return r.next
	}
	return v.(*upstream.Token)
}

// refreshOrLogin: the provider's refresh while the token is valid, a full login (with MFA)
// when there is no refresh or upstream refuses it.
func (a *Account) refreshOrLogin(ctx context.Context, s logical.Storage) (*upstream.Token, error) {
	a.mu.Lock()
	if now := a.clock.Now(); now.Before(a.retryAt) {
		err := a.lastErr
		a.mu.Unlock()
		return nil, err
	}
	cur := a.tok
	a.mu.Unlock()

	var t *upstream.Token
	var err error
	if a.Usable(cur) {
		t, err = a.prov.Refresh(ctx, cur)
		if upstream.IsKind(err, upstream.KindRejected) {
			a.logger.Info("upstream refused the refresh; logging in again", "error", err)
		}
		if errors.Is(err, upstream.ErrNoRefresh) || upstream.IsKind(err, upstream.KindRejected) {
			t, err = a.login(ctx, s, false)
		}
	} else {
		t, err = a.login(ctx, s, false)
	}
	if err == nil && a.Usable(cur) && !t.ExpiresAt.After(cur.ExpiresAt) {
		// Not better than what is served: counted as a failure, so the backoff keeps readers
		// and lease holders from asking again on every read and draining the host's budget.
		err = &upstream.Error{
			Provider: a.cfg.Provider,
			Host:     a.prov.Host(),
			Op:       t.ObtainedBy,
			Kind:     upstream.KindBadResponse,
			Msg:      "upstream answered with a token that expires at " + t.ExpiresAt.UTC().Format(time.RFC3339) + ", no later than the current one",
			Hint:     "the current token is served until it expires",
		}
	}
	if err != nil {
		return nil, a.noteFailure(err)
	}
	if err := a.store(ctx, s, t); err != nil {
		return nil, err
	}
	return t, nil
}

// login logs in with the account's credentials, unless the mount holds them (hold.go);
// force is rotate's one attempt, which the hold does not stop.
func (a *Account) login(ctx context.Context, s logical.Storage, force bool) (*upstream.Token, error) {
	if h := a.holdState(); h.Held && !force {
		a.counters.ObserveUpstream(upstream.OpLogin, string(upstream.KindHeld)) // not sent: counted as held
		return nil, h.heldError(a.cfg.Provider, a.prov.Host())
	}
	t, err := a.prov.Login(ctx)
	if serr := SaveTOTPStep(ctx, s, a.prov); errors.Is(serr, logical.ErrReadOnly) {
		return nil, serr
	} else if serr != nil {
		a.logger.Warn("could not store the last TOTP step", "error", serr)
	}
	if herr := a.noteLogin(ctx, s, err); herr != nil {
		return nil, herr
	}
	return t, err
}

// noteFailure starts or doubles the backoff and returns err carrying the time to retry.
func (a *Account) noteFailure(err error) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.clock.Now()
	a.failures++
	a.retryAt = now.Add(FailureBackoff(a.failures))
	if e, ok := upstream.AsError(err); ok && e.Kind == upstream.KindHeld {
		a.lastErr, a.lastErrAt = err, now // held: nothing to retry until an operator acts
		return err
	} else if ok {
		if e.RetryAt.After(a.retryAt) {
			a.retryAt = e.RetryAt
		}
		cp := *e
		cp.RetryAt = a.retryAt
		err = &cp
	}
	a.lastErr, a.lastErrAt = err, now
	a.logger.Warn("upstream session refresh failed", "error", err, "failures", a.failures)
	return err
}

// store makes t the shared session, in memory and in storage (encrypted by Vault's barrier),
// unless the account was replaced by a config change: then t is nobody's session.
func (a *Account) store(ctx context.Context, s logical.Storage, t *upstream.Token) error {
	return a.withSessionWrite(s, func(r gate.Read, s logical.Storage) error {
		if a.closed.Load() {
			return nil
		}
		return a.keep(ctx, s, t, r)
	})
}

// keep is store for a caller that holds the gate already (the config write that swaps in
// this account).
func (a *Account) keep(ctx context.Context, s logical.Storage, t *upstream.Token, r gate.Read) error {
	r.Check(a.gate)
	now := a.clock.Now()
	if t.ObtainedAt.IsZero() {
		t.ObtainedAt = now
	}
	if err := writeSession(ctx, s, a.fingerprint, t); errors.Is(err, logical.ErrReadOnly) {
		return err // Vault forwards the request to the node that can write
	} else if err != nil {
		// Served from memory meanwhile; a node that loads later logs in again.
		a.logger.Warn("could not store the upstream session", "error", err)
	}
	a.mu.Lock()
	a.tok, a.lastRefresh, a.failures, a.retryAt = t, now, 0, time.Time{}
	a.mu.Unlock()
	a.logger.Info("upstream session refreshed", "by", t.ObtainedBy, "expires_at", t.ExpiresAt.UTC().Format(time.RFC3339))
	return nil
}

// RefreshAhead refreshes the session when readers would soon need a newer one.
func (a *Account) RefreshAhead(ctx context.Context, s logical.Storage) error {
	t := a.Current()
	if t == nil {
		return nil // no session yet: the first read logs in
	}
	if t.ExpiresAt.Sub(a.clock.Now()) > lookAhead(t, ReadFloor(t, a.minTTL())) {
		return nil
	}
	if _, err := a.refresh(ctx, s, t); err != nil {
		a.logger.Debug("periodic refresh did not succeed; readers keep the current token while it is valid")
	}
	return nil
}

// noteLogin records how a login attempt with the account's credentials ended: the count of
// refusals in a row, and the hold. The change to held is logged once, at error level, for
// teams without metrics. An account a config write replaced records nothing: its credentials
// are no longer the mount's, and its refusal must not hold the new ones. That is checked under
// the session gate, as the session's store is, so no record lands after the swap.
func (a *Account) noteLogin(ctx context.Context, s logical.Storage, err error) error {
	return a.withSessionWrite(s, func(_ gate.Read, s logical.Storage) error {
		if a.closed.Load() {
			return nil
		}
		a.mu.Lock()
		prev := a.hold
		h, changed := prev.next(err, a.cfg.RefusalsBeforeHold(), a.clock.Now())
		a.hold = h
		a.mu.Unlock()
		if !changed {
			return nil
		}
		if h.Held && !prev.Held {
			a.logger.Error("holding: upstream refused the stored credentials; no more logins until config gets credentials or rotate is written",
				"refused_in_a_row", h.Refused, "last_error", h.Reason)
		}
		if werr := writeHold(ctx, s, h); errors.Is(werr, logical.ErrReadOnly) {
			return werr
		} else if werr != nil {
			a.logger.Warn("could not store the credentials hold; this node keeps it in memory", "error", werr)
		}
		return nil
	})
}

// ObtainedByRotate marks the session token a rotate obtained, in status and in the session.
const ObtainedByRotate = "rotate"

// rotation is the value of rotate's shared call: the replaced token and the new one, and which
// rotate request started the call (by). Readers that joined the call take next (sharedToken).
// Returned through the call, not written to a variable of the request's, since the call
// outlives a request that ends.
type rotation struct {
	by         *byte
	prev, next *upstream.Token
}
