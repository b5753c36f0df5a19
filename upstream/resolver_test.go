package upstream

import (
	"context"
	"testing"
	"time"
)

func TestResolverLoginAndRenew(t *testing.T) {
	clock := newTestClock()
	rec := newRecorder(t, map[string]answer{
		"POST /user/authenticate": {200, `{"token":"opaque-r","expiresAt":1795436100}`}, // 12:15
		"GET /user/authenticate":  {200, `{"token":"opaque-r2","expiresAt":1795436200}`},
	})
	p := providerAt(t, Config{Provider: Resolver, URL: rec.URL, Email: "svc@acme.com", Password: "pw-secret", OrgID: 42}, clock)
	tok, err := p.Login(context.Background())
	if err != nil || tok.Value != "opaque-r" || !tok.ExpiresAt.Equal(time.Unix(1795436100, 0)) || tok.Extras["org_id"] != 42 {
		t.Fatalf("%+v %v", tok, err)
	}
	got := rec.sent()[0]
	if got.body["email"] != "svc@acme.com" || got.body["password"] != "pw-secret" || got.body["selectedOrg"] != float64(42) || got.body["client"] != "core-client" {
		t.Fatalf("sent %+v", got)
	}
	tok, err = p.Refresh(context.Background(), tok)
	if err != nil || tok.Value != "opaque-r2" || tok.ObtainedBy != OpRefresh || tok.Extras["org_id"] != 42 {
		t.Fatalf("%+v %v", tok, err)
	}
	if got := rec.sent()[1]; got.method != "GET" || got.authz != "bearer opaque-r" {
		t.Fatalf("renew sent %+v", got)
	}
	if p.Authorization("x") != "Bearer x" || p.Logout(context.Background(), "x") != nil || len(rec.sent()) != 2 {
		t.Fatal("authorization or logout")
	}
	for status, says := range map[int]string{401: "passwords expire", 403: "check org_id", 404: "not an active member of any org"} {
		rec.set("POST /user/authenticate", answer{status, `{}`})
		_, err = p.Login(context.Background())
		wantErr(t, err, KindRejected, says)
	}
	rec.set("GET /user/authenticate", answer{401, `{}`})
	_, err = p.Refresh(context.Background(), tok)
	wantErr(t, err, KindRejected, "log in again")
	rec.set("GET /user/authenticate", answer{200, `{}`})
	_, err = p.Refresh(context.Background(), tok)
	wantErr(t, err, KindBadResponse, "the answer has no token")
}
