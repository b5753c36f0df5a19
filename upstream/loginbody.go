package upstream

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"text/template"
	"text/template/parse"
	"unicode/utf8"
)

// The login body template is written by a config writer and rendered in the plugin process
// that serves every mount, so what it costs is bounded by construction, not by a check on the
// result:
//
//   - The template is at most MaxLoginBodyLen bytes, so parsing it costs at most a few hundred
//     KiB (text/template/parse is linear: under 100 bytes per template byte). An action writes one
//     value once: a field ({{.password}}) or a quoted string, either bare or through ONE
//     function of loginBodyFuncs ({{json .password}}). No conditions, loops, variables,
//     pipelines, nested calls or sub-templates: nothing runs twice, nothing is built from
//     another function's output (html of html grows with every level, js of js doubles), and
//     nothing hides a branch from validation.
//   - Every function writes at most a fixed multiple of its input (bodyFunc.worst), and the
//     values are refused beyond their limits (MaxNameLen, MaxSecretLen). So parsing computes
//     the longest body any allowed values can render, and a template whose longest body is
//     over maxLoginBody is refused when the config is written, not at a login.
//   - Rendering writes each piece into a buffer of that size, allocated once, that refuses to
//     grow past maxLoginBody as a last line. json, html and js stream into it; urlquery builds
//     its output first (two copies). As the outputs add up to at most the cap, a render
//     allocates at most about 3 times maxLoginBody, whatever the values.
const maxLoginBody = 64 << 10

// loginBodyValues are the fields a login body may name, with the longest value each takes.
var loginBodyValues = map[string]int{
	"username": MaxNameLen,
	"password": MaxSecretLen,
	"api_key":  MaxSecretLen,
}

// writer is what a function writes into: the capped body, or a strings.Builder for a constant.
type writer interface {
	io.Writer
	io.StringWriter
}

type bodyFunc struct {
	write func(w writer, s string) // streams the output into w
	worst func(n int) int          // the longest output for an input of n bytes
}

// loginBodyFuncs are the functions an action may call. Each escapes one string and writes at
// most 6 bytes per input byte: json and js write "<" as \u003c, html writes `"` as &#34;,
// urlquery writes "&" as %26. The empty name is a bare value, written as is. All but urlquery
// stream into the body (html and js copy their input once); urlquery builds its output first.
var loginBodyFuncs = map[string]bodyFunc{
	"":         {func(w writer, s string) { _, _ = w.WriteString(s) }, func(n int) int { return n }},
	"json":     {writeJSONString, func(n int) int { return 6*n + 2 }},
	"html":     {func(w writer, s string) { template.HTMLEscape(w, []byte(s)) }, func(n int) int { return 5 * n }},
	"js":       {func(w writer, s string) { template.JSEscape(w, []byte(s)) }, func(n int) int { return 6 * n }},
	"urlquery": {func(w writer, s string) { _, _ = w.WriteString(url.QueryEscape(s)) }, func(n int) int { return 3 * n }},
}

const loginBodyFuncNames = "json, html, js, urlquery"

var jsonShortEscapes = map[byte]string{
	'"':  `\"`,
	'\\': `\\`,
	'\b': `\b`,
	'\f': `\f`,
	'\n': `\n`,
	'\r': `\r`,
	'\t': `\t`,
}

// writeJSONString writes s as a JSON string, byte for byte what json.Marshal writes for it
// (HTML-safe, as v0.1.0's json did), without building it first: json.Marshal's buffer comes
// from a sync.Pool that a GC empties, so what it allocates is not bounded by its output.
// TestJSONStringIsWhatMarshalWrites holds it to json.Marshal.
func writeJSONString(w writer, s string) {
	const hex = "0123456789abcdef"
	_, _ = w.WriteString(`"`)
	start := 0
	escape := func(i, size int, esc ...string) {
		_, _ = w.WriteString(s[start:i])
		for _, e := range esc {
			_, _ = w.WriteString(e)
		}
		start = i + size
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if short, ok := jsonShortEscapes[c]; ok {
				escape(i, 1, short)
			} else if c < ' ' || c == '<' || c == '>' || c == '&' { // < > & for HTML safety
				escape(i, 1, `\u00`, hex[c>>4:c>>4+1], hex[c&0xF:c&0xF+1])
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			escape(i, size, `\ufffd`)
		case r == '\u2028' || r == '\u2029': // valid JSON, but they end a line in JavaScript
			escape(i, size, `\u202`, hex[r&0xF:r&0xF+1])
		}
		i += size
	}
	_, _ = w.WriteString(s[start:])
	_, _ = w.WriteString(`"`)
}

