package upstream

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/internal/testclock"
)

// The ways servers and frameworks echo what they were sent. Each is applied to the secret
// once or twice (see planted); none of them is known to the code under test.
var echoForms = []struct {
	name string
	f    func(string) string
}{
	{"raw", func(s string) string { return s }},
	{"go query", url.QueryEscape},
	{"go path", url.PathEscape},
	{"encodeURIComponent", func(s string) string { return percent(s, "-_.!~*'()", false) }},
	{"form, space as +", func(s string) string { return strings.ReplaceAll(percent(s, "-_.* ", false), " ", "+") }},
	{"python quote", func(s string) string { return percent(s, "-_.~/", false) }},
	{"every byte, lower hex", func(s string) string { return percent(s, "", true) }},
	{"base64", func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }},
	{"base64url", func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }},
	{"hex", func(s string) string { return hex.EncodeToString([]byte(s)) }},
	{"HEX", func(s string) string { return strings.ToUpper(hex.EncodeToString([]byte(s))) }},
	{"json", func(s string) string { b, _ := json.Marshal(s); return string(b) }},
	{"json \\u every rune", func(s string) string {
		var b strings.Builder
		for _, r := range s {
			fmt.Fprintf(&b, `\u%04x`, r)
		}
		return b.String()
	}},
	{"html", html.EscapeString},
	{"html numeric", func(s string) string {
		var b strings.Builder
		for _, r := range s {
			fmt.Fprintf(&b, "&#%d;", r)
		}
		return b.String()
	}},
	{"html hex", func(s string) string {
		var b strings.Builder
		for _, r := range s {
			fmt.Fprintf(&b, "&#X%X;", r)
		}
		return b.String()
	}},
	{"upper", strings.ToUpper},
	{"lower", strings.ToLower},
	{"basic auth", func(s string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte("svc:"+s)) }},
	{"zero-width space inside", func(s string) string { return s[:len(s)/2] + "\u200b" + s[len(s)/2:] }},
}

