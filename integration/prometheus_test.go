//go:build integration

package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A real Prometheus (Debian's prometheus binary; PROMETHEUS_BIN to use another) scrapes a real
// Vault's <mount>/metrics?format=prometheus with a Vault token that may only read that path,
// configured as docs/monitoring.md says (token file, one target per mount, the mount label and
// the metrics path from relabelling), and loads the shipped alert rules. The scraped series
// agree with status.
func TestPrometheusScrapesAMount(t *testing.T) {
	promBin := debianBinary(t, "PROMETHEUS_BIN", "prometheus")
	sim := startSim(t, 15*time.Minute)
	const mount = "prom/plextrac" // nested: a policy's +/metrics would not match it
	// A PlexTrac service account without MFA: no wait for a TOTP step keeps the test short.
	enable(t, mount, "provider=plextrac", "url="+sim.url, "allow_insecure_http=true", "username=svc-nomfa@acme.com",
		"password=plextrac-demo-pass", "max_auth_per_minute=10")
	readJSON(t, mount+"/token")

	dir := t.TempDir()
	token, tokenFile := metricsToken(t, dir, mount)

	// The raw answer, as Prometheus gets it from Vault's HTTP layer.
	resp := metricsGET(t, token, mount)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/plain; version=0.0.4; charset=utf-8" {
		t.Fatalf("GET %s/metrics?format=prometheus: %d %q", mount, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if resp := metricsGET(t, "", mount); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("without a token: HTTP %d", resp.StatusCode)
	}

	addr, promLog := startPrometheus(t, promBin, dir, prometheusConfig(t, tokenFile, mount, ""))
	q := func(expr string) map[string]float64 { return promQuery(t, addr, expr) }
	if !waitFor(20*time.Second, func() bool { return q(`up{job="vault-sessiontoken"}`)[mount] == 1 }) {
		t.Fatalf("up is not 1 for %s: %v\n%s", mount, q(`up`), promLog())
	}

	status := readJSON(t, mount+"/status").Data
	session := status["session"].(map[string]any)
	exp, err := time.Parse(time.RFC3339, session["expires_at"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if got := q(`sessiontoken_session_expiry_timestamp_seconds`)[mount]; math.Floor(got) != float64(exp.Unix()) { // status: whole seconds
		t.Errorf("expiry gauge %v, status expires_at %s (%d)", got, exp, exp.Unix())
	}
	health := q(`sessiontoken_health == 1`)
	if len(health) != 1 || status["health"] != "ok" {
		t.Errorf("health series at 1: %v; status health %v", health, status["health"])
	}
	if got := q(`sessiontoken_health{state="ok"}`)[mount]; got != 1 {
		t.Errorf(`sessiontoken_health{state="ok"} = %v`, got)
	}
	if got := q(`sessiontoken_reads_total{path="token",outcome="ok"}`)[mount]; got != 1 {
		t.Errorf("token reads ok = %v, want 1", got)
	}
	logins, _ := status["upstream_calls"].(map[string]any)["login"].(map[string]any)["ok"].(float64)
	if got := q(`sessiontoken_upstream_calls_total{kind="login",outcome="ok"}`)[mount]; got != logins || got == 0 {
		t.Errorf("logins: scraped %v, status %v", got, logins)
	}
	if got := q(`sessiontoken_host_auth_budget_per_minute`)[mount]; got != 10 {
		t.Errorf("budget %v, want the mount's max_auth_per_minute 10", got)
	}

	// The shipped rules load and evaluate in a real server, and none fires for a healthy mount.
	if !waitFor(10*time.Second, func() bool { return rulesHealthy(t, addr) }) {
		t.Errorf("the alert rules did not all evaluate cleanly:\n%s", promLog())
	}
	if firing := q(`ALERTS{alertstate="firing"}`); len(firing) != 0 {
		t.Errorf("alerts firing for a healthy mount: %v", firing)
	}
}

// metricsToken writes a policy that may only read mount's metrics path and returns a token
// with it and the file that holds it (as Vault Agent's sink would), for Prometheus to read.
func metricsToken(t *testing.T, dir, mount string) (token, tokenFile string) {
	t.Helper()
	name := "sessiontoken-metrics-" + strings.ReplaceAll(mount, "/", "-")
	policy := filepath.Join(dir, name+".hcl")
	writeFile(t, policy, fmt.Sprintf("path %q {\n  capabilities = [\"read\"]\n}\n", mount+"/metrics"))
	mustCLI(t, "policy", "write", name, policy)
	token = strings.TrimSpace(mustCLI(t, "token", "create", "-policy="+name, "-ttl=10m", "-field=token"))
	rememberSecret(token)
	tokenFile = filepath.Join(dir, "vault-token")
	writeFile(t, tokenFile, token)
	return token, tokenFile
}

// prometheusConfig is docs/monitoring.md's scrape job for one mount of the suite's Vault, with
// 1 s scrape and evaluation intervals and the shipped rules; extra is appended (alerting:).
func prometheusConfig(t *testing.T, tokenFile, mount, extra string) string {
	t.Helper()
	rules, err := filepath.Abs("../monitoring/sessiontoken.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: vault-sessiontoken
    params: {format: [prometheus]}
    authorization: {credentials_file: %q}
    static_configs:
      - targets: [%q]
    relabel_configs:
      - source_labels: [__address__]
        target_label: mount
      - source_labels: [__address__]
        target_label: __metrics_path__
        replacement: /v1/${1}/metrics
      - target_label: __address__
        replacement: %q
`, rules, tokenFile, mount, vault.addr) + extra
}

// startPrometheus runs Prometheus with cfg on a free loopback port, in a process group of its
// own that the test's cleanup (and the suite's leftover check) covers. It returns the address
// and a function that reads its log.
func startPrometheus(t *testing.T, promBin, dir, cfg string) (addr string, log func() string) {
	t.Helper()
	cfgFile := filepath.Join(dir, "prometheus.yml")
	writeFile(t, cfgFile, cfg)
	addr = freeAddr()
	return addr, startDaemon(t, dir, "prometheus", exec.Command(promBin, "--config.file="+cfgFile,
		"--storage.tsdb.path="+filepath.Join(dir, "prometheus-data"), "--web.listen-address="+addr, "--log.level=warn"))
}

// startDaemon starts cmd with its output in dir/<name>.log, in a process group of its own that
// the test's cleanup stops (and the suite's leftover check covers), and returns a function that
// reads the log.
func startDaemon(t *testing.T, dir, name string, cmd *exec.Cmd) func() string {
	t.Helper()
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd = ownGroup(cmd)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { stopProcess(cmd, 10*time.Second); logf.Close() })
	return func() string { b, _ := os.ReadFile(logf.Name()); return string(b) }
}

// debianBinary finds the program of the Debian package of the same name (.ci/run installs it),
// or the one the environment variable env names.
func debianBinary(t *testing.T, env, name string) string {
	t.Helper()
	bin, err := exec.LookPath(envOr(env, name))
	if err != nil {
		t.Fatalf("no %s binary: install Debian's %s package (.ci/run does), or set %s: %v", name, name, env, err)
	}
	return bin
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func metricsGET(t *testing.T, token, mount string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+vault.addr+"/v1/"+mount+"/metrics?format=prometheus", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// promQuery runs an instant query and returns each result's value by its mount label.
func promQuery(t *testing.T, addr, expr string) map[string]float64 {
	t.Helper()
	var out struct {
		Status string
		Data   struct {
			Result []struct {
				Metric map[string]string
				Value  [2]any
			}
		}
	}
	promGet(t, addr, "/api/v1/query?query="+url.QueryEscape(expr), &out)
	res := map[string]float64{}
	for _, r := range out.Data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("query %s: value %v", expr, r.Value[1])
		}
		res[r.Metric["mount"]] = v
	}
	return res
}

// rulesHealthy says whether every loaded rule has been evaluated without error.
func rulesHealthy(t *testing.T, addr string) bool {
	var out struct {
		Data struct {
			Groups []struct {
				Rules []struct{ Name, Health string }
			}
		}
	}
	promGet(t, addr, "/api/v1/rules", &out)
	n := 0
	for _, g := range out.Data.Groups {
		for _, r := range g.Rules {
			if r.Health != "ok" {
				return false
			}
			n++
		}
	}
	return n == 7
}

func promGet(t *testing.T, addr, path string, out any) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return // not listening yet: the caller waits
	}
	defer resp.Body.Close()
	_ = json.NewDecoder(resp.Body).Decode(out)
}
