package sessiontoken

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"sync"
	"time"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/internal/session"
	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/upstream"
)

// The login that a config write checks, or that rotate makes: how a failed one is spaced
// out, and how it counts toward the credentials hold.

// checkSpacing is the mount's record of recently failed logins (a config's check or rotate),
// by what the login sends (checkKey): at most maxFailedChecks. Its mu is a leaf lock never held
// across I/O: a rotate's shared call notes its outcome after the request (and configMu) may be
// gone.
type checkSpacing struct {
	clock  upstream.Clock
	mu     sync.Mutex
	failed map[string]failedCheck
}

// note spaces out a mount's retries of a login whose config check, or rotate, failed, as
// the session's backoff does for its logins (10 s doubling to 5 minutes): a config writer or
// a job retrying a wrong password in a loop would otherwise hold the host's shared auth
// budget at zero for every other mount on it, and spend the account's refused logins. Each
// failed login is spaced on its own (a loop alternating two wrong passwords is spaced too),
// keyed by what the login sends (checkKey): a setting the login does not use (min_ttl) does not
// make another login, a new password or CA does and is checked at once. A check the limiter
// held back sent nothing and does not count. The spacing is the mount's, not the config's: a
// delete keeps it.
func (c *checkSpacing) note(attempt string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case err == nil:
		delete(c.failed, attempt)
	case !upstream.IsKind(err, upstream.KindRateLimited):
		now := c.clock.Now()
		f, ok := c.failed[attempt]
		if !ok {
			c.makeRoom(now)
		}
		f.failures++
		f.retryAt = now.Add(session.FailureBackoff(f.failures))
		if c.failed == nil {
			c.failed = map[string]failedCheck{}
		}
		c.failed[attempt] = f
	}
}

// failedCheck is the spacing of one failed login: failures in a row, and when to retry.
type failedCheck struct {
	failures int
	retryAt  time.Time
}

// maxFailedChecks bounds the logins a mount keeps spacing for. Past it, records whose time to
// retry has passed go first, then the one that frees soonest: a loop over more wrong
// passwords than this is still spaced by all but one of them.
const maxFailedChecks = 32

// makeRoom makes room for one more record. The caller holds c.mu.
func (c *checkSpacing) makeRoom(now time.Time) {
	if len(c.failed) < maxFailedChecks {
		return
	}
	soonest := ""
	for k, f := range c.failed {
		if !now.Before(f.retryAt) {
			delete(c.failed, k)
		} else if soonest == "" || f.retryAt.Before(c.failed[soonest].retryAt) {
			soonest = k
		}
	}
	if len(c.failed) >= maxFailedChecks {
		delete(c.failed, soonest)
	}
}

// spaced is the answer to a login check or rotate of the login whose key is attempt while
// its spacing lasts (note): 429 with the time to retry, nothing sent.
func (c *checkSpacing) spaced(attempt, provider, host, hint string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.failed[attempt]
	if !ok || !c.clock.Now().Before(f.retryAt) {
		return nil
	}
	return &upstream.Error{
		Provider: provider,
		Host:     host,
		Op:       upstream.OpLogin,
		Kind:     upstream.KindRateLimited,
		Msg:      "not tried: the same login failed (its config check or a rotate) moments ago, and identical retries are spaced out so that they cannot spend the auth budget other mounts on the host share, nor the account's refused logins",
		Hint:     hint,
		RetryAt:  f.retryAt,
	}
}

// checkKeyKey keys checkKey's HMAC: per process, as the spacing is, so that no stored or
// shown value can be checked against a guessed password.
var checkKeyKey = func() []byte {
	k := make([]byte, 32)
	_, _ = rand.Read(k) // never fails (crypto/rand panics instead)
	return k
}()

// checkKey tells one login from another, without keeping a credential: an HMAC of the fields
// that make the login (where it goes, how, as whom, with which secrets). It lists what the
// login uses: a field left off makes a changed login look the same (spaced, fails closed),
// never a retry of the same login look new.
func checkKey(c *session.Config) string {
	login := []any{c.Provider, c.URL, c.CACert, c.AllowInsecureHTTP, c.RequestTimeoutSeconds,
		c.Username, c.Email, c.OrgID, c.Password, c.APIKey, c.TOTPSecret, c.Headers,
		c.LoginMethod, c.LoginPath, c.LoginBody, c.TokenField, c.ExpiryField, c.AuthScheme}
	b, _ := json.Marshal(login)
	m := hmac.New(sha256.New, checkKeyKey)
	m.Write(b)
	return hex.EncodeToString(m.Sum(nil))
}
