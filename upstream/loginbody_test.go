package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"text/template"
	"time"
)

// A template that fits the grammar renders exactly what v0.1.0's text/template rendered, so
// stored bodies keep sending the same bytes.
func TestLoginBodyRendersAsBefore(t *testing.T) {
	vars := map[string]string{"username": "a\"<&'\x01é\u2028", "password": `p\w"d<>&=` + "\xff", "api_key": "k y+%/"}
	for _, src := range []string{
		DefaultLoginBody,
		`{"user": {{json .username}}, "key": {{json .api_key}}}`,
		`{"q": "{{urlquery .username}}", "h": "{{html .password}}", "j": "{{js .api_key}}", "raw": "{{.username}}"}`,
		`{"c": {{json "const<"}}, "h": "{{html "<a&b>"}}", "s": "{{"lit"}}", "u": "{{urlquery "a b"}}"}`,
		"{{/* a comment */}}{\n  \"p\": {{- json .password -}} ,\n  \"u\": {{ json .username }}\n}",
		`no values at all`,
	} {
		v010 := template.Must(template.New("login_body").Option("missingkey=error").Funcs(template.FuncMap{
			"json": func(v any) (string, error) { b, err := json.Marshal(v); return string(b), err },
		}).Parse(src))
		var want strings.Builder
		if err := v010.Execute(&want, vars); err != nil {
			t.Fatal(err)
		}
		b, err := parseLoginBody(src)
		if err != nil {
			t.Errorf("%s: %v", src, err)
			continue
		}
		if got, err := renderLoginBody(b, vars); err != nil || string(got) != want.String() {
			t.Errorf("%s:\n got %q %v\nwant %q", src, got, err, want.String())
		}
	}
}

// A config writer cannot make the shared plugin process loop or allocate without bound
// through login_body: a stored v0.1.0 template with anything but text and single-value
// actions is refused, by Validate at a write and by New at a load, with an error naming
// login_body and saying what to write instead.
func TestLoginBodyRefusesWhatCouldRunUnbounded(t *testing.T) {
	for tmpl, want := range map[string]string{
		`{"a": 1{{range 10000000}}{{end}}}`:                              "{{range}} is not allowed",
		`{{define "x"}}{{template "x" .}}{{end}}{"a": 1}`:                "{{define}} and {{block}} are not allowed",
		`{{block "x" .}}{{end}}{"a": 1}`:                                 "{{define}} and {{block}} are not allowed",
		`{"a": 1{{template "login_body" .}}}`:                            "{{template}} and {{block}} are not allowed",
		`{{if .api_key}}{"k": {{json .api_key}}}{{else}}{"u": 1}{{end}}`: "{{if}} and {{else}} are not allowed: write the one body",
		`{{with .username}}{"user": {{json .}}}{{end}}`:                  "{{with}} is not allowed",
		`{{$u := .username}}{"user": {{json $u}}}`:                       "variables are not allowed",
		`{"u": {{json $}}}`:                                              "variables are not allowed",
		`{"p": {{.password | json}}}`:                                    "pipelines (|) are not allowed",
		`{"p": "{{html (html .password)}}"}`:                             "not another call; call one function per {{ }}",
		`{"p": {{json (print "x-" .username)}}}`:                         "not another call",
		`{"a": "{{printf "%0999999999d" 0}}"}`:                           `the function "printf" is not allowed (allowed: json, html, js, urlquery`,
		`{"n": {{len .password}}}`:                                       `the function "len" is not allowed`,
		`{"a": "{{call .username}}"}`:                                    `the function "call" is not allowed`,
		`{"p": "{{print .password .password}}"}`:                         `the function "print" is not allowed`,
		`{"p": {{json .password .username}}}`:                            "json takes exactly one value",
		`{"p": {{json}}}`:                                                "json takes exactly one value",
		`{"e": {{json .email}}}`:                                         ".email is not a login value; use .username, .password or .api_key",
		`{"e": {{json .password.x}}}`:                                    ".password.x is not a login value",
		`{"e": {{json .}}}`:                                              "a value must be .username, .password, .api_key or a quoted string",
		`{"n": {{json 42}}}`:                                             "write numbers, true and false as text outside {{ }}",
		`{"n": {{true}}}`:                                                "write numbers, true and false as text outside {{ }}",
		`{"x": "{{.password "a"}}"}`:                                     "one value per {{ }}",
		`{"a": "{{`:                                                      "login_body: template: login_body:1: unclosed action",
		`"` + strings.Repeat("x", MaxLoginBodyLen-1) + `"`:               "the template is 4097 bytes, longer than 4096; shorten it",
		`"` + strings.Repeat("x", MaxLoginBodyLen-2) + `"`:               "", // at the limit
		`{"a": "` + strings.Repeat("{{.password}}", 63) + strings.Repeat("y", 1015) + `"}`: "", // can reach exactly 64 KiB
		`{"a": "` + strings.Repeat("{{.password}}", 63) + strings.Repeat("y", 1016) + `"}`: "the body could reach 65537 bytes",
		`[` + strings.Repeat(`{{json .password}},`, 11) + `0]`:                             "the body could reach 67620 bytes, over the 64 KiB cap; use fewer {{ }} values",
		`{"a": "` + strings.Repeat("{{.password}}", 64) + `"}`:                             "the body could reach 65545 bytes",
		`{"a": "{{js "` + strings.Repeat("<", MaxLoginBodyLen-20) + `"}}"}`:                "", // 24 KiB from a constant: allowed
	} {
		cfg := GenericConfig{LoginPath: "/login", LoginBody: tmpl}
		err := cfg.Validate()
		if want == "" {
			if err != nil {
				t.Errorf("%.60s: %v", tmpl, err)
			}
			continue
		}
		if err == nil || !strings.HasPrefix(err.Error(), "login_body: ") || !strings.Contains(err.Error(), want) {
			t.Errorf("%.60s: want a login_body error saying %q, got %v", tmpl, want, err)
		}
		if _, nerr := genericAt(t, "http://127.0.0.1:1", "pw", cfg); fmt.Sprint(nerr) != fmt.Sprint(err) {
			t.Errorf("%.60s: New says %v", tmpl, nerr)
		}
	}
}

