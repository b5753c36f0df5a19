package upstream

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

const totpPeriod = 30 // seconds, RFC 6238 as authenticator apps use it

// totpSource computes TOTP codes from a stored seed and never hands out a code for the same
// 30-second step twice: upstreams may reject a replayed code, so it waits for the next step.
type totpSource struct {
	seed  string
	clock Clock
	used  *usedStep // shared by every source for the same upstream account in the process
}

// usedStep is the last TOTP step used for one upstream account. It outlives provider
// instances: a config rewrite builds a new provider, which must not resend the old code.
type usedStep struct {
	mu   sync.Mutex
	last int64
}

// usedStep returns the process's record for one upstream account (host|user).
func (l *Limiters) usedStep(account string) *usedStep {
	l.mu.Lock()
	defer l.mu.Unlock()
	u := l.steps[account]
	if u == nil {
		u = &usedStep{}
		l.steps[account] = u
	}
	return u
}

// TOTPStepper is implemented by providers that send TOTP codes. The backend keeps the last
// step in Vault storage, so that no node or restarted plugin process resends a code the
// upstream already took.
type TOTPStepper interface {
	LastTOTPStep() int64
	// SkipTOTPStepsThrough makes the codes of steps up to and including step unusable.
	SkipTOTPStepsThrough(step int64)
}

func (t *totpSource) lastStep() int64 {
	t.used.mu.Lock()
	defer t.used.mu.Unlock()
	return t.used.last
}

func (t *totpSource) skipThrough(step int64) {
	t.used.mu.Lock()
	defer t.used.mu.Unlock()
	t.used.last = max(t.used.last, step)
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
	return totp.GenerateCodeCustom(seed, t, totp.ValidateOpts{Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
}

// Code returns the code for the current step, waiting for the next step when the current
// one was already used.
func (t *totpSource) Code(ctx context.Context) (string, error) {
	t.used.mu.Lock()
	defer t.used.mu.Unlock()
	now := t.clock.Now()
	step := now.Unix() / totpPeriod
	if step <= t.used.last {
		next := time.Unix((t.used.last+1)*totpPeriod, 0)
		if err := t.clock.Sleep(ctx, next.Sub(now)); err != nil {
			return "", err
		}
		step = t.used.last + 1
	}
	code, err := totpCode(t.seed, time.Unix(step*totpPeriod, 0))
	if err != nil {
		return "", err
	}
	t.used.last = step
	return code, nil
}
