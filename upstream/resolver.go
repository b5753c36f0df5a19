package upstream

import (
	"context"
	"net/http"
	"time"
)

// Resolver is the provider name of Resolver Core.
const Resolver = "resolver"

func init() {
	Register(Spec{
		Name:          Resolver,
		Rank:          3,
		Takes:         []string{"email", "password", "org_id"},
		Requires:      []string{"email", "password", "org_id"},
		FoldUserCase:  true,
		Authorization: "Bearer <token>",
		Extras:        []Extra{{"org_id", "the org the session belongs to, when the answer names it"}},
		New: func(c *Client, cfg Config, _ Deps) (Provider, error) {
			return &resolver{Client: c, email: cfg.Email, password: cfg.Password, org: cfg.OrgID}, nil
		},
	})
}

// resolver logs in with email/password into one org and renews with GET /user/authenticate.
type resolver struct {
	*Client
	email, password string
	org             int
}

const resolverCredHint = "check email and password in config; Resolver passwords expire under the org's policy, so a 401 after months of success usually means the stored password expired (SSO users cannot use this login)"

type resolverReply struct {
	Token     string `json:"token"`
	ExpiresAt any    `json:"expiresAt"`
}

func (p *resolver) Login(ctx context.Context) (*Token, error) {
	var r resolverReply
	var sent time.Time
	err := p.call(ctx, request{
		op:     OpLogin,
		method: http.MethodPost,
		path:   "/user/authenticate",
		sent:   &sent,
		body: map[string]any{
			"email":       p.email,
			"password":    p.password,
			"selectedOrg": p.org,
			"client":      "core-client",
		},
		rejected: map[int]string{401: resolverCredHint,
			403: "check org_id: the user is not a member of that org",
			404: "the user is not an active member of any org: add it to the org in Resolver"},
	}, &r, p.requireToken(OpLogin, &r.Token))
	if err != nil {
		return nil, err
	}
	return p.token(r, OpLogin, sent)
}

func (p *resolver) Refresh(ctx context.Context, cur *Token) (*Token, error) {
	var r resolverReply
	var sent time.Time
	err := p.call(ctx, request{
		op:       OpRefresh,
		method:   http.MethodGet,
		path:     "/user/authenticate",
		authz:    "bearer " + cur.Value,
		sent:     &sent,
		rejected: map[int]string{401: "the session is no longer valid: log in again"},
	}, &r, p.requireToken(OpRefresh, &r.Token))
	if err != nil {
		return nil, err
	}
	return p.token(r, OpRefresh, sent)
}

func (p *resolver) token(r resolverReply, op string, sent time.Time) (*Token, error) {
	return p.newToken(op, r.Token, Expiry{
		Field: "expiresAt",
		Value: r.ExpiresAt,
	}, sent, map[string]any{"org_id": p.org})
}

func (p *resolver) Logout(context.Context, string) error { return ErrNoLogout }

func (p *resolver) Authorization(token string) string { return "Bearer " + token }
