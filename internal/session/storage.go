package session

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// What a mount keeps in Vault storage. Every key holds a backend-owned type with a version,
// and has one decode-and-upgrade function (readConfig, readSession, readTOTPStep,
// readFingerprintKey, readHold; leases: decodeLease). Formats after v0.1.0 live under new key names, so
// that a v0.1.0 binary (which has no version check and ignores unknown fields) finds nothing
// it could misread: after the first write by a newer version, a rolled-back v0.1.0 sees an
// unconfigured mount instead of, say, durations in seconds read as nanoseconds. Until that
// first write the v0.1.0 keys are left as they were, so rolling back before it loses nothing.
// What this version knows of v0.1.0 is in storage_v010.go.
const (
	configKey         = "config/v2"
	sessionKey        = "session/v2"
	totpStepKey       = "totp_step/v2" // the last TOTP step any node sent upstream
	fingerprintKeyKey = "fingerprint_key"
	holdKey           = "credentials_hold" // hold.go

	configVersion      = 2
	sessionVersion     = 2
	totpStepVersion    = 2
	fingerprintVersion = 1
)

// DefaultStorageTimeout bounds each storage operation made under the session gate
// (boundedStorage), so that a hung storage cannot hold the gate, and every config write
// behind it, forever. Vault's storage ends an operation when its context does.
const DefaultStorageTimeout = 10 * time.Second

// boundedStorage is storage each of whose operations ends within bound, or with its caller's
// context. It is the storage the holders of the session gate use (replaceAccount, withSessionWrite, countCheck).
type boundedStorage struct {
	logical.Storage
	bound time.Duration
}

func (s boundedStorage) List(ctx context.Context, prefix string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.bound)
	defer cancel()
	return s.Storage.List(ctx, prefix)
}

func (s boundedStorage) Get(ctx context.Context, key string) (*logical.StorageEntry, error) {
	ctx, cancel := context.WithTimeout(ctx, s.bound)
	defer cancel()
	return s.Storage.Get(ctx, key)
}

func (s boundedStorage) Put(ctx context.Context, e *logical.StorageEntry) error {
	ctx, cancel := context.WithTimeout(ctx, s.bound)
	defer cancel()
	return s.Storage.Put(ctx, e)
}

func (s boundedStorage) Delete(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(ctx, s.bound)
	defer cancel()
	return s.Storage.Delete(ctx, key)
}

// SealWrapped are the keys that hold credentials or session tokens, seal-wrapped where the
// seal supports it (Vault Enterprise).
var SealWrapped = []string{configKey, sessionKey, fingerprintKeyKey, legacyConfigKey, legacySessionKey}

// ReloadKeys are the keys whose change on another node makes this one drop its account and
// load it again (the backend's Invalidate calls Reset): what the account is built from.
var ReloadKeys = []string{configKey, sessionKey, fingerprintKeyKey, holdKey, legacyConfigKey, legacySessionKey}

// newerFormatError (made by errNewerFormat) refuses a stored format this binary does not
// understand, rather than misreading it: the mount was written by a newer version of the plugin.
type newerFormatError struct {
	key                 string
	version, understood int
}

func (e *newerFormatError) Error() string {
	return fmt.Sprintf("stored %s has format version %d, newer than this plugin understands (%d; vault plugin info shows which version runs): "+
		"run the plugin version that wrote it (vault secrets tune -plugin-version), or delete config and write it again", e.key, e.version, e.understood)
}

// errUnreadable refuses a stored record that does not decode, with the advice that works:
// config delete removes every record of the account (deleteAccount).
func errUnreadable(key string, err error) error {
	return fmt.Errorf("stored %s is unreadable (%w): delete config and write it again", key, err)
}

func errNewerFormat(key string, version, understood int) error {
	return &newerFormatError{key: key, version: version, understood: understood}
}

// storedVersion reads the version field of a stored record.
func storedVersion(key string, raw []byte, understood int) (int, error) {
	var v struct {
		Format int `json:"version"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return 0, errUnreadable(key, err)
	}
	if v.Format > understood {
		return 0, errNewerFormat(key, v.Format, understood)
	}
	return v.Format, nil
}

// totpStepRecord is the last TOTP step any node of this mount sent upstream.
type totpStepRecord struct {
	Format int   `json:"version"`
	Step   int64 `json:"step"`
}

// readTOTPStep returns the last TOTP step stored, from either format.
func readTOTPStep(ctx context.Context, s logical.Storage) (int64, error) {
	if e, err := s.Get(ctx, totpStepKey); err != nil {
		return 0, err
	} else if e != nil {
		if _, err := storedVersion(totpStepKey, e.Value, totpStepVersion); err != nil {
			return 0, err
		}
		var r totpStepRecord
		if err := json.Unmarshal(e.Value, &r); err != nil {
			return 0, errUnreadable(totpStepKey, err)
		}
		return r.Step, nil
	}
	return readTOTPStepV010(ctx, s)
}

func WriteTOTPStep(ctx context.Context, s logical.Storage, step int64) error {
	e, err := logical.StorageEntryJSON(totpStepKey, totpStepRecord{
		Format: totpStepVersion,
		Step:   step,
	})
	if err != nil {
		return err
	}
	return s.Put(ctx, e)
}

// fingerprintKeyRecord is the mount's key for account fingerprints (see fingerprint.go).
type fingerprintKeyRecord struct {
	Format int    `json:"version"`
	Key    []byte `json:"key"`
}

// ReadFingerprintKey returns the mount's fingerprint key, creating it where storage is
// writable. A node that cannot write gets logical.ErrReadOnly, and Vault forwards the request.
func ReadFingerprintKey(ctx context.Context, s logical.Storage, create bool) ([]byte, error) {
	e, err := s.Get(ctx, fingerprintKeyKey)
	if err != nil {
		return nil, err
	}
	if e != nil {
		if _, err := storedVersion(fingerprintKeyKey, e.Value, fingerprintVersion); err != nil {
			return nil, err
		}
		var r fingerprintKeyRecord
		if err := json.Unmarshal(e.Value, &r); err != nil || len(r.Key) < 16 {
			return nil, errUnreadable(fingerprintKeyKey, errors.New("no key of 16 bytes or more"))
		}
		return r.Key, nil
	}
	if !create {
		return nil, logical.ErrReadOnly
	}
	r := fingerprintKeyRecord{Format: fingerprintVersion, Key: make([]byte, 32)}
	if _, err := rand.Read(r.Key); err != nil {
		return nil, err
	}
	entry, err := logical.StorageEntryJSON(fingerprintKeyKey, r)
	if err != nil {
		return nil, err
	}
	entry.SealWrap = true
	if err := s.Put(ctx, entry); err != nil {
		if errors.Is(err, logical.ErrReadOnly) {
			return nil, err
		}
		return nil, fmt.Errorf("cannot store the account fingerprint key: %w", err)
	}
	return r.Key, nil
}
