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

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/internal/gate"
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
		Pattern:        "config",
		DisplayAttrs:   &framework.DisplayAttributes{OperationPrefix: "sessiontoken", OperationSuffix: "config"},
		Fields:         configSchema(),
		ExistenceCheck: b.configExists,
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation: &framework.PathOperation{Callback: b.configRead, DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "read"},
				Responses: map[int][]framework.Response{http.StatusOK: {{Description: "OK", Fields: configReadFields()}}}},
			logical.CreateOperation: &framework.PathOperation{Callback: b.configWrite, DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "configure"},
				Responses: noContent},
			logical.UpdateOperation: &framework.PathOperation{Callback: b.configWrite, DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "configure"},
				Responses: noContent},
			logical.DeleteOperation: &framework.PathOperation{Callback: b.configDelete, DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "delete"},
				Responses: noContent},
		},
		HelpSynopsis:    pathConfigHelpSyn,
		HelpDescription: strings.TrimSpace(pathConfigHelpDesc),
	}
}

func (b *backend) configExists(ctx context.Context, req *logical.Request, _ *framework.FieldData) (bool, error) {
	c, err := readConfig(ctx, req.Storage)
	return c != nil, err
}

func (b *backend) configRead(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	c, err := readConfig(ctx, req.Storage)
	if err != nil || c == nil {
		return nil, err
	}
	return &logical.Response{Data: c.readBack()}, nil
}

var noContent = map[int][]framework.Response{http.StatusNoContent: {{Description: "No content"}}}

// configReadFields is the config read's response schema, from the field table: each
// non-secret field as declared, each secret as <name>_set (headers: header_names).
func configReadFields() map[string]*framework.FieldSchema {
	out := map[string]*framework.FieldSchema{}
	for _, f := range configFields {
		switch {
		case f.name == "headers":
			out["header_names"] = &framework.FieldSchema{Type: framework.TypeStringSlice, Description: "Names of the configured headers (values are write-only)."}
		case f.secret:
			out[f.name+"_set"] = &framework.FieldSchema{Type: framework.TypeBool, Description: "Whether " + f.name + " is set (it is write-only)."}
		default:
			out[f.name] = f.schema
		}
	}
	return out
}

// readBack is what a config read shows: every field the provider takes as it was written,
// and for each secret only whether it is set (headers: their names).
func (c *config) readBack() map[string]any {
	data := map[string]any{}
	for _, f := range configFields {
		switch {
		case !f.takenBy(c.Provider):
		case f.name == "headers":
			names := make([]string, 0, len(c.Headers))
			for k := range c.Headers {
				names = append(names, k)
			}
			sort.Strings(names)
			data["header_names"] = names
		case f.secret:
			data[f.name+"_set"] = f.isSet(c)
		default:
			data[f.name] = f.value(c)
		}
	}
	return data
}

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
	prev, err := readConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	c, err := mergeConfig(prev, d)
	if err == nil {
		err = c.validate(req.Data)
	}
	if err == nil {
		err = checkCredentialsResupplied(prev, c, req.Data)
	}
	var key []byte
	if err == nil {
		if key, err = readFingerprintKey(ctx, req.Storage, true); err != nil {
			return nil, err
		}
		if prev == nil || prev.fingerprint(key) != c.fingerprint(key) {
			c.LegacyAccount = "" // another account: v0.1.0's sessions and leases are not its
		}
	}
	var prov upstream.Provider
	var tok *upstream.Token
	stored := false
	defer func() { // a write that stores nothing leaks nothing
		if prov != nil && !stored {
			b.discardCheck(ctx, prov, tok, c.requestTimeout())
		}
	}()
	var hold credentialsHold
	verify, supplied := d.Get("verify").(bool), c != nil && c.suppliesCredentials(req.Data)
	if err == nil {
		prov, err = b.newProvider(ctx, req.Storage, c)
	}
	if err == nil {
		hold, err = readHold(ctx, req.Storage)
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
		attempt := c.checkKey()
		if serr := b.checks.spaced(attempt, c.Provider, prov.Host(), "config not saved; fix what the last error named"); serr != nil {
			return upstreamFailure(serr)
		}
		tok, err = prov.Login(startedBy(ctx, authByConfig))
		if serr := saveTOTPStep(ctx, req.Storage, prov); serr != nil {
			b.Logger().Warn("could not store the last TOTP step", "error", serr)
		}
		b.checks.note(attempt, err)
		if err == nil {
			clearHold = true
		} else if herr := b.countCheck(ctx, req.Storage, err, c.maxRefusedLogins()); herr != nil { // this attempt counts
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
	next := b.newAccount(c, prov, key)
	prevAcct, err := b.replaceAccount(ctx, req.Storage, next, func(w gate.Write, s logical.Storage, sameAccount bool) error {
		switch {
		case tok == nil && sameAccount: // its stored session (in either format) still serves
			if err := next.load(ctx, s); err != nil {
				return err
			}
		case tok == nil: // another account: the stored session is not its own, the hold is the mount's
			h, err := readHold(ctx, s)
			if err != nil {
				return err
			}
			next.setHold(h)
		}
		undo, err := putConfig(ctx, s, c)
		if err != nil {
			return err
		}
		if clearHold { // only now that the config is stored; a failure puts the old one back
			if err := writeHold(ctx, s, credentialsHold{}); err != nil {
				if uerr := undo(); uerr != nil {
					return errors.Join(err, fmt.Errorf("the new config stays stored, held: %w", uerr))
				}
				return err
			}
			next.setHold(credentialsHold{})
		}
		// The config is stored: the write succeeded. What fails from here is logged, not
		// returned; a record left behind is never served (its account's fingerprint differs).
		drop := legacyRecordKeys
		if !sameAccount { // the replaced account's session is nobody's now
			drop = append([]string{sessionKey}, drop...)
		}
		for _, k := range drop {
			if err := s.Delete(ctx, k); err != nil {
				b.Logger().Warn("could not delete a record of the replaced config; the new config is stored", "key", k, "error", err)
			}
		}
		var serr error
		if tok != nil { // the check's login is a good session: the first read costs no login
			serr = next.keep(ctx, s, tok, w.Read())
		} else if t := next.current(); t != nil { // stored again in the current format
			serr = writeSession(ctx, s, next.fingerprint, t)
		}
		if serr != nil {
			b.Logger().Warn("could not store the session; the next read logs in", "error", serr)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	stored = true
	b.limiters.Register(b.mountID, prov, c.MaxAuthPerMinute, b.clock.Now())
	b.endSession(ctx, prevAcct, next.fingerprint)
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
	// Every record of the account goes (deleteAccount). The stored TOTP step too: a step from
	// a node whose clock ran fast would otherwise outlive every rewrite. This process's own
	// record of the account still protects a quick rewrite until its step is past.
	prev, err := b.replaceAccount(ctx, req.Storage, nil, func(_ gate.Write, s logical.Storage, _ bool) error {
		return deleteAccount(ctx, s)
	})
	if err != nil {
		return nil, err
	}
	b.limiters.Unregister(b.mountID, b.clock.Now())
	b.endSession(ctx, prev, "")
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
	if err := prov.Logout(ctx, tok.Value); err != nil {
		b.Logger().Warn("upstream logout of a failed config write's login check failed; the token will expire on its own", "error", err)
	}
}
