package sessiontoken

import (
	"context"
	"maps"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
)

const pathStaticTokenHelpSyn = `Read the account's current upstream token without a lease.`

const pathStaticTokenHelpDesc = `
The same shared token as the token path, with no Vault lease: nothing to renew or revoke,
and no lease stored per read. In the shape of the database engine's static-creds, the data
carries ttl (whole seconds until this path serves a newer token), rotation_period and
last_vault_rotation, which Vault Agent and the Vault Secrets Operator (allowStaticCreds)
use to read again at the right time. The switch to a newer token happens while the current
one still has min_ttl left, so a reader that reads again at ttl + 1 s always gets a token
with room to spare. Use it for Vault Secrets Operator, many readers, or high read rates;
use token when per-reader revocation and lease accounting matter.
`

func (b *backend) pathStaticToken() *framework.Path {
	fields := maps.Clone(tokenFields())
	fields["ttl"] = &framework.FieldSchema{
		Type:        framework.TypeInt,
		Description: "Whole seconds until this path serves a newer token; read again after it.",
	}
	fields["rotation_period"] = &framework.FieldSchema{
		Type:        framework.TypeInt,
		Description: "Whole seconds from one token switch to the next.",
	}
	fields["last_vault_rotation"] = &framework.FieldSchema{
		Type:        framework.TypeString,
		Description: "When the plugin obtained the current token, RFC 3339.",
	}
	return &framework.Path{
		Pattern: "static-token",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: "sessiontoken",
			OperationSuffix: "static-token",
		},
		Fields: map[string]*framework.FieldSchema{
			"min_ttl": {
				Type:        framework.TypeDurationSecond,
				Description: "Least life the returned token must have left, and how early the switch to a newer one happens (default: the config's min_ttl; capped at a third of the token's life).",
				Query:       true,
			},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback:     b.staticTokenRead,
				DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "read"},
				Responses: map[int][]framework.Response{http.StatusOK: {{
					Description: "OK",
					Fields:      fields,
				}}},
			},
		},
		HelpSynopsis:    pathStaticTokenHelpSyn,
		HelpDescription: strings.TrimSpace(pathStaticTokenHelpDesc),
	}
}

func (b *backend) staticTokenRead(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	r, resp, err := b.readShared(ctx, req, d)
	if r.tok == nil {
		b.metrics.readFailed(readStaticToken, err)
		return resp, err
	}
	t := r.tok
	// A read refreshes once the token has less than min_ttl left, so that is when readers are
	// switched. Rounded up, so a reader that comes back after ttl seconds never comes early.
	switchAt := t.ExpiresAt.Add(-r.floor)
	sv, err := b.answerFor(r.a, t)
	if err != nil {
		b.metrics.readFailed(readStaticToken, err)
		return nil, err
	}
	data := maps.Clone(sv.data)
	data["ttl"] = max(wholeSecondsUp(switchAt.Sub(b.clock.Now())), 1)
	data["rotation_period"] = max(int(switchAt.Sub(t.IssuedAt)/time.Second), 1)
	data["last_vault_rotation"] = sv.obtainedAt
	resp = &logical.Response{Data: data}
	r.warn(resp)
	b.metrics.readDone(readStaticToken, r.refreshErr != nil)
	return resp, nil
}

func wholeSecondsUp(d time.Duration) int { return int(math.Ceil(d.Seconds())) }
