package upstream

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/internal/testclock"
)

// The MFA challenge and the TOTP code a call sends are scrubbed from its errors: an upstream
// that echoes them back, raw or inside an echo of the request body, shows neither.
func TestMFAValuesAreScrubbedFromTheMFACallsErrors(t *testing.T) {
	const challenge, code = "mfa-chal-7Qz91x", "081804" // RFC 6238's code at T=1111111109
	for _, status := range []int{400, 401, 500} {
		for _, echo := range []string{
			`{"message":"challenge mfa-chal-7Qz91x with code 081804 is not valid"}`,
			`{"message":"bad body: {\"code\":\"mfa-chal-7Qz91x\",\"token\":\"081804\"}"}`,
		} {
			rec := newRecorder(t, map[string]answer{
				"POST /api/v1/authenticate":     {200, `{"mfa_enabled":true,"code":"` + challenge + `"}`},
				"POST /api/v1/authenticate/mfa": {status, echo},
			})
			clock := testclock.At(time.Unix(1111111109, 0))
			p := providerAt(t, Config{Provider: PlexTrac, URL: rec.URL, Username: "svc", Password: "pw-secret", TOTPSecret: rfc6238Seed}, clock)
			knownAccount(p) // no first-login skip: the code is the one for T
			_, err := p.Login(context.Background())
			if sent := rec.sent(); len(sent) != 2 || sent[1].body["token"] != code {
				t.Fatalf("the MFA call was not made with code %s: %+v", code, sent)
			}
			if err == nil || !strings.Contains(err.Error(), "mfa failed") || !strings.Contains(err.Error(), redacted) {
				t.Fatalf("HTTP %d echoing %s: %v", status, echo, err)
			}
			for _, v := range []string{challenge, code} {
				if strings.Contains(err.Error(), v) {
					t.Errorf("HTTP %d: the error shows %q: %v", status, v, err)
				}
			}
		}
	}
}
