package sessiontoken

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/internal/session"
	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/upstream"
)

const secretTokenType = "sessiontoken"

// tokenFields() are what a token read and a lease renewal return: the fields every provider's
// token has, the Authorization header's form and the extras as each provider registered now
// declares them.
func tokenFields() map[string]*framework.FieldSchema {
	var forms []string
	fields := map[string]*framework.FieldSchema{
		"token":      {Type: framework.TypeString, Description: "The upstream session token."},
		"expires_at": {Type: framework.TypeString, Description: "Token expiry, RFC 3339."},
		"issued_at":  {Type: framework.TypeString, Description: "Token issue time, RFC 3339."},
		"ttl": {
			Type:        framework.TypeInt,
			Description: "Seconds until the lease ends (5 s before the token expires).",
		},
		"provider": {Type: framework.TypeString, Description: "The upstream provider."},
	}
	for _, s := range upstream.Specs() {
		forms = append(forms, s.Name+": "+s.Authorization)
		for _, x := range s.Extras {
			fields[x.Name] = &framework.FieldSchema{Type: framework.TypeInt, Description: s.Name + ": " + x.Description + "."}
		}
	}
	fields["authorization"] = &framework.FieldSchema{
		Type:        framework.TypeString,
		Description: "Authorization header value (" + strings.Join(forms, "; ") + ").",
	}
	return fields
}

func (b *backend) tokenSecret() *framework.Secret {
	return &framework.Secret{
		Type:   secretTokenType,
		Fields: tokenFields(),
		Renew:  b.countRenewal(b.tokenRenew),
		Revoke: b.tokenRevoke,
	}
}

// countRenewal counts each renewal by outcome: error, refused (an error response), new_token
// (renewOnto gave the lease another token) or same.
func (b *backend) countRenewal(renew framework.OperationFunc) framework.OperationFunc {
	return func(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
		var before any
		if req.Secret != nil {
			before = req.Secret.InternalData[session.LeaseDataKey]
		}
		resp, err := renew(ctx, req, d)
		switch {
		case errors.Is(err, logical.ErrReadOnly): // forwarded: the active node counts it
		case err != nil:
			b.metrics.renewals[renewError].Inc()
		case resp == nil || resp.IsError():
			b.metrics.renewals[renewRefused].Inc()
		case leaseChanged(before, req.Secret.InternalData[session.LeaseDataKey]):
			b.metrics.renewals[renewNewToken].Inc()
		default:
			b.metrics.renewals[renewSameToken].Inc()
		}
		return resp, err
	}
}

// leaseChanged says whether a renewal stored another token's lease data (renewOnto) in place
// of the one the lease had. Lease data is a JSON string; anything else never matched.
func leaseChanged(before, after any) bool {
	a, _ := before.(string)
	b, _ := after.(string)
	return a != b
}

