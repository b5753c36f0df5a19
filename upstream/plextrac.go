package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"
)

// PlexTrac is the provider name of PlexTrac.
const PlexTrac = "plextrac"

func init() {
	Register(Spec{
		Name:          PlexTrac,
		Rank:          1,
		Takes:         []string{"username", "password", "totp_secret"},
		Requires:      []string{"username", "password"},
		FoldUserCase:  true,
		Authorization: "the bare token",
		Extras:        []Extra{{"tenant_id", "the tenant the session belongs to, when the login answer names it"}},
		New: func(c *Client, cfg Config, deps Deps) (Provider, error) {
			return newPlexTrac(c, cfg, deps.TOTPSteps), nil
		},
	})
}

// plextrac logs in with username/password, answers the MFA challenge with a TOTP code from
// the stored seed, and refreshes with PUT /api/v1/token/refresh while the token is valid.
type plextrac struct {
	*Client
	username, password string
	totp               *totpSource // nil: no MFA configured
}

const (
	plextracCredHint = "check username and password in config (SSO users cannot use the API login: use a PlexTrac Service Account or a local user)"
	plextracTOTPHint = "check totp_secret: it must be the base32 seed of this account's authenticator"
)

// plextracRefusal is PlexTrac's refusal signal: its error body {"status":"error","statusCode":N}
// with N one of codes, whatever the HTTP status (it is seen under HTTP 200), or an HTTP status
// among statuses (the MFA step refuses a wrong code with 400 or 422). what names what was
// refused.
func plextracRefusal(what string, statuses []int, codes ...int) func(int, []byte) (string, bool) {
	return func(status int, body []byte) (string, bool) {
		var r struct {
			Status     string `json:"status"`
			StatusCode int    `json:"statusCode"`
		}
		_ = json.Unmarshal(body, &r) // a body that is not this shape is no body signal
		if !slices.Contains(statuses, status) && (r.Status != "error" || !slices.Contains(codes, r.StatusCode)) {
			return "", false
		}
		msg := "upstream refused " + what
		if status != http.StatusOK {
			msg += fmt.Sprintf(" (HTTP %d)", status)
		}
		return msg + upstreamSays(body), true
	}
}

func newPlexTrac(c *Client, cfg Config, steps *TOTPSteps) *plextrac {
	p := &plextrac{Client: c, username: cfg.Username, password: cfg.Password}
	if cfg.TOTPSecret != "" {
		p.totp = newTOTPSource(cfg.TOTPSecret, c.clock, steps)
	}
	return p
}

// plextracReply is the answer of authenticate, authenticate/mfa and token/refresh.
type plextracReply struct {
	Status     string `json:"status"`
	TenantID   any    `json:"tenant_id"`
	Token      string `json:"token"`
	MFAEnabled bool   `json:"mfa_enabled"`
	Code       string `json:"code"` // the MFA challenge
}