// parserFuncs lets the parser accept every name text/template knows, so that a v0.1.0
// template using one of them is refused below with advice rather than "not defined".
var parserFuncs = func() map[string]any {
	m := map[string]any{}
	for _, name := range []string{"and", "call", "html", "index", "slice", "js", "len", "not", "or", "print",
		"printf", "println", "urlquery", "eq", "ge", "gt", "le", "lt", "ne", "json"} {
		m[name] = true // the parser checks only that a name has a non-nil entry
	}
	return m
}()

// loginBody is a parsed login_body: pieces written one after the other.
type loginBody struct {
	pieces []bodyPiece
	worst  int // the longest body values within their limits can render
}

// bodyPiece is text written as is (template text, or a quoted string's output worked out at
// parse time), or a field's value written through fn.
type bodyPiece struct {
	text  string
	field string
	fn    bodyFunc
}

var errLoginValueTooLong = errors.New("longer than the most a login body takes")

var errLoginBodyTooLarge = fmt.Errorf("login_body: the rendered body is larger than %d KiB", maxLoginBody>>10)

// rewrite is the advice every refused v0.1.0 construct ends with.
const rewrite = "write the JSON body as text with one value per {{ }}, e.g. {\"user\": {{json .username}}, \"password\": {{json .password}}}"

func parseLoginBody(src string) (*loginBody, error) {
	if len(src) > MaxLoginBodyLen {
		return nil, fmt.Errorf("login_body: the template is %d bytes, longer than %d; shorten it", len(src), MaxLoginBodyLen)
	}
	trees, err := parse.Parse("login_body", src, "", "", parserFuncs)
	if err != nil {
		return nil, fmt.Errorf("login_body: %v", err)
	}
	if len(trees) > 1 {
		return nil, fmt.Errorf("login_body: {{define}} and {{block}} are not allowed; %s", rewrite)
	}
	b := &loginBody{}
	for _, n := range trees["login_body"].Root.Nodes {
		if err := b.add(n); err != nil {
			return nil, fmt.Errorf("login_body: %v", err)
		}
	}
	if b.worst > maxLoginBody {
		return nil, fmt.Errorf("login_body: with the longest values allowed (username %d bytes, password and api_key %d) the body could reach %d bytes, over the %d KiB cap; use fewer {{ }} values",
			MaxNameLen, MaxSecretLen, b.worst, maxLoginBody>>10)
	}
	return b, nil
}

// LoginBodyFields are the login values (username, password, api_key) a login_body sends, each
// named once, in the order they first appear; the empty body is DefaultLoginBody. A body that
// does not parse sends nothing (it is refused where the config is validated).
func LoginBodyFields(src string) []string {
	if src == "" {
		src = DefaultLoginBody
	}
	b, err := parseLoginBody(src)
	if err != nil {
		return nil
	}
	var out []string
	for _, p := range b.pieces {
		if p.field != "" && !slices.Contains(out, p.field) {
			out = append(out, p.field)
		}
	}
	return out
}

// add appends one node of the template's top level, refusing everything but text and
// single-value actions.
func (b *loginBody) add(n parse.Node) error {
	switch n := n.(type) {
	case *parse.TextNode:
		b.addText(string(n.Text))
		return nil
	case *parse.ActionNode:
		return b.addAction(n)
	case *parse.IfNode:
		return fmt.Errorf("{{if}} and {{else}} are not allowed: write the one body this mount needs; %s", rewrite)
	case *parse.WithNode:
		return fmt.Errorf("{{with}} is not allowed; %s", rewrite)
	case *parse.RangeNode:
		return fmt.Errorf("{{range}} is not allowed; %s", rewrite)
	case *parse.TemplateNode:
		return fmt.Errorf("{{template}} and {{block}} are not allowed; %s", rewrite)
	}
	return fmt.Errorf("%s is not allowed; %s", n, rewrite)
}

