//go:build integration

package integration

import (
	"encoding/json"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"
)

func TestPluginIsRegisteredAndDiscoverable(t *testing.T) {
	t.Parallel()
	out := mustCLI(t, "plugin", "info", "-format=json", "-version="+pluginVersion, "secret", "sessiontoken")
	var info map[string]any
	if err := json.Unmarshal([]byte(out), &info); err != nil || info["version"] != pluginVersion || info["sha256"] == "" {
		t.Fatalf("plugin info: %s", out)
	}
	enable(t, "discover")
	for _, path := range []string{"discover/token", "discover/config", "discover/status"} {
		if help := mustCLI(t, "path-help", path); !strings.Contains(help, "## DESCRIPTION") {
			t.Errorf("path-help %s: %s", path, help)
		}
	}
	if help := mustCLI(t, "path-help", "discover/token"); !strings.Contains(help, "min_ttl") || !strings.Contains(help, "last third") {
		t.Errorf("path-help discover/token does not explain min_ttl and renewal:\n%s", help)
	}
	// This mount's OpenAPI document (sys/internal/specs/openapi walks every mount, and one that
	// a parallel test disables meanwhile fails the whole walk with "no backend instance found").
	code, spec := vaultAPI(t, http.MethodGet, "discover?help=1", nil)
	if code != http.StatusOK {
		t.Fatalf("help of the mount: HTTP %d %s", code, spec)
	}
	for _, p := range []string{"config", "token", "static-token", "status", "rotate", "metrics"} {
		if !strings.Contains(string(spec), `"/discover/`+p+`"`) && !strings.Contains(string(spec), `"/`+p+`"`) {
			t.Errorf("OpenAPI document does not list %s", p)
		}
	}
	mounts := mustCLI(t, "secrets", "list", "-format=json", "-detailed")
	if !strings.Contains(mounts, `"running_plugin_version": "`+pluginVersion+`"`) {
		t.Errorf("mount does not run %s", pluginVersion)
	}
}

func TestConfigAndTokenThroughTheCLI(t *testing.T) {
	t.Parallel()
	sim := startSim(t, 15*time.Minute)
	enable(t, "plextrac", append(plextracConfig(sim), "headers=cf-access-token="+cfAccessToken)...)

	cfg := mustCLI(t, "read", "-format=json", "-field=data", "plextrac/config")
	if !strings.Contains(cfg, `"cf-access-token"`) {
		t.Errorf("config read does not list the header name: %s", cfg)
	}
	for _, secret := range []string{"plextrac-demo-pass", sim.seed, cfAccessToken} {
		if strings.Contains(cfg, secret) {
			t.Fatal("config read shows a secret")
		}
	}
	if !strings.Contains(cfg, `"password_set": true`) || !strings.Contains(cfg, `"totp_secret_set": true`) {
		t.Errorf("config read: %s", cfg)
	}

	// Bad config: rejected with a message naming the field, and nothing stored.
	_, errOut, err := vault.cli("write", "plextrac/config", "url=ftp://nope", "verify=false")
	if err == nil || !strings.Contains(errOut, "url:") || !strings.Contains(errOut, "Code: 400") {
		t.Fatalf("bad url accepted or unclear: %v %s", err, errOut)
	}
	_, errOut, err = vault.cli("write", "plextrac/config", "password=wrong-password")
	if err == nil || !strings.Contains(errOut, "config not saved") || strings.Contains(errOut, "wrong-password") {
		t.Fatalf("wrong password: %v %s", err, errOut)
	}
	if after := mustCLI(t, "read", "-format=json", "-field=data", "plextrac/config"); after != cfg {
		t.Fatalf("a rejected write changed the config:\n%s\n%s", cfg, after)
	}

	s := readJSON(t, "plextrac/token")
	tok, _ := s.Data["token"].(string)
	if !sim.valid(t, "plextrac", tok) || s.Data["authorization"] != tok || s.Data["tenant_id"] == nil {
		t.Fatalf("token read: %+v", s.Data)
	}
	exp, _ := time.Parse(time.RFC3339, s.Data["expires_at"].(string))
	want := int(time.Until(exp).Seconds()) - 5
	if s.LeaseDuration < want-3 || s.LeaseDuration > want+1 || !s.Renewable {
		t.Errorf("lease_duration %d, want ≈%d (token's remaining life less 5 s skew), renewable", s.LeaseDuration, want)
	}
	// The config check's login became the session: one MFA login in all.
	if st := sim.stats(t, "plextrac"); st["mfa"] != 1 {
		t.Errorf("upstream MFA logins = %v, want 1", st["mfa"])
	}
	// What a CI job does: the token into a variable, then call the upstream with it.
	script := `TOKEN=$(vault read -field=token plextrac/token) && curl -sf -o /dev/null -w '%{http_code}' -H "Authorization: $TOKEN" "$SIM/api/v1/whoami"`
	cmd := exec.Command("sh", "-c", script)
	cmd.Env = append(vault.env(), "SIM="+sim.url, "PATH="+pathWithVault())
	if out, err := cmd.CombinedOutput(); err != nil || string(out) != "200" {
		t.Fatalf("CI flow: %v %s", err, out)
	}
	status := mustCLI(t, "read", "-format=json", "plextrac/status")
	if strings.Contains(status, tok) || !strings.Contains(status, `"state": "valid"`) {
		t.Errorf("status: %s", status)
	}
}

