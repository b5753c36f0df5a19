package session

import (
	"context"
	"testing"
	"time"
)

// A shared upstream call (refresh, login, rotate) runs under its own context: not ended by
// the request that started it, and still bounded (three upstream calls of request_timeout,
// one TOTP step, three storage writes; 90 s with the defaults).
func TestSharedCallsHaveTheirOwnBound(t *testing.T) {
	a := &Account{cfg: &Config{RequestTimeoutSeconds: 10}, storageTimeout: DefaultStorageTimeout}
	request, cancel := context.WithCancel(context.Background())
	cancel() // the request that started the call has ended
	ctx, done := a.sharedCallContext(request)
	defer done()
	deadline, bounded := ctx.Deadline()
	if ctx.Err() != nil || !bounded || time.Until(deadline) > 90*time.Second || time.Until(deadline) < 80*time.Second {
		t.Fatalf("shared call context: err %v, deadline in %s (bounded %v); want no error and 90 s", ctx.Err(), time.Until(deadline), bounded)
	}
}
