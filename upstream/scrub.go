package upstream

import (
	"encoding/base64"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"
)

// What the scrubber promises: whatever an upstream says back, the text the plugin shows
// (errors, and through them status.last_error and logs) holds none of the secrets it is given
// (configured credentials, header values, the tokens the client obtained or was told about),
// neither raw nor in the encoded forms an upstream plausibly echoes:
//
//   - raw, compared after dropping invisible characters (see visible) and combining marks,
//     ASCII case ignored, so "pa\u200bss" or "PASS" does not slip past a secret "pass";
//   - URL-encoded (url.QueryEscape, url.PathEscape; hex digits in either case);
//   - base64 in the standard and URL alphabets, padded or not, also where the secret sits
//     at any byte offset inside a longer encoded value (e.g. Basic user:password).
//
// Every occurrence of every form is marked first and each marked run is replaced by one
// "[redacted]", so a secret that is a substring of another secret (a password inside a header
// value) or overlaps it cannot leave part of the longer one visible, whichever order they come in.
//
// Secrets shorter than minScrubLen bytes (after dropping invisible characters) are not
// scrubbed: redacting every "a" or "ab" would make every message unreadable, and a value that
// short gives no protection anyway. Config validation is where to refuse such secrets.
const (
	minScrubLen = 4
	maxShown    = 200 // bytes of upstream text shown, cut on a character boundary
	redacted    = "[redacted]"
)

var jwtLike = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{4,}(\.[A-Za-z0-9_-]*){0,2}`)

// scrub makes upstream text safe to show: invisible characters dropped first, then every form
// of every secret and anything JWT-shaped replaced, then the length capped on a rune boundary.
// The result is valid UTF-8.
func scrub(s string, secrets []string) string {
	s = visible(s)
	s = redact(s, secretForms(secrets))
	s = jwtLike.ReplaceAllString(s, "[token]")
	return truncateUTF8(s, maxShown)
}

// invisible says whether r is dropped from shown text: anything not printable (control
// characters, line breaks, non-ASCII spaces), format characters (zero-width space and joiners,
// soft hyphen, BOM, bidi controls, tag characters), variation selectors and the other
// default-ignorable code points, which render as nothing. Bytes that are not UTF-8 arrive as
// utf8.RuneError and are dropped too.
func invisible(r rune) bool {
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
// case. at[i] is the offset in the visible text of the byte that view byte i came from.
func foldView(s string) (view string, at []int32) {
	var b strings.Builder
	b.Grow(len(s))
	at = make([]int32, 0, len(s))
	for i, r := range s {
		if unicode.In(r, unicode.Mn, unicode.Me) || invisible(r) {
			continue
		}
		if 'A' <= r && r <= 'Z' {
			r += 'a' - 'A'
		}
		n := b.Len()
		b.WriteRune(r)
		for range b.Len() - n { // matches start and end on rune starts: only those are looked up
			at = append(at, int32(i))
		}
	}
	return b.String(), at
}

// fold is foldView without the offsets, for secrets.
func fold(s string) string {
	v, _ := foldView(s)
	return v
}

// secretForms returns the folded forms to look for, without duplicates. Their order does not
// matter: redact marks every occurrence of every form before replacing anything, which is what
// "replace the longer secret first" is for, and also covers secrets that only overlap.
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
		for _, s := range []string{sec, visible(sec)} {
			add(s)
			add(url.QueryEscape(s))
			add(url.PathEscape(s))
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

// redact replaces every occurrence of any of forms (folded, see secretForms) in the visible
// text s. Occurrences may overlap; each run of marked bytes becomes one "[redacted]".
func redact(s string, forms []string) string {
	if len(forms) == 0 || s == "" {
		return s
	}
	view, at := foldView(s)
	type span struct{ from, to int } // in s
	var spans []span
	for _, f := range forms {
		for off := 0; ; {
			i := strings.Index(view[off:], f)
			if i < 0 {
				break
			}
			i += off
			end := len(s) // through the combining marks that follow the last byte, if any
			if j := i + len(f); j < len(view) {
				end = int(at[j])
			}
			spans = append(spans, span{int(at[i]), end})
			_, w := utf8.DecodeRuneInString(view[i:])
			off = i + w // overlapping occurrences too
		}
	}
	if len(spans) == 0 {
		return s
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].from < spans[j].from })
	var b strings.Builder
	last := 0
	for i := 0; i < len(spans); {
		from, to := spans[i].from, spans[i].to
		for i++; i < len(spans) && spans[i].from <= to; i++ {
			to = max(to, spans[i].to)
		}
		b.WriteString(s[last:from])
		b.WriteString(redacted)
		last = to
	}
	b.WriteString(s[last:])
	return b.String()
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