// tokenRenew: in the token's last third, hand out the refreshed shared token, extend the lease
// to its expiry and make the lease non-renewable (Vault Agent ignores renewal data and only
// reads the path again when a lease stops being renewable). Earlier: the same token, never
// past its expiry. MaxTTL is measured by Vault from the lease's issue time, truncated to the
// second.
func (b *backend) tokenRenew(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	b.metrics.served(b.clock.Now())
	leased, stamp, err := session.DecodeLease(req.Secret.InternalData, req.Data)
	if err != nil {
		return logical.ErrorResponse("cannot renew: %s; read the token path again", err), nil
	}
	a, err := b.slot.Account(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	if a == nil {
		return logical.ErrorResponse("cannot renew: this mount is no longer configured"), nil
	}
	if !a.Owns(stamp) {
		return logical.ErrorResponse("cannot renew: the mount's account changed since this lease was issued; read the token path again"), nil
	}
	now := b.clock.Now()
	if cur := a.Current(); a.Usable(cur) && cur.ObtainedBy == session.ObtainedByRotate && session.TokenHash(cur.Value) != leased.SHA256 {
		// An operator rotated the session since this lease got its token: told apart by
		// identity, since a rotated token may have the same expiry. Hand out the session's
		// token and end renewability, so the holder moves to it now. (A routine refresh does
		// not do this: early renewals keep their token until its renewal window.)
		return b.renewOnto(req, a, cur, now)
	}
	if !session.InLastShare(leased.ExpiresAt, leased.Lifetime(), now) {
		return b.renewSame(req, a, leased)
	}
	newer, err := a.Get(startedBy(ctx, authByRenewal), req.Storage, func(t *upstream.Token) bool { return t.ExpiresAt.After(leased.ExpiresAt) })
	if newer == nil {
		return nil, renewFailure(err)
	}
	if !newer.ExpiresAt.After(leased.ExpiresAt) {
		// The refresh did not give a later token (it failed, or upstream gave no longer life):
		// the leased token until it ends, and no more renewals, so the holder reads the path again
		// instead of asking upstream on every renewal.
		resp, rerr := b.renewSame(req, a, leased)
		if resp != nil && resp.Secret != nil {
			resp.Secret.Renewable = false
			if err != nil {
				resp.AddWarning("could not refresh upstream, keeping the current token: " + err.Error())
			}
		}
		return resp, rerr
	}
	return b.renewOnto(req, a, newer, now)
}

// renewOnto hands a lease's holder the session's newer token: the lease now holds it, ends
// with it (shorter than a requested increment, see newLeaseEnd) and is no longer renewable,
// since Agent and VSO ignore renewal data and read the path again only when a lease ends.
func (b *backend) renewOnto(req *logical.Request, a *session.Account, newer *upstream.Token, now time.Time) (*logical.Response, error) {
	lease, err := session.EncodeLeaseData(newer)
	if err != nil {
		return nil, err
	}
	session.DropLeaseV010(req.Secret.InternalData)
	req.Secret.InternalData[session.LeaseDataKey], req.Secret.InternalData[session.LeaseAccountKey] = lease, a.ID()
	end := newLeaseEnd(session.LeaseEnd(newer.ExpiresAt), now, req.Secret.Increment)
	req.Secret.TTL = end.Sub(now)
	req.Secret.MaxTTL = end.Sub(req.Secret.IssueTime.Truncate(time.Second))
	req.Secret.Renewable = false
	return &logical.Response{Secret: req.Secret, Data: tokenData(a, b.clock.Now(), newer)}, nil
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

func (b *backend) renewSame(req *logical.Request, a *session.Account, leased session.LeaseToken) (*logical.Response, error) {
	end := session.LeaseEnd(leased.ExpiresAt)
	ttl := end.Sub(b.clock.Now())
	if ttl < time.Second {
		return logical.ErrorResponse("cannot renew: the token expires at %s; read the token path again", leased.ExpiresAt.UTC().Format(time.RFC3339)), nil
	}
	data := leasedData(req.Data, a, leased, b.clock.Now())
	if data == nil {
		return logical.ErrorResponse("cannot renew: the lease's data came back without its token; read the token path again"), nil
	}
	req.Secret.TTL = ttl
	req.Secret.MaxTTL = end.Sub(req.Secret.IssueTime.Truncate(time.Second))
	return &logical.Response{Secret: req.Secret, Data: data}, nil
}

// leasedData is what a renewal that keeps the holder's token returns: the session's answer
// when the holder has the session's token, else the token as the lease's stored response
// data holds it (nil when that did not come back).
func leasedData(stored map[string]any, a *session.Account, leased session.LeaseToken, now time.Time) map[string]any {
	if cur := a.Current(); cur != nil && session.TokenHash(cur.Value) == leased.SHA256 {
		return tokenData(a, now, cur)
	}
	if leased.Value == "" {
		return nil
	}
	data := tokenData(a, now, &upstream.Token{
		Value:     leased.Value,
		IssuedAt:  leased.IssuedAt,
		ExpiresAt: leased.ExpiresAt,
	})
	for k, v := range stored { // the extras it was served with
		if _, ok := data[k]; !ok {
			data[k] = v
		}
	}
	return data
}

// tokenRevoke drops the lease and never fails. It does not log the token out upstream: the
// token is the session every reader of the mount shares, so one lease ending must not end it
// for the others. A generic provider's logout is called when the session itself is dropped:
// a config write that changes the account, or a config delete.
func (b *backend) tokenRevoke(context.Context, *logical.Request, *framework.FieldData) (*logical.Response, error) {
	return nil, nil
}
