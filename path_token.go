package sessiontoken

import (
	"context"
	"maps"
	"net/http"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/internal/session"
)

const pathTokenHelpSyn = `Read the account's current upstream token as a lease.`

const pathTokenHelpDesc = `
Returns the upstream session token shared by every reader of this mount: token,
authorization (the ready Authorization header value), expires_at, issued_at, ttl, provider
and non-secret provider extras (PlexTrac tenant_id, Resolver org_id). The lease's TTL is the
token's remaining life less 5 s, never longer. If the shared token has less than
min_ttl left, the read refreshes it upstream first (one upstream call for all concurrent
readers). Renewing the lease in the token's last third hands out the refreshed token and
ends the lease's renewability, so Vault Agent reads the path again; earlier renewals keep
the same token.
`

func (b *backend) pathToken() *framework.Path {
	return &framework.Path{
		Pattern: "token",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: "sessiontoken",
			OperationSuffix: "token",
		},
		Fields: map[string]*framework.FieldSchema{
			"min_ttl": {
				Type:        framework.TypeDurationSecond,
				Description: "Least life the returned token must have left (default: the config's min_ttl; capped at a third of the token's life).",
				Query:       true,
			},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback:     b.tokenRead,
				DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "read"},
				Responses: map[int][]framework.Response{http.StatusOK: {{
					Description: "OK",
					Fields:      tokenFields(),
				}}},
			},
		},
		HelpSynopsis:    pathTokenHelpSyn,
		HelpDescription: strings.TrimSpace(pathTokenHelpDesc),
	}
}

func (b *backend) tokenRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	r, resp, err := b.readShared(ctx, req, d)
	if r.tok == nil {
		b.metrics.readFailed(readToken, err)
		return resp, err
	}
	sv, err := b.answerFor(r.a, r.tok)
	if err != nil {
		b.metrics.readFailed(readToken, err)
		return nil, err
	}
	ttl := session.LeaseEnd(r.tok.ExpiresAt).Sub(b.clock.Now())
	data := maps.Clone(sv.data)
	data["ttl"] = int(ttl.Seconds())
	// What framework.Secret.Response builds, without its copy of InternalData: reads are hot.
	resp = &logical.Response{
		Data: data,
		Secret: &logical.Secret{
			LeaseOptions: logical.LeaseOptions{TTL: ttl, MaxTTL: ttl, Renewable: true},
			InternalData: map[string]any{
				"secret_type":           secretTokenType,
				session.LeaseDataKey:    sv.lease,
				session.LeaseAccountKey: sv.account,
			},
		},
	}
	r.warn(resp)
	b.metrics.readDone(readToken, r.refreshErr != nil)
	return resp, nil
}
