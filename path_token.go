package sessiontoken

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/upstream"
)

const pathTokenHelpSyn = `Read the account's current upstream token as a lease.`

const pathTokenHelpDesc = `
Returns the upstream session token shared by every reader of this mount: token,
authorization (the ready Authorization header value), expires_at, issued_at, ttl, provider
and non-secret provider extras (PlexTrac tenant_id, Resolver org_id). The lease's TTL is the
token's remaining life less a few seconds, never longer. If the shared token has less than
min_ttl left, the read refreshes it upstream first (one upstream call for all concurrent
readers). Renewing the lease in the token's last third hands out the refreshed token and
ends the lease's renewability, so Vault Agent reads the path again; earlier renewals keep
the same token.
`

func (b *backend) pathToken() *framework.Path {
	return &framework.Path{
		Pattern:      "token",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "sessiontoken", OperationSuffix: "token"},
		Fields: map[string]*framework.FieldSchema{
			"min_ttl": {Type: framework.TypeDurationSecond, Description: "Least life the returned token must have left (default: the config's min_ttl; capped at a third of the token's life).",
				Query: true},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{Callback: b.tokenRead, DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "read"},
				Responses: map[int][]framework.Response{http.StatusOK: {{Description: "OK", Fields: tokenFields}}}},
		},
		HelpSynopsis:    pathTokenHelpSyn,
		HelpDescription: strings.TrimSpace(pathTokenHelpDesc),
	}
}

var tokenFields = map[string]*framework.FieldSchema{
	"token":         {Type: framework.TypeString, Description: "The upstream session token."},
	"authorization": {Type: framework.TypeString, Description: "Authorization header value: the bare token for PlexTrac, Bearer <token> for the others."},
	"expires_at":    {Type: framework.TypeString, Description: "Token expiry, RFC 3339."},
	"issued_at":     {Type: framework.TypeString, Description: "Token issue time, RFC 3339."},
	"ttl":           {Type: framework.TypeInt, Description: "Seconds until the lease ends (a few seconds before the token expires)."},
	"provider":      {Type: framework.TypeString, Description: "The upstream provider."},
	"tenant_id":     {Type: framework.TypeInt, Description: "PlexTrac: the tenant the session belongs to, when the login answer names it."},
	"org_id":        {Type: framework.TypeInt, Description: "Resolver Core: the org the session belongs to, when the answer names it."},
}

func (b *backend) tokenRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	r, resp, err := b.readShared(ctx, req, d)
	if r.tok == nil {
		b.metrics.readFailed(readToken, err)
		return resp, err
	}
	sv, err := r.a.served(r.tok)
	if err != nil {
		b.metrics.readFailed(readToken, err)
		return nil, err
	}
	ttl := leaseEnd(r.tok).Sub(b.clock.Now())
	data := maps.Clone(sv.data)
	data["ttl"] = int(ttl.Seconds())
	// What framework.Secret.Response builds, without its copy of InternalData: reads are hot.
	resp = &logical.Response{Data: data, Secret: &logical.Secret{
		LeaseOptions: logical.LeaseOptions{TTL: ttl, MaxTTL: ttl, Renewable: true},
		InternalData: map[string]any{"secret_type": secretTokenType, leaseDataKey: sv.lease, leaseAccountKey: sv.account},
	}}
	r.warn(resp)
	b.metrics.readDone(readToken, r)
	return resp, nil
}

// sharedRead is the mount's shared token as a read serves it, with the min_ttl it was read
// with and the refresh error, if the token is served in spite of one.
type sharedRead struct {
	a          *account
	tok        *upstream.Token
	minTTL     time.Duration
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
	a, err := b.account(ctx, req.Storage)
	if err != nil {
		return sharedRead{}, nil, err
	}
	if a == nil {
		return sharedRead{}, logical.ErrorResponse("this mount is not configured: write %sconfig first", req.MountPoint), nil
	}
	want := a.cfg.minTTL()
	if v, ok := d.GetOk("min_ttl"); ok {
		if want = time.Duration(v.(int)) * time.Second; want < 0 {
			return sharedRead{}, logical.ErrorResponse("min_ttl: must not be negative"), nil
		}
	}
	t, err := a.get(ctx, req.Storage, func(t *upstream.Token) bool {
		return t.ExpiresAt.Sub(b.clock.Now()) >= minTTL(t, want)
	})
	if t == nil {
		resp, err := upstreamFailure(err)
		return sharedRead{}, resp, err
	}
	return sharedRead{a: a, tok: t, minTTL: minTTL(t, want), refreshErr: err}, nil, nil
}

// leaseEnd is when a lease on t must end: a skew margin before the token expires.
func leaseEnd(t *upstream.Token) time.Time { return t.ExpiresAt.Add(-clockSkew) }

// served is what reads return for one token, built once: reads are hot, and the shared
// token changes only every few minutes.
type served struct {
	tok     *upstream.Token
	data    map[string]any // tokenData; its ttl is set per read
	lease   any            // the token's leaseData, encoded for the lease's InternalData
	account any            // the account id, for the same (boxed once: reads are hot)
	rotated any            // static-token's last_vault_rotation
}

func (a *account) served(t *upstream.Token) (*served, error) {
	if sv := a.cache.Load(); sv != nil && sv.tok == t {
		return sv, nil
	}
	lease, err := encodeLeaseData(t)
	if err != nil {
		return nil, err
	}
	sv := &served{tok: t, data: a.tokenData(t), lease: lease, account: a.fingerprint,
		rotated: t.ObtainedTime().UTC().Format(time.RFC3339Nano)}
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
		"ttl":           int(leaseEnd(t).Sub(a.clock.Now()).Seconds()),
		"provider":      a.cfg.Provider,
	}
	for k, v := range t.Extras {
		data[k] = v
	}
	return data
}

// upstreamFailure answers a read that upstream failed with a fitting HTTP status: 429 when
// rate limited, 504 when upstream did not answer, else 502. Vault's HTTP layer turns a
// plugin's error into 500 (or 400 for an error response), so the status and Vault's usual
// {"errors": [...]} body are sent as a raw response.
func upstreamFailure(err error) (*logical.Response, error) {
	code, ok := upstreamStatus(err)
	if !ok {
		return nil, err
	}
	body, _ := json.Marshal(map[string][]string{"errors": {err.Error()}})
	return &logical.Response{Data: map[string]any{
		logical.HTTPContentType: "application/json", logical.HTTPStatusCode: code, logical.HTTPRawBody: string(body)}}, nil
}

// upstreamStatus is the HTTP status for an upstream failure: 429 when rate limited, 504 when
// upstream did not answer, else 502. ok is false when err is not an upstream failure.
func upstreamStatus(err error) (code int, ok bool) {
	e, ok := upstream.AsError(err)
	switch {
	case !ok:
		return 0, false
	case e.Kind == upstream.KindRateLimited:
		return http.StatusTooManyRequests, true
	case e.Kind == upstream.KindHeld: // the plugin stopped trying until an operator acts
		return http.StatusServiceUnavailable, true
	case e.Kind == upstream.KindUnavailable && e.Status == 0:
		return http.StatusGatewayTimeout, true
	}
	return http.StatusBadGateway, true
}
