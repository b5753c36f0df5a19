package sessiontoken

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/upstream"
)

// A token lease's InternalData (stored by Vault with the lease, encrypted, never shown) holds
// only what renewal needs: which token the holder has (a hash, not the token) with its times,
// and the fingerprint of the account it came from, so that renewal can tell whether the
// holder's token is still the session's, and refuse a lease of an account the mount no
// longer has. Its size is bounded whatever upstream answered: no upstream extras. The token
// itself comes back at renewal in the lease's stored response data.
const (
	leaseDataKey     = "lease"   // leaseData's JSON (v0.1.0's leases: storage_v010.go)
	leaseAccountKey  = "account" // the account fingerprint, in both formats
	leaseDataVersion = 2
)

type leaseData struct {
	Format      int       `json:"v"`
	TokenSHA256 string    `json:"token_sha256"`
	IssuedAt    time.Time `json:"issued_at"`
	ExpiresAt   time.Time `json:"expires_at"`
}

func tokenHash(value string) string {
	sum := sha256.Sum256([]byte(value))
	return hex.EncodeToString(sum[:])
}

// encodeLeaseData is t's leaseData as stored in a lease.
func encodeLeaseData(t *upstream.Token) (string, error) {
	b, err := json.Marshal(leaseData{Format: leaseDataVersion, TokenSHA256: tokenHash(t.Value), IssuedAt: t.IssuedAt, ExpiresAt: t.ExpiresAt})
	if err != nil {
		return "", fmt.Errorf("cannot encode the token's times for its lease: %w", err)
	}
	return string(b), nil
}

// leaseToken is the token a lease holder has, as the lease knows it. value is empty when the
// lease's response data did not come back with the token.
type leaseToken struct {
	sha256, value       string
	issuedAt, expiresAt time.Time
}

func (h leaseToken) lifetime() time.Duration { return h.expiresAt.Sub(h.issuedAt) }

// decodeLease reads a lease's InternalData, in either format, and the token from its stored
// response data when that is the token the lease was issued for.
func decodeLease(internal, data map[string]any) (leaseToken, string, error) {
	account, _ := internal[leaseAccountKey].(string)
	if t, ok, err := decodeLeaseV010(internal); ok {
		return t, account, err
	}
	s, _ := internal[leaseDataKey].(string)
	var d leaseData
	if s == "" || json.Unmarshal([]byte(s), &d) != nil || d.TokenSHA256 == "" {
		return leaseToken{}, "", errors.New("the lease carries no session data")
	}
	if d.Format > leaseDataVersion {
		return leaseToken{}, "", errNewerFormat("lease data", d.Format, leaseDataVersion)
	}
	h := leaseToken{sha256: d.TokenSHA256, issuedAt: d.IssuedAt, expiresAt: d.ExpiresAt}
	if v, _ := data["token"].(string); v != "" && tokenHash(v) == d.TokenSHA256 {
		h.value = v
	}
	return h, account, nil
}
