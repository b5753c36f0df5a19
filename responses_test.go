package sessiontoken

import (
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/helper/testhelpers/schema"
	"github.com/hashicorp/vault/sdk/logical"
)

// Every answer matches the Responses its path declares, strictly (no undeclared field), as
// Vault's KV engine checks its own: the OpenAPI document tells clients the truth.
func TestAnswersMatchTheirDeclaredResponses(t *testing.T) {
	e := newEnv(t)
	paths := map[string]int{}
	for i, p := range e.b.Paths {
		paths[p.Pattern] = i
	}
	check := func(path string, op logical.Operation, resp *logical.Response) {
		t.Helper()
		schema.ValidateResponse(t, schema.FindResponseSchema(t, e.b.Paths, paths[path], op), resp, true)
	}
	for _, cfg := range []map[string]any{e.plextracConfig(true), e.plaspyConfig(), e.resolverConfig(), with(genericPlexTrac(e), "api_key", "k")} {
		resp := e.write("config", with(cfg, "headers", map[string]any{"cf-access-token": "v"}))
		check("config", logical.UpdateOperation, resp)
		check("config", logical.ReadOperation, e.read("config", nil))
		check("token", logical.ReadOperation, e.read("token", nil))
		check("static-token", logical.ReadOperation, e.read("static-token", nil))
		check("metrics", logical.ReadOperation, e.read("metrics", nil)) // the JSON form; format=prometheus is raw text
		e.upstreamDown()
		e.clock.Advance(11 * time.Minute) // a refresh fails: status shows the error
		e.read("token", nil)
		check("status", logical.ReadOperation, e.read("status", nil))
		e.upstreamUp()
		e.clock.Advance(10 * time.Minute)
	}
	resp, err := e.do(logical.DeleteOperation, "config", nil)
	if err != nil {
		t.Fatal(err)
	}
	check("config", logical.DeleteOperation, resp)
}
