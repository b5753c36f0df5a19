//go:build integration

package integration

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// simulator is a running cmd/upstream-sim.
type simulator struct {
	url    string
	cmd    *exec.Cmd
	seed   string       // the TOTP seed of its MFA user svc-ci@acme.com: one of its own (see startSim)
	client *http.Client // for the admin API
}

func startSim(t *testing.T, lifetime time.Duration) *simulator {
	return startSimWith(t, lifetime, http.DefaultClient)
}

// startSimWith starts a simulator with extra flags (-tls-cert, -tls-key); client reaches it.
func startSimWith(t *testing.T, lifetime time.Duration, client *http.Client, flags ...string) *simulator {
	t.Helper()
	addrFile := filepath.Join(t.TempDir(), "addr")
	cmd := ownGroup(exec.Command(simBin, append([]string{"-listen=127.0.0.1:0", "-addr-file=" + addrFile, "-token-lifetime=" + lifetime.String()}, flags...)...))
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &simulator{cmd: cmd, client: client}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if !waitFor(10*time.Second, func() bool {
		b, err := os.ReadFile(addrFile)
		s.url = strings.TrimSpace(string(b))
		return err == nil && s.url != ""
	}) {
		t.Fatal("simulator did not start")
	}
	// Each simulator's MFA user gets a seed of its own. The plugin keeps one TOTP record per
	// account, named by its seed, across every mount of the process, and sends no two codes
	// in one 30 s step for it, whatever upstream they go to. With one demo seed shared by every
	// parallel test, their MFA logins would queue behind each other, one per step.
	var raw [20]byte
	_, _ = rand.Read(raw[:])
	s.seed = base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(raw[:])
	rememberSecret(s.seed)
	s.admin(t, http.MethodPost, "/_sim/users/plextrac", map[string]any{"name": "svc-ci@acme.com",
		"password": "plextrac-demo-pass", "totp_secret": s.seed, "tenant_id": 7}, nil)
	return s
}

func (s *simulator) stats(t *testing.T, provider string) map[string]float64 {
	t.Helper()
	var all map[string]map[string]float64
	s.admin(t, http.MethodGet, "/_sim/stats", nil, &all)
	return all[provider]
}

func (s *simulator) admin(t *testing.T, method, path string, body, out any) {
	t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequestWithContext(context.Background(), method, s.url+path, r)
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Fatalf("sim %s %s: %d", method, path, resp.StatusCode)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
}

// valid asks the simulator whether it accepts token right now.
func (s *simulator) valid(t *testing.T, provider, token string) bool {
	t.Helper()
	var out struct{ Valid bool }
	s.admin(t, http.MethodPost, "/_sim/check/"+provider, map[string]string{"token": token}, &out)
	return out.Valid
}
