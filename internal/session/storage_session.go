package session

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/upstream"
)

// sessionRecord is the mount's shared upstream session as stored: the token, what is known
// about it, and the fingerprint of the account it belongs to.
type sessionRecord struct {
	Format     int            `json:"version"`
	Owner      string         `json:"account"`
	Value      string         `json:"value"`
	IssuedAt   time.Time      `json:"issued_at"`
	ExpiresAt  time.Time      `json:"expires_at"`
	Extras     map[string]any `json:"extras,omitempty"`
	ObtainedBy string         `json:"obtained_by"`
	ObtainedAt time.Time      `json:"obtained_at"`
}

func newSessionRecord(owner string, t *upstream.Token) sessionRecord {
	return sessionRecord{
		Format:     sessionVersion,
		Owner:      owner,
		Value:      t.Value,
		IssuedAt:   t.IssuedAt,
		ExpiresAt:  t.ExpiresAt,
		Extras:     t.Extras,
		ObtainedBy: t.ObtainedBy,
		ObtainedAt: t.ObtainedAt,
	}
}

func (r sessionRecord) token() *upstream.Token {
	return &upstream.Token{
		Value:      r.Value,
		IssuedAt:   r.IssuedAt,
		ExpiresAt:  r.ExpiresAt,
		Extras:     r.Extras,
		ObtainedBy: r.ObtainedBy,
		ObtainedAt: r.ObtainedAt,
	}
}

// readSession returns the stored session and the account it was stamped with (nil when
// there is none), upgraded from whatever format it was stored in and checked with the same
// plausibility rules as a login's answer: a stored session is upstream data that was kept.
func readSession(ctx context.Context, s logical.Storage, now time.Time) (*upstream.Token, string, error) {
	var r sessionRecord
	e, err := s.Get(ctx, sessionKey)
	if err != nil {
		return nil, "", err
	}
	switch {
	case e != nil:
		if _, err := storedVersion("session", e.Value, sessionVersion); err != nil {
			return nil, "", err
		}
		if err := json.Unmarshal(e.Value, &r); err != nil {
			return nil, "", fmt.Errorf("stored session is unreadable: %w", err)
		}
	default:
		var found bool
		if r, found, err = readSessionV010(ctx, s); err != nil || !found {
			return nil, "", err
		}
	}
	t := r.token()
	if err := upstream.CheckStoredToken(t, now); err != nil {
		return nil, "", fmt.Errorf("stored session is not plausible: %w", err)
	}
	return t, r.Owner, nil
}

func writeSession(ctx context.Context, s logical.Storage, owner string, t *upstream.Token) error {
	entry, err := logical.StorageEntryJSON(sessionKey, newSessionRecord(owner, t))
	if err != nil {
		return fmt.Errorf("cannot encode the upstream session: %w", err)
	}
	entry.SealWrap = true
	return s.Put(ctx, entry)
}
