package sessiontoken

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

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

func str(desc string, sensitive bool, group string) *framework.FieldSchema {
	return &framework.FieldSchema{Type: framework.TypeString, Description: desc,
		DisplayAttrs: &framework.DisplayAttributes{Sensitive: sensitive, Group: group}}
}

func (b *backend) pathConfig() *framework.Path {
	return &framework.Path{
		Pattern:      "config",
		DisplayAttrs: &framework.DisplayAttributes{OperationPrefix: "sessiontoken", OperationSuffix: "config"},
		Fields: map[string]*framework.FieldSchema{
			"provider": {Type: framework.TypeString, Description: "Upstream API: plextrac, plaspy, resolver or generic.",
				AllowedValues: []any{"plextrac", "plaspy", "resolver", "generic"}, DisplayAttrs: &framework.DisplayAttributes{Name: "Provider"}},
			"url":         str("Upstream base URL, e.g. https://acme.plextrac.com (plaspy defaults to https://api.plaspy.com).", false, ""),
			"username":    str("Login user: PlexTrac e-mail, Plaspy userName, generic {{.username}}.", false, "Credentials"),
			"email":       str("Resolver Core login e-mail.", false, "Credentials"),
			"password":    str("Password (plextrac, resolver, generic). Write-only.", true, "Credentials"),
			"api_key":     str("Plaspy API key, or generic {{.api_key}}. Write-only.", true, "Credentials"),
			"totp_secret": str("PlexTrac MFA: the base32 TOTP seed of the account's authenticator. Write-only; empty clears it.", true, "Credentials"),
			"org_id": {Type: framework.TypeInt, Description: "Resolver Core org id to log in to (selectedOrg).",
				DisplayAttrs: &framework.DisplayAttributes{Group: "Credentials"}},
			"headers": {Type: framework.TypeKVPairs, Description: "Extra static headers sent upstream, e.g. cf-access-token. Values are write-only.",
				DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
			"ca_cert":             str("PEM CA certificate(s) trusted for the upstream, for private CAs.", false, "TLS"),
			"allow_insecure_http": {Type: framework.TypeBool, Description: "Allow an http:// url (local simulators only).", Default: false},
			"request_timeout":     {Type: framework.TypeDurationSecond, Description: "Timeout of each upstream call.", Default: int(defaultRequestTimeout.Seconds())},
			"max_auth_per_minute": {Type: framework.TypeInt, Description: "Auth calls (login, MFA, refresh) allowed per minute to this upstream host, shared by all mounts of the plugin process.", Default: defaultMaxAuth},
			"min_ttl":             {Type: framework.TypeDurationSecond, Description: "A read refreshes first when the shared token has less left than this (capped at a third of the token's life).", Default: int(defaultMinTTL.Seconds())},
			"verify":              {Type: framework.TypeBool, Description: "Log in upstream before storing, and store nothing if that fails.", Default: true},
			"login_method":        str("generic: login HTTP method (default POST).", false, "Generic"),
			"login_path":          str("generic: login path, e.g. /api/login.", false, "Generic"),
			"login_body":          str(`generic: Go template of the JSON login body; default {"username": {{json .username}}, "password": {{json .password}}}.`, false, "Generic"),
			"token_field":         str("generic: dotted path of the token in the login answer (default token).", false, "Generic"),
			"expiry_field":        str("generic: dotted path of the expiry (Unix s/ms or RFC 3339) when the token is not a JWT with exp.", false, "Generic"),
			"refresh_method":      str("generic: refresh HTTP method (default POST).", false, "Generic"),
			"refresh_path":        str("generic: refresh path called with the current token; empty means log in again.", false, "Generic"),
			"logout_method":       str("generic: logout HTTP method (default POST).", false, "Generic"),
			"logout_path":         str("generic: logout path, called with the session token when the mount's upstream account changes or its config is deleted (never on lease revocation: every reader shares the token); empty means none.", false, "Generic"),
			"auth_scheme":         str(`generic: Authorization prefix (default Bearer; "none" sends the bare token).`, false, "Generic"),
		},
		ExistenceCheck: b.configExists,
		Operations: map[logical.Operation]framework.OperationHandler{
			logical.ReadOperation:   &framework.PathOperation{Callback: b.configRead, DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "read"}},
			logical.CreateOperation: &framework.PathOperation{Callback: b.configWrite, DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "configure"}},
			logical.UpdateOperation: &framework.PathOperation{Callback: b.configWrite, DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "configure"}},
			logical.DeleteOperation: &framework.PathOperation{Callback: b.configDelete, DisplayAttrs: &framework.DisplayAttributes{OperationVerb: "delete"}},
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
	data := map[string]any{
		"provider": c.Provider, "url": c.URL, "allow_insecure_http": c.AllowInsecureHTTP,
		"request_timeout": int(c.RequestTimeout.Seconds()), "max_auth_per_minute": c.MaxAuthPerMinute,
		"min_ttl": int(c.MinTTL.Seconds()), "ca_cert": c.CACert,
	}
	names := make([]string, 0, len(c.Headers))
	for k := range c.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	data["header_names"] = names
	// Secrets show only whether they are set.
	for _, k := range providerFields[c.Provider] {
		switch k {
		case "password", "api_key", "totp_secret":
			data[k+"_set"] = c.secretSet(k)
		case "org_id":
			data[k] = c.OrgID
		default: // the generic settings are filled in below
			data[k] = c.field(k)
		}
	}
	if c.Provider == upstream.Generic {
		g := c.Generic
		for k, v := range map[string]string{"login_method": g.LoginMethod, "login_path": g.LoginPath, "login_body": g.LoginBody,
			"token_field": g.TokenField, "expiry_field": g.ExpiryField, "refresh_method": g.RefreshMethod, "refresh_path": g.RefreshPath,
			"logout_method": g.LogoutMethod, "logout_path": g.LogoutPath, "auth_scheme": g.AuthScheme} {
			data[k] = v
		}
	}
	return &logical.Response{Data: data}, nil
}

