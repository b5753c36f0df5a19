//go:build integration

package integration

import (
	"bytes"
	"fmt"
	"os"
	"sync"
)

// Every credential the suite configures and every token it is served: none may appear in
// plaintext in Vault's log (which carries the plugin's log) or the audit log.
var (
	secretsMu sync.Mutex
	secrets   = map[string]bool{
		"plextrac-demo-pass": true, "JBSWY3DPEHPK3PXP": true, "plaspy-demo-key-0123456789": true,
		"resolver-demo-pass": true, "wrong-password": true, cfAccessToken: true,
	}
)

const cfAccessToken = "cf-access-secret-5f2a9c"

func rememberSecret(s string) {
	secretsMu.Lock()
	defer secretsMu.Unlock()
	secrets[s] = true
}

func knownSecrets() []string {
	secretsMu.Lock()
	defer secretsMu.Unlock()
	out := make([]string, 0, len(secrets))
	for s := range secrets {
		out = append(out, s)
	}
	return out
}

// scanForSecrets lists "file: secret prefix" for every known secret found in the files.
func scanForSecrets(files ...string) []string {
	var leaks []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			leaks = append(leaks, fmt.Sprintf("%s: unreadable: %v", f, err))
			continue
		}
		for _, s := range knownSecrets() {
			if bytes.Contains(b, []byte(s)) {
				leaks = append(leaks, fmt.Sprintf("%s: %.8s…", f, s))
			}
		}
	}
	return leaks
}
