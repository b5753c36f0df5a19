package sessiontoken

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"
	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/internal/session"
)

// FuzzConfigWrite: any write either stores a config whose reads show no secret, or is
// rejected with an error and stores nothing; never a panic. Every secret the provider takes
// is planted (password, api_key, TOTP seed, a header value) and searched for in the write's
// error, the config and status reads, and the backend's log.
func FuzzConfigWrite(f *testing.F) {
	f.Add("plextrac", "https://acme.plextrac.com", "svc@acme.com", "JBSWY3DPEHPK3PXP", "10", "300", "10", "cf-access-token=abc")
	f.Add("resolver", "http://127.0.0.1:1", "a@b", "", "1", "-1", "0", "")
	f.Add("generic", "https://u:p@x", "", "zz", "2h", "soon", "x", "Authorization=y")
	f.Add("plaspy", "ftp://x", "svc", "0189", "", "", "600", "=")
	f.Add("PlexTrac", "https://fuzz-pass-secret@x", "fuzz-api-key-secret", "", "", "", "", "x=fuzz-header-secret\r\n")
	f.Fuzz(func(t *testing.T, provider, url, user, totp, timeout, minTTL, maxAuth, header string) {
		e := newEnv(t)
		data := map[string]any{"provider": provider, "url": url, "username": user, "verify": false, "allow_insecure_http": true,
			"headers": []string{header, "x-fuzz=fuzz-header-secret"}}
		planted := []string{"fuzz-header-secret"}
		for k, v := range map[string]string{"password": "fuzz-pass-secret", "api_key": "fuzz-api-key-secret", "totp_secret": "GEZDGNBVGY3TQOJQ"} {
			if session.FieldByName[k].TakenBy(strings.ToLower(strings.TrimSpace(provider))) {
				data[k], planted = v, append(planted, v)
			}
		}
		if totp != "" && !strings.Contains(url+user+provider+header, totp) {
			data["totp_secret"], planted = totp, append(planted, totp)
		}
		for k, v := range map[string]string{"request_timeout": timeout, "min_ttl": minTTL, "max_auth_per_minute": maxAuth} {
			if v != "" {
				data[k] = v
			}
		}
		resp, err := e.do(logical.UpdateOperation, "config", data)
		stored, _ := e.do(logical.ReadOperation, "config", nil)
		status, _ := e.do(logical.ReadOperation, "status", nil)
		outputs := map[string]string{"the write's error": errText(resp), "the log": e.logs.String()}
		if err != nil {
			outputs["the write's Go error"] = err.Error()
		}
		for what, r := range map[string]*logical.Response{"config read": stored, "status read": status} {
			if r != nil {
				b, _ := json.Marshal(r.Data)
				outputs[what] = string(b)
			}
		}
		for what, out := range outputs {
			for _, secret := range planted {
				if len(secret) >= 4 && strings.Contains(out, secret) && !strings.Contains(url+user, secret) {
					t.Fatalf("%s shows a planted secret (%.4s…)", what, secret)
				}
			}
		}
		if (err != nil || resp.IsError()) && stored != nil {
			t.Fatalf("rejected write stored a config: %v", stored.Data)
		}
		if err == nil && !resp.IsError() && stored == nil {
			t.Fatal("accepted write stored nothing")
		}
	})
}
