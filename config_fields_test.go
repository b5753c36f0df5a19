package sessiontoken

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/internal/session"
	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/sim"
	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/upstream"
)

// fullConfig is a stored config of provider with every field it takes set to a distinct
// value, so that a rule applied to the wrong field shows.
func fullConfig(e *env, provider string) map[string]any {
	base := map[string]map[string]any{
		upstream.PlexTrac: e.plextracConfig(true),
		upstream.Plaspy:   e.plaspyConfig(),
		upstream.Resolver: e.resolverConfig(),
		upstream.Generic:  with(genericPlexTrac(e), "api_key", "table-api-key"),
	}[provider]
	return with(base, "headers", map[string]any{"cf-access-token": "table-header-value"}, "verify", false)
}

// changedValue is another valid value for a field, for a write that changes only it.
func changedValue(e *env, f *session.Field) any {
	switch f.Name {
	case "url":
		return strings.Replace(e.url, "127.0.0.1", "localhost", 1)
	case "headers":
		return map[string]any{"x-forwarded-host": "elsewhere.example"}
	case "ca_cert":
		return testCACertPEM(e.t.(*testing.T))
	case "allow_insecure_http":
		return true // the test's config for this field is https, with it false
	case "login_body":
		return `{"u": {{json .username}}, "p": {{json .password}}}`
	case "login_method", "refresh_method", "logout_method":
		return "PUT"
	case "login_path", "refresh_path", "logout_path":
		return "/api/other"
	case "org_id":
		return 43
	case "totp_secret":
		return "GEZDGNBVGY3TQOJQ"
	}
	if f.Schema.Type == framework.TypeString {
		return "changed-" + f.Name
	}
	return nil
}

// The table's rules, checked for every field of every provider: a secret is never read back; a destination or identity field cannot change without the secrets; and
// every field has a bound, which is refused one past it and not at it.
func TestEveryConfigFieldFollowsTheTablesRules(t *testing.T) {
	for _, provider := range upstream.Names() {
		for _, f := range session.Fields {
			if !f.TakenBy(provider) || f.Name == "provider" {
				continue
			}
			t.Run(provider+"/"+f.Name, func(t *testing.T) {
				e := newEnv(t)
				cfg := fullConfig(e, provider)
				if f.Name == "allow_insecure_http" { // a change from false needs an https url
					e.write("config", with(cfg, "url", "https://127.0.0.1:1", "allow_insecure_http", false))
					cfg = with(cfg, "url", "https://127.0.0.1:1")
				} else {
					e.write("config", cfg)
				}
				stored, err := session.ReadConfig(context.Background(), e.s)
				if err != nil || stored == nil {
					t.Fatal(err)
				}
				read, _ := json.Marshal(e.read("config", nil).Data)
				if f.Secret {
					var values []string
					switch p := f.Ref(stored).(type) {
					case *string:
						values = []string{*p}
					case *map[string]string:
						for _, v := range *p {
							values = append(values, v)
						}
					}
					for _, v := range values {
						if v != "" && strings.Contains(string(read), v) {
							t.Errorf("the config read shows the value of secret %s", f.Name)
						}
					}
				}
				if f.Destination || f.Identity {
					if v := changedValue(e, f); v != nil {
						msg := expectRejected(t, e, map[string]any{f.Name: v}, f.Name)
						if !strings.Contains(msg, "supply") {
							t.Errorf("changing %s alone: %q does not ask for the secrets again", f.Name, msg)
						}
					}
				}
				switch f.Schema.Type {
				case framework.TypeString, framework.TypeKVPairs:
					if f.MaxLen <= 0 {
						t.Fatalf("%s has no size bound", f.Name)
					}
					big := strings.Repeat("a", f.MaxLen+1)
					var v any = big
					if f.Schema.Type == framework.TypeKVPairs {
						v = map[string]any{"x-big": big}
					}
					expectRejected(t, e, with(cfg, f.Name, v), f.Name)
					// At the limit is inside it: refused, if at all, for what it says.
					atLimit := strings.Repeat("a", f.MaxLen)
					if f.Schema.Type == framework.TypeKVPairs {
						notRefusedForSize(t, e, with(cfg, f.Name, map[string]any{"x-big": atLimit}), f.Name)
						notRefusedForSize(t, e, with(cfg, f.Name, map[string]any{strings.Repeat("x", upstream.MaxHeaderNameLen): "v"}), f.Name)
						most := map[string]any{}
						for i := range upstream.MaxHeaders {
							most[fmt.Sprintf("x-h%d", i)] = "v"
						}
						notRefusedForSize(t, e, with(cfg, f.Name, most), f.Name)
					} else {
						notRefusedForSize(t, e, with(cfg, f.Name, atLimit), f.Name)
					}
				case framework.TypeInt, framework.TypeDurationSecond:
					if f.Max <= f.Min {
						t.Fatalf("%s has no range", f.Name)
					}
					expectRejected(t, e, with(cfg, f.Name, f.Max+1), f.Name)
					expectRejected(t, e, with(cfg, f.Name, f.Min-1), f.Name)
				}
			})
		}
	}
}

