package upstream

import (
	"html"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// maxEscapeLen is the longest escape unescape reads: a named HTML entity of 32 letters with
// its & and ; (a JSON surrogate pair is 12, a numeric entity at most 12).
const maxEscapeLen = 34

// unescape undoes one round of JSON (and JavaScript) string escaping and of HTML character
// references in s, in one pass, so that a secret an upstream echoes escaped reads as itself.
// at[i] is the offset in s of the escape (or plain character) that output byte i came from;
// each escape is read exactly, so that the bytes of a match map back to whole escapes.
// changed says whether anything was unescaped. What is not a complete escape is kept as written.
func unescape(s string) (out string, at []int32, changed bool) {
	if !strings.ContainsAny(s, `\&`) {
		return s, nil, false
	}
	var b strings.Builder
	b.Grow(len(s))
	at = make([]int32, 0, len(s))
	for i := 0; i < len(s); {
		var dec string
		n := 0
		switch s[i] {
		case '\\':
			dec, n = jsonEscape(s[i:])
		case '&':
			dec, n = htmlReference(s[i:])
		}
		if n == 0 { // a plain character
			_, n = utf8.DecodeRuneInString(s[i:])
			dec = s[i : i+n]
		} else {
			changed = true
		}
		b.WriteString(dec)
		for range len(dec) {
			at = append(at, int32(i))
		}
		i += n
	}
	return b.String(), at, changed
}

// jsonEscape reads the escape at the start of s: JSON's (\" \\ \/ \b \f \n \r \t \uXXXX,
// surrogate pairs joined, a lone surrogate as U+FFFD) and JavaScript's \' and \xHH. It returns
// what the escape stands for and its length, or 0 if s does not start with one.
func jsonEscape(s string) (string, int) {
	if len(s) < 2 {
		return "", 0
	}
	switch s[1] {
	case '"', '\\', '/', '\'':
		return s[1:2], 2
	case 'b':
		return "\b", 2
	case 'f':
		return "\f", 2
	case 'n':
		return "\n", 2
	case 'r':
		return "\r", 2
	case 't':
		return "\t", 2
	case 'x':
		if v, ok := hexValue(s, 2, 2); ok {
			return string(rune(v)), 4
		}
	case 'u':
		v, ok := hexValue(s, 2, 4)
		if !ok {
			return "", 0
		}
		r := rune(v)
		if utf16.IsSurrogate(r) {
			if len(s) >= 12 && s[6] == '\\' && s[7] == 'u' {
				if lo, ok := hexValue(s, 8, 4); ok {
					if pair := utf16.DecodeRune(r, rune(lo)); pair != utf8.RuneError {
						return string(pair), 12
					}
				}
			}
			return string(utf8.RuneError), 6
		}
		return string(r), 6
	}
	return "", 0
}

// hexValue parses the n hex digits at s[from:].
func hexValue(s string, from, n int) (uint64, bool) {
	if len(s) < from+n {
		return 0, false
	}
	v, err := strconv.ParseUint(s[from:from+n], 16, 32)
	return v, err == nil
}

// htmlReference reads the character reference at the start of s: numeric (&#DDD; or &#xHH;,
// up to 8 digits, the ; optional as browsers read it) or named with its ; (&amp; &quot;
// &eacute; ...). html.UnescapeString decodes exactly the text read, so the length is exact.
// It returns what the reference stands for and its length, or 0 if s does not start with one.
func htmlReference(s string) (string, int) {
	if len(s) < 3 {
		return "", 0
	}
	n := 1
	if s[1] == '#' {
		n = 2
		digit := func(c byte) bool { return '0' <= c && c <= '9' }
		if s[2] == 'x' || s[2] == 'X' {
			n = 3
			digit = func(c byte) bool {
				return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
			}
		}
		from := n
		for n < len(s) && n-from < 8 && digit(s[n]) {
			n++
		}
		if n == from {
			return "", 0
		}
		if n < len(s) && s[n] == ';' {
			n++
		}
	} else {
		for n < len(s) && n <= 32 && isAlnum(s[n]) {
			n++
		}
		if n == 1 || n >= len(s) || s[n] != ';' {
			return "", 0
		}
		n++
	}
	ref := s[:n]
	dec := html.UnescapeString(ref)
	// A name that is not an entity reads as written, or as a shorter legacy entity followed
	// by the rest of the name and the ;, which is three characters or more: neither is taken.
	if dec == ref || s[1] != '#' && utf8.RuneCountInString(dec) > 2 {
		return "", 0
	}
	return dec, n
}

func isAlnum(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}
