//go:build integration

package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type renewJSON struct {
	LeaseID       string         `json:"lease_id"`
	LeaseDuration int            `json:"lease_duration"`
	Renewable     bool           `json:"renewable"`
	Data          map[string]any `json:"data"`
}

func renewLease(t *testing.T, id string) renewJSON {
	t.Helper()
	var r renewJSON
	if err := json.Unmarshal([]byte(mustCLI(t, "lease", "renew", "-format=json", id)), &r); err != nil {
		t.Fatal(err)
	}
	if tok, ok := r.Data["token"].(string); ok {
		rememberSecret(tok)
	}
	return r
}

func TestLeaseRenewInsideAndOutsideTheWindow(t *testing.T) {
	t.Parallel()
	const life = 30 * time.Second // window: the last 10 s
	sim := startSim(t, life)
	enable(t, "renew", plextracConfig(sim)...)
	s := readJSON(t, "renew/token")
	exp, _ := time.Parse(time.RFC3339, s.Data["expires_at"].(string))

	early := renewLease(t, s.LeaseID)
	if early.Data["token"] != s.Data["token"] || !early.Renewable {
		t.Fatalf("renewal outside the window: same token and renewable expected: %+v", early)
	}
	if time.Now().Add(time.Duration(early.LeaseDuration) * time.Second).After(exp) {
		t.Fatalf("renewal extended the lease (%ds) past the token's expiry %s", early.LeaseDuration, exp)
	}

	time.Sleep(time.Until(exp.Add(-life/3 + time.Second))) // into the last third
	late := renewLease(t, s.LeaseID)
	newTok, _ := late.Data["token"].(string)
	if newTok == "" || newTok == s.Data["token"] || late.Renewable {
		t.Fatalf("renewal inside the window: want a new token and a non-renewable lease: %+v", late)
	}
	if !sim.valid(t, "plextrac", newTok) {
		t.Fatal("the renewed token does not work upstream")
	}
	newExp, _ := time.Parse(time.RFC3339, late.Data["expires_at"].(string))
	if want := int(time.Until(newExp).Seconds()) - 5; late.LeaseDuration < want-3 || late.LeaseDuration > want+1 {
		t.Errorf("renewed lease_duration %d, want ≈%d", late.LeaseDuration, want)
	}
	if _, errOut, err := vault.cli("lease", "renew", s.LeaseID); err == nil || !strings.Contains(errOut, "not renewable") {
		t.Errorf("a non-renewable lease renewed again: %v %s", err, errOut)
	}

	// Revoking a lease, and disabling the mount with leases outstanding, both succeed.
	mustCLI(t, "lease", "revoke", s.LeaseID)
	readJSON(t, "renew/token")
	readJSON(t, "renew/token")
	mustCLI(t, "secrets", "disable", "renew")
}

// Vault Agent renders the token to a file. With 45-second tokens, sampled every second for
// more than three lifetimes: the file moves to a new token before the old one expires, and
// no sample ever holds a token the upstream rejects.
func TestAgentNeverRendersAnExpiredToken(t *testing.T) {
	t.Parallel()
	const life = 45 * time.Second
	sim := startSim(t, life)
	enable(t, "agent", plextracConfig(sim)...)

	dir := t.TempDir()
	tokenFile, out := filepath.Join(dir, "vault-token"), filepath.Join(dir, "token.txt")
	if err := os.WriteFile(tokenFile, []byte(vault.token), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := `
vault { address = "http://` + vault.addr + `" }
auto_auth { method "token_file" { config = { token_file_path = "` + tokenFile + `" } } }
template {
  contents    = "{{ with secret \"agent/token\" }}{{ .Data.token }}{{ end }}"
  destination = "` + out + `"
}
`
	cfgPath := filepath.Join(dir, "agent.hcl")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	agent := startProcess(t, filepath.Join(dir, "agent.log"), vaultBin, "agent", "-config="+cfgPath)
	defer agent.stop()
	if !waitFor(30*time.Second, func() bool { b, _ := os.ReadFile(out); return len(b) > 0 }) {
		t.Fatalf("agent rendered nothing; log:\n%s", agent.log())
	}

	seen := map[string]bool{}
	expired, samples := 0, 0
	for end := time.Now().Add(3*life + 15*time.Second); time.Now().Before(end); time.Sleep(time.Second) {
		b, err := os.ReadFile(out)
		tok := strings.TrimSpace(string(b))
		if err != nil || tok == "" {
			continue // the agent replaces the file; a sample may fall between
		}
		samples++
		seen[tok] = true
		rememberSecret(tok)
		if !sim.valid(t, "plextrac", tok) {
			expired++
		}
	}
	t.Logf("%d samples, %d distinct tokens, %d expired", samples, len(seen), expired)
	if leaks := scanForSecrets(agent.logPath); len(leaks) > 0 {
		t.Errorf("agent log holds secrets: %v", leaks)
	}
	if expired > 0 {
		t.Errorf("%d of %d samples held a token the upstream rejects", expired, samples)
	}
	if len(seen) < 4 {
		t.Errorf("over more than three token lifetimes the file held %d tokens; want at least 4", len(seen))
	}
}