func TestEveryProviderThroughVault(t *testing.T) {
	t.Parallel()
	sim := startSim(t, 15*time.Minute)
	enable(t, "plaspy", "provider=plaspy", "url="+sim.url, "allow_insecure_http=true", "username=svc-plaspy", "api_key=plaspy-demo-key-0123456789")
	enable(t, "resolver", "provider=resolver", "url="+sim.url, "allow_insecure_http=true", "email=svc@acme.com", "password=resolver-demo-pass", "org_id=42")
	for mount, provider := range map[string]string{"plaspy": "plaspy", "resolver": "resolver"} {
		s := readJSON(t, mount+"/token")
		tok := s.Data["token"].(string)
		if s.Data["authorization"] != "Bearer "+tok || !sim.valid(t, provider, tok) {
			t.Errorf("%s: %+v", mount, s.Data)
		}
	}
}

func TestUpstreamOutageIsAClearErrorThroughVault(t *testing.T) {
	t.Parallel()
	sim := startSim(t, 15*time.Minute)
	enable(t, "outage", append(plextracConfig(sim), "verify=false")...)
	sim.admin(t, http.MethodPost, "/_sim/faults", map[string]any{"provider": "plextrac", "status": 503}, nil)
	_, errOut, err := vault.cli("read", "outage/token")
	if err == nil || !strings.Contains(errOut, "Code: 502") || !strings.Contains(errOut, "plextrac (") || !strings.Contains(errOut, "retry after") {
		t.Fatalf("outage read: %v\n%s", err, errOut)
	}
}

// Not parallel: a plugin reload restarts the plugin for every mount, so it runs alone, before
// the parallel tests.
func TestPluginReloadKeepsServing(t *testing.T) {
	sim := startSim(t, 15*time.Minute)
	enable(t, "reload", plextracConfig(sim)...)
	before := readJSON(t, "reload/token").Data["token"]
	mustCLI(t, "plugin", "reload", "-plugin=sessiontoken")
	var after any
	if !waitFor(30*time.Second, func() bool {
		out, _, err := vault.cli("read", "-format=json", "reload/token")
		var s secretJSON
		if err != nil || json.Unmarshal([]byte(out), &s) != nil {
			return false
		}
		after = s.Data["token"]
		return true
	}) {
		t.Fatal("mount does not serve after plugin reload")
	}
	if after != before {
		t.Error("reload lost the stored session")
	}
	if st := sim.stats(t, "plextrac"); st["mfa"] != 1 {
		t.Errorf("reload cost upstream logins: %v MFA logins, want 1", st["mfa"])
	}
}
