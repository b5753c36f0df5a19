//go:build integration

package integration

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// docs/terraform.md run by a real client: OpenTofu and the hashicorp/vault provider
// (scripts/tofu.sh: TOFU_BIN, and TOFU_MIRROR holding the provider), against a Vault of its own
// (the example registers and, on destroy, deregisters the plugin: the suite's shared Vault must
// keep it). The example and the policy are the doc's fenced blocks as written; the test puts in
// only the URL (the simulator, over TLS, so that allow_insecure_http = false stays as written),
// the credentials and the sha256. Not parallel: Go runs it before any parallel test starts, so it
// never shares the machine with the time-sampled Agent and VSO tests.
func TestTerraformRunsTheDocExample(t *testing.T) {
	tf := newTofu(t)
	sim := tf.sim
	plan := func(step string) int { return tf.plan(t, step) }

	tf.run(t, "init", "init", "-input=false")
	lock, _ := os.ReadFile(filepath.Join(tf.dir, ".terraform.lock.hcl"))
	if !bytes.Contains(lock, []byte(`provider "registry.opentofu.org/hashicorp/vault"`)) {
		t.Fatalf("init: the lock file holds no hashicorp/vault provider:\n%s", lock)
	}

	before := sim.stats(t, "plextrac")
	tf.run(t, "first apply", "apply", "-auto-approve", "-input=false")
	tf.expectLogins(t, "first apply", before, 1, 0)
	if code := plan("plan after apply"); code != 0 {
		t.Fatalf("plan after the first apply: exit %d, want 0 (no changes): a field reads back differently from what the example wrote", code)
	}
	tf.expectLogins(t, "apply and plan", before, 1, 0)

	// A non-secret change: one apply (one login, as the doc says), then a clean plan.
	tf.edit(t, "min_ttl             = 300", "min_ttl             = 600")
	before = sim.stats(t, "plextrac")
	tf.run(t, "apply of min_ttl = 600", "apply", "-auto-approve", "-input=false")
	if got := tf.vaultRead(t, "plextrac/config")["min_ttl"]; got != json.Number("600") {
		t.Fatalf("min_ttl after the apply = %v, want 600", got)
	}
	if code := plan("plan after min_ttl = 600"); code != 0 {
		t.Fatalf("plan after changing min_ttl: exit %d, want 0", code)
	}
	tf.expectLogins(t, "non-secret change", before, 1, 0)

	// The doc's import procedure: the plan after import shows the update the doc describes,
	// the apply makes it (one login), and plans are clean again.
	tf.run(t, "state rm", "state", "rm", "vault_generic_endpoint.plextrac_config")
	before = sim.stats(t, "plextrac")
	tf.procedure(t, "import", func(step int) {
		if step == 0 { // after `import`, before `apply`
			if code := plan("plan after import"); code != 2 {
				t.Fatalf("plan after import: exit %d, want 2 (an update, as the doc says)", code)
			}
		}
	})
	if code := plan("plan after import and apply"); code != 0 {
		t.Fatalf("plan after the import procedure: exit %d, want 0", code)
	}
	tf.expectLogins(t, "import procedure", before, 1, 0)

	// A refused password change: apply fails, the refusal counts toward the hold, and the
	// state keeps the refused value, so the next plan says no changes (the trap the doc names).
	var raw [8]byte
	_, _ = rand.Read(raw[:])
	newPass := "plextrac-new-pass-" + hex.EncodeToString(raw[:])
	rememberSecret(newPass)
	tf.secrets = append(tf.secrets, newPass)
	tf.env["TF_VAR_plextrac_password"] = newPass
	before = sim.stats(t, "plextrac")
	if out, err := tf.tofu(t, "apply", "-auto-approve", "-input=false"); err == nil {
		t.Fatalf("apply of a password upstream refuses succeeded:\n%s", out)
	} else if !strings.Contains(out, "config not saved") {
		t.Fatalf("apply of a refused password failed without Vault's refusal:\n%s", out)
	}
	refusedAt := time.Now()
	tf.expectLogins(t, "refused password", before, 0, 1)
	if hold := tf.vaultRead(t, "plextrac/status")["credentials_hold"].(map[string]any); hold["refused_in_a_row"] != json.Number("1") {
		t.Fatalf("after the refused apply: credentials_hold = %v, want refused_in_a_row 1", hold)
	}
	if code := plan("plan after the refused apply"); code != 0 {
		t.Fatalf("plan after a refused apply: exit %d; the doc says the state keeps the refused value and the plan shows no changes", code)
	}

	// The doc's recovery, once upstream accepts the new password.
	sim.admin(t, "POST", "/_sim/users/plextrac", map[string]any{"name": tofuUser, "password": newPass, "tenant_id": 7}, nil)
	time.Sleep(time.Until(refusedAt.Add(11 * time.Second))) // the doc: not checked again within 10 s
	before = sim.stats(t, "plextrac")
	tf.procedure(t, "recover", nil)
	tf.expectLogins(t, "recovery", before, 1, 0)
	if hold := tf.vaultRead(t, "plextrac/status")["credentials_hold"].(map[string]any); hold["refused_in_a_row"] != json.Number("0") {
		t.Fatalf("after the recovery: credentials_hold = %v, want refused_in_a_row 0", hold)
	}
	if code := plan("plan after the recovery"); code != 0 {
		t.Fatalf("plan after the recovery: exit %d, want 0", code)
	}

	// The one MFA apply: the example's own case, a user with a TOTP seed. It may wait for the
	// next 30 s step, as the doc says (the plugin process's first code skips the current one).
	tf.edit(t, fmt.Sprintf("%q", tofuUser), `"svc-ci@acme.com"`)
	tf.env["TF_VAR_plextrac_password"] = "plextrac-demo-pass"
	before = sim.stats(t, "plextrac")
	tf.run(t, "apply with the MFA user", "apply", "-auto-approve", "-input=false")
	if now := sim.stats(t, "plextrac"); now["mfa"]-before["mfa"] != 1 || now["mfa_failures"] != before["mfa_failures"] {
		t.Fatalf("apply with the MFA user: %v MFA logins and %v refused codes, want 1 and 0", now["mfa"]-before["mfa"], now["mfa_failures"]-before["mfa_failures"])
	}
	if code := plan("plan after the MFA apply"); code != 0 {
		t.Fatalf("plan after the MFA apply: exit %d, want 0", code)
	}

	tf.run(t, "destroy", "destroy", "-auto-approve", "-input=false")
	for _, path := range []string{"sys/mounts/plextrac", "sys/plugins/catalog/secret/sessiontoken", "sys/policies/acl/plextrac-readers"} {
		if _, _, err := tf.vault.cli("read", path); err == nil {
			t.Errorf("after destroy, %s is still there", path)
		}
	}
	tf.checkNoSecretShown(t)
}

// vaultAPI calls Vault's HTTP API with the root token and returns the status and body.
func vaultAPI(t *testing.T, method, path string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+vault.addr+"/v1/"+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Vault-Token", vault.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}
