package sessiontoken

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/upstream"
)

const secretTokenType = "sessiontoken"

func (b *backend) tokenSecret() *framework.Secret {
	return &framework.Secret{
		Type:   secretTokenType,
		Fields: tokenFields,
		Renew:  b.tokenRenew,
		Revoke: b.tokenRevoke,
	}
}

// tokenRenew: in the token's last third, hand out the refreshed shared token, extend the lease
// to its expiry and make the lease non-renewable (Vault Agent ignores renewal data and only
// reads the path again when a lease stops being renewable). Earlier: the same token, never
// past its expiry. MaxTTL is measured by Vault from the lease's issue time, truncated to the
// second.
func (b *backend) tokenRenew(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	held, err := leaseToken(req.Secret.InternalData)
	if err != nil {
		return logical.ErrorResponse("cannot renew: %s; read the token path again", err), nil
	}
	a, err := b.account(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	if a == nil {
		return logical.ErrorResponse("cannot renew: this mount is no longer configured"), nil
	}
	if id, _ := req.Secret.InternalData[leaseAccountKey].(string); id != a.id {
		return logical.ErrorResponse("cannot renew: the mount's account changed since this lease was issued; read the token path again"), nil
	}
	now := b.clock.Now()
	if now.Before(held.ExpiresAt.Add(-held.Lifetime() / 3)) {
		return b.renewSame(req, a, held)
	}
	newer, err := a.get(ctx, req.Storage, func(t *upstream.Token) bool { return t.ExpiresAt.After(held.ExpiresAt) })
	if newer == nil {
		return nil, renewFailure(err)
	}
	if !newer.ExpiresAt.After(held.ExpiresAt) { // refresh failed; the held token is still valid
		resp, rerr := b.renewSame(req, a, held)
		if resp != nil && err != nil {
			resp.AddWarning("could not refresh upstream, keeping the current token: " + err.Error())
		}
		return resp, rerr
	}
	internal, err := encodeToken(newer)
	if err != nil {
		return nil, err
	}
	req.Secret.InternalData[leaseSessionKey] = internal
	end := newLeaseEnd(leaseEnd(newer), now, req.Secret.Increment)
	req.Secret.TTL = end.Sub(now)
	req.Secret.MaxTTL = end.Sub(req.Secret.IssueTime.Truncate(time.Second))
	req.Secret.Renewable = false
	return &logical.Response{Secret: req.Secret, Data: a.tokenData(newer)}, nil
}

// newLeaseEnd is when a lease renewed onto a newer token ends: the new token's lease end, but
// when the renewal asked for an increment, strictly sooner than now+increment. Clients that
// ignore renewal data (Vault Secrets Operator) read the path again only when a renewal comes
// back shorter than the increment they asked for; a non-renewable lease that is not shorter
// leaves them idle with the old token. Vault makes a renewal's TTL the increment, capped at
// IssueTime.Truncate(1s)+MaxTTL-now.Truncate(1s), so the end is counted from now truncated to
// the second, one whole second short of the increment, and never less than a second away.
func newLeaseEnd(end, now time.Time, increment time.Duration) time.Time {
	if increment <= 0 {
		return end
	}
	capAt := now.Truncate(time.Second).Add(max(increment-time.Second, time.Second))
	if capAt.Before(end) {
		return capAt
	}
	return end
}

func (b *backend) renewSame(req *logical.Request, a *account, held *upstream.Token) (*logical.Response, error) {
	end := leaseEnd(held)
	ttl := end.Sub(b.clock.Now())
	if ttl < time.Second {
		return logical.ErrorResponse("cannot renew: the token expires at %s; read the token path again", held.ExpiresAt.UTC().Format(time.RFC3339)), nil
	}
	req.Secret.TTL = ttl
	req.Secret.MaxTTL = end.Sub(req.Secret.IssueTime.Truncate(time.Second))
	return &logical.Response{Secret: req.Secret, Data: a.tokenData(held)}, nil
}

// tokenRevoke drops the lease and never fails. It does not log the token out upstream: the
// token is the session every reader of the mount shares, so one lease ending must not end it
// for the others. A generic provider's logout is called when the session itself is dropped
// (config rewritten or deleted).
func (b *backend) tokenRevoke(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
	return nil, nil
}

// renewFailure is a renewal's error for a failed refresh: read-only passes through (Vault
// forwards it), an upstream failure carries the status a read would get (429, 502, 504) and
// the same message. Vault 1.21's lease endpoint still answers 400 for any error a plugin
// returns from a renewal; the message is what tells the caller what happened.
func renewFailure(err error) error {
	if errors.Is(err, logical.ErrReadOnly) {
		return err
	}
	if code, ok := upstreamStatus(err); ok {
		return logical.CodedError(code, "cannot renew: "+err.Error())
	}
	return fmt.Errorf("cannot renew: %w", err)
}
