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
