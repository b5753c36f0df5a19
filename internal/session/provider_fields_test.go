package session

import (
	"slices"
	"testing"

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
