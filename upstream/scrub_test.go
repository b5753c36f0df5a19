package upstream

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"unicode/utf16"
	"unicode/utf8"
)

func TestScrubNormalizesBeforeMatching(t *testing.T) {
	const pw = "hunter2\u200bpass" // a zero-width space inside the configured password
	for _, text := range []string{
		"bad password hunter2\u200bpass",       // as configured
		"bad password hunter2pass",             // the upstream dropped it
		"bad password hun\x00ter2pass",         // NUL inside
		"bad password hun\u00adter2\ufeffpass", // soft hyphen, BOM
		"bad password hunter2\u2060pass\ufe0f", // word joiner, variation selector
		"bad password HUNTER2PASS",             // upper-cased
		"bad password hu\u0301nter2pass",       // a combining accent stacked on a letter
		"bad password hunter2\xffpass",         // a byte that is not UTF-8
		"bad password hunter2pass\u0301",       // a combining mark after the last letter goes with it
		"bad password aHVudGVyMnBhc3M=",        // base64 of the password as it shows, without the ZWSP
	} {
		got := scrub(text, []string{pw})
		if got != "bad password [redacted]" {
			t.Errorf("scrub(%q) = %q", text, got)
		}
	}
}

// A combining mark stacked on the secret's last letter goes with it.
func TestScrubTakesTrailingCombiningMarks(t *testing.T) {
	if got := scrub("pw hunter2pass\u0301 now", []string{"hunter2pass"}); got != "pw [redacted] now" {
		t.Errorf("got %q", got)
	}
}

func TestScrubDropsInvisibleCharacters(t *testing.T) {
	in := "a\x00b\u200bc\u00add\ufeffe\u2060f\ufe0fg\U000e0041h\u202ei\tj\nk\u00a0l\xffm\u3164n\u0080o\u009fp"
	if got := scrub(in, nil); got != "abcdefghijklmnop" {
		t.Fatalf("got %q", got)
	}
}

// Secrets side by side become one "[redacted]": the text does not tell how many there were.
func TestScrubAdjacentSecretsAreOneRun(t *testing.T) {
	if got := scrub("<abcdwxyz>", []string{"abcd", "wxyz"}); got != "<[redacted]>" {
		t.Fatalf("got %q", got)
	}
}

// Occurrences that overlap are all found: "abab" twice in "ababab" leaves nothing of it.
func TestScrubOverlappingOccurrences(t *testing.T) {
	if got := scrub("xx ababab yy", []string{"abab"}); got != "xx [redacted] yy" {
		t.Fatalf("got %q", got)
	}
}

func TestScrubLongerSecretCannotLeakAroundAShorterOne(t *testing.T) {
	// The password is a substring of a header value; both orders of the secret list.
	pw, header := "hunter2pass", "tenant-hunter2pass-tail"
	for _, secrets := range [][]string{{pw, header}, {header, pw}} {
		got := scrub("header was tenant-hunter2pass-tail.", secrets)
		if got != "header was [redacted]." {
			t.Errorf("secrets %q: got %q", secrets, got)
		}
	}
	// Overlapping secrets: neither may survive in part as a longer visible run.
	got := scrub("xx abcdefghijkl yy", []string{"abcdefgh", "efghijkl"})
	if got != "xx [redacted] yy" {
		t.Errorf("overlap: got %q", got)
	}
}

