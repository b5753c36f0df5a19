package upstream

import (
	"context"
	"testing"
	"time"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/internal/testclock"
)

// sleepFails is a clock whose waits all end in cancellation, as when the caller gives up.
type sleepFails struct{ *testClock }

func (sleepFails) Sleep(context.Context, time.Duration) error { return context.Canceled }

// A login that would have to wait (for the next TOTP step, or for the host's auth budget)
// and whose caller gives up returns an unavailable error saying so, and sends nothing more.
func TestWaitsEndWhenTheCallerGivesUp(t *testing.T) {
	clock := sleepFails{testclock.At(time.Unix(1111111109, 0))}
	rec := newRecorder(t, map[string]answer{
		"POST /api/v1/authenticate":     {200, `{"mfa_enabled":true,"code":"chal-1"}`},
		"POST /api/v1/authenticate/mfa": {200, `{"status":"success","token":"opaque-mfa"}`},
	})
	p := providerAt(t, Config{Provider: PlexTrac, URL: rec.URL, Username: "svc", Password: "pw-secret", TOTPSecret: rfc6238Seed}, clock)
	knownAccount(p)
	if _, err := p.Login(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, err := p.Login(context.Background()) // same step: must wait, and the wait is cancelled
	wantErr(t, err, KindUnavailable, "mfa failed: cancelled while waiting for the next TOTP step")
	if n := len(rec.sent()); n != 2 {
		t.Fatalf("%d requests, want 2 (the second login waits for its step before sending anything)", n)
	}

	// One auth call a minute: the second waits 61 s for budget (within request_timeout).
	lim, err := newWithBudget(Config{Provider: Plaspy, URL: rec.URL, Username: "svc", APIKey: "k", MaxAuthPerMinute: 1, RequestTimeout: 10 * time.Minute},
		Deps{Clock: clock, Limiters: NewLimiters(), TOTPSteps: NewTOTPSteps()})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = lim.Login(context.Background())
	_, err = lim.Login(context.Background())
	wantErr(t, err, KindUnavailable, "cancelled while waiting for the auth limiter")
}
