//go:build integration

// Package integration drives the plugin inside a real Vault server with the real Vault CLI
// and Vault Agent, against the upstream simulator. Run it with `make test`; it needs
// VAULT_BIN (scripts/vault.sh), PLUGIN_BIN and SIM_BIN, which the Makefile provides.
package integration

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

var (
	vaultBin      = os.Getenv("VAULT_BIN")
	pluginBin     = os.Getenv("PLUGIN_BIN")
	simBin        = os.Getenv("SIM_BIN")
	pluginVersion = envOr("PLUGIN_VERSION", "v0.1.0")
	vault         *vaultServer // shared by the tests: one dev server
	binDir        string       // holds a `vault` link to VAULT_BIN
	auditLogPath  string       // the file audit device's log; empty when none is enabled (make bench)
)

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func TestMain(m *testing.M) {
	for k, v := range map[string]string{"VAULT_BIN": vaultBin, "PLUGIN_BIN": pluginBin, "SIM_BIN": simBin} {
		if v == "" {
			fmt.Fprintf(os.Stderr, "%s is not set: run the integration suite with `make test`\n", k)
			os.Exit(2)
		}
	}
	dir, err := os.MkdirTemp("", "sessiontoken-it-")
	if err != nil {
		panic(err)
	}
	// The CLI flows run `vault` by name, as users do.
	binDir = filepath.Join(dir, "bin")
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		panic(err)
	}
	if err := os.Symlink(vaultBin, filepath.Join(binDir, "vault")); err != nil {
		panic(err)
	}
	vault, err = startVault(dir, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := vault.registerPlugin(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		vault.stop()
		os.Exit(1)
	}
	// Every request is audited (the leak scan reads the log), except for the published
	// benchmark figures, which measure the plugin, not a file audit device.
	auditLog := filepath.Join(dir, "audit.log")
	if benchFull {
		auditLog = vault.logPath
	} else if _, errOut, err := vault.cli("audit", "enable", "file", "file_path="+auditLog); err != nil {
		fmt.Fprintln(os.Stderr, "audit enable:", err, errOut)
		vault.stop()
		os.Exit(1)
	} else {
		auditLogPath = auditLog
	}
	code := m.Run()
	vault.stop()
	if leaks := scanForSecrets(vault.logPath, auditLog); len(leaks) > 0 {
		fmt.Fprintf(os.Stderr, "secrets found in plaintext:\n%s\n", strings.Join(leaks, "\n"))
		code = 1
	} else {
		fmt.Printf("leak scan: 0 secrets in %s and %s (%d known secrets and served tokens checked)\n", vault.logPath, auditLog, len(knownSecrets()))
	}
	// The plugin runs race-instrumented: a race report in Vault's log fails the suite.
	if log, _ := os.ReadFile(vault.logPath); bytes.Contains(log, []byte("DATA RACE")) {
		fmt.Fprintf(os.Stderr, "the plugin reported a data race; see %s\n", vault.logPath)
		code = 1
	}
	// Every process the suite started is gone: Vault's, the plugin's (Vault's children), the
	// simulator's, Agent's, Prometheus's and Alertmanager's.
	if left := leftoverProcesses(); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "processes left running after the suite:\n%s\n", strings.Join(left, "\n"))
		code = 1
	}
	if code == 0 {
		os.RemoveAll(dir)
	} else {
		fmt.Fprintf(os.Stderr, "logs kept in %s\n", dir)
	}
	os.Exit(code)
}

func freeAddr() string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return cond()
}

// vaultServer is a real Vault server on a free loopback port.
type vaultServer struct {
	addr, token, dir, pluginDir, logPath string
	cmd                                  *exec.Cmd
}

// env is added to the server's environment, which its plugin processes inherit.
func startVault(dir string, extraArgs []string, env ...string) (*vaultServer, error) {
	v := &vaultServer{addr: freeAddr(), token: "root", dir: dir, pluginDir: filepath.Join(dir, "plugins"), logPath: filepath.Join(dir, "vault.log")}
	notePluginDir(v.pluginDir)
	if err := os.MkdirAll(v.pluginDir, 0o755); err != nil {
		return nil, err
	}
	// plugin_directory via a config file, not -dev-plugin-dir, so that nothing is registered
	// automatically: the suite registers the plugin as an operator would, by sha256 and version.
	hcl := filepath.Join(dir, "plugins.hcl")
	if err := os.WriteFile(hcl, []byte(fmt.Sprintf("plugin_directory = %q\n", v.pluginDir)), 0o644); err != nil {
		return nil, err
	}
	logf, err := os.Create(v.logPath)
	if err != nil {
		return nil, err
	}
	args := append([]string{"server", "-dev", "-dev-root-token-id=" + v.token, "-dev-listen-address=" + v.addr,
		"-config=" + hcl, "-log-level=debug"}, extraArgs...)
	v.cmd = ownGroup(exec.Command(vaultBin, args...))
	v.cmd.Stdout, v.cmd.Stderr = logf, logf
	v.cmd.Env = append(append(os.Environ(), "VAULT_DEV_ROOT_TOKEN_ID="+v.token), env...)
	if err := v.cmd.Start(); err != nil {
		return nil, err
	}
	if !waitFor(60*time.Second, func() bool { _, _, err := v.cli("status"); return err == nil }) {
		v.stop()
		log, _ := os.ReadFile(v.logPath)
		return nil, fmt.Errorf("vault did not start:\n%s", log)
	}
	return v, nil
}