// percent escapes every byte of s but ASCII letters, digits and keep, in upper-case hex
// (lower-case when lower).
func percent(s, keep string, lower bool) string {
	var b strings.Builder
	for i := range len(s) {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(keep, c) >= 0 && keep != "" {
			b.WriteByte(c)
		} else if lower {
			fmt.Fprintf(&b, "%%%02x", c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// around are the texts a secret is planted in: the issue's, the known refusals (so that the
// whole is not one), the keywords.
var around = [][2]string{
	{"invalid credentials: username=svc&password=", ""},
	{"Invalid username or password ", ""},
	{"", " Invalid API key or username."},
	{"account locked for ", "; too many attempts, MFA code expired"},
	{`{"code":"`, `","token":"081804"}`},
	{"WWW-Authenticate: Basic ", ""},
	{"", ""},
}

// planted is the secret under chain (form indexes, applied in order) in the text around[at].
func planted(secret string, at int, chain []int) (text, form string) {
	form = secret
	for _, i := range chain {
		form = echoForms[i].f(form)
	}
	a := around[at]
	return a[0] + form + a[1], form
}

// shownIsDrawnFromTheLists fails unless out is one of what Shown may say of a message: nothing,
// a known message, or the withheld words with keyword labels in their order.
func shownIsDrawnFromTheLists(t testing.TB, out string) {
	t.Helper()
	if out == "" || strings.HasPrefix(out, "upstream says ") && slices.Contains(knownMessages, strings.Trim(out[len("upstream says "):], `"`)) {
		return
	}
	rest, ok := strings.CutPrefix(out, "its message is withheld")
	if !ok {
		t.Fatalf("not the plugin's words: %q", out)
	}
	if rest == "" {
		return
	}
	labels, ok := strings.CutPrefix(rest, "; it mentions: ")
	next := 0
	for _, l := range strings.Split(labels, ", ") {
		i := slices.IndexFunc(keywords[next:], func(k struct {
			label string
			stems []string
		}) bool {
			return k.label == l
		})
		if !ok || i < 0 {
			t.Fatalf("not the plugin's words: %q", out)
		}
		next += i + 1
	}
}

// pluginWords is all the fixed text Shown says, lower case.
func pluginWords() string {
	words := []string{"upstream says", "its message is withheld; it mentions: ", "a content-type the plugin does not name"}
	for _, k := range keywords {
		words = append(words, k.label)
	}
	return strings.ToLower(strings.Join(slices.Concat(words, knownMessages, knownMediaTypes), "\n"))
}

// checkPlanted checks what Shown says of text, as a message and as a media type: no trace of
// secret or of its planted form, and only the plugin's words and the closed lists.
func checkPlanted(t testing.TB, secret, form, text string) {
	t.Helper()
	for _, out := range []string{Shown(message(text)), Shown(mediaType(text)), Shown(mediaType("text/html; q=" + text))} {
		if strings.Contains(strings.ToLower(out), strings.ToLower(secret)) || strings.Contains(out, form) {
			t.Fatalf("%q shows the secret %q or its form %q: %q", text, secret, form, out)
		}
	}
	shownIsDrawnFromTheLists(t, Shown(message(text)))
	if mt := Shown(mediaType(text)); mt != "a Content-Type the plugin does not name" && !slices.Contains(knownMediaTypes, mt) {
		t.Fatalf("not the plugin's words for a media type: %q", mt)
	}
}

// randomSecret is 10 to 24 bytes of printable ASCII.
func randomSecret(r *rand.Rand) string {
	const chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!@#$%^&*()-_=+[]{};:'\",.<>/?`~| "
	b := make([]byte, 10+r.IntN(15))
	for i := range b {
		b[i] = chars[r.IntN(len(chars))]
	}
	return string(b)
}

// The property the allowlist holds: a random secret planted in a random message under a random
// chain of one or two echo forms is never shown in any form, and what is shown comes only from
// the closed lists and the plugin's own words. Fixed inputs (a seeded generator), a fixed
// count, no deadline. Every 100th case also goes through every provider's login, refresh and
// logout over loopback, as the message, error and Plaspy's error of an answer and as its
// Content-Type, where the error must be the one an unknown message without the secret gives.
func TestShownPlantedSecrets(t *testing.T) {
	r := rand.New(rand.NewPCG(26, 2026))
	srv := newPlantServer(t)
	for n := range 3000 {
		secret := randomSecret(r)
		chain := []int{r.IntN(len(echoForms))}
		if r.IntN(2) == 0 {
			chain = append(chain, r.IntN(len(echoForms)))
		}
		text, form := planted(secret, r.IntN(len(around)), chain)
		checkPlanted(t, secret, form, text)
		if n%100 == 0 {
			checkThroughProviders(t, srv, secret, form, text, []int{400, 401, 403, 429, 500, 200}[n/100%6])
		}
	}
}

// FuzzShownPlantedSecrets is TestShownPlantedSecrets's check for any secret, text around it
// and chain of echo forms.
func FuzzShownPlantedSecrets(f *testing.F) {
	f.Add("P@ssw0rd!2024", uint8(0), uint16(3))                // the encodeURIComponent echo
	f.Add("pa ss~word", uint8(0), uint16(4))                   // form encoding
	f.Add("s3cret/key value", uint8(0), uint16(5))             // Python's quote
	f.Add("jbsw y3dp ehpk 3pxp", uint8(6), uint16(16))         // a seed as apps show it, echoed upper case
	f.Add("Tr0ub4dor&3", uint8(4), uint16(11|13<<5|1<<10))     // JSON inside HTML
	f.Add("Invalid username or password", uint8(6), uint16(0)) // a secret that is a known message
	f.Fuzz(func(t *testing.T, secret string, at uint8, chain uint16) {
		if len(secret) < 8 || len(secret) > 64 || strings.ContainsFunc(secret, func(r rune) bool { return r < 0x20 || r > 0x7e }) ||
			strings.Contains(pluginWords(), strings.ToLower(secret)) {
			t.Skip() // config secrets are printable; one that is a word of the plugin's is shown as that word
		}
		forms := []int{int(chain&31) % len(echoForms)}
		if chain&(1<<10) != 0 {
			forms = append(forms, int(chain>>5&31)%len(echoForms))
		}
		text, form := planted(secret, int(at)%len(around), forms)
		if slices.Contains(knownMessages, text) {
			t.Skip() // a secret that is a published refusal is shown as that refusal, with or without it
		}
		checkPlanted(t, secret, form, text)
	})
}

// plantServer answers every request with the status, Content-Type and body last set.
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

// checkThroughProviders answers every provider's calls with text planted in an answer, and
// compares each error with the one the same answer gives with a message the plugin does not
// know and that holds no secret: they may differ only in the keywords named.
func checkThroughProviders(t *testing.T, srv *plantServer, secret, form, text string, status int) {
	t.Helper()
	dropMentions := func(s string) string {
		if i := strings.Index(s, "; it mentions: "); i >= 0 {
			j := strings.Index(s[i+2:], "; ")
			if j < 0 {
				return s[:i]
			}
			return s[:i] + s[i+2+j:]
		}
		return s
	}
	for _, name := range Names() {
		for _, op := range []string{OpLogin, OpRefresh, OpLogout} {
			for _, asCtype := range []bool{false, true} {
				run := func(msg string) string {
					body, _ := json.Marshal(map[string]any{"message": msg, "error": msg, "success": false})
					ctype := ""
					if asCtype {
						body, ctype = []byte("<html>"), msg
					}
					srv.mu.Lock()
					srv.status, srv.ctype, srv.body = status, ctype, body
					srv.mu.Unlock()
					clock := testclock.At(time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC))
					p, err := newWithBudget(Config{Provider: name, URL: srv.URL, Username: "svc", Email: "svc@acme.com", Password: secret,
						APIKey: secret, OrgID: 1, MaxAuthPerMinute: 600, RequestTimeout: 2 * time.Second,
						Generic: GenericConfig{LoginPath: "/login", RefreshPath: "/refresh", LogoutPath: "/logout"}},
						Deps{Clock: clock, Limiters: NewLimiters(), TOTPSteps: NewTOTPSteps()})
					if err != nil {
						t.Fatal(err)
					}
					defer p.Close()
					switch op {
					case OpLogin:
						_, err = p.Login(context.Background())
					case OpRefresh:
						_, err = p.Refresh(context.Background(), &Token{Value: secret, IssuedAt: clock.Now(), ExpiresAt: clock.Now().Add(time.Minute)})
					default:
						err = p.Logout(context.Background(), secret)
					}
					if err == nil {
						return ""
					}
					return err.Error()
				}
				got, base := run(text), run("x")
				if strings.Contains(strings.ToLower(got), strings.ToLower(secret)) || strings.Contains(got, form) {
					t.Fatalf("%s %s (HTTP %d): the secret or its form %q is shown: %s", name, op, status, form, got)
				}
				if dropMentions(got) != base {
					t.Fatalf("%s %s (HTTP %d): %q\nis not the error an unknown message gives:\n%q", name, op, status, got, base)
				}
			}
		}
	}
}
