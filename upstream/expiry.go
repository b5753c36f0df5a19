package upstream

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// DefaultLifetime is assumed when neither the JWT nor the answer says when a token expires.
const DefaultLifetime = 15 * time.Minute

// ClockSkew is how long before its token a lease ends, so that no reader holds an expired
// token while its lease says valid, even with some clock difference to the upstream. The
// backend uses it for every lease; it is here because MinServableLife is built on it.
const ClockSkew = 5 * time.Second

// MinServableLife is the shortest remaining life a new token may have. The backend serves a
// lease of the token's remaining life less ClockSkew and keeps 1 s more so that a renewal's
// increment cannot outlive the token; a token that expires sooner than this after it arrives
// would get a zero or negative lease TTL, so it is a bad response instead. Twice the skew
// leaves a few seconds of lease on the shortest token served.
const MinServableLife = 2 * ClockSkew

// MaxTokenLife bounds how far from now a token's expiry and issue time may be. Upstream
// session tokens live minutes to hours; an expiry a year or more away (or an issue time a year
// or more ago) is a misread field or a hostile answer, and a time past year 9999 cannot even be
// stored (time.Time.MarshalJSON refuses it), which would leave a session that is served but
// never saved or renewed. So such answers are bad responses, not sessions.
const MaxTokenLife = 365 * 24 * time.Hour

// TokenTimes decides when a token was issued and when it expires: the JWT's iat and exp
// (parsed, not verified: the plugin does not hold the upstream's key), else the provider's
// expiry field, else DefaultLifetime from now. It is an error, worded as the upstream's answer,
// when the token is already expired, expires within MinServableLife, expires more than
// MaxTokenLife from now, or says it was issued more than MaxTokenLife ago; and whenever either
// time could not be stored as JSON.
func TokenTimes(token string, expiryField any, now time.Time) (issued, expires time.Time, err error) {
	issued = now
	if iat, exp, ok := jwtTimes(token); ok {
		expires = exp
		if !iat.IsZero() && iat.Before(exp) && !iat.After(now) {
			issued = iat
		}
	} else if t, ok := ParseExpiry(expiryField); ok {
		expires = t
	} else {
		expires = now.Add(DefaultLifetime)
	}
	at := func(t time.Time) string {
		if _, err := t.MarshalJSON(); err != nil {
			return fmt.Sprintf("year %d", t.Year())
		}
		return t.UTC().Format(time.RFC3339)
	}
	switch {
	case !expires.After(now):
		return time.Time{}, time.Time{}, fmt.Errorf("upstream issued a token that expired at %s, before it arrived (is the upstream's or this host's clock wrong?)",
			at(expires))
	case expires.Before(now.Add(MinServableLife)):
		return time.Time{}, time.Time{}, fmt.Errorf("upstream issued a token that expires at %s, %s after it arrived, which is shorter than the %s the plugin needs to serve it (is the upstream's or this host's clock wrong?)",
			at(expires), expires.Sub(now).Round(time.Millisecond), MinServableLife)
	case expires.After(now.Add(MaxTokenLife)) || !storable(expires):
		return time.Time{}, time.Time{}, fmt.Errorf("upstream issued a token that expires at %s, which is not a plausible session expiry (more than %d days from now; check the expiry field and its unit)",
			at(expires), int(MaxTokenLife/(24*time.Hour)))
	case issued.Before(now.Add(-MaxTokenLife)) || !storable(issued):
		return time.Time{}, time.Time{}, fmt.Errorf("upstream issued a token that says it was issued at %s, which is not a plausible session start (more than %d days ago)",
			at(issued), int(MaxTokenLife/(24*time.Hour)))
	}
	return issued, expires, nil
}

// storable says whether t survives the JSON encoding of a stored session.
func storable(t time.Time) bool {
	_, err := t.MarshalJSON()
	return err == nil
}

// jwtTimes reads iat and exp from a JWT without verifying it; ok is false when token is not
// a JWT or has no exp.
func jwtTimes(token string) (iat, exp time.Time, ok bool) {
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(token, claims); err != nil {
		return time.Time{}, time.Time{}, false
	}
	e, err := claims.GetExpirationTime()
	if err != nil || e == nil {
		return time.Time{}, time.Time{}, false
	}
	if i, err := claims.GetIssuedAt(); err == nil && i != nil {
		iat = i.Time
	}
	return iat, e.Time, true
}

