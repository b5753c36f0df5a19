package upstream

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// allocated returns the bytes f allocates: the smallest of a few runs, so that a stray
// allocation elsewhere in the process does not count.
func allocated(f func()) uint64 {
	var least uint64
	for i := 0; i < 3; i++ {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		f()
		runtime.ReadMemStats(&after)
		if d := after.TotalAlloc - before.TotalAlloc; i == 0 || d < least {
			least = d
		}
	}
	return least
}

// What one login_body may cost the shared plugin process, whatever the template and the
// credentials, as small multiples of the 64 KiB rendered-body cap: to render it at a login
// (the body, plus json and urlquery building each value's output before it is copied in), and
// to validate it at a config write or a load (parsing 4 KiB of template, then one render).
const (
	renderAllocCeiling   = 4 * maxLoginBody
	validateAllocCeiling = 8 * maxLoginBody
)

func nested(fn string, depth int, arg string) string {
	return strings.Repeat(fn+" (", depth-1) + fn + " " + arg + strings.Repeat(")", depth-1)
}

// mostActions is the template with as many copies of action as login_body accepts.
func mostActions(action string) string {
	last := ""
	for k := 1; ; k++ {
		tmpl := "[" + strings.Repeat(action+",", k) + "0]"
		if _, err := parseLoginBody(tmpl); err != nil {
			return last
		}
		if len(tmpl) > MaxLoginBodyLen {
			return tmpl // accepted though too long: the test says so
		}
		last = tmpl
	}
}

// One login_body cannot make the plugin process allocate more than a small multiple of the
// rendered-body cap, with the longest credentials the field table allows and the worst
// templates a config writer can write: nested escapers (html of html grows with each level,
// js of js doubles), variables that multiply a value, a condition on the value's length that
// hides the large case from validation with short sample values, and, of what is accepted,
// the most actions of each function on the characters it expands most. Each is either refused
// when the config is written (by Validate and by New, with the same error naming login_body),
// or validates and renders within the ceiling.
func TestLoginBodyAllocationIsBounded(t *testing.T) {
	hide := func(large string) string { // validation renders the short branch only
		return `{{if eq (len .password) 64}}{"p": {{json .password}}}{{else}}` + large + `{{end}}`
	}
	type tc struct{ tmpl, chars string }
	cases := map[string]tc{
		"html of html, 40 deep":        {`{"p": "{{` + nested("html", 40, ".password") + `}}"}`, `&`},
		"js of js, 10 deep":            {`{"p": "{{` + nested("js", 10, ".password") + `}}"}`, `\`},
		"hidden html of html":          {hide(`{"p": "{{` + nested("html", 40, ".password") + `}}"}`), `&`},
		"hidden js of js":              {hide(`{"p": "{{` + nested("js", 10, ".password") + `}}"}`), `\`},
		"variables multiply the value": {hide(`{{$a := print .password .password .password .password}}{{$b := print $a $a $a $a}}{{$c := print $b $b $b $b}}{"p": "{{js $c}}"}`), `<`},
		"print of many fields":         {hide(`{"p": {{json (print ` + strings.Repeat(".password ", 300) + `)}}}`), `<`},
		"text only":                    {`"` + strings.Repeat("x", MaxLoginBodyLen-2) + `"`, "x"},
		"one long constant":            {`"{{js "` + strings.Repeat("<", MaxLoginBodyLen-12) + `"}}"`, "x"},
		"most constants":               {mostActions(`{{js "<"}}`), "x"},
		"most empty constants":         {mostActions(`"{{""}}"`), "x"},
		// What costs the parser most per template byte, refused after parsing.
		"deep parentheses": {`{"p": {{json ` + strings.Repeat("(", 2030) + `.password` + strings.Repeat(")", 2030) + `}}}`, "x"},
		"many numbers":     {`{"p": {{json` + strings.Repeat(" 1", 2040) + `}}}`, "x"},
		"many parentheses": {`{"p": {{json` + strings.Repeat(" (1)", 1020) + `}}}`, "x"},
		"many variables":   {`{"p": {{json` + strings.Repeat(" $", 2040) + `}}}`, "x"},
		"many conditions":  {strings.Repeat(`{{if 1}}{{end}}`, 273), "x"},
	}
	for _, fn := range []string{"json", "html", "js", "urlquery", ""} {
		chars := map[string]string{"json": "<", "html": `"`, "js": "<", "urlquery": "<", "": "x"}[fn]
		for _, field := range []string{"username", "password", "api_key"} {
			action := fmt.Sprintf(`"{{%s .%s}}"`, fn, field)
			if fn == "json" {
				action = fmt.Sprintf(`{{json .%s}}`, field)
			}
			cases["most "+action] = tc{mostActions(action), chars}
		}
	}
	var mostValidate, mostRender uint64
	var worstValidate, worstRender string
	defer func() {
		t.Logf("most allocated: validating %d KiB (%s), rendering %d KiB (%s)", mostValidate>>10, worstValidate, mostRender>>10, worstRender)
	}()
	for name, c := range cases {
		if c.tmpl == "" {
			t.Fatalf("%s: not even one action is accepted", name)
		}
		cfg := GenericConfig{LoginPath: "/login", LoginBody: c.tmpl}
		verr := cfg.Validate()
		p, nerr := newWithBudget(Config{Provider: Generic, URL: "http://127.0.0.1:1", Generic: cfg,
			Username: strings.Repeat(c.chars, MaxNameLen), Password: strings.Repeat(c.chars, MaxSecretLen),
			APIKey: strings.Repeat(c.chars, MaxSecretLen)}, Deps{Clock: RealClock{}, Limiters: NewLimiters(), TOTPSteps: NewTOTPSteps()})
		if fmt.Sprint(verr) != fmt.Sprint(nerr) {
			t.Errorf("%s: Validate says %v, New says %v", name, verr, nerr)
		}
		n := allocated(func() { _ = cfg.Validate() })
		if n > validateAllocCeiling {
			t.Errorf("%s: validating allocated %d KiB, ceiling %d KiB", name, n>>10, validateAllocCeiling>>10)
		}
		if n > mostValidate {
			mostValidate, worstValidate = n, name
		}
		if nerr == nil && len(c.tmpl) > MaxLoginBodyLen {
			t.Errorf("%s: a %d-byte template accepted", name, len(c.tmpl))
		}
		if nerr != nil {
			if !strings.HasPrefix(nerr.Error(), "login_body: ") {
				t.Errorf("%s: refused without naming login_body: %v", name, nerr)
			}
			continue
		}
		g := p.(*generic)
		n = allocated(func() { _, _ = renderLoginBody(g.body, g.vars) })
		if n > renderAllocCeiling {
			t.Errorf("%s: rendering allocated %d KiB, ceiling %d KiB", name, n>>10, renderAllocCeiling>>10)
		}
		if n > mostRender {
			mostRender, worstRender = n, name
		}
		if out, err := renderLoginBody(g.body, g.vars); err != nil || len(out) > g.body.worst {
			t.Errorf("%s: rendered %d bytes, %v; parse said at most %d", name, len(out), err, g.body.worst)
		}
	}
}
