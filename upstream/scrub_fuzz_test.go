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
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/internal/testclock"
)

// plantServer answers every request with the status, Content-Type and JSON body last set.
type plantServer struct {
	*httptest.Server
	mu     sync.Mutex
	status int
	ctype  string
	body   []byte
}

func newPlantServer(t testing.TB) *plantServer {
	s := &plantServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		st, ct, b := s.status, s.ctype, s.body
		s.mu.Unlock()
		if ct != "" {
			w.Header()["Content-Type"] = []string{ct}
		}
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(st)
		_, _ = w.Write(b)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *plantServer) set(status int, ctype string, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.ctype, s.body = status, ctype, body
}

// oracleVisible is the test's own idea of "what a reader sees": it drops what does not print
// and format characters. It is not the scrubber's code.
func oracleVisible(s string) string {
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(s, "") {
		if unicode.IsPrint(r) && !unicode.Is(unicode.Cf, r) {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// plantForms are the ways an upstream may echo a secret.
var plantForms = []struct {
	name string
	f    func(sec string, at int) string
}{
	{"raw", func(s string, _ int) string { return s }},
	{"zwsp inside", func(s string, at int) string { return insertAt(s, at, "\u200b") }},
	{"nul inside", func(s string, at int) string { return insertAt(s, at, "\x00") }},
	{"soft hyphen and bom", func(s string, at int) string { return insertAt(insertAt(s, at, "\u00ad"), at+1, "\ufeff") }},
	{"query", func(s string, _ int) string { return url.QueryEscape(s) }},
	{"path", func(s string, _ int) string { return url.PathEscape(s) }},
	{"base64 std", func(s string, _ int) string { return base64.StdEncoding.EncodeToString([]byte(s)) }},
	{"base64 raw std", func(s string, _ int) string { return base64.RawStdEncoding.EncodeToString([]byte(s)) }},
	{"base64 url", func(s string, _ int) string { return base64.URLEncoding.EncodeToString([]byte(s)) }},
	{"base64 raw url", func(s string, _ int) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }},
	{"basic auth", func(s string, at int) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("u", at%3)+":"+s))
	}},
	// An echo of the request body, JSON- or HTML-escaped. The forms that escape the first
	// character sit in quotes, as in a JSON document: after a stray backslash in the filler
	// they would not read as escapes to anyone.
	{"json", func(s string, _ int) string { return jsonString(s) }},
	{"json escaped slash", func(s string, _ int) string { return strings.ReplaceAll(jsonString(s), "/", `\/`) }},
	{"json every rune", func(s string, _ int) string { return `"` + escapeEveryRune(s) + `"` }},
	{"html", func(s string, _ int) string { return html.EscapeString(s) }},
	{"html numeric", func(s string, at int) string { return htmlNumeric(s, at%2 == 0) }},
	{"json in html", func(s string, _ int) string { return html.EscapeString(jsonString(s)) }},
}

// htmlNumeric writes every character of s as a numeric character reference.
func htmlNumeric(s string, hex bool) string {
	var b strings.Builder
	for _, r := range s {
		if hex {
			fmt.Fprintf(&b, "&#x%x;", r)
		} else {
			fmt.Fprintf(&b, "&#%d;", r)
		}
	}
	return b.String()
}

// insertAt puts x into s after the rune boundary at or before byte at (mod len(s)).
func insertAt(s string, at int, x string) string {
	if s == "" {
		return x
	}
	at %= len(s)
	for at > 0 && !utf8.RuneStart(s[at]) {
		at--
	}
	return s[:at] + x + s[at:]
}

func withoutMarks(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.In(r, unicode.Mn, unicode.Me) {
			return -1
		}
		return r
	}, s)
}

// pieceLeft returns a piece (5 bytes or more, on character boundaries) of secret that text
// holds and known does not, if any: a secret planted whole must go whole, not leave its edges
// around a shorter secret redacted inside it.
func pieceLeft(text, secret, known string) string {
	for i := range secret {
		j := i + 5
		for j < len(secret) && !utf8.RuneStart(secret[j]) {
			j++
		}
		if j > len(secret) {
			break
		}
		if p := secret[i:j]; strings.Contains(text, p) && !strings.Contains(known, p) {
			return p
		}
	}
	return ""
}

