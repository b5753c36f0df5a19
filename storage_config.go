package sessiontoken

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// readConfig returns the mount's config (nil when there is none), upgraded from whatever
// format it was stored in.
func readConfig(ctx context.Context, s logical.Storage) (*config, error) {
	e, err := s.Get(ctx, configKey)
	if err != nil {
		return nil, err
	}
	if e != nil {
		if _, err := storedVersion("config", e.Value, configVersion); err != nil {
			return nil, err
		}
		var c config
		if err := json.Unmarshal(e.Value, &c); err != nil {
			return nil, errUnreadable("config", err)
		}
		return &c, nil
	}
	if e, err = s.Get(ctx, legacyConfigKey); err != nil || e == nil {
		return nil, err
	}
	return upgradeConfigV0(e.Value)
}

// putConfig stores c in the current format. It returns undo, which puts back what was stored
// at configKey before (or removes c, when nothing was): a config write that fails after this
// Put must not leave c stored.
func putConfig(ctx context.Context, s logical.Storage, c *config) (undo func() error, err error) {
	old, err := s.Get(ctx, configKey)
	if err != nil {
		return nil, err
	}
	c.Format = configVersion
	entry, err := logical.StorageEntryJSON(configKey, c)
	if err != nil {
		return nil, err
	}
	entry.SealWrap = true
	if err := s.Put(ctx, entry); err != nil {
		return nil, err
	}
	return func() error {
		if old == nil {
			return s.Delete(ctx, configKey)
		}
		return s.Put(ctx, old)
	}, nil
}

// legacyRecordKeys are what v0.1.0 stored; a config write drops them once its config is stored
// (see storage.go: then a rolled-back v0.1.0 sees no config rather than misreading this one).
var legacyRecordKeys = []string{legacyConfigKey, legacySessionKey, legacyTOTPStepKey}

// deleteAccount removes every record of the mount's account, in both formats: a config delete
// ends the account, and what is left of it must not outlive it. Leases of the account then
// never renew after a rewrite (the fingerprint key goes too), and a record this binary cannot
// read goes with the rest, so "delete config and write it again" always works. The order fails
// closed when a delete stops halfway: the fingerprint key first (a config left behind gets a
// new key, so no lease of before renews and no stored session is served), then the sessions,
// then the config, and the TOTP steps and the hold last, so that they outlive the config they
// protect, never the other way round.
func deleteAccount(ctx context.Context, s logical.Storage) error {
	for _, k := range []string{fingerprintKeyKey, sessionKey, legacySessionKey, configKey, legacyConfigKey, totpStepKey, legacyTOTPStepKey, holdKey} {
		if err := s.Delete(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

// configV0 is what v0.1.0 stored at "config": upstream.Config's JSON of that version (frozen
// here, so that a later change to upstream.Config cannot change how it is read), durations
// in nanoseconds, the generic settings nested.
type configV0 struct {
	Provider          string            `json:"provider"`
	URL               string            `json:"url"`
	Username          string            `json:"username"`
	Email             string            `json:"email"`
	Password          string            `json:"password"`
	APIKey            string            `json:"api_key"`
	TOTPSecret        string            `json:"totp_secret"`
	OrgID             int               `json:"org_id"`
	Headers           map[string]string `json:"headers"`
	CACert            string            `json:"ca_cert"`
	AllowInsecureHTTP bool              `json:"allow_insecure_http"`
	RequestTimeout    time.Duration     `json:"request_timeout"`
	MaxAuthPerMinute  int               `json:"max_auth_per_minute"`
	MinTTL            time.Duration     `json:"min_ttl"`
	Generic           struct {
		LoginMethod   string `json:"login_method"`
		LoginPath     string `json:"login_path"`
		LoginBody     string `json:"login_body"`
		TokenField    string `json:"token_field"`
		ExpiryField   string `json:"expiry_field"`
		RefreshMethod string `json:"refresh_method"`
		RefreshPath   string `json:"refresh_path"`
		LogoutMethod  string `json:"logout_method"`
		LogoutPath    string `json:"logout_path"`
		AuthScheme    string `json:"auth_scheme"`
	} `json:"generic"`
}

func upgradeConfigV0(raw []byte) (*config, error) {
	var v configV0
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, errUnreadable("config (v0.1.0)", err)
	}
	g := v.Generic
	c := &config{Format: configVersion, Provider: v.Provider, URL: v.URL, Username: v.Username, Email: v.Email,
		Password: v.Password, APIKey: v.APIKey, TOTPSecret: v.TOTPSecret, OrgID: v.OrgID, Headers: v.Headers,
		CACert: v.CACert, AllowInsecureHTTP: v.AllowInsecureHTTP, RequestTimeoutSeconds: int(v.RequestTimeout / time.Second),
		MaxAuthPerMinute: v.MaxAuthPerMinute, MinTTLSeconds: int(v.MinTTL / time.Second), MaxRefusedLogins: defaultMaxRefusedLogins,
		LoginMethod: g.LoginMethod, LoginPath: g.LoginPath, LoginBody: g.LoginBody, TokenField: g.TokenField,
		ExpiryField: g.ExpiryField, RefreshMethod: g.RefreshMethod, RefreshPath: g.RefreshPath,
		LogoutMethod: g.LogoutMethod, LogoutPath: g.LogoutPath, AuthScheme: g.AuthScheme}
	c.LegacyAccount = accountIDV0(&v)
	return c, nil
}

// accountIDV0 is the account fingerprint v0.1.0 stamped on its stored session and on every
// lease it issued, computed exactly as v0.1.0 did (its host key included), so that those
// still match after the upgrade while the account is the one v0.1.0 configured.
func accountIDV0(c *configV0) string {
	host, path := c.URL, ""
	if u, err := url.Parse(c.URL); err == nil {
		h := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
		port := u.Port()
		if port == "" {
			port = map[string]string{"http": "80", "https": "443"}[strings.ToLower(u.Scheme)]
		}
		host, path = net.JoinHostPort(h, port), strings.TrimRight(u.Path, "/")
	}
	parts := []string{c.Provider, host, path, strings.ToLower(c.Username), strings.ToLower(c.Email), strconv.Itoa(c.OrgID)}
	if c.Provider == "generic" {
		g := c.Generic
		parts = append(parts, strings.ToUpper(g.LoginMethod), g.LoginPath, g.LoginBody, g.TokenField)
	}
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:16])
}
