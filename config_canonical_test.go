package sessiontoken

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/vault/sdk/framework"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/internal/session"
	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/upstream"
)

// writtenForm is one way to write a field's value: raw as the write carries it, and what a
// config read must show for it (JSON), or, for a refused form, the canonical form the error
// must name.
type writtenForm struct {
	raw  any
	want string
}

// asWrittenForms are the accepted and refused forms of value (a valid value of f, as a read
// gives it back). Accepted: the JSON value itself, as Terraform's jsonencode sends it (and as
// a JSON number reaches the plugin: json.Number), and the strings the Vault CLI sends for
// numbers and bools. Refused: every other form Vault's parsing would take for the same value.
func asWrittenForms(f *session.Field, value any) (accepted, refused []writtenForm) {
	switch v := value.(type) {
	case int:
		n := strconv.Itoa(v)
		accepted = []writtenForm{{v, n}, {float64(v), n}, {json.Number(n), n}, {n, n}}
		refused = []writtenForm{{"+" + n, n}, {"", "0"}, {json.Number("-0"), "0"}}
		if f.Schema.Type == framework.TypeDurationSecond { // parseutil: base 10, units
			d := time.Duration(v) * time.Second
			refused = append(refused, writtenForm{"0" + n, n}, writtenForm{n + "s", n}, writtenForm{d.String(), n})
		} else { // weak decoding: base prefixes, bools
			refused = append(refused, writtenForm{"0x" + strconv.FormatInt(int64(v), 16), n}, writtenForm{true, "1"})
		}
	case bool:
		b := strconv.FormatBool(v)
		accepted = []writtenForm{{v, b}, {b, b}}
		refused = []writtenForm{{strings.ToUpper(b), b}, {strings.ToUpper(b[:1]) + b[1:], b}, {b[:1], b}}
		if v {
			refused = append(refused, writtenForm{"1", b}, writtenForm{json.Number("1"), b}, writtenForm{1, b})
		} else {
			refused = append(refused, writtenForm{"0", b}, writtenForm{json.Number("0"), b}, writtenForm{"", b})
		}
	case string:
		q, _ := json.Marshal(v)
		accepted = []writtenForm{{v, string(q)}}
		refused = []writtenForm{{json.Number("300"), `"300"`}, {300, `"300"`}, {true, `"1"`}}
		if f.Schema.AllowedValues != nil {
			refused = append(refused, writtenForm{strings.ToUpper(v), string(q)}, writtenForm{" " + v + " ", string(q)},
				writtenForm{strings.ToUpper(v[:1]) + v[1:] + "\n", string(q)})
		}
	}
	return accepted, append(refused, writtenForm{nil, "null"})
}

// Issue 16 (configuration as code): Terraform compares every key it wrote with the config
// read, so every non-secret field of every provider reads back as written, or the write is
// refused with the form that would, storing nothing.
func TestEveryFieldReadsBackAsWrittenOrIsRefused(t *testing.T) {
	for _, provider := range upstream.Names() {
		for _, f := range session.Fields {
			if f.Secret || !f.TakenBy(provider) {
				continue
			}
			t.Run(provider+"/"+f.Name, func(t *testing.T) {
				e := newEnv(t)
				cfg := fullConfig(e, provider)
				if f.Name == "allow_insecure_http" { // false needs an https url
					cfg = with(cfg, "url", "https://127.0.0.1:1")
				}
				var values []any
				switch f.Schema.Type {
				case framework.TypeInt, framework.TypeDurationSecond:
					values = []any{f.Min + 1, (f.Min + f.Max) / 2}
				case framework.TypeBool:
					values = []any{true, false}
				default:
					values = []any{changedValue(e, f)}
					if f.Name == "provider" {
						values = []any{provider}
					}
				}
				for _, value := range values {
					accepted, refused := asWrittenForms(f, value)
					for _, form := range accepted {
						e.write("config", with(cfg, f.Name, form.raw))
						read, _ := json.Marshal(e.read("config", nil).Data[f.Name])
						if string(read) != form.want {
							t.Errorf("%s written as %#v reads back %s, want %s", f.Name, form.raw, read, form.want)
						}
					}
					before := e.read("config", nil).Data
					for _, form := range refused {
						msg := expectRejected(t, e, with(cfg, f.Name, form.raw), f.Name)
						want := "(" + form.want + ")" // numbers and bools
						switch {
						case form.raw == nil:
							want = "not null"
						case f.Schema.Type == framework.TypeString:
							want = "write " + form.want + ", " + session.AsWritten
						}
						if !strings.Contains(msg, want) {
							t.Errorf("%s written as %#v: %q does not give the canonical form %s", f.Name, form.raw, msg, form.want)
						}
					}
					if after := e.read("config", nil).Data; !reflect.DeepEqual(before, after) {
						t.Errorf("refused writes changed the config:\n%v\n%v", before, after)
					}
				}
			})
		}
	}
}

// The messages the docs quote, and forms Vault's own parsing refuses before the plugin sees
// them (a 400 naming the field, with Vault's wording).
func TestRefusedFormsSayWhatToWrite(t *testing.T) {
	e := newEnv(t)
	p := with(e.plextracConfig(false), "verify", false)
	for raw, want := range map[string]string{
		"5m":  "min_ttl: write durations as whole seconds (300), so that a read gives back what was written",
		"1h":  "min_ttl: write durations as whole seconds (3600)",
		"1e3": `error converting input for field "min_ttl"`,
		" 30": `error converting input for field "min_ttl"`,
	} {
		if msg := expectRejected(t, e, with(p, "min_ttl", raw), "min_ttl"); !strings.Contains(msg, want) {
			t.Errorf("min_ttl=%q: %q, want %q", raw, msg, want)
		}
	}
	for field, raw := range map[string]any{"allow_insecure_http": "yes", "max_auth_per_minute": "1e3", "org_id": " 3"} {
		expectRejected(t, e, with(p, field, raw), field)
	}
	msg := expectRejected(t, e, with(p, "provider", " PlexTrac "), "provider")
	if want := `provider: write "plextrac", so that a read gives back what was written`; !strings.Contains(msg, want) {
		t.Errorf("%q, want %q", msg, want)
	}
	// plaspy's url defaults when left out; written empty it would read back as the default.
	pl := with(e.plaspyConfig(), "verify", false)
	msg = expectRejected(t, e, with(pl, "url", ""), "url")
	if !strings.Contains(msg, fmt.Sprintf("write %q", "https://api.plaspy.com")) {
		t.Errorf("plaspy url \"\": %q does not give the default", msg)
	}
	delete(pl, "url")
	e.write("config", pl)
	if got := e.read("config", nil).Data["url"]; got != "https://api.plaspy.com" {
		t.Errorf("plaspy without url reads back %v", got)
	}
}
