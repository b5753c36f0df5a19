package session

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"maps"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/upstream"
)

// Fingerprint names the upstream account a config logs in to: an HMAC, keyed with the
// mount's stored Fingerprint key, of every identity field (configFields) and of the
// credentials that identify the account (identityCredentials). The stored session and every
// lease carry it, so that neither is served or renewed under another account. Keyed, because
// a credential goes into it: a plain hash of an API key could be tested against guesses.
func (c *Config) Fingerprint(key []byte) string {
	mac := hmac.New(sha256.New, key)
	for _, part := range c.identityParts() {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(part)))
		mac.Write(n[:])
		mac.Write([]byte(part))
	}
	return "v2:" + hex.EncodeToString(mac.Sum(nil)[:16])
}

func (c *Config) identityParts() []string {
	parts := []string{}
	for _, f := range Fields {
		if !f.Identity || !f.TakenBy(c.Provider) {
			continue
		}
		v := fmt.Sprint(f.value(c))
		switch f.Name {
		case "url": // the host as the limiter names it, and the base path
			if u, err := url.Parse(c.URL); err == nil {
				v = upstream.HostKey(u) + strings.TrimRight(u.Path, "/")
			}
		case "username", "email": // compared as the upstream compares them (upstream.Spec)
			if spec, _ := upstream.SpecOf(c.Provider); spec.FoldUserCase {
				v = strings.ToLower(v)
			}
		case "login_method":
			v = strings.ToUpper(v)
		}
		parts = append(parts, f.Name, v)
	}
	return append(parts, c.identityCredentials()...)
}

// identityCredentials are the secrets that name the account, as name and value parts, for a
// login that sends no user name (upstream.Spec.AccountSecrets says which, and when: a generic
// login whose body does not reference .username, or whose username is empty). "headers" stands
// for every header value, by name. (Plaspy's user name identifies the account; a new API key
// for it keeps the account.)
func (c *Config) identityCredentials() []string {
	spec, _ := upstream.SpecOf(c.Provider)
	if spec.AccountSecrets == nil {
		return nil
	}
	var parts []string
	for _, name := range spec.AccountSecrets(c.upstreamConfig()) {
		if name != "headers" {
			parts = append(parts, name, fmt.Sprint(FieldByName[name].value(c)))
			continue
		}
		for _, h := range slices.Sorted(maps.Keys(c.Headers)) {
			parts = append(parts, "headers", h, c.Headers[h])
		}
	}
	return parts
}

// CheckCredentialsResupplied refuses a write that changes where stored secrets are sent, or
// which account they are tried against, without supplying each of them again (or clearing
// it) in the same write. Otherwise url=<another host>, or username=<another user>, alone
// would send the stored password there on the next login.
func CheckCredentialsResupplied(prev, next *Config, given map[string]any) error {
	if prev == nil || prev.Provider != next.Provider { // a new provider starts over: nothing stored is kept
		return nil
	}
	var changed, missing []string
	for _, f := range Fields {
		if (f.Destination || f.Identity) && !sameValue(f.value(prev), f.value(next)) {
			changed = append(changed, f.Name)
		}
	}
	if len(changed) == 0 {
		return nil
	}
	for _, f := range Fields {
		if _, ok := given[f.Name]; f.Secret && f.isSet(next) && !ok {
			missing = append(missing, f.Name)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	sort.Strings(changed)
	sort.Strings(missing)
	return fmt.Errorf("%s: changing it changes where, or as whom, the stored credentials are sent; supply %s again in the same write (or clear them)",
		strings.Join(changed, ", "), strings.Join(missing, ", "))
}

// sameValue compares two field values; no headers and an empty set of headers are the same.
func sameValue(a, b any) bool {
	if x, ok := a.(map[string]string); ok {
		y := b.(map[string]string)
		return len(x) == len(y) && (len(x) == 0 || reflect.DeepEqual(x, y))
	}
	return a == b
}
