package upstream

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestPlaspyLogin(t *testing.T) {
	clock := newTestClock() // 2026-11-23T12:00:00Z
	rec := newRecorder(t, map[string]answer{
		"POST /api/Auth/Token": {200, `{"success":true,"token":"opaque-p","expires":"2026-11-23T12:30:00Z"}`},
	})
	p := providerAt(t, Config{Provider: Plaspy, URL: rec.URL, Username: "svc", APIKey: "key-secret"}, clock)
	tok, err := p.Login(context.Background())
	if err != nil || tok.Value != "opaque-p" || !tok.ExpiresAt.Equal(time.Date(2026, 11, 23, 12, 30, 0, 0, time.UTC)) || tok.ObtainedBy != OpLogin {
		t.Fatalf("%+v %v", tok, err)
	}
	if got := rec.sent()[0]; got.body["userName"] != "svc" || got.body["apiKey"] != "key-secret" || got.authz != "" {
		t.Fatalf("sent %+v", got)
	}
	if p.Authorization("x") != "Bearer x" || p.Logout(context.Background(), "x") != nil {
		t.Fatal("authorization or logout")
	}
	if _, err := p.Refresh(context.Background(), tok); !errors.Is(err, ErrNoRefresh) {
		t.Fatalf("refresh: %v", err)
	}
	rec.set("POST /api/Auth/Token", answer{200, `{"token":"opaque-q"}`}) // no success field: the token decides
	if tok, err := p.Login(context.Background()); err != nil || tok.Value != "opaque-q" {
		t.Fatalf("%+v %v", tok, err)
	}
	rec.set("POST /api/Auth/Token", answer{200, `{"success":false,"error":"Invalid API key or username."}`})
	_, err = p.Login(context.Background())
	wantErr(t, err, KindRejected, `upstream refused the credentials; upstream says "Invalid API key or username."`, "regenerating the key")
	rec.set("POST /api/Auth/Token", answer{200, `{"success":false,"error":"Invalid API key key-secret"}`})
	_, err = p.Login(context.Background())
	wantErr(t, err, KindRejected, "upstream refused the credentials; its message is withheld; it mentions: password or credentials", "regenerating the key")
	if e, _ := AsError(err); e.Status != 200 {
		t.Fatalf("status %d", e.Status)
	}
	rec.set("POST /api/Auth/Token", answer{200, `{"success":false,"token":"opaque-but-refused"}`}) // success decides
	_, err = p.Login(context.Background())
	wantErr(t, err, KindRejected, "upstream refused the credentials")
	rec.set("POST /api/Auth/Token", answer{200, `{"success":false}`})
	_, err = p.Login(context.Background())
	wantErr(t, err, KindRejected, "failed: upstream refused the credentials; check username and api_key")
	rec.set("POST /api/Auth/Token", answer{200, `{"success":true}`})
	_, err = p.Login(context.Background())
	wantErr(t, err, KindBadResponse, "the answer has no token")
	// Plaspy documents its expires as UTC: a time without a zone is read as UTC; one it cannot
	// read is refused, naming the field, never the 15-minute default (issue 33).
	rec.set("POST /api/Auth/Token", answer{200, `{"success":true,"token":"opaque-r","expires":"2026-11-23T12:05:00"}`})
	if tok, err := p.Login(context.Background()); err != nil || !tok.ExpiresAt.Equal(time.Date(2026, 11, 23, 12, 5, 0, 0, time.UTC)) {
		t.Fatalf("%+v %v", tok, err)
	}
	rec.set("POST /api/Auth/Token", answer{200, `{"success":true,"token":"opaque-r","expires":"23/11/2026 12:05"}`})
	_, err = p.Login(context.Background())
	wantErr(t, err, KindBadResponse, "expires is stated but cannot be read", "an HTTP-date")
	rec.set("POST /api/Auth/Token", answer{401, `{}`})
	_, err = p.Login(context.Background())
	wantErr(t, err, KindRejected, "check username and api_key")

	// Issue 33, defect 1: Plaspy's success:false decides whatever the status (after a key is
	// regenerated Plaspy answers HTTP 400); a 5xx stays unavailable.
	for _, status := range []int{400, 401, 403, 422} {
		rec.set("POST /api/Auth/Token", answer{status, `{"success":false,"error":"Invalid API key or username."}`})
		_, err = p.Login(context.Background())
		wantErr(t, err, KindRejected, "upstream refused the credentials", `upstream says "Invalid API key or username."`, "regenerating the key")
		if e, _ := AsError(err); e.Status != status || !IsRefusedLogin(err) {
			t.Fatalf("HTTP %d: status %d, refused login %v", status, e.Status, IsRefusedLogin(err))
		}
	}
	rec.set("POST /api/Auth/Token", answer{502, `{"success":false,"error":"Invalid API key or username."}`})
	_, err = p.Login(context.Background())
	wantErr(t, err, KindUnavailable, "HTTP 502")
}
