package sessiontoken

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// Another node reloads what the writer wrote when Vault invalidates config or session.
func TestInvalidateMakesAStandbyServeWhatTheActiveWrote(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(false))
	standby := e.standby()
	first := standby.read("token", nil).Data["token"]
	e.clock.Advance(11 * time.Minute)
	second := e.read("token", nil).Data["token"] // the active node refreshes
	standby.b.InvalidateKey(context.Background(), sessionKey)
	if got := standby.read("token", nil).Data["token"]; got != second || got == first {
		t.Fatal("after the session key was invalidated the standby did not serve the active node's new session")
	}
	e.write("config", e.plaspyConfig())
	standby.b.InvalidateKey(context.Background(), configKey)
	if got := standby.read("token", nil).Data["provider"]; got != "plaspy" {
		t.Fatalf("after the config key was invalidated the standby serves provider %v", got)
	}
}

// Unmounting (Clean) takes the mount's auth budget off its host.
func TestCleanTakesTheBudgetOffTheHost(t *testing.T) {
	a := newEnv(t)
	b := a.otherMount()
	a.write("config", with(a.plextracConfig(false), "max_auth_per_minute", 8))
	b.write("config", with(b.plextracConfig(false), "max_auth_per_minute", 2))
	b.b.Clean(context.Background())
	if la := limiterOf(a); la["max_auth_per_minute"] != 8 || la["mounts_on_host"] != 1 {
		t.Fatalf("after the other mount was cleaned up: %v", la)
	}
	// Clean is final. A periodic run or a request that arrives after it (Vault
	// may have started one before disabling the mount) never loads the mount again, so its
	// budget stays off the host.
	b.clock.Advance(14 * time.Minute) // a periodic refresh would be due
	if err := b.b.periodic(context.Background(), &logical.Request{Storage: b.s}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.do(logical.ReadOperation, "token", nil); err == nil {
		t.Error("a cleaned mount served a read")
	}
	if la := limiterOf(a); la["max_auth_per_minute"] != 8 || la["mounts_on_host"] != 1 {
		t.Fatalf("a cleaned mount registered its budget again: %v", la)
	}
}
