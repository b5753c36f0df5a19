package session

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"

	"github.com/hashicorp/vault/sdk/framework"
)

// A config read gives back every non-secret field exactly as it was written, or the write is
// refused with the form that would: Terraform's vault_generic_endpoint compares each key of
// data_json with the read, so a field that reads back in another shape ("5m" as 300,
// "PlexTrac" as plextrac, 5 as "5") is a diff on every plan.
//
// One departure, on purpose: the Vault CLI sends every value as a JSON string
// (`vault write … min_ttl=300 allow_insecure_http=true`), so a string of digits for a number
// and "true"/"false" for a bool are accepted too. Their canonical form is unambiguous, and
// Terraform users who write JSON numbers and booleans get them back as written.

const AsWritten = "so that a read gives back what was written"

// checkAsWritten refuses a raw written value of f that a read would not give back as written,
// naming the form that would be. What a value becomes is decided by Vault's own parsing of the
// field's schema type (weak decoding for numbers and bools, parseutil for durations), so the
// check follows the table: no field needs its own rule. A value Vault cannot parse at all was
// already refused by the framework, with its own message naming the field.
func (f *Field) checkAsWritten(raw any) error {
	if f.Secret {
		return nil // write-only: never read back
	}
	if raw == nil {
		return fmt.Errorf("%s: write a value, not null: a read never gives back null", f.Name)
	}
	d := &framework.FieldData{
		Raw:    map[string]any{f.Name: raw},
		Schema: map[string]*framework.FieldSchema{f.Name: f.Schema},
	}
	v, _, err := d.GetOkErr(f.Name)
	if err != nil {
		return fmt.Errorf("%s: %v", f.Name, err)
	}
	if s, ok := v.(string); ok {
		v = f.allowedForm(s)
	}
	if writtenAs(raw, v) {
		return nil
	}
	switch f.Schema.Type {
	case framework.TypeDurationSecond:
		return fmt.Errorf("%s: write durations as whole seconds (%d), %s", f.Name, v, AsWritten)
	case framework.TypeInt:
		return fmt.Errorf("%s: write whole numbers as plain digits (%d), %s", f.Name, v, AsWritten)
	case framework.TypeBool:
		return fmt.Errorf("%s: write true or false (%t), %s", f.Name, v, AsWritten)
	}
	return fmt.Errorf("%s: write %q, %s", f.Name, v, AsWritten)
}

// allowedForm is the allowed value (provider's names) that s spells another way, in another
// case or with spaces around it; s itself otherwise (a value that is not allowed at all gets
// the field's own error later).
func (f *Field) allowedForm(s string) string {
	if f.Allowed == nil {
		return s
	}
	for _, a := range f.Allowed() {
		if strings.EqualFold(strings.TrimSpace(s), a) {
			return a
		}
	}
	return s
}

// writtenAs says whether raw, as written, is want as a read shows it: the same JSON value, or
// the text of a number or a bool as the Vault CLI sends it.
func writtenAs(raw, want any) bool {
	switch r := raw.(type) {
	case string:
		return r == fmt.Sprint(want) // a string as it is; a number's digits; "true" or "false"
	case json.Number: // how a JSON number reaches a plugin through Vault
		n, ok := want.(int)
		return ok && string(r) == strconv.Itoa(n)
	case bool:
		return r == want
	}
	// Go numbers: a write made in-process.
	n, ok := want.(int)
	rv := reflect.ValueOf(raw)
	switch {
	case !ok:
		return false
	case rv.CanInt():
		return rv.Int() == int64(n)
	case rv.CanUint():
		return n >= 0 && rv.Uint() == uint64(n)
	case rv.CanFloat():
		return rv.Float() == float64(n)
	}
	return false
}
