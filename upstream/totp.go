package upstream

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

const totpPeriod = 30 // seconds, RFC 6238 as authenticator apps use it

// TOTPSteps is the process's record of the last TOTP step used per upstream account, shared
// by every mount: upstreams may refuse a replayed code, so no two logins send a code for the
// same 30-second step. An account is its seed, whoever logs in with it and wherever the URL
// points, named by an HMAC-SHA256 under a key made for this process: the map holds no seed,
// nor a hash a seed could be tested against elsewhere.
//
// A record made in this process treats the current step as used: another process (before a
// failover or reload) may have sent its code. That costs at most one step's wait, once. A
// record is neutral when no mount is registered on it and its step is past; records no mount
// is registered on are kept as the Limiters keep host records (at most MaxIdleRecords).
type TOTPSteps struct {
	mu     sync.Mutex
	key    [32]byte
	m      map[totpKey]*stepRecord
	owners map[string]totpKey // mount -> the account it is registered on
}

type totpKey [sha256.Size]byte

// stepRecord is one account's. Its fields are guarded by TOTPSteps.mu.
type stepRecord struct {
	last   int64 // the last step used, or known used
	mounts int   // mounts registered on the account
}

// SharedTOTPSteps is the process-wide set.
var SharedTOTPSteps = NewTOTPSteps()

// NewTOTPSteps is an empty set (a new process's).
func NewTOTPSteps() *TOTPSteps {
	s := &TOTPSteps{m: map[totpKey]*stepRecord{}, owners: map[string]totpKey{}}
	_, _ = rand.Read(s.key[:]) // never fails (crypto/rand panics instead)
	return s
}

func (s *TOTPSteps) keyOf(seed string) totpKey {
	mac := hmac.New(sha256.New, s.key[:])
	mac.Write([]byte(seed))
	var k totpKey
	copy(k[:], mac.Sum(nil))
	return k
}

// record returns k's record, made if there is none. One for a code (capped) is made only
// while fewer than MaxIdleRecords records no mount is registered on are kept, after dropping
// the neutral ones; else record returns nil. A mount's is always made. s.mu is held.
func (s *TOTPSteps) record(k totpKey, now time.Time, capped bool) *stepRecord {
	r := s.m[k]
	if r == nil {
		if capped && len(s.m) >= MaxIdleRecords && s.sweepLocked(now) >= MaxIdleRecords {
			return nil
		}
		r = &stepRecord{last: stepAt(now)}
		s.m[k] = r
	}
	return r
}

// sweepLocked drops the neutral records and says how many that no mount is registered on
// are left. s.mu is held.
func (s *TOTPSteps) sweepLocked(now time.Time) (idle int) {
	for k, r := range s.m {
		switch {
		case r.mounts == 0 && r.last < stepAt(now):
			delete(s.m, k)
		case r.mounts == 0:
			idle++
		}
	}
	return idle
}

// Sweep drops every neutral account record, and says how many are left. Records are also
// swept when a new one would pass MaxIdleRecords.
func (s *TOTPSteps) Sweep(now time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sweepLocked(now)
	return len(s.m)
}

// Register moves mount onto p's TOTP account, if p sends codes (else off any), whose record
// then stays while the mount is there.
func (s *TOTPSteps) Register(mount string, p Provider, now time.Time) {
	s.register(mount, totpAccount(p), now)
}

// Unregister takes mount off its TOTP account (its config was deleted, or it was unmounted).
// The record stays until it is neutral.
func (s *TOTPSteps) Unregister(mount string, now time.Time) { s.register(mount, nil, now) }

// register moves mount onto account k (nil: none), whose record then stays while it is there.
func (s *TOTPSteps) register(mount string, k *totpKey, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.owners[mount]; ok {
		s.m[old].mounts-- // never nil: a record with a mount registered is never dropped
		delete(s.owners, mount)
	}
	if k != nil {
		s.record(*k, now, false).mounts++
		s.owners[mount] = *k
	}
}

func stepAt(t time.Time) int64 { return t.Unix() / totpPeriod }

func stepStart(step int64) time.Time { return time.Unix(step*totpPeriod, 0) }

// totpSource computes TOTP codes from a stored seed, never twice for one step of its account.
type totpSource struct {
	seed    string
	clock   Clock
	steps   *TOTPSteps
	account totpKey
	told    int64 // guarded by steps.mu: steps up to this one were used, as storage says
}

func newTOTPSource(seed string, clock Clock, steps *TOTPSteps) *totpSource {
	seed = NormalizeTOTPSecret(seed)
	return &totpSource{seed: seed, clock: clock, steps: steps, account: steps.keyOf(seed)}
}

