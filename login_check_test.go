package sessiontoken

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// A mount spaces at most maxFailedChecks failed logins; one more evicts the record that frees
// soonest, so a loop over more wrong passwords than that is still spaced by all but one.
func TestFailedCheckSpacingKeepsAtMostItsCap(t *testing.T) {
	f := &fakeLogin{}
	f.login.Store(answer(http.StatusUnauthorized, map[string]any{"error": "invalid_grant"}))
	e := newEnvWrapped(t, f.wrap)
	cfg := with(genericFake(e), "max_auth_per_minute", 600)
	e.write("config", with(cfg, "verify", false)) // the host's budget is the mount's 600: every check goes upstream
	write := func(password string) string {
		resp, err := e.do(logical.UpdateOperation, "config", with(cfg, "password", password))
		_, msg := failure(t, resp, err)
		return msg
	}
	for i := range maxFailedChecks + 1 { // 100 ms apart: each frees at its own time, within the 10 s spacing
		if msg := write(fmt.Sprintf("wrong-%d", i)); strings.Contains(msg, "not tried") {
			t.Fatalf("failed login %d was spaced before it was tried: %s", i, msg)
		}
		e.clock.Advance(100 * time.Millisecond)
	}
	spaced := 0
	for i := maxFailedChecks; i >= 0; i-- { // the latest first: a spaced retry sends and records nothing
		if strings.Contains(write(fmt.Sprintf("wrong-%d", i)), "not tried") {
			spaced++
		} else if i != 0 {
			t.Errorf("wrong-%d was not spaced; only the first, which frees soonest, should have made room", i)
		}
	}
	if spaced != maxFailedChecks {
		t.Fatalf("%d of %d failed logins spaced, want %d (the cap)", spaced, maxFailedChecks+1, maxFailedChecks)
	}
}
