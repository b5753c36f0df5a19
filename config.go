package sessiontoken

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"
	"golang.org/x/net/http/httpguts"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/upstream"
)

const (
	configKey   = "config"
	sessionKey  = "session"
	totpStepKey = "totp_step" // the last TOTP step any node sent upstream

	defaultRequestTimeout = 10 * time.Second
	defaultMaxAuth        = upstream.DefaultAuthPerMinute // PlexTrac's published limit; the others publish none
	defaultMinTTL         = 5 * time.Minute
	plaspyDefaultURL      = "https://api.plaspy.com"
)

// config is what a mount stores at config.
type config struct {
	upstream.Config
	MinTTL time.Duration `json:"min_ttl"`
}

// Fields that only some providers take; a write naming one for another provider is an error.
var providerFields = map[string][]string{
	upstream.PlexTrac: {"username", "password", "totp_secret"},
	upstream.Plaspy:   {"username", "api_key"},
	upstream.Resolver: {"email", "password", "org_id"},
	upstream.Generic: {"username", "password", "api_key", "login_method", "login_path", "login_body", "token_field",
		"expiry_field", "refresh_method", "refresh_path", "logout_method", "logout_path", "auth_scheme"},
}

var providerRequired = map[string][]string{
	upstream.PlexTrac: {"username", "password"},
	upstream.Plaspy:   {"username", "api_key"},
	upstream.Resolver: {"email", "password", "org_id"},
	upstream.Generic:  {"login_path"},
}

func readConfig(ctx context.Context, s logical.Storage) (*config, error) {
	e, err := s.Get(ctx, configKey)
	if err != nil || e == nil {
		return nil, err
	}
	var c config
	if err := e.DecodeJSON(&c); err != nil {
		return nil, fmt.Errorf("stored config is unreadable: %w", err)
	}
	return &c, nil
}

// mergeConfig applies the fields of a write to the stored config (a new provider starts over).
func mergeConfig(prev *config, d *framework.FieldData) (*config, error) {
	provider, hasProvider := d.GetOk("provider")
	name := strings.ToLower(strings.TrimSpace(fmt.Sprint(provider)))
	c := &config{Config: upstream.Config{RequestTimeout: defaultRequestTimeout, MaxAuthPerMinute: defaultMaxAuth}, MinTTL: defaultMinTTL}
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
		return nil, fmt.Errorf("provider: %q is not one of %s", c.Provider, strings.Join(upstream.Providers, ", "))
	}
	str := map[string]*string{"url": &c.URL, "username": &c.Username, "email": &c.Email, "password": &c.Password,
		"api_key": &c.APIKey, "totp_secret": &c.TOTPSecret, "ca_cert": &c.CACert,
		"login_method": &c.Generic.LoginMethod, "login_path": &c.Generic.LoginPath, "login_body": &c.Generic.LoginBody,
		"token_field": &c.Generic.TokenField, "expiry_field": &c.Generic.ExpiryField, "refresh_method": &c.Generic.RefreshMethod,
		"refresh_path": &c.Generic.RefreshPath, "logout_method": &c.Generic.LogoutMethod, "logout_path": &c.Generic.LogoutPath,
		"auth_scheme": &c.Generic.AuthScheme}
	for k, p := range str {
		if v, ok := d.GetOk(k); ok {
			*p = strings.TrimSpace(v.(string))
		}
	}
	if v, ok := d.GetOk("org_id"); ok {
		c.OrgID = v.(int)
	}
	if v, ok := d.GetOk("headers"); ok {
		c.Headers = v.(map[string]string)
	}
	if v, ok := d.GetOk("allow_insecure_http"); ok {
		c.AllowInsecureHTTP = v.(bool)
	}
	if v, ok := d.GetOk("max_auth_per_minute"); ok {
		c.MaxAuthPerMinute = v.(int)
	}
	if v, ok := d.GetOk("request_timeout"); ok {
		c.RequestTimeout = time.Duration(v.(int)) * time.Second
	}
	if v, ok := d.GetOk("min_ttl"); ok {
		c.MinTTL = time.Duration(v.(int)) * time.Second
	}
	if c.Provider == upstream.Plaspy && c.URL == "" {
		c.URL = plaspyDefaultURL
	}
	c.TOTPSecret = upstream.NormalizeTOTPSecret(c.TOTPSecret)
	return c, nil
}

