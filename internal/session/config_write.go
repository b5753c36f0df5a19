package session

import (
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/upstream"
	"golang.org/x/net/http/httpguts"
)

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
	c := &Config{
		Format:                configVersion,
		RequestTimeoutSeconds: defaultRequestTimeoutSeconds,
		MaxAuthPerMinute:      defaultMaxAuthPerMinute,
		MinTTLSeconds:         defaultMinTTLSeconds,
		MaxRefusedLogins:      DefaultMaxRefusedLogins,
	}
	if prev != nil && (!hasProvider || name == prev.Provider) {
		cp := *prev
		c = &cp
	}
	if hasProvider {
		c.Provider = name
	}
	if c.Provider == "" {
		return nil, fmt.Errorf("provider: required, one of %s", strings.Join(upstream.Names(), ", "))
	}
	if !slices.Contains(upstream.Names(), c.Provider) {
		if len(c.Provider) > 32 {
			return nil, fmt.Errorf("provider: not one of %s", strings.Join(upstream.Names(), ", "))
		}
		return nil, fmt.Errorf("provider: %q is not one of %s", c.Provider, strings.Join(upstream.Names(), ", "))
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
	if spec, _ := upstream.SpecOf(c.Provider); spec.DefaultURL != "" && c.URL == "" {
		if _, given := d.Raw["url"]; given { // it would read back as the default
			return nil, fmt.Errorf("url: write %q (%s's default) or leave url out, %s", spec.DefaultURL, c.Provider, AsWritten)
		}
		c.URL = spec.DefaultURL
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
		if f.RequiredBy(c.Provider) && !f.isSet(c) {
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
	if spec, _ := upstream.SpecOf(c.Provider); spec.Validate != nil {
		return spec.Validate(c.upstreamConfig())
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
