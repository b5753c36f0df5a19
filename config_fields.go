package sessiontoken

import (
	"fmt"
	"slices"

	"github.com/hashicorp/vault/sdk/framework"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/upstream"
)

// fieldSpec declares one config field, once. Everything else is derived from configFields:
// the framework schema, which providers take the field and which require it, the merge of a
// write into the stored config, the size bounds, the config read (secrets as <name>_set), the
// rule that a write moving credentials elsewhere must supply them again, and the account
// fingerprint.
type fieldSpec struct {
	name      string
	providers []string // nil: every provider
	required  []string // providers that cannot do without it

	// secret: write-only. A read shows <name>_set (headers: header_names), never the value.
	secret bool
	// destination: it decides where, or in what form, credentials are sent. A write that
	// changes it must supply every stored secret again (see checkCredentialsResupplied).
	destination bool
	// identity: it names the upstream account. It goes into the account fingerprint, and a
	// write that changes it must supply the secrets again too: the stored password must not
	// be tried against another user.
	identity bool

	maxLen int // bytes of a string value (headers: of each value); 0 for bool and numbers
	min    int // numbers and durations (seconds): inclusive bounds
	max    int

	schema *framework.FieldSchema
	ref    func(c *config) any // a pointer to the field in c: *string, *int, *bool, *map[string]string, or **int (optional: nil is the default)
}

func (f *fieldSpec) takenBy(provider string) bool {
	return f.providers == nil || slices.Contains(f.providers, provider)
}

var (
	allGeneric = []string{upstream.Generic}
	userFields = []string{upstream.PlexTrac, upstream.Plaspy, upstream.Generic}
)

func strField(desc, group string, sensitive bool) *framework.FieldSchema {
	return &framework.FieldSchema{Type: framework.TypeString, Description: desc,
		DisplayAttrs: &framework.DisplayAttributes{Sensitive: sensitive, Group: group}}
}

