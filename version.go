package sessiontoken

// Version is the plugin's semantic version, set at build time with
// -ldflags "-X github.com/sessiontoken/vault-plugin-secrets-sessiontoken.Version=v0.1.0".
var Version = "v0.1.0-dev"
