package upstream

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

// Each case runs on its own provider and recorder, so that one failing case hides none of the
// others.
func TestResolverLoginAndRenew(t *testing.T) {
	setup := func(t *testing.T) (Provider, *recorder) {
		t.Helper()
		rec := newRecorder(t, map[string]answer{
			"POST /user/authenticate": {200, `{"token":"opaque-r","expiresAt":1795436100}`}, // 12:15
			"GET /user/authenticate":  {200, `{"token":"opaque-r2","expiresAt":1795436200}`},
		})
		return providerAt(t, Config{Provider: Resolver, URL: rec.URL, Email: "svc@acme.com", Password: "pw-secret", OrgID: 42}, newTestClock()), rec
	}
	loggedIn := &Token{Value: "opaque-r", ExpiresAt: time.Unix(1795436100, 0)}

	t.Run("a login sends the email, password, org and client", func(t *testing.T) {
		p, rec := setup(t)
		tok, err := p.Login(context.Background())
		if err != nil || tok.Value != "opaque-r" || !tok.ExpiresAt.Equal(time.Unix(1795436100, 0)) || tok.Extras["org_id"] != 42 {
			t.Fatalf("%+v %v", tok, err)
		}
		got := rec.sent()[0]
		if got.body["email"] != "svc@acme.com" || got.body["password"] != "pw-secret" || got.body["selectedOrg"] != float64(42) || got.body["client"] != "core-client" {
			t.Fatalf("sent %+v", got)
		}
	})
	t.Run("a renewal sends the token with the bearer scheme", func(t *testing.T) {
		p, rec := setup(t)
		tok, err := p.Refresh(context.Background(), loggedIn)
		if err != nil || tok.Value != "opaque-r2" || tok.ObtainedBy != OpRefresh || tok.Extras["org_id"] != 42 {
			t.Fatalf("%+v %v", tok, err)
		}
		if got := rec.sent()[0]; got.method != "GET" || got.authz != "bearer opaque-r" {
			t.Fatalf("renew sent %+v", got)
		}
	})
	t.Run("authorization is Bearer, and logout calls nothing", func(t *testing.T) {
		p, rec := setup(t)
		if p.Authorization("x") != "Bearer x" || !errors.Is(p.Logout(context.Background(), "x"), ErrNoLogout) || len(rec.sent()) != 0 {
			t.Fatal("authorization or logout")
		}
	})
	for status, says := range map[int]string{401: "passwords expire", 403: "check org_id", 404: "not an active member of any org"} {
		t.Run("a login refused with HTTP "+http.StatusText(status), func(t *testing.T) {
			p, rec := setup(t)
			rec.set("POST /user/authenticate", answer{status, `{}`})
			_, err := p.Login(context.Background())
			wantErr(t, err, KindRejected, says)
		})
	}
	for _, c := range []struct {
		name string
		a    answer
		kind Kind
		says string
	}{
		{"a refused renewal", answer{401, `{}`}, KindRejected, "log in again"},
		{"a renewal without a token", answer{200, `{}`}, KindBadResponse, "the answer has no token"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, rec := setup(t)
			rec.set("GET /user/authenticate", c.a)
			_, err := p.Refresh(context.Background(), loggedIn)
			wantErr(t, err, c.kind, c.says)
		})
	}
}
