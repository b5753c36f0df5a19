package upstream

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func signed(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte("k"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTokenTimes(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	in10 := now.Add(10 * time.Minute)
	cases := []struct {
		name        string
		token       string
		field       any
		wantExp     time.Time
		wantIssued  time.Time
		wantErrPart string
	}{
		{"jwt exp wins over field", signed(t, jwt.MapClaims{"exp": in10.Unix(), "iat": now.Add(-time.Minute).Unix()}), float64(now.Add(time.Hour).Unix()), in10, now.Add(-time.Minute), ""},
		{"jwt without exp uses field (seconds)", signed(t, jwt.MapClaims{"sub": "x"}), float64(in10.Unix()), in10, now, ""},
		{"milliseconds", "opaque", float64(in10.UnixMilli()), in10, now, ""},
		{"RFC 3339", "opaque", in10.Format(time.RFC3339), in10, now, ""},
		{"ISO without zone is UTC", "opaque", in10.Format("2006-01-02T15:04:05"), in10, now, ""},
		{"numeric string", "opaque", "1795435800", time.Unix(1795435800, 0), now, ""},
		{"nothing known: 15 minutes", "opaque", nil, now.Add(DefaultLifetime), now, ""},
		{"garbage field: 15 minutes", "opaque", "soon", now.Add(DefaultLifetime), now, ""},
		{"expired at issue", signed(t, jwt.MapClaims{"exp": now.Add(-time.Minute).Unix()}), nil, time.Time{}, time.Time{}, "expired"},
		{"future iat is ignored", signed(t, jwt.MapClaims{"exp": in10.Unix(), "iat": now.Add(time.Hour).Unix()}), nil, in10, now, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			issued, exp, err := TokenTimes(tc.token, tc.field, now)
			if tc.wantErrPart != "" {
				if err == nil {
					t.Fatalf("want an error, got exp %s", exp)
				}
				return
			}
			if err != nil || !exp.Equal(tc.wantExp) || !issued.Equal(tc.wantIssued) {
				t.Fatalf("got issued %s exp %s err %v; want issued %s exp %s", issued, exp, err, tc.wantIssued, tc.wantExp)
			}
		})
	}
}