// validate checks a merged config. given are the fields the write named. Every error starts
// with the field to fix.
func (c *config) validate(given map[string]any) error {
	for k := range given {
		if owners := fieldOwners(k); len(owners) > 0 && !slices.Contains(providerFields[c.Provider], k) {
			return fmt.Errorf("%s: not used by provider %s (it takes %s)", k, c.Provider, strings.Join(providerFields[c.Provider], ", "))
		}
	}
	if err := validateURL(c.URL, c.AllowInsecureHTTP); err != nil {
		return err
	}
	for _, k := range providerRequired[c.Provider] {
		if (k == "org_id" && c.OrgID == 0) || (k != "org_id" && c.field(k) == "") {
			return fmt.Errorf("%s: required for provider %s", k, c.Provider)
		}
	}
	switch {
	case c.OrgID < 0:
		return fmt.Errorf("org_id: must be a positive org id, not %d", c.OrgID)
	case c.RequestTimeout < time.Second || c.RequestTimeout > 5*time.Minute:
		return fmt.Errorf("request_timeout: %s is outside 1s..5m", c.RequestTimeout)
	case c.MaxAuthPerMinute < 1 || c.MaxAuthPerMinute > 600:
		return fmt.Errorf("max_auth_per_minute: %d is outside 1..600", c.MaxAuthPerMinute)
	case c.MinTTL < 0 || c.MinTTL > 24*time.Hour:
		return fmt.Errorf("min_ttl: %s is outside 0..24h", c.MinTTL)
	}
	if c.TOTPSecret != "" {
		if err := upstream.ValidateTOTPSecret(c.TOTPSecret); err != nil {
			return fmt.Errorf("totp_secret: not a base32 TOTP seed (the letters A-Z and digits 2-7 an authenticator app shows)")
		}
	}
	if c.CACert != "" {
		if err := validateCACert(c.CACert); err != nil {
			return err
		}
	}
	for name, value := range c.Headers {
		switch canon := http.CanonicalHeaderKey(name); {
		case !httpguts.ValidHeaderFieldName(name):
			return fmt.Errorf("headers: %q is not a valid header name", name)
		case canon == "Authorization" || canon == "Content-Type" || canon == "Host" || canon == "Content-Length":
			return fmt.Errorf("headers: %s is set by the plugin and cannot be configured", canon)
		case strings.ContainsAny(value, "\r\n\x00"):
			return fmt.Errorf("headers: the value of %s contains a line break or NUL, which would inject into the request; remove it", name)
		}
	}
	if c.Provider == upstream.Generic {
		return c.Generic.Validate()
	}
	return nil
}

func (c *config) field(k string) string {
	switch k {
	case "username":
		return c.Username
	case "email":
		return c.Email
	case "password":
		return c.Password
	case "api_key":
		return c.APIKey
	case "login_path":
		return c.Generic.LoginPath
	}
	return ""
}

// fieldOwners lists the providers that take a provider-specific field (none: a common field).
func fieldOwners(k string) []string {
	var out []string
	for _, p := range upstream.Providers {
		if slices.Contains(providerFields[p], k) {
			out = append(out, p)
		}
	}
	return out
}

func validateCACert(pemText string) error {
	rest, found := []byte(pemText), false
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		if _, err := x509.ParseCertificate(block.Bytes); err != nil {
			return fmt.Errorf("ca_cert: a CERTIFICATE block does not parse: %v", err)
		}
		found = true
	}
	if !found {
		return fmt.Errorf("ca_cert: no PEM CERTIFICATE block found")
	}
	return nil
}
