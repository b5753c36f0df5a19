package sessiontoken

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/logical"
)

// v010Fixture is what one v0.1.0 mount kept: its storage entries as written, and a lease
// that v0.1.0 issued (what Vault stores for it and hands back at renewal and revocation).
type v010Fixture struct {
	WrittenBy string                     `json:"written_by"`
	Clock     time.Time                  `json:"clock"` // the fake clock when the mount was written and read
	Config    map[string]any             `json:"config_written"`
	Storage   map[string]json.RawMessage `json:"storage"`
	Lease     struct {
		InternalData map[string]any `json:"internal_data"`
		Data         map[string]any `json:"data"`
		TTL          time.Duration  `json:"ttl"`
	} `json:"lease"`
	StaticRead map[string]any `json:"static_token_read"`
}

// TestWriteV010StorageFixtures wrote testdata/storage/v0.1.0/*.json with the code of v0.1.0
// (commit aa8c822): run only with SESSIONTOKEN_WRITE_V010_FIXTURES=1, and only on that code.
// The files are the record of what v0.1.0 stores; later formats are tested against them.
func TestWriteV010StorageFixtures(t *testing.T) {
	if os.Getenv("SESSIONTOKEN_WRITE_V010_FIXTURES") != "1" {
		t.Skip("writes the v0.1.0 fixtures; only on v0.1.0's code")
	}
	cases := map[string]func(e *env) map[string]any{
		"plextrac-mfa": func(e *env) map[string]any { return e.plextracConfig(true) },
		"plaspy":       func(e *env) map[string]any { return e.plaspyConfig() },
		"resolver":     func(e *env) map[string]any { return e.resolverConfig() },
		"generic-apikey": func(e *env) map[string]any {
			return with(genericPlexTrac(e), "api_key", "generic-fixture-api-key",
				"login_body", `{"username": {{json .username}}, "password": {{json .password}}, "key": {{json .api_key}}}`,
				"headers", map[string]any{"cf-access-token": "fixture-header-value"}, "min_ttl", 240, "request_timeout", 7)
		},
		"generic-if": func(e *env) map[string]any {
			return with(genericPlexTrac(e), "login_body",
				`{{if .password}}{"username": {{json .username}}, "password": {{json .password}}}{{else}}{}{{end}}`)
		},
	}
	dir := filepath.Join("testdata", "storage", "v0.1.0")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, cfg := range cases {
		e := newEnv(t)
		var fx v010Fixture
		fx.WrittenBy, fx.Clock, fx.Config = "v0.1.0 (commit aa8c822)", e.clock.Now(), cfg(e)
		e.write("config", fx.Config)
		resp := e.read("token", nil)
		fx.Lease.InternalData, fx.Lease.Data, fx.Lease.TTL = resp.Secret.InternalData, resp.Data, resp.Secret.TTL
		fx.StaticRead = e.read("static-token", nil).Data
		keys, err := e.s.List(context.Background(), "")
		if err != nil {
			t.Fatal(err)
		}
		fx.Storage = storedEntries(t, e, keys)
		writeFixture(t, e, filepath.Join(dir, name+".json"), fx)
	}
}

// v020Fixture is what one v0.2.0 mount kept: as v010Fixture, with the account fingerprint
// v0.2.0 computed from the stored config and key (the golden value later code must keep).
type v020Fixture struct {
	v010Fixture
	LeaseIssued time.Time `json:"lease_issued"`
	Fingerprint string    `json:"fingerprint"`
}

