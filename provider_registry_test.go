package sessiontoken

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/upstream"
)

// throwaway is a provider that exists only in this file: its declaration (a Spec) and its
// Provider are all there is to it. It takes fields the table has (username, password), so
// the backend needs nothing else to serve it.
const throwaway = "throwaway"

// registerThrowaway registers the provider for t alone: other tests see the real ones.
func registerThrowaway(t *testing.T) {
	t.Cleanup(upstream.Register(upstream.Spec{
		Name:          throwaway,
		Rank:          99,
		Takes:         []string{"username", "password"},
		Requires:      []string{"username", "password"},
		FoldUserCase:  true,
		Authorization: "Token <token>",
		Extras:        []upstream.Extra{{Name: "shard", Description: "the shard the session lives on"}},
		New: func(c *upstream.Client, cfg upstream.Config, deps upstream.Deps) (upstream.Provider, error) {
			return &throwawayProvider{Client: c, clock: deps.Clock, user: cfg.Username, password: cfg.Password}, nil
		},
	}))
}

type throwawayProvider struct {
	*upstream.Client
	clock          upstream.Clock
	user, password string
	logins         int
}

func (p *throwawayProvider) Login(context.Context) (*upstream.Token, error) {
	if p.password != "right" {
		return nil, &upstream.Error{Provider: throwaway, Op: upstream.OpLogin, Kind: upstream.KindRejected, Status: 401, Msg: "upstream refused the credentials"}
	}
	p.logins++
	now := p.clock.Now()
	return &upstream.Token{Value: fmt.Sprintf("tw-%s-%d", strings.ToLower(p.user), p.logins), IssuedAt: now,
		ExpiresAt: now.Add(15 * time.Minute), ObtainedBy: upstream.OpLogin, Extras: map[string]any{"shard": 7}}, nil
}

func (p *throwawayProvider) Refresh(context.Context, *upstream.Token) (*upstream.Token, error) {
	return nil, upstream.ErrNoRefresh
}

func (p *throwawayProvider) Logout(context.Context, string) error { return upstream.ErrNoLogout }

func (p *throwawayProvider) Authorization(token string) string { return "Token " + token }

func throwawayConfig(e *env) map[string]any {
	return map[string]any{"provider": throwaway, "url": e.url, "username": "Svc@Acme.com", "password": "right", "allow_insecure_http": true}
}

// A provider declared in one file is served with nothing else changed: config takes and
// requires the fields it names and refuses the others, a refused login counts toward the
// hold, the account's identity follows its user-name rule, reads hand out its Authorization
// form and extras, the read's help says so, and rotate warns that it has no logout.
func TestAProviderIsOneFile(t *testing.T) {
	registerThrowaway(t)
	e := newEnv(t)
	cfg := throwawayConfig(e)
	if resp, err := e.do(logical.UpdateOperation, "config", with(cfg, "password", nil)); err != nil || !strings.Contains(errText(resp), "password: required for provider throwaway") {
		t.Fatalf("a write without a required field: %v %s", err, errText(resp))
	}
	if resp, err := e.do(logical.UpdateOperation, "config", with(cfg, "api_key", "k")); err != nil || !strings.Contains(errText(resp), "api_key") {
		t.Fatalf("a field it does not take: %v %s", err, errText(resp))
	}
	if resp, err := e.do(logical.UpdateOperation, "config", with(cfg, "password", "wrong")); err != nil || !resp.IsError() {
		t.Fatalf("a refused check stored the config: %v %s", err, errText(resp))
	}
	e.write("config", cfg)
	read := e.read("token", nil).Data
	if read["authorization"] != "Token "+read["token"].(string) || read["provider"] != throwaway || read["shard"] != 7 {
		t.Fatalf("token read: %v", read)
	}
	a, _ := e.b.slot.Account(context.Background(), e.s)
	before := a.ID()
	e.write("config", map[string]any{"username": "svc@acme.COM", "password": "right"}) // the same user, as the upstream compares it
	if a, _ := e.b.slot.Account(context.Background(), e.s); a.ID() != before {
		t.Fatal("the user name's case made another account, though the provider compares it without case")
	}
	rot := e.write("rotate", map[string]any{"revoke_previous": true})
	if rot.Data["previous_revoked"] != false || !strings.Contains(strings.Join(rot.Warnings, " "), "provider throwaway has no logout: the replaced token stays valid") {
		t.Fatalf("rotate: %v %v", rot.Data, rot.Warnings)
	}
	help := tokenFields()["authorization"].Description + tokenFields()["shard"].Description
	if !strings.Contains(help, "throwaway: Token <token>") || !strings.Contains(help, "the shard the session lives on") {
		t.Fatalf("the token read's help does not describe the provider: %q", help)
	}
	if allowed := e.b.Backend.Paths[0].Fields["provider"].AllowedValues; !strings.Contains(fmt.Sprint(allowed), throwaway) {
		t.Fatalf("config's provider values %v lack the provider", allowed)
	}
}
