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
	in5 := now.Add(5 * time.Minute)
	cases := []struct {
		name        string
		token       string
		field       any
		wantExp     time.Time
		wantIssued  time.Time
		wantErrPart string
	}{
		{"jwt exp earlier than field wins", signed(t, jwt.MapClaims{"exp": in10.Unix(), "iat": now.Add(-time.Minute).Unix()}), float64(now.Add(time.Hour).Unix()), in10, now, ""},
		// No lease past any stated expiry: the earlier of exp and the field wins (issue 33).
		{"field earlier than jwt exp wins", signed(t, jwt.MapClaims{"exp": now.Add(time.Hour).Unix()}), float64(in10.Unix()), in10, now, ""},
		{"jwt exp and an unreadable field: refused", signed(t, jwt.MapClaims{"exp": in10.Unix()}), "soon", time.Time{}, time.Time{}, "expires is stated but cannot be read"},
		{"jwt without exp uses field (seconds)", signed(t, jwt.MapClaims{"sub": "x"}), float64(in10.Unix()), in10, now, ""},
		{"milliseconds", "opaque", float64(in10.UnixMilli()), in10, now, ""},
		{"RFC 3339", "opaque", in10.Format(time.RFC3339), in10, now, ""},
		{"numeric string", "opaque", "1795435800", time.Unix(1795435800, 0), now, ""},
		{"nothing known: 15 minutes", "opaque", nil, now.Add(DefaultLifetime), now, ""},
		{"expired at issue", signed(t, jwt.MapClaims{"exp": now.Add(-time.Minute).Unix()}), nil, time.Time{}, time.Time{}, "expired"},
		{"iat an hour ahead: its exp is an hour early too", signed(t, jwt.MapClaims{"exp": in10.Unix(), "iat": now.Add(time.Hour).Unix()}), nil, time.Time{}, time.Time{}, "expired at 2026-11-23T11:10:00Z"},

		// A stated expiry is read or refused, never replaced by the 15-minute default (issue 33).
		// "5 minutes from now" in every form read:
		{"microseconds", "opaque", float64(in5.UnixMicro()), in5, now, ""},
		{"nanoseconds", "opaque", float64(in5.UnixNano()), in5, now, ""},
		{"nanoseconds as a string", "opaque", "1795435500000000000", in5, now, ""},
		{"HTTP-date", "opaque", "Mon, 23 Nov 2026 12:05:00 GMT", in5, now, ""},
		{"RFC 3339 with a space", "opaque", "2026-11-23 12:05:00Z", in5, now, ""},
		{"RFC 3339 with an offset", "opaque", "2026-11-23T13:05:00+01:00", in5, now, ""},
		{"expires_in 300", "opaque", float64(300), in5, now, ""},
		{"expires_in 900", "opaque", float64(900), now.Add(15 * time.Minute), now, ""},
		// and what is refused, naming the field and the forms read:
		{"garbage field: refused", "opaque", "soon", time.Time{}, time.Time{}, "expires is stated but cannot be read (a string that is not a time in a form read)"},
		{"NaN field: refused", "opaque", "NaN", time.Time{}, time.Time{}, "expires is stated but cannot be read"},
		{"zero: refused", "opaque", float64(0), time.Time{}, time.Time{}, "expires is stated but cannot be read (a number out of range)"},
		{"minus one: refused", "opaque", float64(-1), time.Time{}, time.Time{}, "RFC 3339 time with T or a space and a zone, or an HTTP-date"},
		{"1e20: refused", "opaque", float64(1e20), time.Time{}, time.Time{}, "cannot be read"},
		{"a bool: refused", "opaque", true, time.Time{}, time.Time{}, "expires is stated but cannot be read (a boolean)"},
		{"an object: refused", "opaque", map[string]any{"at": "x"}, time.Time{}, time.Time{}, "cannot be read (an object)"},
		{"no zone: refused", "opaque", in10.Format("2006-01-02T15:04:05"), time.Time{}, time.Time{}, "expires is stated but cannot be read"},
		{"1e15+1 is microseconds, as 1e15 (both in 2001)", "opaque", float64(1e15 + 1), time.Time{}, time.Time{}, "expired at 2001-09-09T01:46:40Z"},
		{"jwt exp a string", signed(t, jwt.MapClaims{"exp": "1795435800"}), nil, time.Time{}, time.Time{}, "upstream issued a token whose JWT exp is not a positive number"},
		{"jwt exp null", signed(t, jwt.MapClaims{"exp": nil}), nil, time.Time{}, time.Time{}, "JWT exp is not a positive number"},
		{"jwt exp 0", signed(t, jwt.MapClaims{"exp": 0}), float64(in10.Unix()), time.Time{}, time.Time{}, "JWT exp is not a positive number"},
		{"jwt that cannot be decoded", "eyJhbGciOiJIUzI1NiJ9.!!!.x", nil, time.Time{}, time.Time{}, "upstream issued a token that is a JWT whose claims cannot be decoded"},
		{"three segments that are not a JWT are opaque", "v2.local.abc", nil, now.Add(DefaultLifetime), now, ""},

		// Bounds, with literal numbers (now is 1795435200): a token must live at least 10 s
		// after it arrives and expire at most 365 days from now; it is issued when it arrives,
		// whatever its iat says.
		{"10 s left is served", "opaque", float64(1795435210), time.Unix(1795435210, 0), now, ""},
		{"9.999 s left is not", "opaque", float64(1795435209999), time.Time{}, time.Time{}, "shorter than the 10s the plugin needs"},
		{"1 s left is not", signed(t, jwt.MapClaims{"exp": 1795435201}), nil, time.Time{}, time.Time{}, "shorter than the 10s"},
		{"365 days ahead", "opaque", float64(1795435200 + 365*86400), time.Unix(1795435200+365*86400, 0), now, ""},
		{"365 days and 1 s ahead", "opaque", float64(1795435200 + 365*86400 + 1), time.Time{}, time.Time{}, "which is not a plausible session expiry"},
		{"nanosecond epoch 9.9e19 (year 5107)", "opaque", float64(9.9e19), time.Time{}, time.Time{}, "expires at 5107-03-10T08:00:00Z, which is not a plausible session expiry"},
		{"jwt exp in year 10000", signed(t, jwt.MapClaims{"exp": int64(253402300800)}), nil, time.Time{}, time.Time{}, "not a plausible session expiry"},
		{"jwt exp in year 2100", signed(t, jwt.MapClaims{"exp": int64(4102444800)}), nil, time.Time{}, time.Time{}, "expires at 2100-01-01T00:00:00Z, which is not a plausible session expiry"},
		{"iat 365 days ago: issued on arrival", signed(t, jwt.MapClaims{"exp": in10.Unix(), "iat": 1795435200 - 365*86400}), nil, in10, now, ""},
		{"iat 365 days and 1 s ago: issued on arrival", signed(t, jwt.MapClaims{"exp": in10.Unix(), "iat": 1795435200 - 365*86400 - 1}), nil, in10, now, ""},
		{"iat before year 0: issued on arrival", signed(t, jwt.MapClaims{"exp": in10.Unix(), "iat": int64(-1e12)}), nil, in10, now, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			issued, exp, err := TokenTimes(tc.token, Expiry{Field: "expires", Value: tc.field}, now, now)
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
	_, _, err := TokenTimes(signed(t, jwt.MapClaims{"exp": exp.Unix()}), Expiry{}, now, now)
	if err == nil || !strings.Contains(err.Error(), "expires at year 10000, which is not a plausible session expiry") {
		t.Fatalf("got %v", err)
	}
	if _, _, err := TokenTimes("opaque", Expiry{}, now, now); err != nil { // 15 minutes: still 9999
		t.Fatalf("a storable expiry was refused: %v", err)
	}
	// Near year 0 an exp is a negative number: it is refused as not a positive number, before
	// any issue time is read.
	now = time.Date(0, 1, 10, 0, 0, 0, 0, time.UTC)
	iat := now.Add(-20 * 24 * time.Hour)
	_, _, err = TokenTimes(signed(t, jwt.MapClaims{"exp": now.Add(time.Hour).Unix(), "iat": iat.Unix()}), Expiry{}, now, now)
	if err == nil || !strings.Contains(err.Error(), "JWT exp is not a positive number") {
		t.Fatalf("got %v", err)
	}
}

// The reading of expiry fields, at its boundaries (literal numbers, not the constants): by
// magnitude, below 1e9 seconds from the answer's arrival, then epoch seconds, milliseconds,
// microseconds and nanoseconds; zero, negative and 1e20 or more refused.
func TestParseExpiryBoundaries(t *testing.T) {
	arrived := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		in   any
		utc  bool
		want time.Time
		ok   bool
	}{
		{float64(0), false, time.Time{}, false},
		{float64(-1), false, time.Time{}, false},
		{0.5, false, arrived.Add(500 * time.Millisecond), true},
		{float64(999999999), false, arrived.Add(999999999 * time.Second), true}, // seconds from arrival
		{float64(1e9), false, time.Unix(1000000000, 0), true},                   // epoch seconds from here
		{1795435200.25, false, time.Unix(1795435200, 250000000), true},
		{float64(1e11 - 1), false, time.Unix(99999999999, 0), true},
		{float64(1e11), false, time.UnixMilli(100000000000), true}, // milliseconds from here
		{float64(1795435200000), false, time.Unix(1795435200, 0), true},
		{float64(1e14 - 1), false, time.UnixMilli(99999999999999), true},
		{float64(1e14), false, time.UnixMicro(100000000000000), true}, // microseconds from here
		{float64(1e15), false, time.UnixMicro(1000000000000000), true},
		{float64(1e15 + 1), false, time.UnixMicro(1000000000000001), true},
		{float64(1e17), false, time.Unix(0, 100000000000000000), true},                // nanoseconds from here
		{float64(1795435200123456789), false, time.Unix(1795435200, 123456768), true}, // as close as a float64 is
		{float64(9.9e19), false, time.Unix(99000000000, 0), true},
		{float64(1e20), false, time.Time{}, false},
		{"1e15", false, time.UnixMicro(1000000000000000), true},
		{"NaN", false, time.Time{}, false},
		{"+Inf", false, time.Time{}, false},
		{"-Inf", false, time.Time{}, false},
		{"2026-11-23T12:00:00.5Z", false, time.Date(2026, 11, 23, 12, 0, 0, 500000000, time.UTC), true},
		{"2026-11-23 12:00:00.5Z", false, time.Date(2026, 11, 23, 12, 0, 0, 500000000, time.UTC), true},
		{"2026-11-23T12:00:00", false, time.Time{}, false}, // no zone, none documented
		{"2026-11-23T12:00:00", true, time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC), true},
		{"2026-11-23 12:00:00.25", true, time.Date(2026, 11, 23, 12, 0, 0, 250000000, time.UTC), true},
		{"Mon, 23 Nov 2026 12:05:00 GMT", false, time.Date(2026, 11, 23, 12, 5, 0, 0, time.UTC), true},
		{"2026-11-23", false, time.Time{}, false},
		{json.Number("1795435200"), false, time.Unix(1795435200, 0), true},
		{json.Number("x"), false, time.Time{}, false},
		{true, false, time.Time{}, false},
	}
	for _, tc := range cases {
		got, ok := ParseExpiry(tc.in, arrived, tc.utc)
		if ok != tc.ok || !got.Equal(tc.want) {
			t.Errorf("ParseExpiry(%#v, utc %v) = %s %v, want %s %v", tc.in, tc.utc, got, ok, tc.want, tc.ok)
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

// Issue 33, upstream clocks: IssuedAt is the answer's arrival on the plugin's clock, and
// ExpiresAt is the earliest stated expiry less how far the JWT's iat is ahead of when the
// request left, so a token is never judged to live longer than it does.
func TestTokenTimesOnThePluginsClock(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	sent := now.Add(-200 * time.Millisecond)
	check := func(name string, token string, field any, sent, now, wantIssued, wantExp time.Time) {
		t.Helper()
		issued, exp, err := TokenTimes(token, Expiry{Field: "expires", Value: field}, sent, now)
		if err != nil || !issued.Equal(wantIssued) || !exp.Equal(wantExp) {
			t.Errorf("%s: issued %s exp %s err %v; want issued %s exp %s", name, issued, exp, err, wantIssued, wantExp)
		}
	}
	// 12 minutes behind: its 15-minute token has 3 minutes left by its own exp; the token's
	// life is judged from its arrival, not from an iat 12 minutes ago.
	behind := now.Add(-12 * time.Minute)
	check("12 minutes behind", signed(t, jwt.MapClaims{"iat": behind.Unix(), "exp": behind.Add(15 * time.Minute).Unix()}), nil,
		sent, now, now, now.Add(3*time.Minute))
	// 5 minutes ahead: its exp is 20 minutes away by this clock, the real token 15; the
	// lease ends by the real expiry (less the 200 ms the answer took, which may be skew too).
	ahead := now.Add(5 * time.Minute)
	check("5 minutes ahead", signed(t, jwt.MapClaims{"iat": ahead.Unix(), "exp": ahead.Add(15 * time.Minute).Unix()}), nil,
		sent, now, now, now.Add(15*time.Minute-200*time.Millisecond))
	// and its expiry field (the same instant, on its clock) is corrected the same way.
	check("5 minutes ahead, field earlier", signed(t, jwt.MapClaims{"iat": ahead.Unix(), "exp": ahead.Add(time.Hour).Unix()}),
		float64(ahead.Add(15*time.Minute).Unix()), sent, now, now, now.Add(15*time.Minute-200*time.Millisecond))
	// 10 refreshes that keep the first iat: each token is judged from its own arrival.
	first := now
	for i := 1; i <= 10; i++ {
		at := now.Add(time.Duration(i) * 10 * time.Minute)
		check(fmt.Sprintf("refresh %d keeping iat", i), signed(t, jwt.MapClaims{"iat": first.Unix(), "exp": at.Add(15 * time.Minute).Unix()}), nil,
			at.Add(-time.Second), at, at, at.Add(15*time.Minute))
	}
}
