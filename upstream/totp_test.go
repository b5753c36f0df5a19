package upstream

import (
	"context"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/internal/testclock"
)

// rfc6238Seed is RFC 6238 Appendix B's SHA-1 key, ASCII "12345678901234567890", in base32.
const rfc6238Seed = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"

// knownSource is a TOTP source for an account its process has known for long: its first code
// is the current step's. (A process's first code for an account skips the current step: see
// TestFirstCodeOfAnAccountInAProcessSkipsTheCurrentStep.)
func knownSource(seed string, clock Clock) *totpSource {
	src := newTOTPSource(seed, clock, NewTOTPSteps())
	src.steps.m[src.account] = &stepRecord{}
	return src
}

// knownAccount makes p's TOTP account one its process has known for long (see knownSource).
func knownAccount(p Provider) {
	src := p.(*plextrac).totp
	src.steps.mu.Lock()
	defer src.steps.mu.Unlock()
	if r := src.steps.m[src.account]; r != nil {
		r.last = 0
	} else {
		src.steps.m[src.account] = &stepRecord{}
	}
}

// validAt checks a 6-digit code against pquerna/otp at the given instant (not the wall clock),
// with no skew: exactly that 30-second step.
func validAt(t *testing.T, code, seed string, at time.Time) bool {
	t.Helper()
	ok, err := totp.ValidateCustom(code, seed, at, totp.ValidateOpts{Period: 30, Skew: 0, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatalf("validate %q: %v", code, err)
	}
	return ok
}

// The codes are RFC 6238's: Appendix B's SHA-1 test vectors (8 digits there; a 6-digit code is
// the same truncation mod 10^6, so the last 6 digits), through totpSource.Code with a clock
// set to each published time, and pquerna/otp agrees at that instant.
func TestTOTPCodesMatchRFC6238Vectors(t *testing.T) {
	for _, v := range []struct {
		unix int64
		rfc8 string
	}{
		{59, "94287082"},
		{1111111109, "07081804"},
		{1111111111, "14050471"},
		{1234567890, "89005924"},
		{2000000000, "69279037"},
		{20000000000, "65353130"},
	} {
		clock := testclock.At(time.Unix(v.unix, 0))
		src := knownSource(rfc6238Seed, clock)
		code, err := src.Code(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if want := v.rfc8[2:]; code != want {
			t.Errorf("T=%d: code %s, RFC 6238 says %s (%s)", v.unix, code, want, v.rfc8)
		}
		if !clock.Now().Equal(time.Unix(v.unix, 0)) {
			t.Errorf("T=%d: a first code waited until %s", v.unix, clock.Now())
		}
		if !validAt(t, code, rfc6238Seed, time.Unix(v.unix, 0)) {
			t.Errorf("T=%d: pquerna/otp does not accept %s at that instant", v.unix, code)
		}
		if validAt(t, code, rfc6238Seed, time.Unix(v.unix+30, 0)) {
			t.Errorf("T=%d: %s is also accepted a step later: the check cannot tell steps apart", v.unix, code)
		}
	}
}

// A seed as an authenticator app shows it (lower case, spaces, padding) gives the same codes.
func TestTOTPSeedAsAppsShowIt(t *testing.T) {
	clock := testclock.At(time.Unix(1111111109, 0))
	src := knownSource("gezd gnbv gy3t qojq gezd gnbv gy3t qojq====", clock)
	if code, err := src.Code(context.Background()); err != nil || code != "081804" {
		t.Fatalf("got %q %v", code, err)
	}
}

func TestTOTPCodeIsNeverReusedWithinAStep(t *testing.T) {
	clock := newTestClock()
	clock.Advance(5 * time.Second) // mid-step
	start := clock.Now()
	src := knownSource("JBSWY3DPEHPK3PXP", clock)
	first, err := src.Code(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !clock.Now().Equal(start) || !validAt(t, first, "JBSWY3DPEHPK3PXP", start) {
		t.Fatalf("first code %s is not the code of its step (or it waited)", first)
	}
	second, err := src.Code(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if waited := clock.Now().Sub(start); waited != 25*time.Second {
		t.Errorf("waited %s, want until the next step (25s)", waited)
	}
	if second == first || !validAt(t, second, "JBSWY3DPEHPK3PXP", clock.Now()) {
		t.Fatalf("second code %s (first %s) is a replay or not the next step's code", second, first)
	}
	// Another source for the same account (a rebuilt provider) shares the record.
	other := newTOTPSource("JBSWY3DPEHPK3PXP", clock, src.steps)
	if _, err := other.Code(context.Background()); err != nil || clock.Now().Sub(start) != 55*time.Second {
		t.Fatalf("a rebuilt source did not wait for the step after: %v, %s", err, clock.Now().Sub(start))
	}
	// The record only moves forward.
	src.skipThrough(3)
	if src.lastStep() != (start.Unix()+55)/30 {
		t.Errorf("skipThrough moved the record back to %d", src.lastStep())
	}
}

// A caller that gives up while waiting for the next step gets its context's error, and the
// step is not spent.
func TestTOTPWaitIsCancellable(t *testing.T) {
	clock := newTestClock()
	src := knownSource("JBSWY3DPEHPK3PXP", clock)
	if _, err := src.Code(context.Background()); err != nil {
		t.Fatal(err)
	}
	last := src.lastStep()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := src.Code(ctx); err == nil || src.lastStep() != last {
		t.Fatalf("got %v, last step %d (was %d)", err, src.lastStep(), last)
	}
}

func TestTOTPSeedValidation(t *testing.T) {
	for _, good := range []string{"JBSWY3DPEHPK3PXP", "jbsw y3dp ehpk 3pxp", "JBSWY3DPEHPK3PXP===="} {
		if err := ValidateTOTPSecret(good); err != nil {
			t.Errorf("%q rejected: %v", good, err)
		}
	}
	for _, bad := range []string{"not-base32!", "0189"} {
		if err := ValidateTOTPSecret(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
