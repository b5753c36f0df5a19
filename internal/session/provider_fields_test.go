package session

import (
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/framework"
	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/upstream"
)

// Each provider names the config fields it takes and requires; the field table keeps the rest
// of each field. A name the table lacks, or a field every provider takes named again, or one
// required but not taken, is a mistake in the provider's file.
func TestProvidersNameOnlyFieldsTheTableHas(t *testing.T) {
	if len(upstream.Specs()) == 0 {
		t.Fatal("no provider registered")
	}
	for _, s := range upstream.Specs() {
		for _, name := range s.Takes {
			if f := FieldByName[name]; f == nil || !f.PerProvider {
				t.Errorf("%s takes %q: not a per-provider field of the table", s.Name, name)
			}
		}
		for _, name := range s.Requires {
			if !slices.Contains(s.Takes, name) {
				t.Errorf("%s requires %q, which it does not take", s.Name, name)
			}
		}
	}
}

// The provider field lists the registered providers in both the write's and the read's
// schema (OpenAPI clients build their enums from them).
func TestTheProviderSchemaListsTheProviders(t *testing.T) {
	names := upstream.Names()
	for what, schema := range map[string]map[string]*framework.FieldSchema{"write": ConfigSchema(), "read": ConfigReadSchema()} {
		p := schema["provider"]
		if len(p.AllowedValues) != len(names) || !strings.Contains(p.Description, strings.Join(names, ", ")) {
			t.Errorf("the %s schema's provider: %v %q, want %v", what, p.AllowedValues, p.Description, names)
		}
	}
}