// startServer runs a non-dev Vault from an HCL config; it answers `vault status` (sealed or
// not) when this returns.
func startServer(dir, addr, hcl string) (*vaultServer, error) {
	v := &vaultServer{addr: addr, dir: dir, pluginDir: filepath.Join(dir, "plugins"), logPath: filepath.Join(dir, "vault.log")}
	notePluginDir(v.pluginDir)
	if err := os.MkdirAll(v.pluginDir, 0o755); err != nil {
		return nil, err
	}
	cfg := filepath.Join(dir, "vault.hcl")
	if err := os.WriteFile(cfg, []byte(hcl), 0o644); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(v.logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, err
	}
	v.cmd = ownGroup(exec.Command(vaultBin, "server", "-config="+cfg, "-log-level=debug"))
	v.cmd.Stdout, v.cmd.Stderr = logf, logf
	if err := v.cmd.Start(); err != nil {
		return nil, err
	}
	// `vault status` exits 2 when sealed: that still means it is up.
	if !waitFor(60*time.Second, func() bool {
		_, _, err := v.cli("status")
		ee, ok := err.(*exec.ExitError)
		return err == nil || (ok && ee.ExitCode() == 2)
	}) {
		v.stop()
		return nil, fmt.Errorf("vault did not start; see %s", v.logPath)
	}
	return v, nil
}

// initVault initialises with one unseal key and returns it; the root token is kept.
func (v *vaultServer) initVault() (string, error) {
	out, errOut, err := v.cli("operator", "init", "-key-shares=1", "-key-threshold=1", "-format=json")
	if err != nil {
		return "", fmt.Errorf("operator init: %v %s", err, errOut)
	}
	var res struct {
		Keys      []string `json:"unseal_keys_b64"`
		RootToken string   `json:"root_token"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		return "", err
	}
	v.token = res.RootToken
	return res.Keys[0], nil
}

func (v *vaultServer) unseal(key string) error {
	if _, errOut, err := v.cli("operator", "unseal", key); err != nil {
		return fmt.Errorf("unseal: %v %s", err, errOut)
	}
	return nil
}

func (v *vaultServer) stop() { stopProcess(v.cmd, 15*time.Second) }

// stopProcess interrupts cmd and kills it if it has not exited within grace.
func stopProcess(cmd *exec.Cmd, grace time.Duration) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	kids := descendants(cmd.Process.Pid) // before they are orphaned and re-parented
	_ = cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		<-done
	}
	killGroup(cmd, syscall.SIGKILL) // what it started and left behind (Vault's plugin processes)
	for _, pid := range kids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

func (v *vaultServer) env() []string {
	return append(os.Environ(), "VAULT_ADDR=http://"+v.addr, "VAULT_TOKEN="+v.token, "VAULT_MAX_RETRIES=0")
}

// cli runs the real vault CLI against the server.
func (v *vaultServer) cli(args ...string) (string, string, error) {
	cmd := exec.Command(vaultBin, args...)
	cmd.Env = v.env()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// mustCLI runs the CLI and fails the test on error.
func mustCLI(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, err := vault.cli(args...)
	if err != nil {
		t.Fatalf("vault %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// readJSON runs `vault read -format=json path` and decodes the answer.
func readJSON(t *testing.T, args ...string) secretJSON {
	t.Helper()
	out := mustCLI(t, append([]string{"read", "-format=json"}, args...)...)
	var s secretJSON
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("vault read output is not JSON: %v", err)
	}
	if tok, ok := s.Data["token"].(string); ok {
		rememberSecret(tok)
	}
	return s
}

type secretJSON struct {
	LeaseID       string         `json:"lease_id"`
	LeaseDuration int            `json:"lease_duration"`
	Renewable     bool           `json:"renewable"`
	Data          map[string]any `json:"data"`
	Warnings      []string       `json:"warnings"`
}

// installPlugin copies the plugin binary into the server's plugin directory.
func (v *vaultServer) installPlugin() ([]byte, error) {
	b, err := os.ReadFile(pluginBin)
	if err != nil {
		return nil, err
	}
	return b, os.WriteFile(filepath.Join(v.pluginDir, "vault-plugin-secrets-sessiontoken"), b, 0o755)
}

func (v *vaultServer) registerPlugin() error {
	b, err := v.installPlugin()
	if err != nil {
		return err
	}
	sum := sha256.Sum256(b)
	_, errOut, err := v.cli("plugin", "register", "-sha256="+hex.EncodeToString(sum[:]),
		"-command=vault-plugin-secrets-sessiontoken", "-version="+pluginVersion, "secret", "sessiontoken")
	if err != nil {
		return fmt.Errorf("plugin register: %v: %s", err, errOut)
	}
	return nil
}

// enable mounts the plugin at path and configures it against the simulator.
func enable(t *testing.T, path string, config ...string) {
	t.Helper()
	mustCLI(t, "secrets", "enable", "-path="+path, "sessiontoken")
	t.Cleanup(func() { _, _, _ = vault.cli("secrets", "disable", path) })
	if len(config) > 0 {
		mustCLI(t, append([]string{"write", path + "/config"}, config...)...)
	}
}

func plextracConfig(s *simulator) []string {
	return []string{"provider=plextrac", "url=" + s.url, "allow_insecure_http=true", "username=svc-ci@acme.com",
		"password=plextrac-demo-pass", "totp_secret=" + s.seed, "max_auth_per_minute=10"}
}
