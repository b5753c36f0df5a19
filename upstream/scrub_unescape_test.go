package upstream

import "testing"

// An escape that ends the text is read like one anywhere else: an upstream's message that
// ends in the middle of an echoed secret still unescapes to the secret's bytes.
func TestUnescapeReadsAnEscapeThatEndsTheText(t *testing.T) {
	for in, want := range map[string]string{
		`pass\"`:           `pass"`, // a two-byte escape
		`pass\x41`:         "passA", // \xHH
		`pass\u00e9`:       "passé", // \uXXXX
		`pass\ud83d\ude00`: "pass😀", // a surrogate pair
		`pass&#65`:         "passA", // a numeric reference without its ;
	} {
		if got, _, changed := unescape(in); got != want || !changed {
			t.Errorf("unescape(%q) = %q (changed %v), want %q", in, got, changed, want)
		}
	}
}

// HTML references are read as a browser reads them, within the bounds the scrubber's cut
// margin counts on: &#x and &#X, hex digits in either case, decimal up to 8 digits (a longer
// one is read for its first 8, so an escape is never longer than maxEscapeLen), names with
// digits and capitals, a name that stands for two characters; a legacy name followed by more
// letters (&ampxyz;, which html reads as "&xyz;") is not a reference.
func TestUnescapeReadsHTMLReferencesAsBrowsersDo(t *testing.T) {
	for in, want := range map[string]string{
		"&#X41;":          "A",
		"&#x30;&#x39;":    "09",
		"&#xaf;&#xAF;":    "¯¯",
		"&#00000065;":     "A",
		"&#000000065;":    "\x065;",
		"&zeta;&Zeta;":    "ζΖ",
		"&Aacute;&AElig;": "ÁÆ",
		"&frac34;":        "¾",
		"&NotEqualTilde;": "≂̸",
		"&ampxyz;":        "&ampxyz;",
	} {
		if got, _, _ := unescape(in); got != want {
			t.Errorf("unescape(%q) = %q, want %q", in, got, want)
		}
	}
}
