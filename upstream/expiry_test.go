package upstream

import (
	"encoding/json"
	"fmt"
	"strings"
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
		{"NaN field: 15 minutes", "opaque", "NaN", now.Add(DefaultLifetime), now, ""},

		// Bounds, with literal numbers (now is 1795435200): a token must live at least 10 s
		// after it arrives, expire at most 365 days from now, and say it was issued at most
		// 365 days ago.
		{"10 s left is served", "opaque", float64(1795435210), time.Unix(1795435210, 0), now, ""},
		{"9.999 s left is not", "opaque", float64(1795435209999), time.Time{}, time.Time{}, "shorter than the 10s the plugin needs"},
		{"1 s left is not", signed(t, jwt.MapClaims{"exp": 1795435201}), nil, time.Time{}, time.Time{}, "shorter than the 10s"},
		{"365 days ahead", "opaque", float64(1795435200 + 365*86400), time.Unix(1795435200+365*86400, 0), now, ""},
		{"365 days and 1 s ahead", "opaque", float64(1795435200 + 365*86400 + 1), time.Time{}, time.Time{}, "which is not a plausible session expiry"},
		{"millisecond epoch 1e15 (year 33658)", "opaque", float64(1e15), time.Time{}, time.Time{}, "expires at year 33658, which is not a plausible session expiry"},
		{"jwt exp in year 10000", signed(t, jwt.MapClaims{"exp": int64(253402300800)}), nil, time.Time{}, time.Time{}, "not a plausible session expiry"},
		{"jwt exp in year 2100", signed(t, jwt.MapClaims{"exp": int64(4102444800)}), nil, time.Time{}, time.Time{}, "expires at 2100-01-01T00:00:00Z, which is not a plausible session expiry"},
		{"iat 365 days ago", signed(t, jwt.MapClaims{"exp": in10.Unix(), "iat": 1795435200 - 365*86400}), nil, in10, time.Unix(1795435200-365*86400, 0), ""},
		{"iat 365 days and 1 s ago", signed(t, jwt.MapClaims{"exp": in10.Unix(), "iat": 1795435200 - 365*86400 - 1}), nil, time.Time{}, time.Time{}, "not a plausible session start"},
		{"iat before year 0", signed(t, jwt.MapClaims{"exp": in10.Unix(), "iat": int64(-1e12)}), nil, time.Time{}, time.Time{}, "says it was issued at year -29719, which is not a plausible session start"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			issued, exp, err := TokenTimes(tc.token, tc.field, now)
			if tc.wantErrPart != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErrPart) || !strings.HasPrefix(err.Error(), "upstream issued a token") {
					t.Fatalf("want an error saying %q, got exp %s err %v", tc.wantErrPart, exp, err)
				}
				return
			}
			if err != nil || !exp.Equal(tc.wantExp) || !issued.Equal(tc.wantIssued) {
				t.Fatalf("got issued %s exp %s err %v; want issued %s exp %s", issued, exp, err, tc.wantIssued, tc.wantExp)
			}
		})
	}
}

// A time the plugin cannot store is refused even within the 365-day bound: near the end of
// year 9999 a 60-day token would expire in year 10000, which JSON cannot encode.
func TestTokenTimesRefusesWhatCannotBeStored(t *testing.T) {
	now := time.Date(9999, 12, 1, 0, 0, 0, 0, time.UTC)
	exp := now.Add(60 * 24 * time.Hour)
	_, _, err := TokenTimes(signed(t, jwt.MapClaims{"exp": exp.Unix()}), nil, now)
	if err == nil || !strings.Contains(err.Error(), "expires at year 10000, which is not a plausible session expiry") {
		t.Fatalf("got %v", err)
	}
	if _, _, err := TokenTimes("opaque", nil, now); err != nil { // 15 minutes: still 9999
		t.Fatalf("a storable expiry was refused: %v", err)
	}
	// Likewise an issue time in year -1, 20 days before a clock in January of year 0.
	now = time.Date(0, 1, 10, 0, 0, 0, 0, time.UTC)
	iat := now.Add(-20 * 24 * time.Hour)
	_, _, err = TokenTimes(signed(t, jwt.MapClaims{"exp": now.Add(time.Hour).Unix(), "iat": iat.Unix()}), nil, now)
	if err == nil || !strings.Contains(err.Error(), "says it was issued at year -1, which is not a plausible session start") {
		t.Fatalf("got %v", err)
	}
}

// The epoch reading of expiry fields, at its boundaries (literal numbers, not the constants).
func TestParseExpiryEpochBoundaries(t *testing.T) {
	cases := []struct {
		in   any
		want time.Time
		ok   bool
	}{
		{float64(0), time.Time{}, false},
		{float64(-1), time.Time{}, false},
		{0.5, time.Unix(0, 500000000), true},
		{1795435200.25, time.Unix(1795435200, 250000000), true},
		{float64(1e11), time.Unix(100000000000, 0), true},        // still seconds
		{float64(1e11 + 1), time.UnixMilli(100000000001), true},  // milliseconds from here
		{float64(1795435200000), time.Unix(1795435200, 0), true}, // milliseconds
		{float64(1e15), time.UnixMilli(1000000000000000), true},  // the largest accepted
		{float64(1e15 + 1), time.Time{}, false},                  // past it
		{"1e15", time.UnixMilli(1000000000000000), true},
		{"NaN", time.Time{}, false},
		{"+Inf", time.Time{}, false},
		{"2026-11-23T12:00:00.5Z", time.Date(2026, 11, 23, 12, 0, 0, 500000000, time.UTC), true},
		{"2026-11-23T12:00:00", time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC), true},
		{"2026-11-23T12:00:00.25", time.Date(2026, 11, 23, 12, 0, 0, 250000000, time.UTC), true},
		{json.Number("1795435200"), time.Unix(1795435200, 0), true},
		{json.Number("x"), time.Time{}, false},
		{true, time.Time{}, false},
	}
	for _, tc := range cases {
		got, ok := ParseExpiry(tc.in)
		if ok != tc.ok || !got.Equal(tc.want) {
			t.Errorf("ParseExpiry(%#v) = %s %v, want %s %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// An answer is kept up to each bound and refused one past it, saying which bound: the token's
// length, how many extras, each extra's length.
func TestTokensAreKeptUpToTheirBounds(t *testing.T) {
	extras := func(n, size int) map[string]any {
		m := map[string]any{}
		for i := range n {
			m[fmt.Sprintf("extra_%d", i)] = strings.Repeat("e", size)
		}
		return m
	}
	for _, tc := range []struct {
		name string
		tok  Token
		want string // "" when kept
	}{
		{"token at its limit", Token{Value: strings.Repeat("t", MaxTokenLen)}, ""},
		{"token past it", Token{Value: strings.Repeat("t", MaxTokenLen+1)}, "more than the 16384 the plugin keeps"},
		{"extras at their limit", Token{Value: "t", Extras: extras(MaxExtras, MaxExtraValueLen)}, ""},
		{"one extra too many", Token{Value: "t", Extras: extras(MaxExtras+1, 1)}, "9 extra fields, more than the 8"},
		{"an extra too long", Token{Value: "t", Extras: extras(1, MaxExtraValueLen+1)}, "257 bytes, more than the 256"},
	} {
		err := CheckToken(&tc.tok)
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
