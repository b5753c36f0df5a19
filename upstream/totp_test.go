package upstream

import (
	"context"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

func TestTOTPCodeIsNeverReusedWithinAStep(t *testing.T) {
	clock := newTestClock()
	clock.Advance(5 * time.Second) // mid-step
	src := &totpSource{seed: "JBSWY3DPEHPK3PXP", clock: clock, used: &usedStep{}}
	first, err := src.Code(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !totp.Validate(first, "JBSWY3DPEHPK3PXP") && !validAt(first, clock.Now()) {
		t.Fatal("first code is not valid RFC 6238")
	}
	before := clock.Now()
	second, err := src.Code(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if clock.Now().Unix()/30 == before.Unix()/30 {
		t.Fatal("second code was computed in the same 30 s step")
	}
	if second == first || !validAt(second, clock.Now()) {
		t.Fatalf("second code %s (first %s) is a replay or invalid", second, first)
	}
	if waited := clock.Now().Sub(before); waited != 25*time.Second {
		t.Errorf("waited %s, want until the next step (25s)", waited)
	}
}

func validAt(code string, at time.Time) bool {
	want, _ := totpCode("JBSWY3DPEHPK3PXP", at)
	return want == code
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
