package upstream

import (
	"context"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Issue 33: ca_cert replaces the trust, it does not add to it. A child process (so that its
// system roots can be set) whose only system root is the test server's CA reaches the server
// without ca_cert; with ca_cert set to another CA it must not, and the failure says that
// ca_cert replaced the system roots.
func TestCACertReplacesTheSystemRoots(t *testing.T) {
	if url := os.Getenv("SESSIONTOKEN_TEST_CA_CHILD_URL"); url != "" {
		caCertReplacesTheSystemRootsChild(t, url)
		return
	}
	srv := quietTLSServer(t, nil)
	dir := t.TempDir()
	roots := filepath.Join(dir, "roots.pem")
	if err := os.WriteFile(roots, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestCACertReplacesTheSystemRoots$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+roots, "SSL_CERT_DIR="+filepath.Join(dir, "none"),
		"SESSIONTOKEN_TEST_CA_CHILD_URL="+srv.URL)
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "--- PASS") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

func caCertReplacesTheSystemRootsChild(t *testing.T, url string) {
	login := func(ca string) error {
		p := providerAt(t, Config{Provider: Generic, URL: url, CACert: ca, Username: "svc", Password: "pw",
			Generic: GenericConfig{LoginPath: "/login"}}, RealClock{})
		defer p.Close()
		_, err := p.Login(context.Background())
		return err
	}
	// The premise: the system roots trust the server (it answers its 404).
	if e, ok := AsError(login("")); !ok || e.Status != 404 {
		t.Fatalf("without ca_cert: %v; want the server's HTTP 404 (the system roots trust it)", login(""))
	}
	_, otherCA := expiredCA(t)
	err := login(otherCA)
	wantErr(t, err, KindUnavailable, "its TLS certificate is not signed by a CA the plugin trusts",
		"ca_cert replaces the system roots")
}
