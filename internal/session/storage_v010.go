package session

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/upstream"
)

// Everything this version knows of v0.1.0's storage and leases: its keys, its formats, and the
// upgrade of each to the current one. The upgrade runs on read (readConfig, readSession,
// readTOTPStep, decodeLease fall back to the functions here when the current key or field is
// missing) and is stored at the first config write, which then drops these keys: performance
// standbys and secondaries, which cannot write, still read v0.1.0 data, and rolling back to
// v0.1.0 before that write loses nothing (docs/upgrading.md).

// What v0.1.0 wrote: its storage keys, and the lease InternalData key of its whole token.
const (
	legacyConfigKey   = "config"
	legacySessionKey  = "session"
	legacyTOTPStepKey = "totp_step"
	leaseSessionKeyV0 = "session"
)

// legacyRecordKeys are what v0.1.0 stored; a config write drops them once its config is stored
// (see storage.go: then a rolled-back v0.1.0 sees no config rather than misreading this one).
var legacyRecordKeys = []string{legacyConfigKey, legacySessionKey, legacyTOTPStepKey}

// readConfigV010 reads v0.1.0's config, upgraded (nil when there is none).
func readConfigV010(ctx context.Context, s logical.Storage) (*Config, error) {
	e, err := s.Get(ctx, legacyConfigKey)
	if err != nil || e == nil {
		return nil, err
	}
	return upgradeConfigV0(e.Value)
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

func upgradeConfigV0(raw []byte) (*Config, error) {
	var v configV0
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, errUnreadable("config (v0.1.0)", err)
	}
	g := v.Generic
	c := &Config{
		Format:                configVersion,
		Provider:              v.Provider,
		URL:                   v.URL,
		Username:              v.Username,
		Email:                 v.Email,
		Password:              v.Password,
		APIKey:                v.APIKey,
		TOTPSecret:            v.TOTPSecret,
		OrgID:                 v.OrgID,
		Headers:               v.Headers,
		CACert:                v.CACert,
		AllowInsecureHTTP:     v.AllowInsecureHTTP,
		RequestTimeoutSeconds: int(v.RequestTimeout / time.Second),
		MaxAuthPerMinute:      v.MaxAuthPerMinute,
		MinTTLSeconds:         int(v.MinTTL / time.Second),
		MaxRefusedLogins:      DefaultMaxRefusedLogins,
		LoginMethod:           g.LoginMethod,
		LoginPath:             g.LoginPath,
		LoginBody:             g.LoginBody,
		TokenField:            g.TokenField,
		ExpiryField:           g.ExpiryField,
		RefreshMethod:         g.RefreshMethod,
		RefreshPath:           g.RefreshPath,
		LogoutMethod:          g.LogoutMethod,
		LogoutPath:            g.LogoutPath,
		AuthScheme:            g.AuthScheme,
	}
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

// readSessionV010 reads v0.1.0's session, upgraded; found is false when there is none.
func readSessionV010(ctx context.Context, s logical.Storage) (r sessionRecord, found bool, err error) {
	e, err := s.Get(ctx, legacySessionKey)
	if err != nil || e == nil {
		return sessionRecord{}, false, err
	}
	r, err = upgradeSessionV0(e.Value)
	return r, true, err
}

// upgradeSessionV0 reads what v0.1.0 stored at "session": upstream.Token's JSON of that
// version under "token", and the v0.1.0 account fingerprint. Sessions stored before v0.1.0
// recorded obtained_at count as obtained when issued.
func upgradeSessionV0(raw []byte) (sessionRecord, error) {
	var v struct {
		Owner string `json:"account"`
		Token *struct {
			Value      string         `json:"value"`
			IssuedAt   time.Time      `json:"issued_at"`
			ExpiresAt  time.Time      `json:"expires_at"`
			Extras     map[string]any `json:"extras"`
			ObtainedBy string         `json:"obtained_by"`
			ObtainedAt time.Time      `json:"obtained_at"`
		} `json:"token"`
	}
	if err := json.Unmarshal(raw, &v); err != nil || v.Token == nil {
		return sessionRecord{}, fmt.Errorf("stored session (v0.1.0) is unreadable")
	}
	t := v.Token
	if t.ObtainedAt.IsZero() {
		t.ObtainedAt = t.IssuedAt
	}
	return newSessionRecord(v.Owner, &upstream.Token{Value: t.Value, IssuedAt: t.IssuedAt, ExpiresAt: t.ExpiresAt,
		Extras: t.Extras, ObtainedBy: t.ObtainedBy, ObtainedAt: t.ObtainedAt}), nil
}

// readTOTPStepV010 reads v0.1.0's last TOTP step: a bare number.
func readTOTPStepV010(ctx context.Context, s logical.Storage) (int64, error) {
	e, err := s.Get(ctx, legacyTOTPStepKey)
	if err != nil || e == nil {
		return 0, err
	}
	var step int64
	if json.Unmarshal(e.Value, &step) != nil {
		return 0, nil // unreadable: the in-process record still guards this process
	}
	return step, nil
}

// decodeLeaseV010 reads the token of a lease v0.1.0 issued (the whole token's JSON in its
// InternalData); ok is false for a lease of a later version.
func decodeLeaseV010(internal map[string]any) (t LeaseToken, ok bool, err error) {
	s, ok := internal[leaseSessionKeyV0].(string)
	if !ok {
		return LeaseToken{}, false, nil
	}
	var v struct {
		Value     string    `json:"value"`
		IssuedAt  time.Time `json:"issued_at"`
		ExpiresAt time.Time `json:"expires_at"`
	}
	if json.Unmarshal([]byte(s), &v) != nil || v.Value == "" {
		return LeaseToken{}, true, errors.New("the lease carries no session data")
	}
	return LeaseToken{
		SHA256:    TokenHash(v.Value),
		Value:     v.Value,
		IssuedAt:  v.IssuedAt,
		ExpiresAt: v.ExpiresAt,
	}, true, nil
}

// DropLeaseV010 removes v0.1.0's token from a lease's InternalData, when a renewal moves the
// lease to the current format.
func DropLeaseV010(internal map[string]any) { delete(internal, leaseSessionKeyV0) }