// Login logs in, and with a seed configured answers the MFA challenge. An MFA login first
// claims its TOTP step (which may be up to 30 s away), then takes both auth calls from the
// host's budget together, waiting no longer than the step lasts (its code goes within its
// step), and sends them back to back: a challenge never waits on the budget, so a budget that
// lets the login through lets the MFA call through too. The MFA call's slot goes back when
// upstream asks for no MFA, or the login fails.
func (p *plextrac) Login(ctx context.Context) (*Token, error) {
	var code string
	var slots *Slots
	if p.totp != nil {
		var step int64
		var err error
		if code, step, err = p.totp.stepCode(ctx); err != nil { // before any call: a clock skew spends no budget
			return nil, p.totpFailure(err)
		}
		if slots, err = p.takeSlots(ctx, OpLogin, 2, min(p.timeout, stepStart(step+1).Sub(p.clock.Now()))); err != nil {
			p.observe(OpLogin, Outcome(err)) // as call counts a call its budget holds back
			return nil, err
		}
	}
	var r plextracReply
	var sent time.Time
	err := p.call(ctx, request{
		op:          OpLogin,
		method:      http.MethodPost,
		path:        "/api/v1/authenticate",
		noLimit:     slots != nil,
		sent:        &sent,
		body:        map[string]string{"username": p.username, "password": p.password},
		rejected:    map[int]string{401: plextracCredHint, 403: plextracCredHint},
		refused:     plextracRefusal("the credentials", nil, 401, 403),
		refusedHint: plextracCredHint,
	}, &r, func() error {
		if r.MFAEnabled && p.totp == nil {
			return p.fail(OpLogin, KindMisconfigured, 200, "the account requires MFA and no totp_secret is configured",
				"set totp_secret to the account's authenticator seed (base32), or use a Service Account user, which is exempt from MFA", time.Time{})
		}
		if r.MFAEnabled && r.Code == "" {
			return p.fail(OpLogin, KindBadResponse, 200, "upstream asked for MFA without a challenge code", "", time.Time{})
		}
		if !r.MFAEnabled && r.Token == "" {
			return p.fail(OpLogin, KindBadResponse, 200, "the answer has no token", "", time.Time{})
		}
		return nil
	})
	if slots != nil && (err != nil || !r.MFAEnabled) {
		slots.GiveBack(1, p.clock.Now()) // the MFA call's: not sent
	}
	if err != nil {
		return nil, err
	}
	if !r.MFAEnabled {
		return p.token(r, OpLogin, sent)
	}
	challenge := r.Code
	r = plextracReply{}
	err = p.call(ctx, request{
		op:          OpMFA,
		method:      http.MethodPost,
		path:        "/api/v1/authenticate/mfa",
		noLimit:     true,
		sent:        &sent,
		body:        map[string]string{"code": challenge, "token": code},
		rejected:    map[int]string{401: plextracTOTPHint, 403: plextracTOTPHint},
		refused:     plextracRefusal("the MFA code", []int{400, 422}, 400, 401, 403, 422),
		refusedHint: plextracTOTPHint,
	}, &r, p.requireToken(OpMFA, &r.Token))
	if err != nil {
		return nil, err
	}
	return p.token(r, OpMFA, sent)
}

// totpFailure: no code could be had. A clock skew is not a refused login (the credentials may
// be right): it says when codes can be sent again, and the session waits until then.
func (p *plextrac) totpFailure(err error) error {
	var skew *clockSkewError
	if errors.As(err, &skew) {
		return p.fail(OpMFA, KindUnavailable, 0, skew.Error()+
			" (a node whose clock ran fast used it, or this node's clock was set back); no code is sent until that step is past, since upstream may have taken it",
			"check that every Vault node's clock is synchronised (NTP); deleting the config and writing it again clears the step stored by another node", skew.until())
	}
	var noRoom errNoRoom
	if errors.As(err, &noRoom) {
		return p.noRoom(OpLogin, noRoom)
	}
	return p.fail(OpMFA, KindUnavailable, 0, "cancelled while waiting for the next TOTP step: "+err.Error(), "", time.Time{})
}

func (p *plextrac) Refresh(ctx context.Context, cur *Token) (*Token, error) {
	var r plextracReply
	var sent time.Time
	err := p.call(ctx, request{
		op:     OpRefresh,
		method: http.MethodPut,
		path:   "/api/v1/token/refresh",
		authz:  cur.Value,
		sent:   &sent,
		rejected: map[int]string{
			401: "the session is no longer valid: log in again",
			403: "the session is no longer valid: log in again",
		},
		refused:     plextracRefusal("the session", nil, 401, 403),
		refusedHint: "the session is no longer valid: log in again",
	},
		&r, p.requireToken(OpRefresh, &r.Token))
	if err != nil {
		return nil, err
	}
	return p.token(r, OpRefresh, sent)
}

func (p *plextrac) token(r plextracReply, op string, sent time.Time) (*Token, error) {
	var extras map[string]any
	if r.TenantID != nil {
		extras = map[string]any{"tenant_id": r.TenantID}
	}
	return p.newToken(op, r.Token, Expiry{}, sent, extras)
}

func (p *plextrac) LastTOTPStep() int64 {
	if p.totp == nil {
		return 0
	}
	return p.totp.lastStep()
}

func (p *plextrac) SkipTOTPStepsThrough(step int64) {
	if p.totp != nil {
		p.totp.skipThrough(step)
	}
}

// Logout: PlexTrac publishes none; the token simply expires.
func (p *plextrac) Logout(context.Context, string) error { return ErrNoLogout }

// account is the TOTP account the codes are sent for (totpAccount).
func (p *plextrac) account() *totpKey { return &p.totp.account }

// TOTP is the TOTP steps' record, when a seed is configured.
func (p *plextrac) TOTP() TOTPStepper {
	if p.totp == nil {
		return nil
	}
	return p
}

// Authorization: PlexTrac's own scripts send the bare token.
func (p *plextrac) Authorization(token string) string { return token }