// totpAccount is p's TOTP account, or nil when p sends no codes.
func totpAccount(p Provider) *totpKey {
	if st, ok := p.TOTP().(interface{ account() *totpKey }); ok {
		return st.account()
	}
	return nil
}

// TOTPStepper is implemented by providers that send TOTP codes. The backend keeps the last
// step in Vault storage, so that no node or restarted plugin process resends a code the
// upstream already took.
type TOTPStepper interface {
	LastTOTPStep() int64
	// SkipTOTPStepsThrough makes the codes of steps up to and including step unusable.
	SkipTOTPStepsThrough(step int64)
}

// clockSkewError: the last step known used is more than one step ahead of the clock, so a
// node whose clock ran fast used it (or this one's was set back). Waiting for it could take
// any time, so the login fails at once instead.
type clockSkewError struct {
	last int64
	now  time.Time
}

func (e *clockSkewError) Error() string {
	return fmt.Sprintf("clock skew: the last TOTP step used for this account starts %s after this node's clock",
		stepStart(e.last).Sub(e.now).Round(time.Second))
}

// until is when the step is past and codes can be sent again.
func (e *clockSkewError) until() time.Time { return stepStart(e.last + 1) }

// lastLocked is the last step known used for the account. steps.mu is held.
func (t *totpSource) lastLocked() int64 {
	if r := t.steps.m[t.account]; r != nil {
		return max(r.last, t.told)
	}
	return t.told
}

func (t *totpSource) lastStep() int64 {
	t.steps.mu.Lock()
	defer t.steps.mu.Unlock()
	return t.lastLocked()
}

// skipThrough is told by storage that step was used. A step at most one ahead of the clock
// is recorded for the account, so every mount of it skips the step; one further ahead is kept
// by this source alone (it fails its logins with a clock-skew error), so that deleting the
// config, which deletes the stored step, lets a rewritten config log in again. With no room
// for a record, the source alone keeps the step too (its logins then fail with errNoRoom).
func (t *totpSource) skipThrough(step int64) {
	t.steps.mu.Lock()
	defer t.steps.mu.Unlock()
	t.told = max(t.told, step)
	if now := t.clock.Now(); step <= stepAt(now)+1 {
		if r := t.steps.record(t.account, now, true); r != nil {
			r.last = max(r.last, step)
		}
	}
}

// NormalizeTOTPSecret upper-cases a base32 seed and drops spaces and padding, as apps show it.
func NormalizeTOTPSecret(s string) string {
	return strings.TrimRight(strings.ToUpper(strings.ReplaceAll(s, " ", "")), "=")
}

// ValidateTOTPSecret checks that a seed can produce codes.
func ValidateTOTPSecret(seed string) error {
	_, err := totpCode(NormalizeTOTPSecret(seed), time.Unix(0, 0))
	return err
}

func totpCode(seed string, t time.Time) (string, error) {
	return totp.GenerateCodeCustom(seed, t, totp.ValidateOpts{
		Period:    totpPeriod,
		Digits:    otp.DigitsSix,
		Algorithm: otp.AlgorithmSHA1,
	})
}

// Code returns the code for the current step. When that step was used, it waits for the next
// one, holding no lock and for as long as ctx allows, and looks again after waking: another
// login may have taken that step meanwhile. A step more than one ahead fails at once.
func (t *totpSource) Code(ctx context.Context) (string, error) {
	code, _, err := t.stepCode(ctx)
	return code, err
}

// stepCode is Code, and the step the code is for.
func (t *totpSource) stepCode(ctx context.Context) (string, int64, error) {
	for {
		step, wait, err := t.take()
		if err != nil {
			return "", 0, err
		}
		if wait == 0 {
			code, err := totpCode(t.seed, stepStart(step))
			return code, step, err
		}
		if err := t.clock.Sleep(ctx, wait); err != nil {
			return "", 0, err
		}
	}
}

// take claims the current step for a code, or says how long until the next one may be free.
func (t *totpSource) take() (step int64, wait time.Duration, err error) {
	t.steps.mu.Lock()
	defer t.steps.mu.Unlock()
	now := t.clock.Now()
	cur := stepAt(now)
	r := t.steps.record(t.account, now, true)
	if r == nil {
		return 0, 0, errNoRoom{"TOTP accounts"}
	}
	switch last := max(r.last, t.told); {
	case last > cur+1:
		return 0, 0, &clockSkewError{last: last, now: now}
	case last >= cur:
		return 0, stepStart(last + 1).Sub(now), nil
	}
	r.last = cur
	return cur, 0, nil
}
