package sessiontoken

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/sim"
)

// A performance standby serves a stored, fresh session, but never logs in or refreshes by
// itself: it answers ErrReadOnly, so that Vault forwards the request to the active node.
func TestReadOnlyNodeForwardsInsteadOfLoggingIn(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(true))
	lease := e.lease()
	standby := e.standby()
	before := e.sim.Stats(sim.PlexTrac)
	if got := standby.read("token", nil).Data["token"]; got != lease.Data["token"] {
		t.Fatal("standby did not serve the stored session")
	}
	e.clock.Advance(11 * time.Minute) // refresh due: inside min_ttl and the renew window
	for _, op := range []struct {
		name string
		do   func() (*logical.Response, error)
	}{
		{"read", func() (*logical.Response, error) { return standby.do(logical.ReadOperation, "token", nil) }},
		{"static read", func() (*logical.Response, error) { return standby.do(logical.ReadOperation, "static-token", nil) }},
		{"renew", func() (*logical.Response, error) {
			return standby.b.HandleRequest(context.Background(), &logical.Request{Operation: logical.RenewOperation, Storage: standby.s, Secret: lease.Secret, Data: lease.Data})
		}},
		{"config write", func() (*logical.Response, error) {
			return standby.do(logical.UpdateOperation, "config", map[string]any{"min_ttl": 60})
		}},
		{"config delete", func() (*logical.Response, error) { return standby.do(logical.DeleteOperation, "config", nil) }},
		{"rotate", func() (*logical.Response, error) { return standby.do(logical.UpdateOperation, "rotate", nil) }},
	} {
		if _, err := op.do(); !errors.Is(err, logical.ErrReadOnly) {
			t.Errorf("%s on a standby: err %v, want logical.ErrReadOnly", op.name, err)
		}
	}
	if err := standby.b.PeriodicFunc(context.Background(), &logical.Request{Storage: standby.s}); err != nil {
		t.Fatal(err)
	}
	if after := e.sim.Stats(sim.PlexTrac); after != before {
		t.Fatalf("the standby called upstream: before %+v after %+v", before, after)
	}
	// The active node does the refresh the standby forwarded.
	if got := e.read("token", nil).Data["token"]; got == lease.Data["token"] {
		t.Fatal("active node did not refresh")
	}
}

// A reader whose request ends stops waiting at once; the refresh it started goes on, and the
// next reader gets its token with no second upstream call.
func TestReaderStopsWaitingWhenItsRequestEnds(t *testing.T) {
	release := make(chan struct{})
	e := newEnvWrapped(t, holdPath("/api/v1/authenticate", release))
	e.write("config", with(e.plextracConfig(false), "verify", false))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	done := make(chan struct{})
	var resp *logical.Response
	var err error
	go func() { resp, err = e.doCtx(ctx, logical.ReadOperation, "token", nil); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		close(release)
		t.Fatal("the reader was still waiting on the upstream 10 s after its 50 ms deadline")
	}
	if code, msg := failure(t, resp, err); code != 504 || !strings.Contains(msg, "goes on") {
		t.Fatalf("gave-up reader: %d %q, want 504 saying the refresh goes on", code, msg)
	}
	close(release)
	e.read("token", nil)
	if st := e.sim.Stats(sim.PlexTrac); st.Logins != 1 {
		t.Fatalf("logins = %d, want 1: the refresh started for the first reader serves the next", st.Logins)
	}
}

// The answer reads share is dropped with its account: after a config delete the mount keeps
// neither the deleted account nor its token in memory, and an answer never names an account
// by reference (its config holds the secrets).
func TestAConfigDeleteLeavesNoAnswerBehind(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(false))
	e.read("token", nil)
	if sv, _ := e.b.answers.Load().(*readAnswer); sv == nil {
		t.Fatal("a read left no answer to share")
	}
	if _, err := e.do(logical.DeleteOperation, "config", nil); err != nil {
		t.Fatal(err)
	}
	if sv, _ := e.b.answers.Load().(*readAnswer); sv != nil {
		t.Fatalf("the deleted account's answer is still held (token served: %v)", sv.tok != nil)
	}
}
