package sessiontoken

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
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
