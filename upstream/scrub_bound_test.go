package upstream

import (
	"encoding/base64"
	"fmt"
	"runtime"
	"strings"
	"testing"
)

// maxSecrets is the most a client scrubs in one call: password, api_key, TOTP seed, every
// header value, two remembered tokens, the token and Authorization value a call sends and the
// two MFA values.
func maxSecrets(valueLen int) []string {
	out := []string{"pw-Tr0ub4dor&3", "ak9-Zx7/Q+e=", "JBSWY3DPEHPK3PXP", "opaque-prev", "opaque-cur", "opaque-cur", "opaque-cur", "123456", "challenge-1"}
	for i := range MaxHeaders {
		out = append(out, fmt.Sprintf("hdr-%02d-", i)+strings.Repeat("v", valueLen-7))
	}
	return out
}

// bytesAllocated is the heap bytes one call of f allocates, averaged over a few calls.
func bytesAllocated(f func()) uint64 {
	f() // warm up: compiled regexps, lazily built tables
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 5 {
		f()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / 5
}

// The work of a scrub follows what is shown (200 bytes) and the secrets, not the message:
// a 1 MiB error answer costs what a 1 KiB one does. Measured in bytes allocated, which the
// old scrubber spent per byte of message (views and copies of all of it) times the secrets.
func TestScrubWorkDoesNotGrowWithTheMessage(t *testing.T) {
	secrets := maxSecrets(64)
	msg := func(n int) string {
		return "bad request: " + strings.Repeat("lorem ipsum é€ \\u0041 &amp; ", n/28) + " pw-Tr0ub4dor&3"
	}
	small, large := msg(1<<10), msg(1<<20)
	want := scrub(small, secrets)
	if got := scrub(large, secrets); got != want {
		t.Fatalf("the shown text depends on what is not shown:\n%q\n%q", got, want)
	}
	s := bytesAllocated(func() { scrub(small, secrets) })
	l := bytesAllocated(func() { scrub(large, secrets) })
	t.Logf("1 KiB: %d bytes, 1 MiB: %d bytes", s, l)
	if l > 2*s {
		t.Fatalf("scrubbing a 1 MiB message allocated %d bytes, a 1 KiB one %d: the work grows with the message", l, s)
	}
}

// A secret that straddles the 200-byte cut, raw or encoded, leaves no piece of itself before
// the cut: the window searched runs past the cut by the longest form.
func TestScrubSecretStraddlingTheCut(t *testing.T) {
	const pw = "Tr0ub4dor&3-correct-horse-battery"
	for name, form := range map[string]string{"raw": pw, "json": jsonString(pw), "every rune": escapeEveryRune(pw),
		"base64": base64.StdEncoding.EncodeToString([]byte(pw))} {
		for at := maxShown - len(form); at <= maxShown; at++ {
			text := strings.Repeat("x", at) + form + strings.Repeat(" tail", 100)
			got := scrub(text, []string{pw})
			if want := strings.Repeat("x", at) + redacted; !strings.HasPrefix(got, want[:min(len(want), maxShown)]) {
				t.Fatalf("%s at %d: got %q", name, at, got)
			}
			for i := 0; i+4 <= len(form); i++ {
				if strings.Contains(strings.TrimLeft(got, "x"), form[i:i+4]) {
					t.Fatalf("%s at %d: %q of the secret is shown: %q", name, at, form[i:i+4], got)
				}
			}
		}
	}
}

// Escapes make the unescaped views shorter than the text: the prefix read grows until they
// reach past the window, so an echo that overlaps the shown part is found however dense the
// escapes around it.
func TestScrubReadsFarEnoughThroughDenseEscapes(t *testing.T) {
	const pw = "Tr0ub4dor&3"
	for _, filler := range []string{strings.Repeat(`\u0062`, 25), strings.Repeat("&#x62;", 25), strings.Repeat("a\u0301\u0301\u0301", 25)} {
		text := filler + escapeEveryRune(pw) + strings.Repeat(`\u0063`, 2000)
		got := scrub(text, []string{pw})
		if !strings.HasPrefix(got, filler+redacted) && !strings.HasPrefix(got, strings.TrimRight(filler, "\u0301")+redacted) {
			t.Fatalf("filler %q: got %q", filler[:12], got)
		}
	}
	// A long secret escaped character by character is six times longer than itself: the
	// first prefix read holds only part of it.
	long := strings.Repeat("Tr0ub4dor&3-", 25)
	got := scrub("x "+escapeEveryRune(long)+" y", []string{long})
	if !strings.HasPrefix(got, "x "+redacted) || strings.Contains(got, `\u`) {
		t.Fatalf("long escaped secret: got %q", got)
	}
	// One whose escaped echo ends past the first read, with the unescaped view only a little
	// short of the window the search needs: the read must still grow, by the cut margin
	// (an escape cut at the read's end reads differently), not stop short of it.
	alnum := strings.Repeat("Kq7xW2", 34)[:200]
	if got := scrub(escapeEveryRune(alnum), []string{alnum}); !strings.HasPrefix(got, redacted) {
		t.Fatalf("escaped secret past the first read: got %q", got)
	}
}

// BenchmarkScrubLargeAnswer: a failed login's worst case, a 1 MiB answer quoted with every
// header at its size limit.
func BenchmarkScrubLargeAnswer(b *testing.B) {
	secrets := maxSecrets(MaxHeaderValueLen)
	msg := strings.Repeat("lorem ipsum dolor sit amet ", (1<<20)/27)
	b.ReportAllocs()
	for b.Loop() {
		scrub(msg, secrets)
	}
}

// A JWT that starts just before the cut is recognized and replaced, not shown in part.
func TestScrubJWTAtTheCut(t *testing.T) {
	const jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig"
	for at := maxShown - 10; at < maxShown; at++ {
		got := scrub(strings.Repeat("x", at)+jwt, nil)
		if strings.Contains(got, "eyJ") {
			t.Errorf("at %d: %q", at, got)
		}
	}
}