// The bound parse computes is exact: the longest values allowed, of the character json
// expands most, fill it to the byte, and it is under the cap.
func TestLoginBodyWorstCaseIsExact(t *testing.T) {
	b, err := parseLoginBody(`[` + strings.Repeat(`{{json .password}},`, 10) + `0]`)
	if err != nil {
		t.Fatal(err)
	}
	out, err := renderLoginBody(b, map[string]string{"password": strings.Repeat("<", MaxSecretLen)})
	if err != nil || len(out) != 61473 || b.worst != 61473 || !json.Valid(out) {
		t.Fatalf("rendered %d bytes (bound %d): %v", len(out), b.worst, err)
	}
}

// Each function writes at most its stated multiple of its input, for every byte and for the
// runes the escapers treat specially, which is what the parse-time bound rests on.
func TestLoginBodyFuncsStayWithinTheirBound(t *testing.T) {
	inputs := []string{"\u2028", "\U000E0001", "\ufffd", "é", "\xff\xfe"}
	for c := 0; c < 256; c++ {
		inputs = append(inputs, string([]byte{byte(c)}))
	}
	for name, fn := range loginBodyFuncs {
		for _, in := range inputs {
			s := strings.Repeat(in, 10)
			var out strings.Builder
			if fn.write(&out, s); out.Len() > fn.worst(len(s)) {
				t.Errorf("%s(%q): %d bytes, bound %d", name, s, out.Len(), fn.worst(len(s)))
			}
		}
	}
}

// The rendered body stops at 64 KiB, whatever the pieces: 65536 bytes render, 65537 do not.
// Parsing refuses such a template already; this is the last line.
func TestLoginBodyRenderCap(t *testing.T) {
	for n, ok := range map[int]bool{65536: true, 65537: false} {
		b := &loginBody{pieces: []bodyPiece{{text: strings.Repeat("x", n-100)}, {field: "password", fn: loginBodyFuncs[""]}}}
		out, err := renderLoginBody(b, map[string]string{"password": strings.Repeat("y", 100)})
		if ok != (err == nil) || (ok && len(out) != n) || (!ok && !errors.Is(err, errLoginBodyTooLarge)) {
			t.Errorf("%d bytes: rendered %d, %v", n, len(out), err)
		}
	}
}

// A value past its limit is refused before anything is rendered or sent: at the limit it
// renders, one byte more and the error names the field without quoting it.
func TestLoginBodyRefusesValuesPastTheirLimit(t *testing.T) {
	b, err := parseLoginBody(`{"u": {{json .username}}, "p": {{json .password}}, "k": {{json .api_key}}}`)
	if err != nil {
		t.Fatal(err)
	}
	for field, limit := range map[string]int{"username": MaxNameLen, "password": MaxSecretLen, "api_key": MaxSecretLen} {
		vars := map[string]string{"username": "u", "password": "p", "api_key": "k"}
		vars[field] = strings.Repeat("q", limit)
		if _, err := renderLoginBody(b, vars); err != nil {
			t.Errorf("%s of %d bytes: %v", field, limit, err)
		}
		vars[field] += "q"
		_, err := renderLoginBody(b, vars)
		if !errors.Is(err, errLoginValueTooLong) || !strings.HasPrefix(err.Error(), field+": ") || strings.Contains(err.Error(), "qq") {
			t.Errorf("%s of %d bytes: %v", field, limit+1, err)
		}
	}

	var reached atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		w.Write([]byte(`{"token":"opaque"}`))
	}))
	defer srv.Close()
	p, err := genericAt(t, srv.URL, strings.Repeat("long-password-", 100), GenericConfig{LoginPath: "/login"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = p.Login(ctx)
	if err == nil || !strings.Contains(err.Error(), "password: longer than the most a login body takes (1024 bytes)") ||
		!strings.Contains(err.Error(), "shorten the credential") || !IsKind(err, KindBadResponse) {
		t.Fatalf("got %v", err)
	}
	if strings.Contains(err.Error(), "long-password") || reached.Load() != 0 {
		t.Fatalf("leaked or sent: %d requests, %v", reached.Load(), err)
	}
}

// json writes what v0.1.0's json (json.Marshal of the value) wrote: every 1- and 2-byte
// string, the runes JSON treats specially, and what the fuzzer finds.
func TestJSONStringIsWhatMarshalWrites(t *testing.T) {
	inputs := []string{"", "plain", "\u2028\u2029", "\U0001F600", "é\xffé", "\xe2\x80", "\xed\xa0\x80", "a<b>&c\"d\\e\x7f"}
	for a := 0; a < 256; a++ {
		for b := 0; b < 256; b++ {
			inputs = append(inputs, string([]byte{byte(a), byte(b)}))
		}
	}
	for _, s := range inputs {
		checkJSONString(t, s)
	}
}

func FuzzJSONString(f *testing.F) {
	for _, s := range []string{"", "\u2028", "a\x00<\xff\xfe\u2029\U0001F600\"\\"} {
		f.Add(s)
	}
	f.Fuzz(checkJSONString)
}

func checkJSONString(t *testing.T, s string) {
	want, _ := json.Marshal(s)
	var got strings.Builder
	writeJSONString(&got, s)
	if got.String() != string(want) {
		t.Errorf("%q: wrote %s, json.Marshal %s", s, got.String(), want)
	}
}