func (c *config) secretSet(k string) bool {
	switch k {
	case "password":
		return c.Password != ""
	case "api_key":
		return c.APIKey != ""
	}
	return c.TOTPSecret != ""
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
	b.configMu.Lock()
	defer b.configMu.Unlock()
	prev, err := readConfig(ctx, req.Storage)
	if err != nil {
		return nil, err
	}
	c, err := mergeConfig(prev, d)
	if err == nil {
		err = c.validate(req.Data)
	}
	if err == nil {
		err = checkNewDestination(prev, c, req.Data)
	}
	var prov upstream.Provider
	var tok *upstream.Token
	if err == nil {
		prov, err = b.newProvider(ctx, req.Storage, c)
	}
	if err == nil && d.Get("verify").(bool) {
		tok, err = prov.Login(ctx)
		if serr := saveTOTPStep(ctx, req.Storage, prov); serr != nil {
			b.Logger().Warn("could not store the last TOTP step", "error", serr)
		}
		if err != nil {
			prov.HTTP().Close()
			err = fmt.Errorf("the login check failed (set verify=false to store without checking): %w", err)
		}
	}
	if err != nil {
		return logical.ErrorResponse("config not saved: %s", err), nil
	}
	entry, err := logical.StorageEntryJSON(configKey, c)
	if err != nil {
		return nil, err
	}
	next := b.newAccount(c, prov)
	prevAcct, err := b.replaceAccount(ctx, req.Storage, next, func() error {
		if err := req.Storage.Put(ctx, entry); err != nil {
			return err
		}
		if tok != nil { // the check's login is a good session: the first read costs no login
			return next.keep(ctx, req.Storage, tok)
		}
		return next.load(ctx, req.Storage) // same account: its stored session still serves
	})
	if err != nil {
		return nil, err
	}
	b.limiters.Register(b.id, prov, c.MaxAuthPerMinute, b.clock.Now())
	b.endSession(ctx, prevAcct, next.id)
	b.Logger().Info("config written", "provider", c.Provider, "url", c.URL, "verified", tok != nil)
	return nil, nil
}

func (b *backend) configDelete(ctx context.Context, req *logical.Request, _ *framework.FieldData) (*logical.Response, error) {
	if !b.WriteSafeReplicationState() {
		return nil, logical.ErrReadOnly
	}
	b.configMu.Lock()
	defer b.configMu.Unlock()
	// The stored TOTP step goes too: a step from a node whose clock ran fast would otherwise
	// outlive every rewrite. This process's own record of the account still protects a quick
	// rewrite until its step is past.
	prev, err := b.replaceAccount(ctx, req.Storage, nil, func() error {
		if err := req.Storage.Delete(ctx, configKey); err != nil {
			return err
		}
		return req.Storage.Delete(ctx, totpStepKey)
	})
	if err != nil {
		return nil, err
	}
	b.limiters.Unregister(b.id, b.clock.Now())
	b.endSession(ctx, prev, "")
	return nil, nil
}

// replaceAccount makes next the mount's account (nil: none) with no session write of the
// account it replaces landing in between: under the session gate it closes the current
// account, drops the stored session unless next is the same upstream account, and runs
// write. It returns the replaced account, if one was loaded.
func (b *backend) replaceAccount(ctx context.Context, s logical.Storage, next *account, write func() error) (*account, error) {
	prev, err := b.account(ctx, s)
	if err != nil {
		b.Logger().Warn("the current config could not be loaded; replacing it", "error", err)
	}
	b.sessionGate.Lock()
	defer b.sessionGate.Unlock()
	b.swap(nil)
	if next == nil || prev == nil || prev.id != next.id {
		if err := s.Delete(ctx, sessionKey); err != nil {
			return nil, err
		}
	}
	if err := write(); err != nil {
		return nil, err
	}
	b.swap(next)
	return prev, nil
}

// endSession lets go of a replaced account. Only when the upstream account itself changed
// (or the config was deleted) is its session logged out, where the provider has a logout:
// a write that keeps the account (min_ttl, a new password) must not kill the token that
// outstanding leases still hold.
func (b *backend) endSession(ctx context.Context, prev *account, nextID string) {
	if prev == nil {
		return
	}
	defer prev.prov.HTTP().Close()
	if prev.id == nextID {
		return
	}
	if t := prev.current(); prev.usable(t) {
		ctx, cancel := context.WithTimeout(ctx, prev.cfg.RequestTimeout)
		defer cancel()
		if err := prev.prov.Logout(ctx, t.Value); err != nil {
			prev.logger.Warn("upstream logout failed; the token will expire on its own", "error", err)
		}
	}
}