// notRefusedForSize fails when a write of data is refused for field's size: data is at a
// bound, not over it.
func notRefusedForSize(t *testing.T, e *env, data map[string]any, field string) {
	t.Helper()
	resp, err := e.do(logical.UpdateOperation, "config", data)
	if err != nil {
		t.Fatal(err)
	}
	if msg := errText(resp); resp.IsError() && (strings.Contains(msg, "longer than") || strings.Contains(msg, "more than the limit")) {
		t.Errorf("%s at its limit refused for its size: %q", field, msg)
	}
}

// A write of another user name needs the secrets again: with the stored password it would log
// in as that user, letting a config writer who cannot read the password try it on other
// accounts.
func TestAnotherUserNeedsTheSecretsAgain(t *testing.T) {
	e := newEnv(t)
	e.write("config", e.plextracConfig(false))
	for _, data := range []map[string]any{
		{"username": "admin@acme.com"},
		{"username": "admin@acme.com", "verify": false},
	} {
		if msg := expectRejected(t, e, data, "username"); !strings.Contains(msg, "supply password again") {
			t.Errorf("%q does not ask for the password", msg)
		}
	}
	if st := e.sim.Stats(sim.PlexTrac); st.Logins+st.LoginFailures != 1 {
		t.Fatalf("upstream saw %d logins and %d failures, want only the first config's", st.Logins, st.LoginFailures)
	}
	r := newEnv(t)
	r.write("config", r.resolverConfig())
	expectRejected(t, r, map[string]any{"email": "boss@acme.com"}, "email")
	expectRejected(t, r, map[string]any{"org_id": 7}, "org_id")
}

// A CA with a private key pasted in is refused: the key would be kept and shown on every
// config read.
func TestCACertWithAPrivateKeyIsRefused(t *testing.T) {
	e := newEnv(t)
	key := "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF\n-----END PRIVATE KEY-----\n"
	for _, kind := range []string{"", "RSA ", "EC "} {
		k := strings.ReplaceAll(key, "PRIVATE KEY", kind+"PRIVATE KEY")
		msg := expectRejected(t, e, with(e.plextracConfig(false), "ca_cert", testCACertPEM(t)+k), "ca_cert")
		if !strings.Contains(msg, "PRIVATE KEY") {
			t.Errorf("%q does not say what to remove", msg)
		}
	}
}

// Strings are stored as written: a PEM from a heredoc keeps its final newline, so Terraform
// sees no drift, and a password is not trimmed into another one.
func TestNonSecretStringsReadBackAsWritten(t *testing.T) {
	e := newEnv(t)
	ca := testCACertPEM(t) + "\n"
	e.write("config", with(e.plextracConfig(false), "ca_cert", ca, "verify", false))
	if got := e.read("config", nil).Data["ca_cert"]; got != ca {
		t.Fatalf("ca_cert read back %d bytes, %d written", len(got.(string)), len(ca))
	}
	stored, _ := session.ReadConfig(context.Background(), e.s)
	if stored.CACert != ca {
		t.Fatal("ca_cert not stored byte for byte")
	}
}

// Every read of the config shows only what the table says it shows.
func TestConfigReadShowsOnlyDeclaredFields(t *testing.T) {
	for _, provider := range upstream.Names() {
		e := newEnv(t)
		e.write("config", fullConfig(e, provider))
		for k := range e.read("config", nil).Data {
			name := strings.TrimSuffix(k, "_set")
			if k == "header_names" {
				name = "headers"
			}
			f := session.FieldByName[name]
			if f == nil || !f.TakenBy(provider) || f.Secret != (k != name) {
				t.Errorf("%s: config read shows %q, which the table does not declare so", provider, k)
			}
		}
	}
}
