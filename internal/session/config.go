package session

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"golang.org/x/net/http/httpguts"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/upstream"
)

const (
	defaultRequestTimeoutSeconds = int(upstream.DefaultRequestTimeout / time.Second)
	defaultMinTTLSeconds         = 300
	PlaspyDefaultURL             = "https://api.plaspy.com"
	// DefaultMaxRefusedLogins: refused logins in a row before the mount holds its credentials
	// (hold.go); low, since the upstream's own lockout threshold is unpublished.
	DefaultMaxRefusedLogins = 3
)

// Config is a mount's configuration. It is also its stored form (readConfig and putConfig,
// in storage_config.go): a backend-owned type, so a change to an upstream struct never changes
// what is stored. Durations are whole seconds, as they are written and read.
type Config struct {
	Format                int               `json:"version"`
	Provider              string            `json:"provider"`
	URL                   string            `json:"url"`
	Username              string            `json:"username,omitempty"`
	Email                 string            `json:"email,omitempty"`
	Password              string            `json:"password,omitempty"`
	APIKey                string            `json:"api_key,omitempty"`
	TOTPSecret            string            `json:"totp_secret,omitempty"`
	OrgID                 int               `json:"org_id,omitempty"`
	Headers               map[string]string `json:"headers,omitempty"`
	CACert                string            `json:"ca_cert,omitempty"`
	AllowInsecureHTTP     bool              `json:"allow_insecure_http,omitempty"`
	RequestTimeoutSeconds int               `json:"request_timeout_seconds"`
	MaxAuthPerMinute      int               `json:"max_auth_per_minute"`
	MinTTLSeconds         int               `json:"min_ttl_seconds"`
	MaxRefusedLogins      int               `json:"max_refused_logins,omitempty"` // 0: the default (configs from before it existed)
	KeepWarmSeconds       *int              `json:"keep_warm_seconds,omitempty"`  // nil: twice the token's life (also configs from before it existed)
	LoginMethod           string            `json:"login_method,omitempty"`
	LoginPath             string            `json:"login_path,omitempty"`
	LoginBody             string            `json:"login_body,omitempty"`
	TokenField            string            `json:"token_field,omitempty"`
	ExpiryField           string            `json:"expiry_field,omitempty"`
	RefreshMethod         string            `json:"refresh_method,omitempty"`
	RefreshPath           string            `json:"refresh_path,omitempty"`
	LogoutMethod          string            `json:"logout_method,omitempty"`
	LogoutPath            string            `json:"logout_path,omitempty"`
	AuthScheme            string            `json:"auth_scheme,omitempty"`
	// LegacyAccount is the v0.1.0 fingerprint of this account, kept while the account is
	// the one v0.1.0 configured, so that its stored session and leases still match.
	LegacyAccount string `json:"legacy_account,omitempty"`
}

// defaultMaxAuthPerMinute is the upstream host's default budget (half of PlexTrac's published
// login limit); docs/leases.md has the arithmetic.
const defaultMaxAuthPerMinute = upstream.DefaultAuthPerMinute

func (c *Config) RequestTimeout() time.Duration {
	return time.Duration(c.RequestTimeoutSeconds) * time.Second
}
func (c *Config) MinTTL() time.Duration { return time.Duration(c.MinTTLSeconds) * time.Second }

func (c *Config) RefusalsBeforeHold() int {
	if c.MaxRefusedLogins < 1 {
		return DefaultMaxRefusedLogins
	}
	return c.MaxRefusedLogins
}

// KeepWarm is how long after the last read or renewal the periodic run keeps refreshing
// the session ahead of expiry: keep_warm as written, or twice the life of token t, so that
// Vault Agent and VSO, which come back within one life, always keep a mount warm.
func (c *Config) KeepWarm(t *upstream.Token) time.Duration {
	if c.KeepWarmSeconds != nil {
		return time.Duration(*c.KeepWarmSeconds) * time.Second
	}
	return 2 * t.Lifetime()
}

func (c *Config) genericSetting(name string) *string {
	return map[string]*string{"login_method": &c.LoginMethod, "token_field": &c.TokenField, "expiry_field": &c.ExpiryField,
		"refresh_method": &c.RefreshMethod, "refresh_path": &c.RefreshPath, "logout_method": &c.LogoutMethod,
		"logout_path": &c.LogoutPath, "auth_scheme": &c.AuthScheme}[name]
}

// upstreamConfig is what the upstream client takes.
func (c *Config) upstreamConfig() upstream.Config {
	return upstream.Config{Provider: c.Provider, URL: c.URL, Username: c.Username, Email: c.Email, Password: c.Password,
		APIKey: c.APIKey, TOTPSecret: upstream.NormalizeTOTPSecret(c.TOTPSecret), OrgID: c.OrgID, Headers: c.Headers,
		CACert: c.CACert, AllowInsecureHTTP: c.AllowInsecureHTTP, RequestTimeout: c.RequestTimeout(),
		MaxAuthPerMinute: c.MaxAuthPerMinute, Generic: upstream.GenericConfig{LoginMethod: c.LoginMethod,
			LoginPath: c.LoginPath, LoginBody: c.LoginBody, TokenField: c.TokenField, ExpiryField: c.ExpiryField,
			RefreshMethod: c.RefreshMethod, RefreshPath: c.RefreshPath, LogoutMethod: c.LogoutMethod,
			LogoutPath: c.LogoutPath, AuthScheme: c.AuthScheme}}
}

