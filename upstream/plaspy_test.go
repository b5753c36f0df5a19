package upstream

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Each case is a Plaspy login against an upstream that answers one way, on its own provider and
// clock (2026-11-23T12:00:00Z), so that one failing case hides none of the others.
func TestPlaspyLogin(t *testing.T) {
	login := func(t *testing.T, a answer) (Provider, *recorder, *Token, error) {
		t.Helper()
		rec := newRecorder(t, map[string]answer{"POST /api/Auth/Token": a})
		p := providerAt(t, Config{Provider: Plaspy, URL: rec.URL, Username: "svc", APIKey: "key-secret"}, newTestClock())
		tok, err := p.Login(context.Background())
		return p, rec, tok, err
	}
	at := func(h, m int) time.Time { return time.Date(2026, 11, 23, h, m, 0, 0, time.UTC) }

	t.Run("a login sends the user name and key, and reads expires", func(t *testing.T) {
		p, rec, tok, err := login(t, answer{200, `{"success":true,"token":"opaque-p","expires":"2026-11-23T12:30:00Z"}`})
		if err != nil || tok.Value != "opaque-p" || !tok.ExpiresAt.Equal(at(12, 30)) || tok.ObtainedBy != OpLogin {
			t.Fatalf("%+v %v", tok, err)
		}
		if got := rec.sent()[0]; got.body["userName"] != "svc" || got.body["apiKey"] != "key-secret" || got.authz != "" {
			t.Fatalf("sent %+v", got)
		}
		if p.Authorization("x") != "Bearer x" || !errors.Is(p.Logout(context.Background(), "x"), ErrNoLogout) {
			t.Fatal("authorization or logout")
		}
		if _, err := p.Refresh(context.Background(), tok); !errors.Is(err, ErrNoRefresh) {
			t.Fatalf("refresh: %v", err)
		}
	})

	for _, c := range []struct {
		name, body, token string
		expires           time.Time
	}{
		{"no success field: the token decides", `{"token":"opaque-q"}`, "opaque-q", at(12, 15)}, // nothing stated: the assumed life
		// Plaspy documents its expires as UTC: a time without a zone is read as UTC.
		{"expires without a zone is UTC", `{"success":true,"token":"opaque-r","expires":"2026-11-23T12:05:00"}`, "opaque-r", at(12, 5)},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, tok, err := login(t, answer{200, c.body})
			if err != nil || tok.Value != c.token || !tok.ExpiresAt.Equal(c.expires) {
				t.Fatalf("%+v %v", tok, err)
			}
		})
	}

	refused := []string{"upstream refused the credentials", "regenerating the key"}
	for _, c := range []struct {
		name   string
		status int
		body   string
		kind   Kind
		says   []string
	}{
		{"the documented refusal is quoted", 200, `{"success":false,"error":"Invalid API key or username."}`, KindRejected,
			append(refused, `upstream says "Invalid API key or username."`)},
		{"any other refusal text is withheld", 200, `{"success":false,"error":"Invalid API key key-secret"}`, KindRejected,
			append(refused, "its message is withheld; it mentions: password or credentials")},
		{"success decides over a token", 200, `{"success":false,"token":"opaque-but-refused"}`, KindRejected, refused},
		{"success false alone", 200, `{"success":false}`, KindRejected, []string{"failed: upstream refused the credentials; check username and api_key"}},
		{"success without a token", 200, `{"success":true}`, KindBadResponse, []string{"the answer has no token"}},
		// A stated expiry it cannot read is refused, naming the field, never the 15-minute default.
		{"an expires it cannot read", 200, `{"success":true,"token":"opaque-r","expires":"23/11/2026 12:05"}`, KindBadResponse,
			[]string{"expires is stated but cannot be read", "an HTTP-date"}},
		{"HTTP 401", 401, `{}`, KindRejected, []string{"check username and api_key"}},
		// Plaspy's success:false decides whatever the status (after a key is regenerated Plaspy
		// answers HTTP 400); a 5xx stays unavailable.
		{"success false under HTTP 400", 400, `{"success":false,"error":"Invalid API key or username."}`, KindRejected, refused},
		{"success false under HTTP 401", 401, `{"success":false,"error":"Invalid API key or username."}`, KindRejected, refused},
		{"success false under HTTP 403", 403, `{"success":false,"error":"Invalid API key or username."}`, KindRejected, refused},
		{"success false under HTTP 422", 422, `{"success":false,"error":"Invalid API key or username."}`, KindRejected, refused},
		{"success false under HTTP 502", 502, `{"success":false,"error":"Invalid API key or username."}`, KindUnavailable, []string{"HTTP 502"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, _, err := login(t, answer{c.status, c.body})
			wantErr(t, err, c.kind, c.says...)
			if e, _ := AsError(err); e.Status != c.status || IsRefusedLogin(err) != (c.kind == KindRejected) {
				t.Fatalf("status %d, want %d; refused login %v", e.Status, c.status, IsRefusedLogin(err))
			}
		})
	}
}
