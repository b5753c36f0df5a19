package sessiontoken

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/internal/session"
)

// Every test, fuzz target and benchmark the docs cite exists: the security model, the
// reliability tables and the list of rules mutated by hand point readers at test names, and a renamed test must not leave a
// promise pointing at nothing.
func TestDocsCiteTestsThatExist(t *testing.T) {
	docs, _ := filepath.Glob("docs/*.md")
	docs = append(docs, "README.md", "mutation/EQUIVALENT.md")
	defined := map[string]bool{}
	def := regexp.MustCompile(`(?m)^func ((?:Test|Fuzz|Benchmark)\w+)\(`)
	err := filepath.WalkDir(".", func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return err
		}
		b, err := os.ReadFile(path)
		for _, m := range def.FindAllStringSubmatch(string(b), -1) {
			defined[m[1]] = true
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	cited := regexp.MustCompile("`((?:Test|Fuzz|Benchmark)[A-Z]\\w+)")
	for _, doc := range docs {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range cited.FindAllStringSubmatch(string(b), -1) {
			if !defined[m[1]] {
				t.Errorf("%s cites %s, which no test file defines", doc, m[1])
			}
		}
	}
}

// docs/terraform.md registers the plugin under the version its binary reports, the VERSION
// file's: Vault refuses to register a binary under any other, so the example would fail on its
// first apply (TestTerraformRunsTheDocExample runs it; this says why at once, without a Vault).
func TestTerraformDocRegistersTheVersionFile(t *testing.T) {
	want, err := os.ReadFile("VERSION")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("docs/terraform.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*version\s*=\s*"([^"]*)"`).FindAllSubmatch(doc, -1)
	if len(m) != 1 {
		t.Fatalf("docs/terraform.md: %d `version = \"…\"` lines, want one (vault_plugin's)", len(m))
	}
	if got := string(m[0][1]); got != strings.TrimSpace(string(want)) {
		t.Errorf("docs/terraform.md registers version %q, the VERSION file says %q", got, strings.TrimSpace(string(want)))
	}
}

// The time rules (timing.go) as the docs and the help text quote them: each pattern's number
// or word must be the constant's, wherever it appears. A rule changed in code and not in its
// quotes, or a quote edited alone, fails here.
func TestDocsQuoteTheTimeRules(t *testing.T) {
	secs := func(d time.Duration) string { return strconv.Itoa(int(d / time.Second)) }
	if word := map[int]string{2: "half", 3: "third", 4: "quarter", 5: "fifth"}[session.LifeShare]; word != session.LifeShareWord {
		t.Fatalf("lifeShare is %d, said %q: want %q", session.LifeShare, session.LifeShareWord, word)
	}
	rules := []struct {
		name    string
		pattern *regexp.Regexp
		want    []string // one per group
		atLeast int      // quotes expected in all
	}{
		{"leaseMargin", regexp.MustCompile(`(?i)life less (\d+) s(?:econds)?\b|\b(\d+) s before the token expires`), []string{secs(session.LeaseMargin)}, 4},
		{"lifeShare", regexp.MustCompile(`(?i)\b(?:a|last) (half|third|quarter|fifth) of (?:the|a|its) token'?s? life|token's last (half|third|quarter|fifth)\b|refreshes by the last (half|third|quarter|fifth)\b`), []string{session.LifeShareWord}, 6},
		{"periodicSlack", regexp.MustCompile("`?min_ttl`? \\+ (\\d+) s"), []string{secs(session.PeriodicSlack)}, 2},
		{"failureBackoff", regexp.MustCompile(`(\d+) s,? \(?doubling to (\d+) minutes`), []string{secs(session.FirstFailureBackoff), strconv.Itoa(int(session.MaxFailureBackoff / time.Minute))}, 3},
	}
	texts := map[string]string{"backend help": backendHelp}
	docs, _ := filepath.Glob("docs/*.md")
	for _, doc := range append(docs, "README.md") {
		b, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		texts[doc] = string(b)
	}
	e := newEnv(t)
	for _, p := range e.b.Backend.Paths {
		help := p.HelpSynopsis + " " + p.HelpDescription
		for _, f := range p.Fields {
			help += " " + f.Description
		}
		for _, op := range p.Operations {
			for _, rs := range op.Properties().Responses {
				for _, r := range rs {
					for _, f := range r.Fields {
						help += " " + f.Description
					}
				}
			}
		}
		texts["help of "+p.Pattern] = help
	}
	for _, f := range tokenFields() {
		texts["token fields"] += " " + f.Description
	}
	for _, r := range rules {
		seen := 0
		for name, text := range texts {
			text = strings.Join(strings.Fields(text), " ") // a quote may wrap
			for _, m := range r.pattern.FindAllStringSubmatch(text, -1) {
				var got []string
				for _, g := range m[1:] {
					if g != "" {
						got = append(got, strings.ToLower(g))
					}
				}
				seen++
				if !slices.Equal(got, r.want) {
					t.Errorf("%s quotes %s as %q (%q), but timing.go has %q", name, r.name, got, m[0], r.want)
				}
			}
		}
		if seen < r.atLeast {
			t.Errorf("%s: %d quotes found, want at least %d: has a quote been reworded so that this test no longer sees it?", r.name, seen, r.atLeast)
		}
	}
}