// configFields is the one declaration of every config field. The order is the docs' order.
var configFields = []*fieldSpec{
	{name: "provider", required: upstream.Providers, identity: true, maxLen: 32,
		schema: &framework.FieldSchema{Type: framework.TypeString, Description: "Upstream API: plextrac, plaspy, resolver or generic.",
			AllowedValues: []any{"plextrac", "plaspy", "resolver", "generic"}, DisplayAttrs: &framework.DisplayAttributes{Name: "Provider"}},
		ref: func(c *config) any { return &c.Provider }},
	{name: "url", required: upstream.Providers, destination: true, identity: true, maxLen: upstream.MaxURLLen,
		schema: strField("Upstream base URL, e.g. https://acme.plextrac.com (plaspy defaults to https://api.plaspy.com).", "", false),
		ref:    func(c *config) any { return &c.URL }},
	{name: "username", providers: userFields, required: []string{upstream.PlexTrac, upstream.Plaspy}, identity: true, maxLen: upstream.MaxNameLen,
		schema: strField("Login user: PlexTrac e-mail, Plaspy userName, generic {{.username}}.", "Credentials", false),
		ref:    func(c *config) any { return &c.Username }},
	{name: "email", providers: []string{upstream.Resolver}, required: []string{upstream.Resolver}, identity: true, maxLen: upstream.MaxNameLen,
		schema: strField("Resolver Core login e-mail.", "Credentials", false),
		ref:    func(c *config) any { return &c.Email }},
	{name: "password", providers: []string{upstream.PlexTrac, upstream.Resolver, upstream.Generic},
		required: []string{upstream.PlexTrac, upstream.Resolver}, secret: true, maxLen: upstream.MaxSecretLen,
		schema: strField("Password (plextrac, resolver, generic). Write-only.", "Credentials", true),
		ref:    func(c *config) any { return &c.Password }},
	{name: "api_key", providers: []string{upstream.Plaspy, upstream.Generic}, required: []string{upstream.Plaspy}, secret: true, maxLen: upstream.MaxSecretLen,
		schema: strField("Plaspy API key, or generic {{.api_key}}. Write-only.", "Credentials", true),
		ref:    func(c *config) any { return &c.APIKey }},
	{name: "totp_secret", providers: []string{upstream.PlexTrac}, secret: true, maxLen: upstream.MaxTOTPSecretLen,
		schema: strField("PlexTrac MFA: the base32 TOTP seed of the account's authenticator. Write-only; empty clears it.", "Credentials", true),
		ref:    func(c *config) any { return &c.TOTPSecret }},
	{name: "org_id", providers: []string{upstream.Resolver}, required: []string{upstream.Resolver}, identity: true, min: 0, max: 1<<31 - 1,
		schema: &framework.FieldSchema{Type: framework.TypeInt, Description: "Resolver Core org id to log in to (selectedOrg).",
			DisplayAttrs: &framework.DisplayAttributes{Group: "Credentials"}},
		ref: func(c *config) any { return &c.OrgID }},
	// Headers are a destination: a front proxy may route on one (X-Forwarded-Host,
	// Forwarded), and a deny-list of such names is never complete.
	{name: "headers", secret: true, destination: true, maxLen: upstream.MaxHeaderValueLen,
		schema: &framework.FieldSchema{Type: framework.TypeKVPairs, Description: "Extra static headers sent upstream, e.g. cf-access-token. Values are write-only.",
			DisplayAttrs: &framework.DisplayAttributes{Sensitive: true}},
		ref: func(c *config) any { return &c.Headers }},
	{name: "ca_cert", destination: true, maxLen: upstream.MaxCACertLen,
		schema: strField("PEM CA certificate(s) trusted for the upstream, for private CAs; when set, only these are trusted (they replace the system roots). Stored byte for byte as written.", "TLS", false),
		ref:    func(c *config) any { return &c.CACert }},
	{name: "allow_insecure_http", destination: true,
		schema: &framework.FieldSchema{Type: framework.TypeBool, Description: "Allow an http:// url (local simulators only).", Default: false},
		ref:    func(c *config) any { return &c.AllowInsecureHTTP }},
	{name: "request_timeout", min: 1, max: 300,
		schema: &framework.FieldSchema{Type: framework.TypeDurationSecond, Description: "Timeout of each upstream call, in seconds (1..300).", Default: defaultRequestTimeoutSeconds},
		ref:    func(c *config) any { return &c.RequestTimeoutSeconds }},
	{name: "max_auth_per_minute", min: 1, max: 600,
		schema: &framework.FieldSchema{Type: framework.TypeInt, Description: "Auth calls (login, MFA, refresh) allowed per minute to this upstream host, shared by all mounts of the plugin process (1..600; 2 or more with totp_secret, since an MFA login sends 2).", Default: defaultMaxAuthPerMinute},
		ref:    func(c *config) any { return &c.MaxAuthPerMinute }},
	{name: "min_ttl", min: 0, max: 86400,
		schema: &framework.FieldSchema{Type: framework.TypeDurationSecond, Description: "A read refreshes first when the shared token has less left than this, in seconds (0..86400; capped at a third of the token's life).", Default: defaultMinTTLSeconds},
		ref:    func(c *config) any { return &c.MinTTLSeconds }},
	{name: "max_refused_logins", min: 1, max: 100,
		schema: &framework.FieldSchema{Type: framework.TypeInt, Description: "Refused logins in a row after which the mount stops logging in with these credentials, so that upstream does not lock the account out (1..100). A config write with credentials, or rotate, ends the hold.", Default: defaultMaxRefusedLogins},
		ref:    func(c *config) any { return &c.MaxRefusedLogins }},
	{name: "keep_warm", min: 0, max: 7 * 86400,
		schema: &framework.FieldSchema{Type: framework.TypeDurationSecond, Description: "The periodic run refreshes the session ahead of expiry only while a token or static-token read, or a lease renewal, came within this many seconds (0..604800; 0: never; default: twice the token's life). Past it the session lapses, and the next reader refreshes or logs in."},
		ref:    func(c *config) any { return &c.KeepWarmSeconds }},
	genericField("login_method", "generic: login HTTP method (default POST).", true),
	{name: "login_path", providers: allGeneric, required: allGeneric, destination: true, identity: true, maxLen: upstream.MaxSettingLen,
		schema: strField("generic: login path, e.g. /api/login.", "Generic", false),
		ref:    func(c *config) any { return &c.LoginPath }},
	{name: "login_body", providers: allGeneric, destination: true, identity: true, maxLen: upstream.MaxLoginBodyLen,
		schema: strField(`generic: the JSON login body as text with one value per {{ }} (.username, .password, .api_key or a quoted string, bare or through one of json, html, js, urlquery); default {"username": {{json .username}}, "password": {{json .password}}}.`, "Generic", false),
		ref:    func(c *config) any { return &c.LoginBody }},
	genericField("token_field", "generic: dotted path of the token in the login answer (default token).", true),
	genericField("expiry_field", "generic: dotted path of the expiry: a number (below 1e9 seconds from now, else epoch s/ms/µs/ns by magnitude), RFC 3339 with a zone, or an HTTP-date; stated in another form, the login is refused. With a JWT exp too, the earlier one wins.", false),
	genericField("refresh_method", "generic: refresh HTTP method (default POST).", false),
	genericField("refresh_path", "generic: refresh path called with the current token; empty means log in again.", false),
	genericField("logout_method", "generic: logout HTTP method (default POST).", false),
	genericField("logout_path", "generic: logout path, called with the session token when the mount's upstream account changes or its config is deleted (never on lease revocation: every reader shares the token); empty means none.", false),
	genericField("auth_scheme", `generic: Authorization prefix (default Bearer; "none" sends the bare token).`, false),
}

