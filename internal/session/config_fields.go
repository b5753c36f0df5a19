package session

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/upstream"
)

// Field declares one config field, once. Everything else is derived from configFields:
// the framework schema, which providers take the field and which require it, the merge of a
// write into the stored config, the size bounds, the config read (secrets as <name>_set), the
// rule that a write moving credentials elsewhere must supply them again, and the account
// fingerprint.
type Field struct {
	Name string
	// PerProvider: only the providers whose upstream.Spec takes it (Takes) do, and those that
	// require it (Requires) cannot do without it. Otherwise every provider takes it, and
	// RequiredByAll says whether every provider needs it. The table names no provider.
	PerProvider   bool
	RequiredByAll bool
	// Allowed, when set, are the values the field takes (its schema's AllowedValues), asked
	// when the schema is built and at each write: the providers registered then.
	Allowed func() []string

	// Secret: write-only. A read shows <name>_set (headers: header_names), never the value.
	Secret bool
	// Destination: it decides where, or in what form, credentials are sent. A write that
	// changes it must supply every stored secret again (see checkCredentialsResupplied).
	Destination bool
	// Identity: it names the upstream account. It goes into the account fingerprint, and a
	// write that changes it must supply the secrets again too: the stored password must not
	// be tried against another user.
	Identity bool

	MaxLen int // bytes of a string value (headers: of each value); 0 for bool and numbers
	Min    int // numbers and durations (seconds): inclusive bounds
	Max    int

	Schema *framework.FieldSchema
	Ref    func(c *Config) any // a pointer to the field in c: *string, *int, *bool, *map[string]string, or **int (optional: nil is the default)
}

// schemaNow is the field's schema with its allowed values as they are now: the providers
// registered (upstream.Register), for the provider field.
func (f *Field) schemaNow() *framework.FieldSchema {
	if f.Allowed == nil {
		return f.Schema
	}
	s := *f.Schema
	s.AllowedValues = anys(f.Allowed())
	s.Description = strings.TrimSuffix(s.Description, ".") + ": " + strings.Join(f.Allowed(), ", ") + "."
	return &s
}

// TakenBy says whether provider takes the field.
func (f *Field) TakenBy(provider string) bool {
	if !f.PerProvider {
		return true
	}
	spec, _ := upstream.SpecOf(provider)
	return slices.Contains(spec.Takes, f.Name)
}

// RequiredBy says whether provider cannot do without the field.
func (f *Field) RequiredBy(provider string) bool {
	if !f.PerProvider {
		return f.RequiredByAll
	}
	spec, _ := upstream.SpecOf(provider)
	return slices.Contains(spec.Requires, f.Name)
}

func strField(desc, group string, sensitive bool) *framework.FieldSchema {
	return &framework.FieldSchema{Type: framework.TypeString, Description: desc,
		DisplayAttrs: &framework.DisplayAttributes{Sensitive: sensitive, Group: group}}
}