func TestScrubEncodedForms(t *testing.T) {
	const pw = "p@ss w/rd+?&=é"
	forms := map[string]string{
		"query":     url.QueryEscape(pw),
		"path":      url.PathEscape(pw),
		"lower hex": strings.ToLower(url.QueryEscape(pw)),
		"std":       base64.StdEncoding.EncodeToString([]byte(pw)),
		"raw std":   base64.RawStdEncoding.EncodeToString([]byte(pw)),
		"url":       base64.URLEncoding.EncodeToString([]byte(pw)),
		"raw url":   base64.RawURLEncoding.EncodeToString([]byte(pw)),
	}
	for name, f := range forms {
		if got := scrub("echo "+f+" end", []string{pw}); got != "echo [redacted] end" {
			t.Errorf("%s form %q: got %q", name, f, got)
		}
	}
	// Inside a longer base64 value, at each byte offset: no decoding of what is left holds it.
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		for _, prefix := range []string{"u:", "us:", "use:"} {
			basic := enc.EncodeToString([]byte(prefix + pw + "!"))
			got := scrub("Authorization: Basic "+basic, []string{pw})
			if !strings.Contains(got, redacted) || base64Holds(got, pw) {
				t.Errorf("prefix %q: %q -> %q", prefix, basic, got)
			}
		}
	}
}

func TestScrubMinimumSecretLength(t *testing.T) {
	// Three bytes are not scrubbed (every "abc" in a message would go); four are.
	if got := scrub("abc xyz", []string{"abc"}); got != "abc xyz" {
		t.Errorf("3-byte secret: %q", got)
	}
	if got := scrub("abcd xyz", []string{"abcd"}); got != "[redacted] xyz" {
		t.Errorf("4-byte secret: %q", got)
	}
	// The floor counts what is left after dropping invisible characters.
	if got := scrub("abc xyz", []string{"a\u200bb\u200bc"}); got != "abc xyz" {
		t.Errorf("3 visible bytes: %q", got)
	}
}

func TestScrubTruncatesOnARuneBoundary(t *testing.T) {
	for pad := 195; pad <= 200; pad++ {
		s := strings.Repeat("a", pad) + strings.Repeat("é€😀", 10)
		got := scrub(s, nil)
		if !utf8.ValidString(got) || !strings.HasSuffix(got, "…") {
			t.Fatalf("pad %d: invalid or uncut: %q", pad, got)
		}
		cut := strings.TrimSuffix(got, "…")
		if len(cut) > 200 || len(cut) < 197 || !strings.HasPrefix(s, cut) {
			t.Fatalf("pad %d: cut to %d bytes: %q", pad, len(cut), cut)
		}
	}
	// Also where redactions leave the shown text short of the limit, so that it is not cut
	// again: the end of what was read falls on a character boundary.
	const secret = "hunter2-password"
	for pad := range 4 {
		s := strings.Repeat("a", pad) + strings.Repeat(secret, 12) + strings.Repeat("é€😀", 40)
		if got := scrub(s, []string{secret}); !utf8.ValidString(got) || strings.Contains(got, "hunter2") {
			t.Fatalf("pad %d, after redactions: %q", pad, got)
		}
	}
	// Whatever the length, also one that is exactly as long as a read of it.
	for n := 201; n <= 1300; n++ {
		if got := scrub(strings.Repeat("a", n), nil); got != strings.Repeat("a", 200)+"…" {
			t.Fatalf("%d bytes: %q", n, got)
		}
	}
	if got := scrub(strings.Repeat("a", 200), nil); got != strings.Repeat("a", 200) {
		t.Errorf("200 bytes were cut: %q", got)
	}
	if got := scrub(strings.Repeat("a", 201), nil); got != strings.Repeat("a", 200)+"…" {
		t.Errorf("201 bytes: %q", got)
	}
}

// A text that goes on past what is shown ends with "…", wherever a redaction leaves the
// shown part's length: also at exactly maxShown bytes.
func TestScrubSaysWhenItCutsAfterARedaction(t *testing.T) {
	const secret = "hunter2-password"
	five := strings.Repeat(secret+"-", 5) // five redactions shorten what is shown by 30 bytes
	for pad := 0; pad <= 240; pad++ {
		got := scrub(five+strings.Repeat("a", pad)+secret+strings.Repeat("b", 300), []string{secret})
		if !strings.HasSuffix(got, "…") || strings.Contains(got, "hunter2") {
			t.Fatalf("pad %d: %q", pad, got)
		}
	}
}