// v020Cases are the v0.2.0 mounts: each provider, a generic account named by its API key and
// one named by its password alone, a held mount and a rotated session. Each returns the
// config it wrote; it may act on the mount after that write.
var v020Cases = map[string]func(e *env) map[string]any{
	"plextrac-mfa": func(e *env) map[string]any { return e.plextracConfig(true) },
	"plaspy":       func(e *env) map[string]any { return e.plaspyConfig() },
	"resolver":     func(e *env) map[string]any { return e.resolverConfig() },
	"generic-apikey": func(e *env) map[string]any {
		return with(genericPlexTrac(e), "api_key", "generic-fixture-api-key",
			"login_body", `{"username": {{json .username}}, "password": {{json .password}}, "key": {{json .api_key}}}`,
			"headers", map[string]any{"cf-access-token": "fixture-header-value"}, "min_ttl", 240, "request_timeout", 7)
	},
	"generic-password": func(e *env) map[string]any { // a personal access token in password names the account
		c := with(genericPlexTrac(e), "login_body", `{"username": "svc-nomfa@acme.com", "password": {{json .password}}}`)
		delete(c, "username")
		return c
	},
}

// TestWriteV020StorageFixtures wrote testdata/storage/v0.2.0/*.json with the code of v0.2.0
// (commit 5a42e41): run only with SESSIONTOKEN_WRITE_V020_FIXTURES=1, and only on that code.
// A fixture's clock is the fake clock after the mount's last act; its lease is the last one
// read, with the issue time lease_issued.
func TestWriteV020StorageFixtures(t *testing.T) {
	if os.Getenv("SESSIONTOKEN_WRITE_V020_FIXTURES") != "1" {
		t.Skip("writes the v0.2.0 fixtures; only on v0.2.0's code")
	}
	dir := filepath.Join("testdata", "storage", "v0.2.0")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// write writes cfg to a new mount, reads a lease and static-token, then runs then.
	write := func(name string, cfg func(e *env) map[string]any, then func(e *env)) {
		e := newEnv(t)
		var fx v020Fixture
		fx.WrittenBy, fx.Config = "v0.2.0 (commit 5a42e41)", cfg(e)
		e.write("config", fx.Config)
		if then != nil && name == "plextrac-rotated" {
			then(e)
		}
		resp := e.read("token", nil)
		fx.LeaseIssued = e.clock.Now()
		fx.Lease.InternalData, fx.Lease.Data, fx.Lease.TTL = resp.Secret.InternalData, resp.Data, resp.Secret.TTL
		fx.StaticRead = e.read("static-token", nil).Data
		if then != nil && name != "plextrac-rotated" {
			then(e)
		}
		fx.Clock = e.clock.Now()
		a, err := e.b.slot.Account(context.Background(), e.s)
		if err != nil {
			t.Fatal(err)
		}
		fx.Fingerprint = a.ID()
		keys, err := logical.CollectKeys(context.Background(), e.s)
		if err != nil {
			t.Fatal(err)
		}
		fx.Storage = storedEntries(t, e, keys)
		writeFixture(t, e, filepath.Join(dir, name+".json"), fx)
	}
	for name, cfg := range v020Cases {
		write(name, cfg, nil)
	}
	plextrac := func(e *env) map[string]any { return e.plextracConfig(false) }
	// held: once the session expired, upstream refused the stored password (max_refused_logins 1).
	write("plextrac-held", func(e *env) map[string]any { return with(plextrac(e), "max_refused_logins", 1) }, func(e *env) {
		revokeDemoPassword(e)
		e.clock.Advance(15 * time.Minute)
		e.readFailure("token")
	})
	// rotated: the session an operator's rotate obtained a minute after the config's check.
	write("plextrac-rotated", plextrac, func(e *env) {
		e.clock.Advance(time.Minute)
		e.write("rotate", nil)
	})
}

// storedEntries is the value of each of keys in e's storage, as a fixture records it.
func storedEntries(t *testing.T, e *env, keys []string) map[string]json.RawMessage {
	t.Helper()
	out := map[string]json.RawMessage{}
	for _, k := range keys {
		entry, err := e.s.Get(context.Background(), k)
		if err != nil || entry == nil {
			t.Fatal(k, err)
		}
		out[k] = entry.Value
	}
	return out
}

// writeFixture writes fx to path as indented JSON. The fixtures hold demo secrets and tokens by
// design; e's log still must not, so its served tokens are no longer checked against the log.
func writeFixture(t *testing.T, e *env, path string, fx any) {
	t.Helper()
	out, err := json.MarshalIndent(fx, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(out, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	e.servedTokens = nil
}
