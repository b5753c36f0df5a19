package sessiontoken

import (
	"context"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-version"
	"github.com/hashicorp/vault/sdk/logical"
)

// oldestPassingVault is the oldest Vault version the integration suite's core passed on
// (`make compat`, docs/compatibility.md; a test holds the two together). On an older Vault the
// plugin may still work, but nobody has seen it do so: it says so once in Vault's log.
const oldestPassingVault = "1.17.6"

// vaultVersionWarned makes the warning once per plugin process: a multiplexed plugin serves
// every mount from one process, and each mount's Factory would otherwise repeat it.
var vaultVersionWarned sync.Once

// warnIfVaultUntested logs, once per `once`, that the Vault running the plugin is older than
// the oldest one it passed on. Nothing when Vault does not say its version (Vaults before 1.12
// do not implement PluginEnv) or says something that is not a version.
func warnIfVaultUntested(ctx context.Context, sys logical.SystemView, logger hclog.Logger, once *sync.Once) {
	running := runningVaultVersion(ctx, sys)
	if running == nil || !running.LessThan(version.Must(version.NewVersion(oldestPassingVault))) {
		return
	}
	once.Do(func() {
		logger.Warn("this Vault is older than any the plugin was tested with; see docs/compatibility.md",
			"vault_version", running.String(), "oldest_tested", oldestPassingVault)
	})
}

// runningVaultVersion is the version SystemView reports, nil when unknown. PluginEnv rather
// than VaultVersion: the sdk's gRPC VaultVersion dereferences the reply's environment without
// a nil check.
func runningVaultVersion(ctx context.Context, sys logical.SystemView) *version.Version {
	if sys == nil {
		return nil
	}
	env, err := sys.PluginEnv(ctx)
	if err != nil || env == nil || env.VaultVersion == "" {
		return nil
	}
	v, err := version.NewVersion(env.VaultVersion) // "1.21.0"; Vault sends prerelease and metadata apart
	if err != nil {
		return nil
	}
	return v
}
