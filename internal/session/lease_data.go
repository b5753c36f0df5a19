package session

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
	LeaseDataKey     = "lease"   // leaseData's JSON (v0.1.0's leases: storage_v010.go)
	LeaseAccountKey  = "account" // the account fingerprint, in both formats
	leaseDataVersion = 2
)

type leaseData struct {
	Format      int       `json:"v"`
	TokenSHA256 string    `json:"token_sha256"`
	IssuedAt    time.Time `json:"issued_at"`
	ExpiresAt   time.Time `json:"expires_at"`
}

func TokenHash(value string) string {
	sum := sha256.Sum256([]byte(value))
	return hex.EncodeToString(sum[:])
}

// EncodeLeaseData is t's leaseData as stored in a lease.
func EncodeLeaseData(t *upstream.Token) (string, error) {
	b, err := json.Marshal(leaseData{
		Format:      leaseDataVersion,
		TokenSHA256: TokenHash(t.Value),
		IssuedAt:    t.IssuedAt,
		ExpiresAt:   t.ExpiresAt,
	})
	if err != nil {
		return "", fmt.Errorf("cannot encode the token's times for its lease: %w", err)
	}
	return string(b), nil
}

// LeaseToken is the token a lease holder has, as the lease knows it. value is empty when the
// lease's response data did not come back with the token.
type LeaseToken struct {
	SHA256, Value       string
	IssuedAt, ExpiresAt time.Time
}

func (h LeaseToken) Lifetime() time.Duration { return h.ExpiresAt.Sub(h.IssuedAt) }

// DecodeLease reads a lease's InternalData, in either format, and the token from its stored
// response data when that is the token the lease was issued for.
func DecodeLease(internal, data map[string]any) (LeaseToken, string, error) {
	account, _ := internal[LeaseAccountKey].(string)
	if t, ok, err := decodeLeaseV010(internal); ok {
		return t, account, err
	}
	s, _ := internal[LeaseDataKey].(string)
	var d leaseData
	if s == "" || json.Unmarshal([]byte(s), &d) != nil || d.TokenSHA256 == "" {
		return LeaseToken{}, "", errors.New("the lease carries no session data")
	}
	if d.Format > leaseDataVersion {
		return LeaseToken{}, "", errNewerFormat("lease data", d.Format, leaseDataVersion)
	}
	h := LeaseToken{SHA256: d.TokenSHA256, IssuedAt: d.IssuedAt, ExpiresAt: d.ExpiresAt}
	if v, _ := data["token"].(string); v != "" && TokenHash(v) == d.TokenSHA256 {
		h.Value = v
	}
	return h, account, nil
}
