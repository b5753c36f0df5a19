package sessiontoken

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
)

// FuzzConfigWrite: any write either stores a config whose read shows no secret, or is
// rejected with an error and stores nothing; never a panic.
func FuzzConfigWrite(f *testing.F) {
	f.Add("plextrac", "https://acme.plextrac.com", "svc@acme.com", "JBSWY3DPEHPK3PXP", "10s", "5m", "10", "cf-access-token=abc")
	f.Add("resolver", "http://127.0.0.1:1", "a@b", "", "1", "-1", "0", "")
	f.Add("generic", "https://u:p@x", "", "zz", "2h", "soon", "x", "Authorization=y")
	f.Add("plaspy", "ftp://x", "svc", "0189", "", "", "600", "=")
	f.Fuzz(func(t *testing.T, provider, url, user, totp, timeout, minTTL, maxAuth, header string) {
		e := newEnv(t)
		data := map[string]any{"provider": provider, "url": url, "username": user, "password": "fuzz-pass-secret",
			"verify": false, "allow_insecure_http": true}
		for k, v := range map[string]string{"totp_secret": totp, "request_timeout": timeout, "min_ttl": minTTL,
			"max_auth_per_minute": maxAuth, "headers": header} {
			if v != "" {
				data[k] = v
			}
		}
		resp, err := e.do(logical.UpdateOperation, "config", data)
		stored, _ := e.do(logical.ReadOperation, "config", nil)
		if err != nil || resp.IsError() {
			if stored != nil {
				t.Fatalf("rejected write stored a config: %v", stored.Data)
			}
			if strings.Contains(errText(resp), "fuzz-pass-secret") {
				t.Fatal("error leaks the password")
			}
			return
		}
		if stored == nil {
			t.Fatal("accepted write stored nothing")
		}
		b, _ := json.Marshal(stored.Data)
		if strings.Contains(string(b), "fuzz-pass-secret") || stored.Data["totp_secret"] != nil || stored.Data["headers"] != nil {
			t.Fatalf("config read shows a secret: %s", b)
		}
	})
}