// Fields is the one declaration of every config field. The order is the docs' order.
var Fields = []*Field{
	{
		Name:          "provider",
		RequiredByAll: true,
		Allowed:       upstream.Names,
		Identity:      true,
		MaxLen:        32,
		Schema: &framework.FieldSchema{
			Type:         framework.TypeString,
			Description:  "Upstream API.", // schemaNow adds the registered providers
			DisplayAttrs: &framework.DisplayAttributes{Name: "Provider"},
		},
		Ref: func(c *Config) any { return &c.Provider },
	},
	{
		Name:          "url",
		RequiredByAll: true,
		Destination:   true,
		Identity:      true,
		MaxLen:        upstream.MaxURLLen,
		Schema:        strField("Upstream base URL, e.g. https://acme.plextrac.com (plaspy defaults to https://api.plaspy.com).", "", false),
		Ref:           func(c *Config) any { return &c.URL },
	},
	{
		Name:        "username",
		PerProvider: true,
		Identity:    true,
		MaxLen:      upstream.MaxNameLen,
		Schema:      strField("Login user: PlexTrac e-mail, Plaspy userName, generic {{.username}}.", "Credentials", false),
		Ref:         func(c *Config) any { return &c.Username },
	},
	{
		Name:        "email",
		PerProvider: true,
		Identity:    true,
		MaxLen:      upstream.MaxNameLen,
		Schema:      strField("Resolver Core login e-mail.", "Credentials", false),
		Ref:         func(c *Config) any { return &c.Email },
	},
	{
		Name:        "password",
		PerProvider: true,
		Secret:      true,
		MaxLen:      upstream.MaxSecretLen,
		Schema:      strField("Password (plextrac, resolver, generic). Write-only.", "Credentials", true),
		Ref:         func(c *Config) any { return &c.Password },
	},
	{
		Name:        "api_key",
		PerProvider: true,
		Secret:      true,
		MaxLen:      upstream.MaxSecretLen,
		Schema:      strField("Plaspy API key, or generic {{.api_key}}. Write-only.", "Credentials", true),
		Ref:         func(c *Config) any { return &c.APIKey },
	},
	{
		Name:        "totp_secret",
		PerProvider: true,
		Secret:      true,
		MaxLen:      upstream.MaxTOTPSecretLen,
		Schema:      strField("PlexTrac MFA: the base32 TOTP seed of the account's authenticator. Write-only; empty clears it.", "Credentials", true),
		Ref:         func(c *Config) any { return &c.TOTPSecret },
	},
	{
		Name:        "org_id",
		PerProvider: true,
		Identity:    true,
		Min:         0,
		Max:         1<<31 - 1,
		Schema: &framework.FieldSchema{
			Type:         framework.TypeInt,
			Description:  "Resolver Core org id to log in to (selectedOrg).",
			DisplayAttrs: &framework.DisplayAttributes{Group: "Credentials"},
		},
		Ref: func(c *Config) any { return &c.OrgID },
	},
	// Headers are a destination: a front proxy may route on one (X-Forwarded-Host,
	// Forwarded), and a deny-list of such names is never complete.
	{
		Name:        "headers",
		Secret:      true,
		Destination: true,
		MaxLen:      upstream.MaxHeaderValueLen,
		Schema: &framework.FieldSchema{
			Type:         framework.TypeKVPairs,
			Description:  "Extra static headers sent upstream, e.g. cf-access-token. Values are write-only.",
			DisplayAttrs: &framework.DisplayAttributes{Sensitive: true},
		},
		Ref: func(c *Config) any { return &c.Headers },
	},
	{
		Name:        "ca_cert",
		Destination: true,
		MaxLen:      upstream.MaxCACertLen,
		Schema:      strField("PEM CA certificate(s) trusted for the upstream, for private CAs; when set, only these are trusted (they replace the system roots). Stored byte for byte as written.", "TLS", false),
		Ref:         func(c *Config) any { return &c.CACert },
	},
	{
		Name:        "allow_insecure_http",
		Destination: true,
		Schema: &framework.FieldSchema{
			Type:        framework.TypeBool,
			Description: "Allow an http:// url (local simulators only).",
			Default:     false,
		},
		Ref: func(c *Config) any { return &c.AllowInsecureHTTP },
	},
	{
		Name: "request_timeout",
		Min:  1,
		Max:  300,
		Schema: &framework.FieldSchema{
			Type:        framework.TypeDurationSecond,
			Description: "Timeout of each upstream call, in seconds (1..300).",
			Default:     defaultRequestTimeoutSeconds,
		},
		Ref: func(c *Config) any { return &c.RequestTimeoutSeconds },
	},
	{
		Name: "max_auth_per_minute",
		Min:  1,
		Max:  600,
		Schema: &framework.FieldSchema{
			Type:        framework.TypeInt,
			Description: "Auth calls (login, MFA, refresh) allowed per minute to this upstream host, shared by all mounts of the plugin process (1..600; 2 or more with totp_secret, since an MFA login sends 2).",
			Default:     defaultMaxAuthPerMinute,
		},
		Ref: func(c *Config) any { return &c.MaxAuthPerMinute },
	},
	{
		Name: "min_ttl",
		Min:  0,
		Max:  86400,
		Schema: &framework.FieldSchema{
			Type:        framework.TypeDurationSecond,
			Description: "A read refreshes first when the shared token has less left than this, in seconds (0..86400; capped at a third of the token's life).",
			Default:     defaultMinTTLSeconds,
		},
		Ref: func(c *Config) any { return &c.MinTTLSeconds },
	},
	{
		Name: "max_refused_logins",
		Min:  1,
		Max:  100,
		Schema: &framework.FieldSchema{
			Type:        framework.TypeInt,
			Description: "Refused logins in a row after which the mount stops logging in with these credentials, so that upstream does not lock the account out (1..100). A config write with credentials, or rotate, ends the hold.",
			Default:     DefaultMaxRefusedLogins,
		},
		Ref: func(c *Config) any { return &c.MaxRefusedLogins },
	},
	{
		Name: "keep_warm",
		Min:  0,
		Max:  7 * 86400,
		Schema: &framework.FieldSchema{
			Type:        framework.TypeDurationSecond,
			Description: "The periodic run refreshes the session ahead of expiry only while a token or static-token read, or a lease renewal, came within this many seconds (0..604800; 0: never; default: twice the token's life). Past it the session lapses, and the next reader refreshes or logs in.",
		},
		Ref: func(c *Config) any { return &c.KeepWarmSeconds },
	},
	genericField("login_method", "generic: login HTTP method (default POST).", true),
	{
		Name:        "login_path",
		PerProvider: true,
		Destination: true,
		Identity:    true,
		MaxLen:      upstream.MaxSettingLen,
		Schema:      strField("generic: login path, e.g. /api/login.", "Generic", false),
		Ref:         func(c *Config) any { return &c.LoginPath },
	},
	{
		Name:        "login_body",
		PerProvider: true,
		Destination: true,
		Identity:    true,
		MaxLen:      upstream.MaxLoginBodyLen,
		Schema:      strField(`generic: the JSON login body as text with one value per {{ }} (.username, .password, .api_key or a quoted string, bare or through one of json, html, js, urlquery); default {"username": {{json .username}}, "password": {{json .password}}}.`, "Generic", false),
		Ref:         func(c *Config) any { return &c.LoginBody },
	},
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
func genericField(name, desc string, where bool) *Field {
	return &Field{
		Name:        name,
		PerProvider: true,
		Destination: where,
		Identity:    where,
		MaxLen:      upstream.MaxSettingLen,
		Schema:      strField(desc, "Generic", false),
		Ref:         func(c *Config) any { return c.genericSetting(name) },
	}
}

func anys(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// FieldByName is Fields by name.
var FieldByName = func() map[string]*Field {
	m := map[string]*Field{}
	for _, f := range Fields {
		m[f.Name] = f
	}
	return m
}()

// ConfigSchema is the config path's framework schema: every declared field, and verify.
func ConfigSchema() map[string]*framework.FieldSchema {
	out := map[string]*framework.FieldSchema{
		"verify": {
			Type:        framework.TypeBool,
			Description: "Log in upstream before storing, and store nothing if that fails.",
			Default:     true,
		},
	}
	for _, f := range Fields {
		out[f.Name] = f.schemaNow()
	}
	return out
}

// providerFieldNames lists the provider-specific fields provider takes, for error messages.
func providerFieldNames(provider string) []string {
	var out []string
	for _, f := range Fields {
		if f.PerProvider && f.TakenBy(provider) {
			out = append(out, f.Name)
		}
	}
	return out
}

// checkBounds refuses a value past its declared bound, naming the field. It runs before any
// other check, so nothing larger is parsed, rendered or kept.
func (f *Field) checkBounds(c *Config) error {
	switch p := f.Ref(c).(type) {
	case *string:
		if len(*p) > f.MaxLen {
			return fmt.Errorf("%s: %d bytes is longer than the limit of %d", f.Name, len(*p), f.MaxLen)
		}
	case *int:
		return f.checkInt(*p)
	case **int:
		if *p != nil {
			return f.checkInt(**p)
		}
	case *map[string]string:
		if len(*p) > upstream.MaxHeaders {
			return fmt.Errorf("%s: %d headers is more than the limit of %d", f.Name, len(*p), upstream.MaxHeaders)
		}
		for k, v := range *p {
			if len(k) > upstream.MaxHeaderNameLen {
				return fmt.Errorf("%s: a header name is longer than %d bytes", f.Name, upstream.MaxHeaderNameLen)
			}
			if len(v) > f.MaxLen {
				return fmt.Errorf("%s: the value of %s is longer than the limit of %d bytes", f.Name, k, f.MaxLen)
			}
		}
	}
	return nil
}

func (f *Field) checkInt(n int) error {
	if n < f.Min || n > f.Max {
		return fmt.Errorf("%s: %d is outside %d..%d", f.Name, n, f.Min, f.Max)
	}
	return nil
}

// isSet says whether a field holds a value (for required fields and secrets).
func (f *Field) isSet(c *Config) bool {
	switch p := f.Ref(c).(type) {
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
func (f *Field) value(c *Config) any {
	switch p := f.Ref(c).(type) {
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

// SuppliesCredentials says whether a write names any secret field: the operator's act that
// ends a hold (with one login attempt when verify is on).
func (c *Config) SuppliesCredentials(given map[string]any) bool {
	for _, f := range Fields {
		if _, ok := given[f.Name]; ok && f.Secret && f.TakenBy(c.Provider) {
			return true
		}
	}
	return false
}

// ConfigReadSchema is the config read's response schema, from the field table: each
// non-secret field as declared, each secret as <name>_set (headers: header_names).
func ConfigReadSchema() map[string]*framework.FieldSchema {
	out := map[string]*framework.FieldSchema{}
	for _, f := range Fields {
		switch {
		case f.Name == "headers":
			out["header_names"] = &framework.FieldSchema{
				Type:        framework.TypeStringSlice,
				Description: "Names of the configured headers (values are write-only).",
			}
		case f.Secret:
			out[f.Name+"_set"] = &framework.FieldSchema{
				Type:        framework.TypeBool,
				Description: "Whether " + f.Name + " is set (it is write-only).",
			}
		default:
			out[f.Name] = f.schemaNow()
		}
	}
	return out
}

// ReadBack is what a config read shows: every field the provider takes as it was written,
// and for each secret only whether it is set (headers: their names).
func (c *Config) ReadBack() map[string]any {
	data := map[string]any{}
	for _, f := range Fields {
		switch {
		case !f.TakenBy(c.Provider):
		case f.Name == "headers":
			names := make([]string, 0, len(c.Headers))
			for k := range c.Headers {
				names = append(names, k)
			}
			sort.Strings(names)
			data["header_names"] = names
		case f.Secret:
			data[f.Name+"_set"] = f.isSet(c)
		default:
			data[f.Name] = f.value(c)
		}
	}
	return data
}
