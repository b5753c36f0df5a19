package upstream

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// Plaspy is the provider name of Plaspy.
const Plaspy = "plaspy"

func init() {
	Register(Spec{
		Name:          Plaspy,
		Rank:          2,
		Takes:         []string{"username", "api_key"},
		Requires:      []string{"username", "api_key"},
		DefaultURL:    "https://api.plaspy.com",
		FoldUserCase:  true,
		Authorization: "Bearer <token>",
		New: func(c *Client, cfg Config, _ Deps) (Provider, error) {
			return &plaspy{Client: c, username: cfg.Username, apiKey: cfg.APIKey}, nil
		},
	})
}

// plaspy logs in with userName/apiKey. It answers failures with success:false (HTTP status
// not published), so the plugin trusts the success field, not the status. It has no refresh.
type plaspy struct {
	*Client
	username, apiKey string
}

const plaspyCredHint = "check username and api_key in config (regenerating the key in Plaspy invalidates the old one at once)"

func (p *plaspy) Login(ctx context.Context) (*Token, error) {
	var r struct {
		Token   string `json:"token"`
		Expires any    `json:"expires"`
	}
	var sent time.Time
	err := p.call(ctx, request{
		op:          OpLogin,
		method:      http.MethodPost,
		path:        "/api/Auth/Token",
		sent:        &sent,
		body:        map[string]string{"userName": p.username, "apiKey": p.apiKey},
		rejected:    map[int]string{401: plaspyCredHint, 403: plaspyCredHint},
		refused:     plaspyRefused,
		refusedHint: plaspyCredHint,
	}, &r, p.requireToken(OpLogin, &r.Token))
	if err != nil {
		return nil, err
	}
	return p.newToken(OpLogin, r.Token, Expiry{
		Field: "expires",
		Value: r.Expires,
		UTC:   true,
	}, sent, nil)
}

// plaspyRefused is Plaspy's refusal signal: success:false, whatever the HTTP status.
func plaspyRefused(status int, body []byte) (string, bool) {
	var r struct {
		Success *bool  `json:"success"`
		Error   string `json:"error"`
	}
	if json.Unmarshal(body, &r) != nil || r.Success == nil || *r.Success {
		return "", false
	}
	msg := "upstream refused the credentials"
	if status != http.StatusOK {
		msg += fmt.Sprintf(" (HTTP %d)", status)
	}
	if r.Error != "" {
		msg += "; " + Shown(message(r.Error))
	}
	return msg, true
}

// Refresh: Plaspy has none; "renew" means logging in again.
func (p *plaspy) Refresh(context.Context, *Token) (*Token, error) { return nil, ErrNoRefresh }

func (p *plaspy) Logout(context.Context, string) error { return ErrNoLogout }

func (p *plaspy) Authorization(token string) string { return "Bearer " + token }
