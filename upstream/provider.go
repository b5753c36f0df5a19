// Package upstream holds the plugin's clients for the upstream login APIs, one file per
// provider behind the Provider interface, plus what they share: the HTTP client with its
// limits, the per-host auth limiter, token expiry parsing and TOTP codes.
package upstream

import (
	"context"
	"fmt"
	"time"
)

// Provider is one upstream account's login API.
type Provider interface {
	// Login trades the configured credentials (with a TOTP code when MFA is on) for a token.
	Login(ctx context.Context) (*Token, error)
	// Refresh trades a still-valid token for a new one. It returns ErrNoRefresh when the API
	// has no refresh call, and an *Error of KindRejected when upstream refuses the token.
	Refresh(ctx context.Context, current *Token) (*Token, error)
	// Logout ends a token upstream; "unknown token" is success. It returns ErrNoLogout when
	// the API has no logout call.
	Logout(ctx context.Context, token string) error
	// Authorization is the ready Authorization header value for token.
	Authorization(token string) string
	// TOTP is the provider's record of the TOTP steps it sent codes for; nil when it sends no
	// codes (no MFA call, or no seed configured).
	TOTP() TOTPStepper
	// The part every provider shares, from the *Client it embeds: the upstream's host key,
	// the host's shared auth limiter, and Close (drops idle connections).
	Host() string
	Limiter() *HostLimiter
	Close()
}

// Token is an upstream session token and what is known about it. Like Config, it has no JSON
// form: the backend stores and hands out types of its own (storage_session.go, lease_data.go).
type Token struct {
	Value      string
	IssuedAt   time.Time
	ExpiresAt  time.Time
	Extras     map[string]any // non-secret provider fields (tenant_id, org_id)
	ObtainedBy string         // login, mfa or refresh
	ObtainedAt time.Time      // when the mount made it its session (account.keep; v0.1.0's sessions: upgradeSessionV0)
}

// Lifetime is the token's whole life, from issue to expiry.
func (t *Token) Lifetime() time.Duration { return t.ExpiresAt.Sub(t.IssuedAt) }

// Config is one account's upstream configuration as the backend hands it to New. It is not
// a stored format: the backend stores types of its own (storage_config.go), so that a change
// here never changes what is in Vault storage.
type Config struct {
	Provider          string
	URL               string
	Username          string
	Email             string
	Password          string
	APIKey            string
	TOTPSecret        string
	OrgID             int
	Headers           map[string]string
	CACert            string
	AllowInsecureHTTP bool
	RequestTimeout    time.Duration
	MaxAuthPerMinute  int
	Generic           GenericConfig
}

// Deps are what a provider takes from its process: the clock, the host budgets and the TOTP
// steps every mount shares. New makes no record in them: records are made by the calls that
// spend from them and by Register.
type Deps struct {
	Clock Clock
	// Limiters are the process's auth budgets per host (nil: SharedLimiters); TOTPSteps the
	// last TOTP step used per account (nil: SharedTOTPSteps).
	Limiters  *Limiters
	TOTPSteps *TOTPSteps
	// Observe is told how each upstream call ended: its op (OpLogin, …) and Outcome. The
	// backend counts there, per mount, so that rebuilding the client on a config write
	// resets no count. nil: not counted.
	Observe func(op, outcome string)
	// AuthSent is told of each auth call (a login, its MFA step, a refresh) as it leaves for
	// the upstream, with the call's context: the backend credits the call to whoever started
	// it (a shared call runs under its starter's context values). nil: not told.
	AuthSent func(ctx context.Context)
	// DialCheck, when set, is asked about each address after the dial guard and before a
	// connection is made (an IP literal and port, after name resolution); an error stops the
	// dial. Tests set it so that a dial to anything but loopback fails them before a packet is
	// sent. nil in production.
	DialCheck func(address string) error
}

// New builds the provider cfg names. The backend has validated cfg field by field already;
// errors here name the field that cannot be used.
func New(cfg Config, deps Deps) (Provider, error) {
	if deps.Clock == nil {
		deps.Clock = RealClock{}
	}
	if deps.Limiters == nil {
		deps.Limiters = SharedLimiters
	}
	if deps.TOTPSteps == nil {
		deps.TOTPSteps = SharedTOTPSteps
	}
	if deps.Observe == nil {
		deps.Observe = func(string, string) {}
	}
	if deps.AuthSent == nil {
		deps.AuthSent = func(context.Context) {}
	}
	if len(cfg.URL) > MaxURLLen { // it names the host's budget record
		return nil, fmt.Errorf("url: longer than %d bytes", MaxURLLen)
	}
	c, err := newClient(cfg, deps)
	if err != nil {
		return nil, err
	}
	s, ok := SpecOf(cfg.Provider)
	if !ok {
		return nil, fmt.Errorf("provider: %q is not one of %v", cfg.Provider, Names())
	}
	return s.New(c, cfg, deps)
}