func (b *loginBody) addText(s string) {
	b.pieces = append(b.pieces, bodyPiece{text: s})
	b.worst += len(s)
}

func (b *loginBody) addAction(a *parse.ActionNode) error {
	p := a.Pipe
	if len(p.Decl) > 0 {
		return fmt.Errorf("%s: variables are not allowed; name the value directly, e.g. {{json .password}}", a)
	}
	if len(p.Cmds) != 1 {
		return fmt.Errorf("%s: pipelines (|) are not allowed; call one function on one value, e.g. {{json .password}}", a)
	}
	args := p.Cmds[0].Args
	fn := loginBodyFuncs[""]
	if id, ok := args[0].(*parse.IdentifierNode); ok {
		name := id.Ident
		if fn, ok = loginBodyFuncs[name]; !ok {
			return fmt.Errorf("%s: the function %q is not allowed (allowed: %s, each on one value)", a, name, loginBodyFuncNames)
		}
		if len(args) != 2 {
			return fmt.Errorf("%s: %s takes exactly one value, e.g. {{%s .password}}", a, name, name)
		}
		args = args[1:]
	} else if len(args) != 1 {
		return fmt.Errorf("%s: one value per {{ }}; %s", a, rewrite)
	}
	switch v := args[0].(type) {
	case *parse.FieldNode:
		limit, ok := loginBodyValues[strings.Join(v.Ident, ".")]
		if !ok {
			return fmt.Errorf("%s: %s is not a login value; use .username, .password or .api_key", a, v)
		}
		b.pieces = append(b.pieces, bodyPiece{field: v.Ident[0], fn: fn})
		b.worst += fn.worst(limit)
		return nil
	case *parse.StringNode:
		// A constant: its output is text, worked out once here. Its size is bounded by the
		// template's, so this costs at most a few times MaxLoginBodyLen.
		var out strings.Builder
		fn.write(&out, v.Text)
		b.addText(out.String())
		return nil
	case *parse.PipeNode:
		return fmt.Errorf("%s: a function's value must be a field or a quoted string, not another call; call one function per {{ }}", a)
	case *parse.VariableNode:
		return fmt.Errorf("%s: variables are not allowed; name the value directly, e.g. {{json .password}}", a)
	case *parse.NumberNode, *parse.BoolNode:
		return fmt.Errorf("%s: write numbers, true and false as text outside {{ }}", a)
	}
	return fmt.Errorf("%s: a value must be .username, .password, .api_key or a quoted string", a)
}

// cappedBuffer is a byte buffer that refuses to grow past max. The escapers ignore write
// errors, so the first one sticks and every later write is refused too.
type cappedBuffer struct {
	buf []byte
	max int
	err error
}

// room says whether n more bytes fit; once one write did not, none does.
func (b *cappedBuffer) room(n int) bool {
	if b.err == nil && len(b.buf)+n > b.max {
		b.err = errLoginBodyTooLarge
	}
	return b.err == nil
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if !b.room(len(p)) {
		return 0, b.err
	}
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *cappedBuffer) WriteString(s string) (int, error) {
	if !b.room(len(s)) {
		return 0, b.err
	}
	b.buf = append(b.buf, s...)
	return len(s), nil
}

// renderLoginBody writes the body for vars. A value longer than its limit is refused, so the
// body is at most b.worst bytes; the buffer is sized for these values once.
func renderLoginBody(b *loginBody, vars map[string]string) ([]byte, error) {
	size := 0
	for _, p := range b.pieces {
		if p.field == "" {
			size += len(p.text)
			continue
		}
		v := vars[p.field]
		if limit := loginBodyValues[p.field]; len(v) > limit {
			return nil, fmt.Errorf("%s: %w (%d bytes); shorten it", p.field, errLoginValueTooLong, limit)
		}
		size += p.fn.worst(len(v))
	}
	out := &cappedBuffer{buf: make([]byte, 0, min(size, maxLoginBody)), max: maxLoginBody}
	for _, p := range b.pieces {
		if p.field == "" {
			_, _ = out.WriteString(p.text)
		} else {
			p.fn.write(out, vars[p.field])
		}
		if out.err != nil {
			return nil, out.err
		}
	}
	return out.buf, nil
}