// ParseExpiry reads an expiry field: Unix seconds or milliseconds (number or numeric string),
// or an RFC 3339 / ISO-8601 time. ok is false for anything else.
func ParseExpiry(v any) (time.Time, bool) {
	switch x := v.(type) {
	case float64:
		return epoch(x)
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return time.Time{}, false
		}
		return epoch(f)
	case string:
		s := strings.TrimSpace(x)
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return epoch(f)
		}
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04:05.999999999"} {
			if t, err := time.Parse(layout, s); err == nil {
				return t, true // no zone: the APIs document UTC
			}
		}
	}
	return time.Time{}, false
}

// epoch reads Unix seconds, or milliseconds when the number is too large to be seconds.
func epoch(f float64) (time.Time, bool) {
	if !(f > 0 && f <= 1e15) { // also NaN

		return time.Time{}, false
	}
	if f > 1e11 { // later than year 5138 in seconds: it is milliseconds
		return time.UnixMilli(int64(f)), true
	}
	return time.Unix(int64(f), int64((f-float64(int64(f)))*1e9)), true
}

// CheckToken applies the bounds every kept token must meet: a value of at most MaxTokenLen
// bytes, and at most MaxExtras extras, each a number, bool or string of at most
// MaxExtraValueLen bytes. Tokens are copied into every read and renewal; an upstream that
// answers with a huge one must not make every reader's response (and Vault's lease storage)
// huge too. A token goes into a header in every consumer (authorization is the scheme, one
// space and the token): every byte is visible ASCII, 0x21-0x7E, so no line break, space or
// control can add a header or a parameter the upstream never issued; string extras, served
// next to it, are printable ASCII (0x20-0x7E). Errors never quote the value.
func CheckToken(t *Token) error {
	if t.Value == "" {
		return fmt.Errorf("the token is empty")
	}
	if len(t.Value) > MaxTokenLen {
		return fmt.Errorf("the token is %d bytes, more than the %d the plugin keeps", len(t.Value), MaxTokenLen)
	}
	if i := outside(t.Value, 0x21); i >= 0 {
		return fmt.Errorf("the token has a byte outside 0x21-0x7E (at offset %d), so it cannot be sent in a header", i)
	}
	if len(t.Extras) > MaxExtras {
		return fmt.Errorf("the answer has %d extra fields, more than the %d the plugin keeps", len(t.Extras), MaxExtras)
	}
	for k, v := range t.Extras {
		switch x := v.(type) {
		case string:
			if len(x) > MaxExtraValueLen {
				return fmt.Errorf("%s is %d bytes, more than the %d the plugin keeps", k, len(x), MaxExtraValueLen)
			}
			if i := outside(x, 0x20); i >= 0 {
				return fmt.Errorf("%s has a byte outside 0x20-0x7E (at offset %d)", k, i)
			}
		case float64, int, int64, bool, nil:
		default:
			return fmt.Errorf("%s is not a number, string or bool", k)
		}
	}
	return nil
}

// outside returns the offset of the first byte of s outside lowest-0x7E, or -1.
func outside(s string, lowest byte) int {
	for i := range len(s) {
		if s[i] < lowest || s[i] > 0x7e {
			return i
		}
	}
	return -1
}

// CheckStoredToken applies to a token loaded from storage the rules a login's answer meets:
// the bounds of CheckToken, and times within MaxTokenLife of now with the issue before the
// expiry. An expired stored token is fine (it is refreshed); an implausible one is not
// served, so a stored session cannot give a lease of years.
func CheckStoredToken(t *Token, now time.Time) error {
	if err := CheckToken(t); err != nil {
		return err
	}
	switch {
	case t.ExpiresAt.After(now.Add(MaxTokenLife)):
		return fmt.Errorf("it expires at %s, more than %d days from now", t.ExpiresAt.UTC().Format(time.RFC3339), int(MaxTokenLife/(24*time.Hour)))
	case t.IssuedAt.Before(now.Add(-MaxTokenLife)):
		return fmt.Errorf("it says it was issued at %s, more than %d days ago", t.IssuedAt.UTC().Format(time.RFC3339), int(MaxTokenLife/(24*time.Hour)))
	case !t.IssuedAt.Before(t.ExpiresAt):
		return fmt.Errorf("it says it was issued at %s, not before its expiry %s", t.IssuedAt.UTC().Format(time.RFC3339), t.ExpiresAt.UTC().Format(time.RFC3339))
	}
	return nil
}
