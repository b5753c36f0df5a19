package upstream

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Kind says what went wrong upstream, which decides what the session does next.
type Kind string

const (
	KindRejected    Kind = "rejected"     // credentials, MFA code or token refused: fix config or log in again
	KindRateLimited Kind = "rate_limited" // upstream 429, or the plugin's own limiter: wait until RetryAt
	KindUnavailable Kind = "unavailable"  // network error, timeout or 5xx: retry later
	KindBadResponse Kind = "bad_response" // an answer the plugin cannot use
	// KindMisconfigured: a config problem no retry can fix (MFA required, no totp_secret).
	KindMisconfigured Kind = "misconfigured"
	// KindHeld: not tried. The backend stopped logging in with credentials upstream refused,
	// so that the account is not locked out.
	KindHeld Kind = "held"
	// KindNoRoom: not tried. The plugin process keeps no more records of upstream hosts or
	// TOTP accounts that no mount is configured on (MaxIdleRecords); retry later.
	KindNoRoom Kind = "no_room"
)

// IsRefusedLogin says whether err is upstream refusing the stored credentials at login: a
// 401/403 on the login or MFA step, a provider's own refusal signal whatever the status
// (Plaspy's success:false, PlexTrac's statusCode 401/403 body, its MFA step's 400/422; see
// request.refused), Resolver's 404 (no org), and for
// generic any 4xx but 408 and 429. Not a 429, a 5xx, a timeout or an unusable answer: those
// say nothing about the credentials, and retrying them cannot lock the account out.
func IsRefusedLogin(err error) bool {
	e, ok := AsError(err)
	if !ok || (e.Op != OpLogin && e.Op != OpMFA) {
		return false
	}
	if e.Kind == KindRejected {
		return true
	}
	s, ok := SpecOf(e.Provider)
	return ok && s.RefusedStatus != nil && s.RefusedStatus(e.Status)
}

// ErrNoRefresh says the upstream has no refresh call: log in again instead.
var ErrNoRefresh = errors.New("upstream has no refresh call")

// Error is an upstream failure. Its message names the upstream, says what happened and what
// to do, and never holds a secret: of what the upstream said, only what Shown allows gets here.
type Error struct {
	Provider string
	Host     string
	Op       string // login, mfa, refresh, logout
	Kind     Kind
	Status   int    // upstream HTTP status, 0 when there was no answer
	Msg      string // what happened
	Hint     string // what to do about it
	RetryAt  time.Time
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s) %s failed: %s", e.Provider, e.Host, e.Op, e.Msg)
	if e.Hint != "" {
		b.WriteString("; " + e.Hint)
	}
	if !e.RetryAt.IsZero() {
		b.WriteString("; retry after " + e.RetryAt.UTC().Format(time.RFC3339))
	}
	return b.String()
}

// AsError returns err as an *Error, if it is one.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}

// IsKind says whether err is an upstream Error of kind k.
func IsKind(err error, k Kind) bool {
	e, ok := AsError(err)
	return ok && e.Kind == k
}
