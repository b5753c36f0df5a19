//go:build integration

package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tofuUser is the simulator's PlexTrac user without MFA: no TOTP step to wait for.
const tofuUser = "svc-nomfa@acme.com"

// tofuRun is an OpenTofu working directory holding docs/terraform.md's example, with its own
// Vault, simulator and environment.
type tofuRun struct {
	bin, dir string
	env      map[string]string
	vault    *vaultServer
	sim      *simulator
	doc      string
	secrets  []string // must never appear in tofu's output
	outputs  []string // every output of tofu, for the secret check
}

func newTofu(t *testing.T) *tofuRun {
	t.Helper()
	bin, mirror := os.Getenv("TOFU_BIN"), os.Getenv("TOFU_MIRROR")
	if bin == "" || mirror == "" {
		t.Fatal("TOFU_BIN and TOFU_MIRROR are not set: run the suite with `make integration` (scripts/tofu.sh prints them)")
	}
	doc, err := os.ReadFile("../docs/terraform.md")
	if err != nil {
		t.Fatal(err)
	}
	base := t.TempDir()
	ca := newTestCA(t, base)
	sim := startSimWith(t, 15*time.Minute, ca.client(), "-tls-cert="+ca.certFile, "-tls-key="+ca.keyFile)
	// The plugin trusts the simulator's CA as a system root, as a host trusts a company CA: the
	// example has no ca_cert.
	v, err := startVault(filepath.Join(base, "vault"), nil, "SSL_CERT_FILE="+ca.caFile)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.stop)
	plugin, err := v.installPlugin()
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(plugin)

	tf := &tofuRun{bin: bin, dir: filepath.Join(base, "tf"), vault: v, sim: sim, doc: string(doc)}
	// The doc's policy, alone on a token (no default policy): the token Terraform runs with.
	policy := filepath.Join(base, "policy.hcl")
	if err := os.WriteFile(policy, []byte(docBlock(t, tf.doc, "hcl", "# terraform-plextrac.hcl")), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errOut, err := v.cli("policy", "write", "terraform-plextrac", policy); err != nil {
		t.Fatalf("the doc's policy: %v %s", err, errOut)
	}
	token, errOut, err := v.cli("token", "create", "-policy=terraform-plextrac", "-no-default-policy", "-ttl=1h", "-field=token")
	if err != nil {
		t.Fatalf("token create: %v %s", err, errOut)
	}
	token = strings.TrimSpace(token)

	// The example as written; only the upstream's URL and user are replaced in it.
	main := docBlock(t, tf.doc, "hcl", "# main.tf")
	main = replaceOnce(t, main, `"https://acme.plextrac.com"`, fmt.Sprintf("%q", sim.url))
	main = replaceOnce(t, main, `"svc-vault@acme.com"`, fmt.Sprintf("%q", tofuUser))
	if err := os.MkdirAll(tf.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	tf.write(t, main)

	// The CLI config: providers come from the mirror only (no `direct`), so init reaches no
	// registry; a proxy that is a closed loopback port makes any other outside call fail.
	cliConfig := filepath.Join(base, "tofurc")
	if err := os.WriteFile(cliConfig, []byte(fmt.Sprintf(`provider_installation {
  filesystem_mirror {
    path    = %q
    include = ["registry.opentofu.org/hashicorp/vault"]
  }
}
`, mirror)), 0o644); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(base, "home")
	if err := os.MkdirAll(home, 0o755); err != nil {
		t.Fatal(err)
	}
	tf.env = map[string]string{
		"PATH": os.Getenv("PATH"), "HOME": home, "TMPDIR": base,
		"TF_CLI_CONFIG_FILE": cliConfig, "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1",
		"TF_CLI_ARGS_init": "-no-color", "TF_CLI_ARGS_plan": "-no-color", "TF_CLI_ARGS_apply": "-no-color",
		"TF_CLI_ARGS_import": "-no-color", "TF_CLI_ARGS_destroy": "-no-color",
		"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1",
		"VAULT_ADDR": "http://" + v.addr, "VAULT_TOKEN": token,
		"TF_VAR_plugin_sha256":        hex.EncodeToString(sum[:]),
		"TF_VAR_plextrac_password":    "plextrac-demo-pass",
		"TF_VAR_plextrac_totp_secret": sim.seed, // the MFA user's seed: unused until the one MFA apply
	}
	tf.secrets = []string{token, "plextrac-demo-pass", sim.seed}
	return tf
}

// tofu runs OpenTofu in the working directory and returns its combined output.
func (tf *tofuRun) tofu(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := ownGroup(exec.CommandContext(ctx, tf.bin, args...))
	cmd.Dir = tf.dir
	for k, v := range tf.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	killGroup(cmd, syscall.SIGKILL) // a provider process left behind
	tf.outputs = append(tf.outputs, out.String())
	return out.String(), err
}

// run runs tofu and fails the test unless it succeeds.
func (tf *tofuRun) run(t *testing.T, step string, args ...string) string {
	t.Helper()
	out, err := tf.tofu(t, args...)
	if err != nil {
		t.Fatalf("%s: tofu %s: %v\n%s", step, strings.Join(args, " "), err, out)
	}
	return out
}

// plan runs `tofu plan -detailed-exitcode`: 0 no changes, 2 changes; anything else fails.
func (tf *tofuRun) plan(t *testing.T, step string) int {
	t.Helper()
	out, err := tf.tofu(t, "plan", "-detailed-exitcode", "-input=false")
	var ee *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee) && ee.ExitCode() == 2:
		t.Logf("%s: the plan shows changes:\n%s", step, out)
		return 2
	}
	t.Fatalf("%s: tofu plan: %v\n%s", step, err, out)
	return -1
}