// MergeConfig applies the fields of a write to the stored config (a new provider starts
// over). Values are kept as written, so that a read gives back what was written; a value a
// read would give back in another form is refused first (checkAsWritten).
func MergeConfig(prev *Config, d *framework.FieldData) (*Config, error) {
	for _, f := range Fields {
		if raw, ok := d.Raw[f.Name]; ok {
			if err := f.checkAsWritten(raw); err != nil {
				return nil, err
			}
		}
	}
	provider, hasProvider := d.GetOk("provider")
	name, _ := provider.(string) // as written: another spelling of a provider was refused above
	c := &Config{Format: configVersion, RequestTimeoutSeconds: defaultRequestTimeoutSeconds,
		MaxAuthPerMinute: defaultMaxAuthPerMinute, MinTTLSeconds: defaultMinTTLSeconds, MaxRefusedLogins: DefaultMaxRefusedLogins}
	if prev != nil && (!hasProvider || name == prev.Provider) {
		cp := *prev
		c = &cp
	}
	if hasProvider {
		c.Provider = name
	}
	if c.Provider == "" {
		return nil, fmt.Errorf("provider: required, one of %s", strings.Join(upstream.Providers, ", "))
	}
	if !slices.Contains(upstream.Providers, c.Provider) {
		if len(c.Provider) > 32 {
			return nil, fmt.Errorf("provider: not one of %s", strings.Join(upstream.Providers, ", "))
		}
		return nil, fmt.Errorf("provider: %q is not one of %s", c.Provider, strings.Join(upstream.Providers, ", "))
	}
	for _, f := range Fields {
		v, ok := d.GetOk(f.Name)
		if !ok || f.Name == "provider" {
			continue
		}
		switch p := f.Ref(c).(type) {
		case *string:
			*p = v.(string)
		case *int:
			*p = v.(int)
		case **int:
			n := v.(int)
			*p = &n
		case *bool:
			*p = v.(bool)
		case *map[string]string:
			*p = v.(map[string]string)
		}
	}
	if c.Provider == upstream.Plaspy && c.URL == "" {
		if _, given := d.Raw["url"]; given { // it would read back as the default
			return nil, fmt.Errorf("url: write %q (plaspy's default) or leave url out, %s", PlaspyDefaultURL, AsWritten)
		}
		c.URL = PlaspyDefaultURL
	}
	return c, nil
}

// Validate checks a merged config. given are the fields the write named. Every error starts
// with the field to fix. Bounds come first: nothing past its bound is parsed or kept.
func (c *Config) Validate(given map[string]any) error {
	for k := range given {
		if f := FieldByName[k]; f != nil && !f.TakenBy(c.Provider) {
			return fmt.Errorf("%s: not used by provider %s (it takes %s)", k, c.Provider, strings.Join(providerFieldNames(c.Provider), ", "))
		}
	}
	for _, f := range Fields {
		if err := f.checkBounds(c); err != nil {
			return err
		}
	}
	if err := upstream.CheckURL(c.URL, c.AllowInsecureHTTP); err != nil {
		return err
	}
	for _, f := range Fields {
		if slices.Contains(f.Required, c.Provider) && !f.isSet(c) {
			return fmt.Errorf("%s: required for provider %s", f.Name, c.Provider)
		}
	}
	if c.TOTPSecret != "" {
		if err := upstream.ValidateTOTPSecret(c.TOTPSecret); err != nil {
			return fmt.Errorf("totp_secret: not a base32 TOTP seed (the letters A-Z and digits 2-7 an authenticator app shows)")
		}
		if c.MaxAuthPerMinute < 2 {
			return fmt.Errorf("max_auth_per_minute: %d is too low with totp_secret: an MFA login sends its 2 auth calls (login, then MFA) back to back; set 2 or more", c.MaxAuthPerMinute)
		}
	}
	if c.CACert != "" {
		if err := upstream.CheckCACert(c.CACert); err != nil {
			return err
		}
	}
	if err := validateHeaders(c.Headers); err != nil {
		return err
	}
	if c.Provider == upstream.Generic {
		return c.upstreamConfig().Generic.Validate()
	}
	return nil
}

func validateHeaders(headers map[string]string) error {
	for name, value := range headers {
		switch canon := http.CanonicalHeaderKey(name); {
		case !httpguts.ValidHeaderFieldName(name):
			return fmt.Errorf("headers: %q is not a valid header name", name)
		case canon == "Authorization" || canon == "Content-Type" || canon == "Host" || canon == "Content-Length":
			return fmt.Errorf("headers: %s is set by the plugin and cannot be configured", canon)
		case !httpguts.ValidHeaderFieldValue(value):
			return fmt.Errorf("headers: the value of %s contains a control character (a line break, NUL or other), which would inject into the request or be refused at send time; remove it", name)
		}
	}
	return nil
}
