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

// TokenTimes decides when a token was issued and when it expires: the JWT's iat and exp
// (parsed, not verified: the plugin does not hold the upstream's key), else the provider's
// expiry field, else DefaultLifetime from now. A token that is already expired is an error.
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
	if !expires.After(now) {
		return time.Time{}, time.Time{}, fmt.Errorf("upstream issued a token that expired at %s, before it arrived (is the upstream's or this host's clock wrong?)",
			expires.UTC().Format(time.RFC3339))
	}
	return issued, expires, nil
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
	if f <= 0 || f > 1e15 {
		return time.Time{}, false
	}
	if f > 1e11 { // later than year 5138 in seconds: it is milliseconds
		return time.UnixMilli(int64(f)), true
	}
	return time.Unix(int64(f), int64((f-float64(int64(f)))*1e9)), true
}
