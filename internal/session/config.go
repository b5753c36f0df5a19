package session

import (
	"time"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/upstream"
)

const (
	defaultRequestTimeoutSeconds = int(upstream.DefaultRequestTimeout / time.Second)
	defaultMinTTLSeconds         = 300
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
	return map[string]*string{
		"login_method":   &c.LoginMethod,
		"token_field":    &c.TokenField,
		"expiry_field":   &c.ExpiryField,
		"refresh_method": &c.RefreshMethod,
		"refresh_path":   &c.RefreshPath,
		"logout_method":  &c.LogoutMethod,
		"logout_path":    &c.LogoutPath,
		"auth_scheme":    &c.AuthScheme,
	}[name]
}

// upstreamConfig is what the upstream client takes.
func (c *Config) upstreamConfig() upstream.Config {
	return upstream.Config{
		Provider:          c.Provider,
		URL:               c.URL,
		Username:          c.Username,
		Email:             c.Email,
		Password:          c.Password,
		APIKey:            c.APIKey,
		TOTPSecret:        upstream.NormalizeTOTPSecret(c.TOTPSecret),
		OrgID:             c.OrgID,
		Headers:           c.Headers,
		CACert:            c.CACert,
		AllowInsecureHTTP: c.AllowInsecureHTTP,
		RequestTimeout:    c.RequestTimeout(),
		MaxAuthPerMinute:  c.MaxAuthPerMinute,
		Generic: upstream.GenericConfig{
			LoginMethod:   c.LoginMethod,
			LoginPath:     c.LoginPath,
			LoginBody:     c.LoginBody,
			TokenField:    c.TokenField,
			ExpiryField:   c.ExpiryField,
			RefreshMethod: c.RefreshMethod,
			RefreshPath:   c.RefreshPath,
			LogoutMethod:  c.LogoutMethod,
			LogoutPath:    c.LogoutPath,
			AuthScheme:    c.AuthScheme,
		},
	}
}
