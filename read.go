package sessiontoken

import (
	"context"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/internal/session"
	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/upstream"
)

// sharedRead is the mount's shared token as a read serves it, with the least life it was read
// with (session.ReadFloor) and the refresh error, if the token is served in spite of one.
type sharedRead struct {
	a          *session.Account
	tok        *upstream.Token
	floor      time.Duration
	refreshErr error
}

func (r sharedRead) warn(resp *logical.Response) {
	if r.refreshErr != nil {
		resp.AddWarning("serving the current token until it expires: " + r.refreshErr.Error())
	}
}

// readShared is what token and static-token share: the mount's token with at least min_ttl
// left, refreshed first when it has less. When it returns no token, the response and error
// are the request's answer. (A value, not a pointer: reads are hot.)
func (b *backend) readShared(ctx context.Context, req *logical.Request, d *framework.FieldData) (sharedRead, *logical.Response, error) {
	b.metrics.served(b.clock.Now())
	a, err := b.slot.Account(ctx, req.Storage)
	if err != nil {
		return sharedRead{}, nil, err
	}
	if a == nil {
		return sharedRead{}, logical.ErrorResponse("this mount is not configured: write %sconfig first", req.MountPoint), nil
	}
	want := time.Duration(-1) // the configured min_ttl
	if v, ok := d.GetOk("min_ttl"); ok {
		if want = time.Duration(v.(int)) * time.Second; want < 0 {
			return sharedRead{}, logical.ErrorResponse("min_ttl: must not be negative"), nil
		}
	}
	t, floor, err := a.GetForRead(startedBy(ctx, authByReader), req.Storage, want)
	if t == nil {
		resp, err := upstreamFailure(err)
		return sharedRead{}, resp, err
	}
	return sharedRead{a: a, tok: t, floor: floor, refreshErr: err}, nil, nil
}

// readAnswer is what reads return for one token, built once: reads are hot, and the shared
// token changes only every few minutes. It names its account by id, not by reference, so that
// a replaced or deleted account (its config, with its secrets) is not kept in memory by it.
type readAnswer struct {
	id         string // the account's (session.Account.ID)
	tok        *upstream.Token
	data       map[string]any // tokenData; its ttl is set per read
	lease      any            // the token's leaseData, encoded for the lease's InternalData
	account    any            // the account id, for the same (boxed once: reads are hot)
	obtainedAt any            // static-token's last_vault_rotation: when the mount obtained the token, by any means
}

// answerFor is a's answer for t, from the cache while t is a's session token.
func (b *backend) answerFor(a *session.Account, t *upstream.Token) (*readAnswer, error) {
	if sv, _ := b.answers.Load().(*readAnswer); sv != nil && sv.id == a.ID() && sv.tok == t {
		return sv, nil
	}
	lease, err := session.EncodeLeaseData(t)
	if err != nil {
		return nil, err
	}
	sv := &readAnswer{
		id:         a.ID(),
		tok:        t,
		data:       tokenData(a, b.clock.Now(), t),
		lease:      lease,
		account:    a.ID(),
		obtainedAt: t.ObtainedAt.UTC().Format(time.RFC3339Nano),
	}
	b.answers.Store(sv)
	return sv, nil
}

// tokenData is what a read or renewal returns for t.
func tokenData(a *session.Account, now time.Time, t *upstream.Token) map[string]any {
	data := map[string]any{
		"token":         t.Value,
		"authorization": a.Provider().Authorization(t.Value),
		"expires_at":    t.ExpiresAt.UTC().Format(time.RFC3339),
		"issued_at":     t.IssuedAt.UTC().Format(time.RFC3339),
		"ttl":           int(session.LeaseEnd(t.ExpiresAt).Sub(now).Seconds()),
		"provider":      a.Config().Provider,
	}
	for k, v := range t.Extras {
		data[k] = v
	}
	return data
}