// oracleForms are what must not be seen of a secret: raw (as seen), URL-encoded, base64,
// JSON- and HTML-escaped, of the secret as configured and as seen.
func oracleForms(sec string) []string {
	var out []string
	for _, s := range []string{sec, oracleVisible(sec)} {
		out = append(out, oracleVisible(s), url.QueryEscape(s), url.PathEscape(s),
			base64.StdEncoding.EncodeToString([]byte(s)), base64.RawStdEncoding.EncodeToString([]byte(s)),
			base64.URLEncoding.EncodeToString([]byte(s)), base64.RawURLEncoding.EncodeToString([]byte(s)),
			jsonString(s), strings.ReplaceAll(jsonString(s), "/", `\/`), escapeEveryRune(s),
			html.EscapeString(s), htmlNumeric(s, false), htmlNumeric(s, true))
	}
	return out
}

// FuzzScrubPlantedSecrets plants every secret the plugin holds (password, api_key, TOTP seed,
// header values, one of which holds the password, the current token, which a refresh or
// logout also sends, and the opaque token before it) in an upstream's answers, raw, with
// invisible characters inside, URL-encoded, base64 (alone or inside a Basic value), JSON-
// and HTML-escaped (as Go writes it, \/, every character as \uXXXX or a numeric reference,
// JSON inside HTML), next to multibyte filler at the 200-byte cut; drives every provider's Login, Refresh and Logout
// against it over loopback; and asserts that no form of any secret survives in an error,
// and that error text is valid UTF-8 without invisible characters.
func FuzzScrubPlantedSecrets(f *testing.F) {
	f.Add("hunter\u200b2pass", "", uint8(1), uint16(5*128+0*8+1))           // ZWSP inside the password, planted raw
	f.Add("hunter2pass", " and ", uint8(0), uint16(3*8+0))                  // the header value that holds the password
	f.Add("pässwörd€", strings.Repeat("a", 185)+"é€😀", uint8(2), uint16(0)) // multibyte at the cut
	f.Add("s3cr3t/+?&=", "x", uint8(3), uint16(2048+2))                     // basic auth with the URL-special password
	f.Add("tok", "", uint8(4), uint16(5*8+4))                               // the refresh's current token, query-escaped
	f.Add("abc", "|", uint8(5), uint16(0xffff))                             // everything at once
	f.Add("Tr0ub4dor&3", `\`, uint8(0), uint16(8*2048+3<<3+3))              // the password, Go-JSON-escaped after a backslash
	f.Add("<\"é/😀'\\>", "&amp", uint8(3), uint16(8*2048+3<<3+5))            // every character escaped, after a cut-off entity
	f.Fuzz(func(t *testing.T, pw, filler string, statusPick uint8, layout uint16) {
		if !utf8.ValidString(pw) || !utf8.ValidString(filler) || len(pw) > 64 || len(filler) > 400 {
			t.Skip() // config values arrive as JSON strings; long ones add nothing
		}
		password := "pw-" + pw
		cur := "opaque.cur/" + pw + "+tok"
		secrets := map[string]string{
			"password":                 password,
			"api_key":                  "ak9-Zx7/Q+e=",
			"totp seed":                "JBSWY3DPEHPK3PXP",
			"header with the password": "tenant-" + password + "-tail",
			"header with invisibles":   "hdr\u200b-valüe-\u00adΩ",
			"current token":            cur,
			"previous token":           "opaque-prev-9q/Z",
		}
		order := []string{"password", "api_key", "totp seed", "header with the password", "header with invisibles",
			"current token", "previous token"}
		var planted, whole string // whole: the secret planted raw, of which no piece may be left
		if layout == 0xffff {
			var parts []string
			for _, name := range order {
				for i, pf := range plantForms {
					parts = append(parts, pf.f(secrets[name], i))
				}
			}
			planted = strings.Join(parts, filler)
		} else {
			name := order[int(layout>>3)%len(order)]
			pf := plantForms[int(layout&7+layout>>11)%len(plantForms)]
			planted = filler + pf.f(secrets[name], int(layout>>7)) + filler
			if strings.Contains(oracleVisible(planted), oracleVisible(secrets[name])) {
				whole = oracleVisible(secrets[name])
			}
		}
		status := []int{400, 401, 403, 404, 429, 500, 503, 200}[statusPick%8]
		srv := newPlantServer(t)

		for _, name := range Providers {
			for _, op := range []string{OpLogin, OpRefresh, OpLogout} {
				run := func(msg, ctype string) error {
					body, _ := json.Marshal(map[string]any{"message": msg, "error": msg, "success": false})
					if ctype != "" {
						body = []byte("<html>" + msg)
					}
					srv.set(status, ctype, body)
					p, err := newWithBudget(Config{Provider: name, URL: srv.URL, Username: "u", Email: "e", Password: password,
						APIKey: secrets["api_key"], TOTPSecret: secrets["totp seed"], OrgID: 1, MaxAuthPerMinute: 600,
						RequestTimeout: 2 * time.Second,
						Headers:        map[string]string{"X-Tenant": secrets["header with the password"], "X-Other": secrets["header with invisibles"]},
						Generic:        GenericConfig{LoginPath: "/login", RefreshPath: "/refresh", LogoutPath: "/logout"}},
						Deps{Clock: testclock.At(time.Now()), Limiters: NewLimiters()}) // Sleep advances it: an MFA login's wait for its first TOTP step takes no real time
					if err != nil && strings.HasPrefix(err.Error(), "headers:") {
						return nil // such a header value is refused at config write, and by New
					}
					if err != nil {
						t.Fatal(err)
					}
					defer p.Conn().Close()
					p.Conn().RememberToken(secrets["previous token"])
					p.Conn().RememberToken(cur) // obtained by the last login, or loaded from storage
					ctx := context.Background()
					switch op {
					case OpLogin:
						_, err = p.Login(ctx)
					case OpRefresh:
						_, err = p.Refresh(ctx, &Token{Value: cur, IssuedAt: time.Now(), ExpiresAt: time.Now().Add(time.Minute)})
					default:
						err = p.Logout(ctx, cur)
					}
					return err
				}
				for _, ctype := range []string{"", "text/html; " + planted} {
					if ctype != "" && status != 200 {
						continue // the Content-Type is quoted only with a 2xx body that is not JSON
					}
					baseErr := run("nothing to see", strings.Replace(ctype, planted, "x", 1))
					err := run(planted, ctype)
					if err == nil {
						continue
					}
					text := err.Error()
					if !utf8.ValidString(text) || oracleVisible(text) != text {
						t.Fatalf("%s %s: error text is not clean UTF-8: %q", name, op, text)
					}
					base := ""
					if baseErr != nil {
						base = oracleVisible(baseErr.Error())
					}
					for sname, sec := range secrets {
						if len(withoutMarks(oracleVisible(sec))) < 4 {
							continue // documented: secrets under 4 visible bytes are not scrubbed
						}
						for _, form := range oracleForms(sec) {
							if len(oracleVisible(form)) < 4 || strings.Contains(base, form) {
								continue // too short to pin, or the message says it whatever the upstream does
							}
							if strings.Contains(text, form) {
								t.Fatalf("%s %s (HTTP %d): the %s survives as %q in: %s", name, op, status, sname, form, text)
							}
						}
						if piece := pieceLeft(text, whole, base+filler+"[redacted][token]"); piece != "" {
							t.Fatalf("%s %s (HTTP %d): %q of the planted %s is left in: %s", name, op, status, piece, sname, text)
						}
						if base64Holds(text, oracleVisible(sec)) && !base64Holds(base, oracleVisible(sec)) {
							t.Fatalf("%s %s (HTTP %d): the %s survives inside base64 in: %s", name, op, status, sname, text)
						}
					}
				}
			}
		}
	})
}