// procedure runs the doc's ```sh block named "# name" line by line, `terraform` being OpenTofu;
// apply gets -auto-approve (the test answers no prompt). after(i) runs after line i (from 0).
func (tf *tofuRun) procedure(t *testing.T, name string, after func(int)) {
	t.Helper()
	i := 0
	for _, line := range strings.Split(docBlock(t, tf.doc, "sh", "# "+name), "\n") {
		line, _, _ = strings.Cut(line, "#")
		args := strings.Fields(line)
		if len(args) == 0 {
			continue
		}
		if args[0] != "terraform" {
			t.Fatalf("docs/terraform.md, procedure %q: %q is not a terraform command", name, line)
		}
		args = args[1:]
		if len(args) > 0 && args[0] == "apply" {
			args = append(args, "-auto-approve", "-input=false")
		}
		tf.run(t, name+": "+strings.TrimSpace(line), args...)
		if after != nil {
			after(i)
		}
		i++
	}
	if i == 0 {
		t.Fatalf("docs/terraform.md, procedure %q: no command", name)
	}
}

// expectLogins checks the upstream logins and refused logins since before: a plan must cost none.
func (tf *tofuRun) expectLogins(t *testing.T, step string, before map[string]float64, logins, failures float64) {
	t.Helper()
	now := tf.sim.stats(t, "plextrac")
	if got := now["logins"] - before["logins"]; got != logins {
		t.Errorf("%s: %v upstream logins, want %v", step, got, logins)
	}
	if got := now["login_failures"] - before["login_failures"]; got != failures {
		t.Errorf("%s: %v refused upstream logins, want %v", step, got, failures)
	}
}

// vaultRead reads path from the test's Vault with its root token.
func (tf *tofuRun) vaultRead(t *testing.T, path string) map[string]any {
	t.Helper()
	out, errOut, err := tf.vault.cli("read", "-format=json", path)
	if err != nil {
		t.Fatalf("vault read %s: %v %s", path, err, errOut)
	}
	var s struct{ Data map[string]any }
	dec := json.NewDecoder(strings.NewReader(out))
	dec.UseNumber()
	if err := dec.Decode(&s); err != nil {
		t.Fatal(err)
	}
	return s.Data
}

func (tf *tofuRun) write(t *testing.T, main string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(tf.dir, "main.tf"), []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
}

// edit changes the example in the working directory, as its user would.
func (tf *tofuRun) edit(t *testing.T, old, new string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(tf.dir, "main.tf"))
	if err != nil {
		t.Fatal(err)
	}
	tf.write(t, replaceOnce(t, string(b), old, new))
}

// checkNoSecretShown: no credential or token in tofu's output nor in the test Vault's log (which
// carries the plugin's); the suite's leak scan covers only the shared Vault.
func (tf *tofuRun) checkNoSecretShown(t *testing.T) {
	t.Helper()
	log, err := os.ReadFile(tf.vault.logPath)
	if err != nil {
		t.Fatal(err)
	}
	for i, out := range append(tf.outputs, string(log)) {
		for _, s := range tf.secrets {
			if strings.Contains(out, s) {
				where := fmt.Sprintf("tofu's output (command %d)", i+1)
				if i == len(tf.outputs) {
					where = "Vault's log"
				}
				t.Errorf("%s shows a secret (%d bytes long)", where, len(s))
			}
		}
	}
}

// docBlock is the body of the fenced block of language lang in doc whose first line is first.
func docBlock(t *testing.T, doc, lang, first string) string {
	t.Helper()
	re := regexp.MustCompile("(?ms)^```" + lang + "\n(" + regexp.QuoteMeta(first) + "\\b.*?)^```$")
	m := re.FindAllStringSubmatch(doc, -1)
	if len(m) != 1 {
		t.Fatalf("docs/terraform.md: %d ```%s blocks start with %q, want 1", len(m), lang, first)
	}
	return m[0][1]
}

func replaceOnce(t *testing.T, s, old, new string) string {
	t.Helper()
	if n := strings.Count(s, old); n != 1 {
		t.Fatalf("docs/terraform.md: %q occurs %d times in the example, want once", old, n)
	}
	return strings.Replace(s, old, new, 1)
}
