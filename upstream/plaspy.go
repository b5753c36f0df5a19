package upstream

import (
	"context"
	"net/http"
	"time"
)

// plaspy logs in with userName/apiKey. It answers failures with success:false (HTTP status
// not published), so the plugin trusts the success field, not the status. It has no refresh.
type plaspy struct {
	*Client
	username, apiKey string
}

const plaspyCredHint = "check username and api_key in config (regenerating the key in Plaspy invalidates the old one at once)"

func (p *plaspy) Login(ctx context.Context) (*Token, error) {
	var r struct {
		Success *bool  `json:"success"`
		Token   string `json:"token"`
		Expires any    `json:"expires"`
		Error   string `json:"error"`
	}
	err := p.call(ctx, request{op: OpLogin, method: http.MethodPost, path: "/api/Auth/Token",
		body:     map[string]string{"userName": p.username, "apiKey": p.apiKey},
		rejected: map[int]string{401: plaspyCredHint, 403: plaspyCredHint}}, &r, func() error {
		switch {
		case r.Success != nil && !*r.Success:
			msg := "upstream refused the credentials"
			if r.Error != "" {
				msg += "; " + Shown(message(r.Error))
			}
			return p.fail(OpLogin, KindRejected, 200, msg, plaspyCredHint, time.Time{})
		case r.Token == "":
			return p.fail(OpLogin, KindBadResponse, 200, "the answer has no token", "", time.Time{})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return p.newToken(OpLogin, r.Token, Expiry{Field: "expires", Value: r.Expires, UTC: true}, nil)
}

// Refresh: Plaspy has none; "renew" means logging in again.
func (p *plaspy) Refresh(context.Context, *Token) (*Token, error) { return nil, ErrNoRefresh }

func (p *plaspy) Logout(context.Context, string) error { return nil }

func (p *plaspy) Authorization(token string) string { return "Bearer " + token }