// genericField declares a short generic setting. where: it decides how the login is done,
// so it is a destination and part of the account's identity.
func genericField(name, desc string, where bool) *fieldSpec {
	return &fieldSpec{name: name, providers: allGeneric, destination: where, identity: where, maxLen: upstream.MaxSettingLen,
		schema: strField(desc, "Generic", false), ref: func(c *config) any { return c.genericSetting(name) }}
}

// fieldByName is configFields by name.
var fieldByName = func() map[string]*fieldSpec {
	m := map[string]*fieldSpec{}
	for _, f := range configFields {
		m[f.name] = f
	}
	return m
}()

// configSchema is the config path's framework schema: every declared field, and verify.
func configSchema() map[string]*framework.FieldSchema {
	out := map[string]*framework.FieldSchema{
		"verify": {Type: framework.TypeBool, Description: "Log in upstream before storing, and store nothing if that fails.", Default: true},
	}
	for _, f := range configFields {
		out[f.name] = f.schema
	}
	return out
}

// providerFieldNames lists the provider-specific fields provider takes, for error messages.
func providerFieldNames(provider string) []string {
	var out []string
	for _, f := range configFields {
		if f.providers != nil && f.takenBy(provider) {
			out = append(out, f.name)
		}
	}
	return out
}

// checkBounds refuses a value past its declared bound, naming the field. It runs before any
// other check, so nothing larger is parsed, rendered or kept.
func (f *fieldSpec) checkBounds(c *config) error {
	switch p := f.ref(c).(type) {
	case *string:
		if len(*p) > f.maxLen {
			return fmt.Errorf("%s: %d bytes is longer than the limit of %d", f.name, len(*p), f.maxLen)
		}
	case *int:
		return f.checkInt(*p)
	case **int:
		if *p != nil {
			return f.checkInt(**p)
		}
	case *map[string]string:
		if len(*p) > upstream.MaxHeaders {
			return fmt.Errorf("%s: %d headers is more than the limit of %d", f.name, len(*p), upstream.MaxHeaders)
		}
		for k, v := range *p {
			if len(k) > upstream.MaxHeaderNameLen {
				return fmt.Errorf("%s: a header name is longer than %d bytes", f.name, upstream.MaxHeaderNameLen)
			}
			if len(v) > f.maxLen {
				return fmt.Errorf("%s: the value of %s is longer than the limit of %d bytes", f.name, k, f.maxLen)
			}
		}
	}
	return nil
}

func (f *fieldSpec) checkInt(n int) error {
	if n < f.min || n > f.max {
		return fmt.Errorf("%s: %d is outside %d..%d", f.name, n, f.min, f.max)
	}
	return nil
}

// isSet says whether a field holds a value (for required fields and secrets).
func (f *fieldSpec) isSet(c *config) bool {
	switch p := f.ref(c).(type) {
	case *string:
		return *p != ""
	case *int:
		return *p != 0
	case **int:
		return *p != nil
	case *bool:
		return *p
	case *map[string]string:
		return len(*p) > 0
	}
	return false
}

// value is the field's value in c, for comparing two configs and for the config read.
func (f *fieldSpec) value(c *config) any {
	switch p := f.ref(c).(type) {
	case *string:
		return *p
	case *int:
		return *p
	case **int:
		if *p != nil {
			return **p
		}
	case *bool:
		return *p
	case *map[string]string:
		return *p
	}
	return nil
}

// suppliesCredentials says whether a write names any secret field: the operator's act that
// ends a hold (with one login attempt when verify is on).
func (c *config) suppliesCredentials(given map[string]any) bool {
	for _, f := range configFields {
		if _, ok := given[f.name]; ok && f.secret && f.takenBy(c.Provider) {
			return true
		}
	}
	return false
}