// base64Holds decodes every run of base64 characters in s at each of the four character
// offsets, in both alphabets, and says whether any decoding contains secret.
func base64Holds(s, secret string) bool {
	isB64 := func(r rune) bool {
		return r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("+/-_", r)
	}
	for _, run := range strings.FieldsFunc(s, func(r rune) bool { return !isB64(r) }) {
		run = strings.NewReplacer("-", "+", "_", "/").Replace(run)
		for off := 0; off < 4 && off < len(run); off++ {
			r := run[off:]
			r = r[:len(r)/4*4]
			b, err := base64.StdEncoding.DecodeString(r)
			if err == nil && strings.Contains(string(b), secret) {
				return true
			}
		}
	}
	return false
}

// A token the client obtained, the one before it, one it was told about after a restart, and
// the one a refresh sends are all scrubbed from upstream errors, even when they are opaque.
func TestOpaqueTokensAreScrubbedFromErrors(t *testing.T) {
	var n atomic.Int32
	var echo atomic.Value
	echo.Store("")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/authenticate" && n.Load() < 2 {
			w.Write([]byte(`{"status":"success","token":"opaque-session-` + string(rune('A'+n.Add(1))) + `"}`))
			return
		}
		w.WriteHeader(401)
		b, _ := json.Marshal(map[string]string{"message": "unknown token " + echo.Load().(string)})
		w.Write(b)
	}))
	defer srv.Close()
	p := plextracAt(t, srv.URL)
	ctx := context.Background()
	first, err := p.Login(ctx)
	if err != nil {
		t.Fatal(err)
	}
	second, err := p.Login(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct{ echo, cur string }{
		{first.Value, second.Value},                          // previous token
		{second.Value, "opaque-other"},                       // current (last obtained) token
		{"opaque-stored-before-restart", "whatever"},         // remembered
		{"opaque-sent-by-refresh", "opaque-sent-by-refresh"}, // only known as the refresh's cur
	}
	for _, tc := range cases {
		if tc.echo == "opaque-stored-before-restart" {
			p.Conn().RememberToken(tc.echo) // the memory now holds it and the second token
		}
		echo.Store(tc.echo)
		for name, call := range map[string]func() error{
			"login":   func() error { _, err := p.Login(ctx); return err },
			"refresh": func() error { _, err := p.Refresh(ctx, &Token{Value: tc.cur}); return err },
		} {
			if name == "login" && tc.cur == tc.echo {
				continue // a login sends no token
			}
			err := call()
			if err == nil || !strings.Contains(err.Error(), "unknown token "+redacted) || strings.Contains(err.Error(), tc.echo) {
				t.Errorf("%s echoing %q: %v", name, tc.echo, err)
			}
		}
	}
}

// The memory keeps two tokens: a third pushes the oldest out, and remembering the current
// one again does not.
func TestTokenMemoryKeepsTheLastTwo(t *testing.T) {
	var m tokenMemory
	for _, v := range []string{"tok-1", "tok-2", "tok-2", ""} {
		m.remember(v)
	}
	if got := m.values(); got[0] != "tok-2" || got[1] != "tok-1" {
		t.Fatalf("got %q", got)
	}
	m.remember("tok-3")
	if got := m.values(); got[0] != "tok-3" || got[1] != "tok-2" {
		t.Fatalf("got %q", got)
	}
}

func TestClientScrubUsesEverySecret(t *testing.T) {
	p, err := newWithBudget(Config{Provider: Generic, URL: "http://127.0.0.1:1", Username: "u", Password: "pw-secret", APIKey: "key-secret",
		Headers: map[string]string{"X-Tenant": "hdr-secret"}, Generic: GenericConfig{LoginPath: "/login"}},
		Deps{Clock: RealClock{}, Limiters: NewLimiters()})
	if err != nil {
		t.Fatal(err)
	}
	c := p.Conn()
	c.RememberToken("tok-secret")
	got := c.Scrub("pw-secret key-secret hdr-secret tok-secret ok")
	if got != strings.Repeat(redacted+" ", 4)+"ok" {
		t.Fatalf("got %q", got)
	}
}

