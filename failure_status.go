package sessiontoken

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/upstream"
)

// upstreamFailure answers a read that upstream failed with the status upstreamStatus gives.
// Vault's HTTP layer turns a plugin's error into 500 (or 400 for an error response), so the
// status and Vault's usual {"errors": [...]} body are sent as a raw response.
func upstreamFailure(err error) (*logical.Response, error) {
	code, ok := upstreamStatus(err)
	if !ok {
		return nil, err
	}
	body, _ := json.Marshal(map[string][]string{"errors": {err.Error()}})
	return &logical.Response{Data: map[string]any{
		logical.HTTPContentType: "application/json",
		logical.HTTPStatusCode:  code,
		logical.HTTPRawBody:     string(body),
	}}, nil
}

// upstreamStatus is the HTTP status for an upstream failure: 429 when rate limited, 503 when
// no call was tried (the credentials hold, or no room for a host's or account's record), 504
// when upstream did not answer, else 502. ok is false when err is not an upstream failure.
func upstreamStatus(err error) (code int, ok bool) {
	e, ok := upstream.AsError(err)
	switch {
	case !ok:
		return 0, false
	case e.Kind == upstream.KindRateLimited:
		return http.StatusTooManyRequests, true
	case e.Kind == upstream.KindHeld || e.Kind == upstream.KindNoRoom: // not tried: held until an operator acts, or no room for a new host's or account's record
		return http.StatusServiceUnavailable, true
	case e.Kind == upstream.KindUnavailable && e.Status == 0:
		return http.StatusGatewayTimeout, true
	}
	return http.StatusBadGateway, true
}

// renewFailure is a renewal's error for a failed refresh: read-only passes through (Vault
// forwards it), an upstream failure carries the status a read would get (upstreamStatus) and
// the same message. Vault 1.21's lease endpoint still answers 400 for any error a plugin
// returns from a renewal; the message is what tells the caller what happened.
func renewFailure(err error) error {
	if errors.Is(err, logical.ErrReadOnly) {
		return err
	}
	if code, ok := upstreamStatus(err); ok {
		return logical.CodedError(code, "cannot renew: "+err.Error())
	}
	return fmt.Errorf("cannot renew: %w", err)
}
