package sessiontoken

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/upstream"
)

const pathRotateHelpSyn = `Replace the shared upstream session now with a full login.`

const pathRotateHelpDesc = `
Waits for any refresh in flight, then logs in upstream with the stored credentials (with MFA)
and makes that the mount's session: reads serve the new token at once, static-token's
last_vault_rotation changes, and renewing a lease that holds the replaced token hands out the
new one and ends that lease's renewability. It ends a credentials hold (its one attempt
counts), skips the failure backoff (an operator asked), and respects the host's auth budget
(429 with the time to retry) and the TOTP rules (it may wait for the next 30 s step).
After a rotate fails (any failure but rate limiting), rotate is spaced like a failed config
check, sharing its spacing: until the time to retry (10 s doubling to 5 minutes, kept across a
config delete), rotate and a login check of the same login answer 429 and send nothing.
revoke_previous=true also ends the replaced token upstream where the provider has a logout
(generic with logout_path); PlexTrac, Plaspy and Resolver publish none, so there the replaced
token stays valid upstream until it expires. Answers the new session's times, never the token.
Needs update capability.
`

func (b *backend) pathRotate() *framework.Path {
	return &framework.Path{
		Pattern: "rotate",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: "sessiontoken",
			OperationSuffix: "session",
		},
		Fields: map[string]*framework.FieldSchema{
			"revoke_previous": {
				Type:        framework.TypeBool,
				Description: "Also end the replaced token upstream, where the provider has a logout (generic logout_path). Breaks every reader still holding it.",
			},
		},
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.UpdateOperation: &framework.PathOperation{
				Callback:     b.rotateWrite,
				DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "rotate"},
				Responses: map[int][]framework.Response{http.StatusOK: {{
					Description: "OK",
					Fields:      rotateFields,
				}}},
			},
		},
		HelpSynopsis:    pathRotateHelpSyn,
		HelpDescription: strings.TrimSpace(pathRotateHelpDesc),
	}
}

var rotateFields = map[string]*framework.FieldSchema{
	"issued_at": {
		Type:        framework.TypeString,
		Description: "The new token's issue time, RFC 3339.",
	},
	"expires_at": {
		Type:        framework.TypeString,
		Description: "The new token's expiry, RFC 3339.",
	},
	"obtained_by": {Type: framework.TypeString, Description: "rotate."},
	"previous_revoked": {
		Type:        framework.TypeBool,
		Description: "Whether the replaced token was ended upstream.",
	},
}

func (b *backend) rotateWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	if !b.WriteSafeReplicationState() {
		return nil, logical.ErrReadOnly // forwarded: a login here would be a second one
	}
	// Under configMu, so that a config change cannot swap the account (or end the hold)
	// in the middle; a rotate that waits for the next TOTP step holds config writes that long.
	unlock, err := b.lockConfig(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	a, err := b.slot.Account(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	if a == nil {
		return logical.ErrorResponse("this mount is not configured: write %sconfig first", req.MountPoint), nil
	}
	attempt := checkKey(a.Config()) // spaced like the config's login check, sharing its record
	if err := b.checks.spaced(attempt, a.Config().Provider, a.Provider().Host(), "fix what the last error named, then write rotate again"); err != nil {
		return upstreamFailure(err)
	}
	// The outcome is noted by the shared call itself, which runs to its end even when this
	// request ends first (a client timeout shorter than the login): a loop of such rotates is
	// spaced too.
	prev, t, err := a.Rotate(startedBy(ctx, authByRotate), req.Storage, func(err error) { b.checks.note(attempt, err) })
	if err != nil {
		return upstreamFailure(err)
	}
	data := map[string]any{
		"issued_at":        rfc3339(t.IssuedAt),
		"expires_at":       rfc3339(t.ExpiresAt),
		"obtained_by":      t.ObtainedBy,
		"previous_revoked": false,
	}
	resp := &logical.Response{Data: data}
	if d.Get("revoke_previous").(bool) && prev != nil && prev.Value != t.Value {
		lctx, cancel := context.WithTimeout(ctx, a.Config().RequestTimeout())
		defer cancel()
		switch err := a.Provider().Logout(lctx, prev.Value); {
		case err == nil:
			data["previous_revoked"] = true
		case errors.Is(err, upstream.ErrNoLogout):
			resp.AddWarning("provider " + a.Config().Provider + " has no logout: the replaced token stays valid upstream until it expires at " + prev.ExpiresAt.UTC().Format(time.RFC3339))
		default:
			resp.AddWarning("the replaced token could not be ended upstream; it stays valid until it expires: " + err.Error())
		}
	}
	b.Logger().Info("upstream session rotated", "by", t.ObtainedBy, "expires_at", t.ExpiresAt.UTC().Format(time.RFC3339))
	return resp, nil
}
