package sessiontoken

import (
	"time"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/upstream"
)

// readAnswer is what reads return for one token, built once: reads are hot, and the shared
// token changes only every few minutes.
type readAnswer struct {
	tok        *upstream.Token
	data       map[string]any // tokenData; its ttl is set per read
	lease      any            // the token's leaseData, encoded for the lease's InternalData
	account    any            // the account id, for the same (boxed once: reads are hot)
	obtainedAt any            // static-token's last_vault_rotation: when the mount obtained the token, by any means
}

// answerFor is t's answer, from the cache while t is the session's token.
func (a *account) answerFor(t *upstream.Token) (*readAnswer, error) {
	if sv := a.cache.Load(); sv != nil && sv.tok == t {
		return sv, nil
	}
	lease, err := encodeLeaseData(t)
	if err != nil {
		return nil, err
	}
	sv := &readAnswer{tok: t, data: a.tokenData(t), lease: lease, account: a.fingerprint,
		obtainedAt: t.ObtainedAt.UTC().Format(time.RFC3339Nano)}
	a.cache.Store(sv)
	return sv, nil
}

// tokenData is what a read or renewal returns for t.
func (a *account) tokenData(t *upstream.Token) map[string]any {
	data := map[string]any{
		"token":         t.Value,
		"authorization": a.prov.Authorization(t.Value),
		"expires_at":    t.ExpiresAt.UTC().Format(time.RFC3339),
		"issued_at":     t.IssuedAt.UTC().Format(time.RFC3339),
		"ttl":           int(leaseEnd(t.ExpiresAt).Sub(a.clock.Now()).Seconds()),
		"provider":      a.cfg.Provider,
	}
	for k, v := range t.Extras {
		data[k] = v
	}
	return data
}
