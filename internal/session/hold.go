package session

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/upstream"
)

// The credentials hold: upstreams lock a user out after repeated failed logins (PlexTrac; the
// threshold is unpublished) and expire passwords (Resolver). A locked service account takes
// down every consumer of every mount of that account and needs an upstream admin to unlock.
// So after max_refused_logins refused logins in a row (upstream.IsRefusedLogin), or a config
// problem no retry can fix, the mount holds: no reader, renewal, periodic run or other node
// logs in with those credentials until an operator acts (a config write that supplies
// credentials, or rotate; each makes one attempt, which counts). Refreshing a still-valid
// token is not a credential login and goes on. The count and the hold are stored, so a
// restart, reload or failover keeps them.

const holdVersion = 1

// Hold is the stored count of refused logins in a row, and the hold.
type Hold struct {
	Format  int  `json:"version"`
	Refused int  `json:"refused"` // refused logins in a row
	Held    bool `json:"held"`
	// Misconfigured: held for a config problem no retry fixes, not for refusals.
	Misconfigured bool      `json:"misconfigured,omitempty"`
	Since         time.Time `json:"since,omitempty"`   // when the mount started holding
	Reason        string    `json:"refusal,omitempty"` // the last refusal, as its error says it: the plugin's words (see upstream.Shown)
	At            time.Time `json:"at,omitempty"`      // when upstream last refused
	// EarlierReason is the reason as versions up to v0.2.0 stored it: an error's text, which may
	// quote the upstream. readHold replaces it with the plugin's words.
	EarlierReason string `json:"reason,omitempty"`
}

func ReadHold(ctx context.Context, s logical.Storage) (Hold, error) {
	e, err := s.Get(ctx, holdKey)
	if err != nil || e == nil {
		return Hold{}, err
	}
	if _, err := storedVersion(holdKey, e.Value, holdVersion); err != nil {
		return Hold{}, err
	}
	var h Hold
	if err := json.Unmarshal(e.Value, &h); err != nil {
		return Hold{}, errUnreadable(holdKey, err)
	}
	if h.EarlierReason != "" { // the last writer was an earlier version: its reason is the latest
		h.Reason, h.EarlierReason = upstream.Shown(upstream.StoredReason(h.EarlierReason)), ""
	}
	return h, nil
}

func writeHold(ctx context.Context, s logical.Storage, h Hold) error {
	if h == (Hold{}) {
		return s.Delete(ctx, holdKey)
	}
	h.Format = holdVersion
	e, err := logical.StorageEntryJSON(holdKey, h)
	if err != nil {
		return err
	}
	return s.Put(ctx, e)
}

// next is the hold after a login attempt ended with err, for a mount that holds after max
// refused logins in a row. changed says whether it differs from h.
func (h Hold) next(err error, max int, now time.Time) (Hold, bool) {
	out := h
	switch {
	case err == nil:
		out = Hold{}
	case upstream.IsKind(err, upstream.KindMisconfigured):
		out.Held, out.Misconfigured, out.Reason, out.At = true, true, err.Error(), now
	case upstream.IsRefusedLogin(err):
		out.Refused++
		out.Reason, out.At = err.Error(), now
		out.Held = out.Held || out.Refused >= max
	default:
		return h, false // says nothing about the credentials
	}
	if out.Held && !h.Held {
		out.Since = now
	}
	return out, out != h
}

// heldError is what a login that the hold stops answers: which upstream refused, when, that
// the plugin stopped trying to protect the account, and what to do.
func (h Hold) heldError(provider, host string) *upstream.Error {
	what := fmt.Sprintf("upstream refused the stored credentials %d times in a row", h.Refused)
	if h.Misconfigured {
		what = "the config cannot log in"
	}
	return &upstream.Error{
		Provider: provider,
		Host:     host,
		Op:       upstream.OpLogin,
		Kind:     upstream.KindHeld,
		Msg: fmt.Sprintf("not tried: %s (the last at %s: %s); the plugin stopped logging in with these credentials so that the account is not locked out",
			what, h.At.UTC().Format(time.RFC3339), h.Reason),
		Hint: "write the credentials to config, or write rotate once the account is fixed upstream",
	}
}
