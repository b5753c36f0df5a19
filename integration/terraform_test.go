//go:build integration

package integration

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// The Terraform example in docs/terraform.md, kept honest: its data_json goes through Vault's
// HTTP API as vault_generic_endpoint sends it, and the read gives back every non-secret key as
// written. The provider (ignore_absent_fields = true) replaces each data_json key the read
// returns with the read's value and plans a change when the result, JSON-normalised, differs
// from data_json; keys the read does not return count as up to date.
func TestTerraformExampleReadsBackWithoutADiff(t *testing.T) {
	t.Parallel()
	sim := startSim(t, 15*time.Minute)
	enable(t, "tf-plextrac")
	data := exampleDataJSON(t, map[string]any{"plextrac_password": "plextrac-demo-pass", "plextrac_totp_secret": sim.seed})
	// The simulator stands in for acme.plextrac.com: its loopback http URL and demo account.
	data["url"], data["allow_insecure_http"], data["username"] = sim.url, true, "svc-ci@acme.com"

	body, _ := json.Marshal(data) // what the provider sends: data_json decoded, then encoded again
	if code, out := vaultAPI(t, http.MethodPut, "tf-plextrac/config", body); code != http.StatusNoContent && code != http.StatusOK {
		t.Fatalf("PUT config: %d %s", code, out)
	}
	code, out := vaultAPI(t, http.MethodGet, "tf-plextrac/config", nil)
	var read struct{ Data map[string]any }
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.UseNumber() // as the provider's Vault client decodes
	if err := dec.Decode(&read); code != http.StatusOK || err != nil {
		t.Fatalf("GET config: %d %v %s", code, err, out)
	}

	var absent []string
	for k, wrote := range data {
		got, ok := read.Data[k]
		if !ok {
			absent = append(absent, k)
			continue
		}
		w, _ := json.Marshal(wrote)
		g, _ := json.Marshal(got)
		if !bytes.Equal(w, g) {
			t.Errorf("%s: data_json has %s, the read gives %s: a diff on every plan", k, w, g)
		}
	}
	// Only the secrets are write-only; every other key is compared, so none can hide a diff.
	slices.Sort(absent)
	if want := []string{"password", "totp_secret"}; !slices.Equal(absent, want) {
		t.Errorf("keys the read does not return: %v, want only the secrets %v", absent, want)
	}
	// The write's check logged in once (verify is on); the read cost nothing upstream.
	if st := sim.stats(t, "plextrac"); st["mfa"] != 1 {
		t.Errorf("upstream MFA logins = %v, want 1 (the write's check)", st["mfa"])
	}
}

// exampleDataJSON is the object inside `data_json = jsonencode({ … })` in docs/terraform.md:
// one `key = value` per line, each value a JSON literal (HCL's strings, numbers and bools
// spelled the same) or var.<name>, taken from vars. Anything else fails the test, so the
// example cannot grow a value this test does not check.
func exampleDataJSON(t *testing.T, vars map[string]any) map[string]any {
	t.Helper()
	doc, err := os.ReadFile("../docs/terraform.md")
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile(`(?s)data_json = jsonencode\(\{\n(.*?)\n\s*\}\)`).FindSubmatch(doc)
	if block == nil {
		t.Fatal("docs/terraform.md has no `data_json = jsonencode({ … })` block")
	}
	data := map[string]any{}
	for _, line := range strings.Split(string(block[1]), "\n") {
		line, _, _ = strings.Cut(line, " #") // a trailing comment
		if strings.TrimSpace(line) == "" {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" || v == "" {
			t.Fatalf("docs/terraform.md: data_json line %q is not `key = value`", line)
		}
		if name, isVar := strings.CutPrefix(v, "var."); isVar {
			if data[k], ok = vars[name]; !ok {
				t.Fatalf("docs/terraform.md: var.%s has no value in the test", name)
			}
			continue
		}
		var value any
		if err := json.Unmarshal([]byte(v), &value); err != nil {
			t.Fatalf("docs/terraform.md: %s = %s is not a literal the test can send: %v", k, v, err)
		}
		data[k] = value
	}
	if len(data) == 0 {
		t.Fatal("docs/terraform.md: empty data_json")
	}
	return data
}

// vaultAPI calls Vault's HTTP API with the root token and returns the status and body.
func vaultAPI(t *testing.T, method, path string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+vault.addr+"/v1/"+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Vault-Token", vault.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}