// escapeEveryRune writes s as a JSON encoder that escapes every character would: \uXXXX,
// characters outside the BMP as surrogate pairs.
func escapeEveryRune(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r > 0xffff {
			hi, lo := utf16.EncodeRune(r)
			fmt.Fprintf(&b, `\u%04x\u%04X`, hi, lo)
			continue
		}
		fmt.Fprintf(&b, `\u%04x`, r)
	}
	return b.String()
}

// jsonString is s as Go's encoding/json writes it inside quotes (&, <, > as \u0026 ...).
func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}

// An upstream that echoes the request body in an error escapes the password as JSON or HTML
// does: every such form is scrubbed, nested once too.
func TestScrubEscapedForms(t *testing.T) {
	const pw = `Tr0ub4dor&3 <"é/😀'\>`
	var numeric, hexNumeric strings.Builder
	for _, r := range pw {
		fmt.Fprintf(&numeric, "&#%d;", r)
		fmt.Fprintf(&hexNumeric, "&#x%X;", r)
	}
	var noHTML strings.Builder
	enc := json.NewEncoder(&noHTML)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(pw)
	forms := map[string]string{
		"go json":            jsonString(pw),
		"json without html":  strings.TrimSuffix(noHTML.String()[1:], "\"\n"),
		"json escaped slash": strings.ReplaceAll(jsonString(pw), "/", `\/`),
		"every rune \\u":     escapeEveryRune(pw),
		"non-ascii \\u":      strings.NewReplacer("é", `\u00e9`, "😀", `\ud83d\ude00`).Replace(jsonString(pw)),
		"javascript":         strings.NewReplacer("&", `\x26`, "'", `\'`, `"`, `\"`, `\`, `\\`).Replace(pw),
		"html":               html.EscapeString(pw),
		"html named":         strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&quot;", "'", "&apos;", "é", "&eacute;", "/", "&sol;").Replace(pw),
		"html numeric":       numeric.String(),
		"html hex":           hexNumeric.String(),
		"json in html":       html.EscapeString(jsonString(pw)),
		"json in json":       jsonString(jsonString(pw)),
		"every rune in html": html.EscapeString(escapeEveryRune(pw)),
	}
	for name, f := range forms {
		got := scrub(`{"error":"bad body","password":"`+f+`","n":1}`, []string{pw})
		if got != `{"error":"bad body","password":"[redacted]","n":1}` {
			t.Errorf("%s form %q: got %q", name, f, got)
		}
	}
	// The echo, as an upstream's 400 carries it.
	if got := scrub(`{"password":"Tr0ub4dor\u00263"}`, []string{"Tr0ub4dor&3"}); got != `{"password":"[redacted]"}` {
		t.Errorf("got %q", got)
	}
	// What is not a whole escape stays as written and hides nothing.
	for _, text := range []string{`a\u00zz &#; &#x; &nosuch; &amp \`, `&ampxyz; \u12`} {
		if got := scrub(text, []string{pw}); got != text {
			t.Errorf("scrub(%q) = %q", text, got)
		}
	}
}

// Case folding covers the whole alphabet, A and Z included, and a secret ending in a
// multibyte character is redacted to its last byte.
func TestScrubFoldsEveryLetterAndKeepsMultibyteWhole(t *testing.T) {
	for _, tc := range []struct{ text, secret, want string }{
		{"got azyx-1234 back", "AZYX-1234", "got [redacted] back"},
		{"got AZYX-1234 back", "azyx-1234", "got [redacted] back"},
		{"x pässwörd€ y", "pässwörd€", "x [redacted] y"},
		{"x pässwörd€", "pässwörd€", "x [redacted]"},
	} {
		if got := scrub(tc.text, []string{tc.secret}); got != tc.want {
			t.Errorf("scrub(%q, %q) = %q, want %q", tc.text, tc.secret, got, tc.want)
		}
	}
}
