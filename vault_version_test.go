package sessiontoken

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-version"
	"github.com/hashicorp/vault/sdk/logical"
)

const untestedVaultWarning = "older than any the plugin was tested with"

// vaultSaying is a SystemView whose PluginEnv reports Vault version v.
func vaultSaying(v string) logical.SystemView {
	sv := logical.TestSystemView()
	sv.PluginEnvironment = &logical.PluginEnvironment{VaultVersion: v}
	return sv
}

// pluginEnvFails is a Vault that does not implement PluginEnv (before 1.12).
type pluginEnvFails struct{ logical.StaticSystemView }

func (pluginEnvFails) PluginEnv(context.Context) (*logical.PluginEnvironment, error) {
	return nil, errors.New("unimplemented")
}

func warningsFor(sys logical.SystemView, once *sync.Once) string {
	logs := &syncBuffer{}
	logger := hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Trace})
	warnIfVaultUntested(context.Background(), sys, logger, once)
	return logs.String()
}

func TestOlderVaultThanTestedIsWarnedOnce(t *testing.T) {
	// Just older than the oldest tested version, whatever the constant says.
	seg := version.Must(version.NewVersion(oldestPassingVault)).Segments()
	older := fmt.Sprintf("%d.%d.%d", seg[0], seg[1], seg[2]-1)
	if seg[2] == 0 {
		older = fmt.Sprintf("%d.%d.99", seg[0], seg[1]-1)
	}
	for _, v := range []string{older, older + "+ent", "1.0.0-rc1"} {
		once := &sync.Once{}
		first := warningsFor(vaultSaying(v), once)
		if !strings.Contains(first, untestedVaultWarning) || !strings.Contains(first, "oldest_tested="+oldestPassingVault) ||
			!strings.Contains(first, "docs/compatibility.md") {
			t.Errorf("Vault %s: no warning naming the oldest tested version: %q", v, first)
		}
		if again := warningsFor(vaultSaying(v), once); again != "" {
			t.Errorf("Vault %s: warned a second time: %q", v, again)
		}
	}
}

func TestTestedNewerOrUnknownVaultIsNotWarned(t *testing.T) {
	for name, sys := range map[string]logical.SystemView{
		"oldest tested":           vaultSaying(oldestPassingVault),
		"oldest tested, ent":      vaultSaying(oldestPassingVault + "+ent"),
		"newer":                   vaultSaying("1.99.0"),
		"2.0":                     vaultSaying("2.0.0"),
		"empty version":           vaultSaying(""),
		"not a version":           vaultSaying("devel"),
		"no plugin environment":   logical.TestSystemView(),
		"PluginEnv unimplemented": pluginEnvFails{},
		"no system view":          nil,
	} {
		if out := warningsFor(sys, &sync.Once{}); out != "" {
			t.Errorf("%s: %q", name, out)
		}
	}
}

// The plugin's Factory makes the check: a mount on an old Vault logs the warning in Vault's log.
func TestFactoryWarnsOnAnOlderVault(t *testing.T) {
	vaultVersionWarned = sync.Once{}
	t.Cleanup(func() { vaultVersionWarned = sync.Once{} })
	logs := &syncBuffer{}
	conf := logical.TestBackendConfig()
	conf.System = vaultSaying("1.14.0")
	conf.Logger = hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Trace})
	b, err := Factory(context.Background(), conf)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Cleanup(context.Background())
	if !strings.Contains(logs.String(), untestedVaultWarning) {
		t.Fatalf("Factory on Vault 1.14.0 logged no warning: %q", logs.String())
	}
}

// oldestPassingVault is the oldest version docs/compatibility.md's table records as passing.
func TestOldestPassingVaultMatchesTheCompatibilityTable(t *testing.T) {
	doc, err := os.ReadFile("docs/compatibility.md")
	if err != nil {
		t.Fatal(err)
	}
	var oldest *version.Version
	for _, line := range strings.Split(string(doc), "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 5 || strings.TrimSpace(cells[3]) != "pass" {
			continue
		}
		v, err := version.NewVersion(strings.TrimSpace(cells[1]))
		if err != nil {
			t.Fatalf("table row %q: version %q: %v", line, cells[1], err)
		}
		if oldest == nil || v.LessThan(oldest) {
			oldest = v
		}
	}
	if oldest == nil {
		t.Fatal("docs/compatibility.md's table has no row whose result is pass")
	}
	if oldest.String() != oldestPassingVault {
		t.Fatalf("oldestPassingVault = %s, the table's oldest passing version is %s", oldestPassingVault, oldest)
	}
}
