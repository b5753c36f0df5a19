package sessiontoken

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/internal/session"
	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/upstream"
)

const pathConfigHelpSyn = `Configure the upstream account: provider, URL and write-only credentials.`

const pathConfigHelpDesc = `
One mount holds one upstream account. provider is plextrac, plaspy, resolver or generic.
Credentials (password, api_key, totp_secret, headers) are write-only: a read shows whether
each is set, never its value. A write logs in upstream once to check the credentials
(verify=true, the default); if that fails nothing is stored and the error says why. A write
merges into the stored config unless it names another provider, which starts over. A write
that changes the upstream account drops its session (and logs it out where the provider has
a logout); one that changes url, ca_cert, allow_insecure_http or the generic login settings
must supply the stored secrets again. Unknown fields, and fields the provider does not
take, are errors.
`

func (b *backend) pathConfig() *framework.Path {
	return &framework.Path{
		Pattern: "config",
		DisplayAttrs: &framework.DisplayAttributes{
			OperationPrefix: "sessiontoken",
			OperationSuffix: "config",
		},
		Fields:         session.ConfigSchema(),
		ExistenceCheck: b.configExists,
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{
				Callback:     b.configRead,
				DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "read"},
				Responses: map[int][]framework.Response{http.StatusOK: {{
					Description: "OK",
					Fields:      session.ConfigReadSchema(),
				}}},
			},
			logical.CreateOperation: &framework.PathOperation{
				Callback:     b.configWrite,
				DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "configure"},
				Responses:    noContent,
			},
			logical.UpdateOperation: &framework.PathOperation{
				Callback:     b.configWrite,
				DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "configure"},
				Responses:    noContent,
			},
			logical.DeleteOperation: &framework.PathOperation{
				Callback:     b.configDelete,
				DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "delete"},
				Responses:    noContent,
			},
		},
		HelpSynopsis:    pathConfigHelpSyn,
		HelpDescription: strings.TrimSpace(pathConfigHelpDesc),
	}
}

func (b *backend) configExists(ctx context.Context, req *logical.Request, _ *framework.FieldData) (bool, error) {
	c, err := session.ReadConfig(ctx, req.Storage)
	return c != nil, err
}

func (b *backend) configRead(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	c, err := session.ReadConfig(ctx, req.Storage)
	if err != nil || c == nil {
		return nil, err
	}
	return &logical.Response{Data: c.ReadBack()}, nil
}

var noContent = map[int][]framework.Response{http.StatusNoContent: {{Description: "No content"}}}

func (b *backend) configWrite(ctx context.Context, req *logical.Request, d *framework.FieldData) (*logical.Response, error) {
	var unknown []string
	for k := range req.Data {
		if _, ok := d.Schema[k]; !ok {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return logical.ErrorResponse("unknown field(s) %s: see `vault path-help %sconfig` for the fields", strings.Join(unknown, ", "), req.MountPoint), nil
	}
	if !b.WriteSafeReplicationState() {
		return nil, logical.ErrReadOnly // forwarded: a verify login here would be a second one
	}
	unlock, err := b.lockConfig(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	prev, err := session.ReadConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	c, err := session.MergeConfig(prev, d)
	if err == nil {
		err = c.Validate(req.Data)
	}
	if err == nil {
		err = session.CheckCredentialsResupplied(prev, c, req.Data)
	}
	var key []byte
	if err == nil {
		if key, err = session.ReadFingerprintKey(ctx, req.Storage, true); err != nil {
			return nil, err
		}
		if prev == nil || prev.Fingerprint(key) != c.Fingerprint(key) {
			c.LegacyAccount = "" // another account: v0.1.0's sessions and leases are not its
		}
	}
	var prov upstream.Provider
	var tok *upstream.Token
	stored := false
	defer func() { // a write that stores nothing leaks nothing
		if prov != nil && !stored {
			b.discardCheck(ctx, prov, tok, c.RequestTimeout())
		}
	}()
	var hold session.Hold
	verify, supplied := d.Get("verify").(bool), c != nil && c.SuppliesCredentials(req.Data)
	if err == nil {
		prov, err = b.slot.NewProvider(ctx, req.Storage, c)
	}
	if err == nil {
		hold, err = session.ReadHold(ctx, req.Storage)
	}
	var warnings []string
	if err == nil && verify && hold.Held && !supplied { // held: only an operator's credentials end it
		verify = false
		warnings = append(warnings, "stored without a login check: the mount holds its credentials after upstream refused them; write the credentials, or write rotate once the account is fixed upstream")
	}
	// New credentials end the hold and start a new count, but only once the config is stored
	// (below): a write that fails keeps the hold. Whatever hold is stored then goes, also one
	// that the replaced account's last refusal wrote after the read above. A refused check is
	// counted at once.
	clearHold := err == nil && !verify && supplied
	if err == nil && verify {
		attempt := checkKey(c)
		if serr := b.checks.spaced(attempt, c.Provider, prov.Host(), "config not saved; fix what the last error named"); serr != nil {
			return upstreamFailure(serr)
		}
		tok, err = prov.Login(startedBy(ctx, authByConfig))
		if serr := session.SaveTOTPStep(ctx, req.Storage, prov); serr != nil {
			b.Logger().Warn("could not store the last TOTP step", "error", serr)
		}
		b.checks.note(attempt, err)
		if err == nil {
			clearHold = true
		} else if herr := b.slot.CountCheck(ctx, req.Storage, err, c.RefusalsBeforeHold()); herr != nil { // this attempt counts
			return nil, herr
		}
		if upstream.IsKind(err, upstream.KindNoRoom) { // nothing was sent: 503, as a read gets
			prov.Close()
			return upstreamFailure(fmt.Errorf("config not saved: %w", err))
		}
		if err != nil {
			err = fmt.Errorf("the login check failed (set verify=false to store without checking): %w", err)
		}
	}
	if err != nil {
		return logical.ErrorResponse("config not saved: %s", err), nil
	}
	if err := b.slot.Store(ctx, req.Storage, c, prov, key, tok, clearHold); err != nil {
		return nil, err
	}
	stored = true
	b.Logger().Info("config written", "provider", c.Provider, "url", c.URL, "verified", tok != nil)
	if len(warnings) > 0 {
		return &logical.Response{Warnings: warnings}, nil
	}
	return nil, nil
}

func (b *backend) configDelete(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	if !b.WriteSafeReplicationState() {
		return nil, logical.ErrReadOnly
	}
	unlock, err := b.lockConfig(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := b.slot.Delete(ctx, req.Storage); err != nil {
		return nil, err
	}
	b.answers.Store((*readAnswer)(nil)) // the deleted account's token is nobody's to keep
	return nil, nil
}

// discardCheck ends what a config write that stored nothing opened: the check's session is
// logged out where the provider has a logout (it would otherwise live on, unused, until it
// expires), and the new provider's connections close.
func (b *backend) discardCheck(ctx context.Context, prov upstream.Provider, tok *upstream.Token, timeout time.Duration) {
	defer prov.Close()
	if tok == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if err := prov.Logout(ctx, tok.Value); err != nil && !errors.Is(err, upstream.ErrNoLogout) {
		b.Logger().Warn("upstream logout of a failed config write's login check failed; the token will expire on its own", "error", err)
	}
}
