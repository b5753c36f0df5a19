package upstream

import (
	"encoding/base64"
	"encoding/json"
	"html"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// What the scrubber promises: whatever an upstream says back, the text the plugin shows
// (errors, and through them status.last_error and logs) holds none of the secrets it is given
// (configured credentials, header values, the tokens the client obtained or was told about,
// the MFA values a call sends), neither raw nor in the encoded forms an upstream plausibly
// echoes:
//
//   - raw, compared after dropping invisible characters (see visible) and combining marks,
//     ASCII case ignored, so "pa\u200bss" or "PASS" does not slip past a secret "pass";
//   - URL-encoded (url.QueryEscape, url.PathEscape; hex digits in either case);
//   - base64 in the standard and URL alphabets, padded or not, also where the secret sits
//     at any byte offset inside a longer encoded value (e.g. Basic user:password);
//   - JSON-escaped (as Go writes it, \u0026 \u003c \u003e included, and as other encoders
//     do: \/, \uXXXX for any character, surrogate pairs) and HTML-escaped (named and numeric
//     entities), also nested once (JSON inside HTML, JSON inside JSON): the text is looked at
//     as written and with one and two rounds of unescaping (see unescape), each mapped back
//     to the bytes it came from.
//
// Every occurrence of every form is marked first and each marked run is replaced by one
// "[redacted]", so a secret that is a substring of another secret (a password inside a header
// value) or overlaps it cannot leave part of the longer one visible, whichever order they come in.
//
// The work is bounded by the shown length, not the message: only the first maxShown bytes
// plus the longest form (keep) can be shown, so only what could overlap them is searched.
// Cutting first would leak the part of a secret that straddles the cut.
//
// Secrets shorter than minScrubLen bytes (after dropping invisible characters) are not
// scrubbed: redacting every "a" or "ab" would make every message unreadable, and a value that
// short gives no protection anyway. Config validation is where to refuse such secrets.
const (
	minScrubLen = 4
	maxShown    = 200 // bytes of upstream text shown, cut on a character boundary
	redacted    = "[redacted]"
	unescapes   = 2 // rounds of unescaping looked at, besides the text as written
	// View bytes that must follow the searched window before a prefix of the text is trusted
	// to read like the whole: an escape cut at the prefix's end changes at most the last
	// maxEscapeLen bytes of each round's output.
	cutMargin = 2*unescapes*maxEscapeLen + 32
)

var jwtLike = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{4,}(\.[A-Za-z0-9_-]*){0,2}`)

const jwtSeen = len("eyJ") + 4 // the shortest text jwtLike matches

// scrub makes upstream text safe to show: invisible characters dropped first, then every form
// of every secret and anything JWT-shaped replaced, then the length capped on a rune boundary.
// The result is valid UTF-8. It reads a prefix of s long enough for the shown part, doubling
// it while escapes or dropped characters leave the views of the text short of the window: its
// cost follows what is shown and the secrets, not the length of s (text that is mostly
// invisible characters or escapes is read further, in linear time; the search for the forms
// stays within the window).
func scrub(s string, secrets []string) string {
	forms := secretForms(secrets)
	longest := 0
	for _, f := range forms {
		longest = max(longest, len(f))
	}
	keep := maxShown + longest + jwtSeen // a JWT must show jwtSeen bytes to be recognized
	for n := 2*keep + cutMargin; ; n *= 2 {
		prefix, whole := runePrefix(s, n)
		if out, ok := scrubPrefix(prefix, whole, forms, keep, longest); ok {
			return out
		}
	}
}

// scrubPrefix scrubs prefix, the start of the text (all of it when whole), showing at most
// its first keep visible bytes. It says false when prefix is too short to tell.
func scrubPrefix(prefix string, whole bool, forms []string, keep, longest int) (string, bool) {
	vis := visible(prefix)
	if keep >= len(vis) {
		keep = len(vis)
	}
	for keep > 0 && keep < len(vis) && !utf8.RuneStart(vis[keep]) {
		keep--
	}
	var spans []span
	for _, v := range views(vis) {
		// An occurrence that overlaps vis[:keep] starts before view byte q and ends before
		// q+len(form): that window of the view is all that is searched.
		q := sort.Search(len(v.at), func(i int) bool { return int(v.at[i]) >= keep })
		if !whole && len(v.text) < q+longest+cutMargin {
			return "", false
		}
		for _, f := range forms {
			spans = v.find(f, min(len(v.text), q+len(f)), len(vis), spans)
		}
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].from < spans[j].from })
	var b strings.Builder
	last := 0
	for i := 0; i < len(spans) && spans[i].from < keep; {
		from, to := spans[i].from, spans[i].to
		for i++; i < len(spans) && spans[i].from <= to; i++ {
			to = max(to, spans[i].to)
		}
		b.WriteString(vis[last:from])
		b.WriteString(redacted)
		last = to
	}
	if last < keep {
		b.WriteString(vis[last:keep])
		last = keep
	}
	out := jwtLike.ReplaceAllString(b.String(), "[token]")
	if (last < len(vis) || !whole) && len(out) <= maxShown {
		return out + "…", true // cut after a long redacted run: say so
	}
	return truncateUTF8(out, maxShown), true
}

// runePrefix returns s cut to at most n bytes, backing off to a character start, and whether
// that is all of s.
func runePrefix(s string, n int) (string, bool) {
	if n >= len(s) {
		return s, true
	}
	for i := 0; i < utf8.UTFMax && n > 0 && !utf8.RuneStart(s[n]); i++ {
		n--
	}
	return s[:n], false
}

// invisible says whether r is dropped from shown text: anything not printable (control
// characters, line breaks, non-ASCII spaces), format characters (zero-width space and joiners,
// soft hyphen, BOM, bidi controls, tag characters), variation selectors and the other
// default-ignorable code points, which render as nothing. Bytes that are not UTF-8 arrive as
// utf8.RuneError and are dropped too.
func invisible(r rune) bool {
	if r < utf8.RuneSelf {
		return r < 0x20 || r == 0x7f // ASCII: only the controls, without the Unicode tables
	}
	return r == utf8.RuneError || !unicode.IsPrint(r) || unicode.Is(unicode.Cf, r) ||
		unicode.Is(unicode.Variation_Selector, r) || unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r)
}

// visible drops the invisible characters from s.
func visible(s string) string {
	return strings.Map(func(r rune) rune {
		if invisible(r) {
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, string(utf8.RuneError)))
}

// foldView is the form in which secrets are looked for: visible text without combining marks
// (which may be stacked on a secret's letters to break a plain match), ASCII letters lower
// case. at[i] is the offset in s of the byte that view byte i came from.
func foldView(s string) (view string, at []int32) {
	return foldWith(s, make([]int32, 0, len(s)))
}

// fold is foldView without the offsets, for secrets.
func fold(s string) string {
	v, _ := foldWith(s, nil)
	return v
}

// foldWith folds s, appending offsets to at unless it is nil. ASCII, most of any text and
// all of the encoded forms, takes a path that needs no Unicode tables.
func foldWith(s string, at []int32) (string, []int32) {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != 0x7f { // printable ASCII; the rest is invisible
				if 'A' <= c && c <= 'Z' {
					c += 'a' - 'A'
				}
				b.WriteByte(c)
				if at != nil {
					at = append(at, int32(i))
				}
			}
			i++
			continue
		}
		r, w := utf8.DecodeRuneInString(s[i:])
		if !unicode.In(r, unicode.Mn, unicode.Me) && !invisible(r) {
			b.WriteString(s[i : i+w]) // valid UTF-8, not ASCII: written as it is
			for range w {             // matches start and end on rune starts: only those are looked up
				if at != nil {
					at = append(at, int32(i))
				}
			}
		}
		i += w
	}
	return b.String(), at
}

// view is the visible text as written, or unescaped, folded; at maps its bytes to the
// visible text.
type view struct {
	text string
	at   []int32
}

type span struct{ from, to int } // in the visible text

// views returns vis folded as written, then after each round of unescaping that changes it.
func views(vis string) []view {
	text, at := foldView(vis)
	out := []view{{text, at}}
	cur, curAt := vis, []int32(nil) // curAt nil: cur is vis itself
	for range unescapes {
		next, nextAt, changed := unescape(cur)
		if !changed {
			break
		}
		if curAt != nil {
			for i, o := range nextAt {
				nextAt[i] = curAt[o]
			}
		}
		cur, curAt = next, nextAt
		text, at := foldView(cur)
		for i, o := range at {
			at[i] = curAt[o]
		}
		out = append(out, view{text, at})
	}
	return out
}

// find appends the spans of the occurrences of f in v.text[:limit]; visLen is the length of
// the visible text, where a match that ends the view ends.
func (v view) find(f string, limit, visLen int, spans []span) []span {
	for off := 0; off < limit; {
		i := strings.Index(v.text[off:limit], f)
		if i < 0 {
			break
		}
		i += off
		end := visLen // through the combining marks that follow the last byte, if any
		if j := i + len(f); j < len(v.text) {
			end = int(v.at[j])
		}
		spans = append(spans, span{int(v.at[i]), end})
		_, w := utf8.DecodeRuneInString(v.text[i:])
		off = i + w // overlapping occurrences too
	}
	return spans
}

// secretForms returns the folded forms to look for, without duplicates. Their order does not
// matter: every occurrence of every form is marked before anything is replaced, which is what
// "replace the longer secret first" is for, and also covers secrets that only overlap. The
// JSON and HTML forms are also found by unescaping the text; they are kept as forms so that a
// stray backslash or ampersand just before the echo cannot shift the unescaping off them.
func secretForms(secrets []string) []string {
	seen := map[string]bool{}
	var out []string
	add := func(f string) {
		f = fold(f)
		if len(f) >= minScrubLen && !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	for _, sec := range secrets {
		if len(fold(sec)) < minScrubLen {
			continue
		}
		variants := []string{sec}
		if v := visible(sec); v != sec {
			variants = append(variants, v)
		}
		for _, s := range variants {
			add(s)
			add(url.QueryEscape(s))
			add(url.PathEscape(s))
			if j, err := json.Marshal(s); err == nil {
				add(string(j[1 : len(j)-1]))
			}
			add(html.EscapeString(s))
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
				add(enc.EncodeToString([]byte(s)))
			}
			// Inside a longer encoded value the secret starts at byte offset k (mod 3): the
			// characters whose bits all come from the secret are the same whatever surrounds it.
			for k := range 3 {
				enc := base64.RawStdEncoding.EncodeToString(append(make([]byte, k), s...))
				from, to := (8*k+5)/6, 8*(k+len(s))/6
				add(enc[from:to])
				add(strings.NewReplacer("+", "-", "/", "_").Replace(enc[from:to]))
			}
		}
	}
	return out
}

// truncateUTF8 cuts s to at most n bytes without splitting a character, marking the cut.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
