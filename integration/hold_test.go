//go:build integration

package integration

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Not parallel (it reloads the plugin): a mount whose credentials upstream refuses holds
// after max_refused_logins refusals, a failed rotate is spaced out (429, nothing sent), the
// hold survives a plugin reload (it is in storage), readers get a clear 503 and upstream sees
// no more logins; rotate needs update capability and, once the account is fixed upstream,
// ends the hold and serves a new token at once.
func TestCredentialsHoldSurvivesAPluginReload(t *testing.T) {
	sim := startSim(t, 20*time.Second) // short tokens: the held mount soon has none it may serve
	enable(t, "held", "provider=plextrac", "url="+sim.url, "allow_insecure_http=true", "username=svc-nomfa@acme.com",
		"password=plextrac-demo-pass", "max_refused_logins=1")
	firstRead := readJSON(t, "held/token")
	first := firstRead.Data["token"].(string)
	expires, _ := time.Parse(time.RFC3339, firstRead.Data["expires_at"].(string))
	sim.admin(t, http.MethodPost, "/_sim/users/plextrac", map[string]any{"name": "svc-nomfa@acme.com", "password": "changed-by-an-admin", "tenant_id": 7}, nil)
	rotateOut, errOut, err := vault.cli("write", "-f", "-format=json", "held/rotate") // refused: held
	if err == nil || !strings.Contains(errOut, "check username and password") {
		t.Fatalf("rotate with revoked credentials: %v %s %s", err, rotateOut, errOut)
	}
	_, errOut, err = vault.cli("write", "-f", "-format=json", "held/rotate") // spaced out: not tried
	if err == nil || !strings.Contains(errOut, "Code: 429") || !strings.Contains(errOut, "not tried") {
		t.Fatalf("rotate right after a failed one: %v %s", err, errOut)
	}
	if n := sim.stats(t, "plextrac")["login_failures"]; n != 1 {
		t.Fatalf("two rotates sent %v refused logins, want 1", n)
	}
	mustCLI(t, "plugin", "reload", "-plugin=sessiontoken")
	var status map[string]any
	if !waitFor(30*time.Second, func() bool {
		out, _, err := vault.cli("read", "-format=json", "-field=data", "held/status")
		return err == nil && json.Unmarshal([]byte(out), &status) == nil
	}) {
		t.Fatal("mount does not answer after the plugin reload")
	}
	if status["health"] != "held" {
		t.Fatalf("after the reload: health %v (%v)", status["health"], status["reason"])
	}
	before := sim.stats(t, "plextrac")["login_failures"]
	sim.admin(t, http.MethodPost, "/_sim/forget", nil, nil) // every path to a new token is now a login
	time.Sleep(time.Until(expires.Add(-4 * time.Second)))   // the token is too close to expiry to serve
	_, errOut, err = vault.cli("read", "held/token")
	if err == nil || !strings.Contains(errOut, "Code: 503") || !strings.Contains(errOut, "not tried") || !strings.Contains(errOut, "rotate") {
		t.Fatalf("read of a held mount: %v %s", err, errOut)
	}
	if n := sim.stats(t, "plextrac")["login_failures"] - before; n != 0 {
		t.Fatalf("a held mount logged in %v times after a reload", n)
	}
	// A token that may only read cannot rotate: rotate needs update.
	policy := filepath.Join(t.TempDir(), "held-reader.hcl")
	if err := os.WriteFile(policy, []byte(`path "held/*" { capabilities = ["read"] }`), 0o600); err != nil {
		t.Fatal(err)
	}
	mustCLI(t, "policy", "write", "held-reader", policy)
	reader := strings.TrimSpace(mustCLI(t, "token", "create", "-field=token", "-policy=held-reader", "-ttl=5m"))
	cmd := exec.Command(vaultBin, "write", "-f", "held/rotate")
	cmd.Env = append(vault.env(), "VAULT_TOKEN="+reader)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "permission denied") {
		t.Fatalf("a read-only token rotated: %v %s", err, out)
	}
	sim.admin(t, http.MethodPost, "/_sim/users/plextrac", map[string]any{"name": "svc-nomfa@acme.com", "password": "plextrac-demo-pass", "tenant_id": 7}, nil)
	out := mustCLI(t, "write", "-f", "-format=json", "held/rotate")
	if strings.Contains(out, "eyJ") || !strings.Contains(out, "expires_at") {
		t.Fatalf("rotate answer: %s", out)
	}
	if got := readJSON(t, "held/token").Data["token"].(string); got == first || !sim.valid(t, "plextrac", got) {
		t.Fatal("after rotate the mount does not serve a new working token")
	}
}
