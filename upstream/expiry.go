package upstream

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
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

// Expiry is what an answer states about its token's expiry in the provider's own field.
type Expiry struct {
	Field string // the field's name as the provider spells it, for errors
	Value any    // nil: nothing stated (the field is absent or null)
	UTC   bool   // the provider documents that a time without a zone is UTC
}

// ExpiryForms is what an expiry field may state; anything else is refused, since a guess
// (the default lifetime) could outlive the real token.
const ExpiryForms = "a number (below 1e9: seconds from the answer's arrival; up to 1e20: Unix epoch seconds, milliseconds, microseconds or nanoseconds, by magnitude), " +
	"a string holding such a number, an RFC 3339 time with T or a space and a zone, or an HTTP-date"

// TokenTimes decides when a token was issued and when it expires, on the plugin's clock:
// issued is now, the answer's arrival; expires is the earliest stated expiry less
// max(0, iat - sent), where sent is when the request left, so that an upstream clock ahead of
// this one cannot stretch a lease past the real token. An expiry that is stated
// is read or refused, never guessed: the JWT's exp (parsed, not verified: the plugin does not
// hold the upstream's key) and the provider's expiry field, the earlier of the two when both
// are stated, so that no lease outlives either; DefaultLifetime from now applies
// only when neither states one. It is an error, worded as the upstream's answer, when a
// stated expiry cannot be read (a token shaped as a JWT whose claims do not decode, an exp
// present but not a positive number, an expiry field not in ExpiryForms), when the token is
// already expired, expires within MinServableLife, or expires more than MaxTokenLife from now
// or at a time that could not be stored as JSON. The JWT's iat is never the issue time (an
// upstream may keep it across refreshes); it only measures a clock ahead of this one.
func TokenTimes(token string, stated Expiry, sent, now time.Time) (issued, expires time.Time, err error) {
	issued = now
	iat, exp, hasExp, err := jwtTimes(token)
	if err != nil {
		return time.Time{}, time.Time{}, err
	}
	var field time.Time
	if stated.Value != nil {
		t, ok := ParseExpiry(stated.Value, now, stated.UTC)
		if !ok {
			return time.Time{}, time.Time{}, fmt.Errorf("upstream issued a token whose %s is stated but cannot be read (%s); the plugin reads %s, and refuses anything else",
				stated.Field, kindOf(stated.Value), ExpiryForms)
		}
		field = t
	}
	switch {
	case hasExp && !field.IsZero():
		expires = exp
		if field.Before(exp) { // no lease past any stated expiry
			expires = field
		}
	case hasExp:
		expires = exp
	case !field.IsZero():
		expires = field
	default:
		expires = now.Add(DefaultLifetime)
	}
	// An upstream whose clock is ahead states its expiries that far ahead too: its iat past
	// the moment the request left is that skew (or more), so it comes off. One that is
	// behind, or keeps the first iat on refresh, states them early or not at all: the issue
	// time is the answer's arrival either way, never the iat.
	if (hasExp || !field.IsZero()) && iat.After(sent) {
		expires = expires.Add(-iat.Sub(sent))
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
	}
	return issued, expires, nil
}

// storable says whether t survives the JSON encoding of a stored session.
func storable(t time.Time) bool {
	_, err := t.MarshalJSON()
	return err == nil
}

// kindOf names what an unreadable expiry is, without quoting it: it is upstream text.
func kindOf(v any) string {
	switch v.(type) {
	case string:
		return "a string that is not a time in a form read"
	case float64, json.Number:
		return "a number out of range"
	case bool:
		return "a boolean"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	return "a value of another type"
}

// jwtTimes reads iat and exp from a JWT without verifying it. A token is a JWT when it has
// three dot-separated parts and the first decodes as a JSON object (a JWT header); anything
// else is opaque (hasExp false, no error), so a PASETO or "v2.local.x" is not refused. A JWT
// whose claims cannot be decoded, or whose exp is present but not a positive number (a
// string, null, 0), is an error: its exp cannot be read, so nothing may be guessed.
func jwtTimes(token string) (iat, exp time.Time, hasExp bool, err error) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return time.Time{}, time.Time{}, false, nil
	}
	var header map[string]any
	if raw, derr := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[0], "=")); derr != nil || json.Unmarshal(raw, &header) != nil {
		return time.Time{}, time.Time{}, false, nil
	}
	claims := jwt.MapClaims{}
	if _, _, perr := jwt.NewParser().ParseUnverified(token, claims); perr != nil {
		return time.Time{}, time.Time{}, false, errors.New("upstream issued a token that is a JWT whose claims cannot be decoded, so its expiry cannot be read")
	}
	v, present := claims["exp"]
	if !present {
		return time.Time{}, time.Time{}, false, nil
	}
	e, ok := v.(float64)
	if !ok || !(e > 0) || math.IsInf(e, 1) {
		return time.Time{}, time.Time{}, false, errors.New("upstream issued a token whose JWT exp is not a positive number, so its expiry cannot be read")
	}
	if i, ok := claims["iat"].(float64); ok && !math.IsNaN(i) && !math.IsInf(i, 0) {
		iat = unixSeconds(i)
	}
	return iat, unixSeconds(e), true, nil
}

// unixSeconds is the time f Unix seconds name, with f clamped to ±1e15 (year ±31 million:
// past what is stored, so still refused as implausible) so that the conversion cannot wrap.
func unixSeconds(f float64) time.Time {
	f = max(min(f, 1e15), -1e15)
	whole := math.Trunc(f)
	return time.Unix(int64(whole), int64((f-whole)*1e9))
}

// ParseExpiry reads an expiry field in one of ExpiryForms; arrived is when the answer came
// (for a relative number of seconds) and utc whether the provider documents that a time
// without a zone is UTC (else such a time is refused). ok is false for anything else.
func ParseExpiry(v any, arrived time.Time, utc bool) (time.Time, bool) {
	switch x := v.(type) {
	case float64:
		return byMagnitude(x, arrived)
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return time.Time{}, false
		}
		return byMagnitude(f, arrived)
	case string:
		s := strings.TrimSpace(x)
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return byMagnitude(f, arrived)
		}
		if len(s) > 10 && s[10] == ' ' { // RFC 3339 allows a space for the T
			s = s[:10] + "T" + s[11:]
		}
		if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
			return t, true
		}
		if t, err := time.Parse("2006-01-02T15:04:05", s); err == nil && utc { // fractions are read too
			return t, true
		}
		if t, err := http.ParseTime(x); err == nil { // HTTP-date: always GMT
			return t, true
		}
	}
	return time.Time{}, false
}

// byMagnitude reads a number: below 1e9 seconds from the answer's arrival (OAuth's
// expires_in; no epoch that small is in the future), then Unix epoch seconds, milliseconds,
// microseconds and nanoseconds by decade ranges. Zero, negative, NaN and 1e20 or more are not
// an expiry.
func byMagnitude(f float64, arrived time.Time) (time.Time, bool) {
	var perSecond float64
	switch {
	case !(f > 0): // also NaN
		return time.Time{}, false
	case f < 1e9:
		return arrived.Add(time.Duration(f * float64(time.Second))), true
	case f < 1e11:
		perSecond = 1
	case f < 1e14:
		perSecond = 1e3
	case f < 1e17:
		perSecond = 1e6
	case f < 1e20:
		perSecond = 1e9
	default: // also +Inf
		return time.Time{}, false
	}
	if f == math.Trunc(f) && f < 1<<62 { // exact in integers
		n, per := int64(f), int64(perSecond)
		return time.Unix(n/per, n%per*(1e9/per)), true
	}
	return unixSeconds(f / perSecond), true
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
