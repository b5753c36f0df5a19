package sessiontoken

import (
	"encoding/pem"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/sim"
)

func TestTLSUpstreamNeedsItsCA(t *testing.T) {
	e := newEnv(t)
	tlsSrv := httptest.NewTLSServer(e.sim.Handler()) // the simulator behind its own CA
	defer tlsSrv.Close()
	cfg := map[string]any{"provider": "plextrac", "url": tlsSrv.URL, "username": sim.DemoPlexTracNoMFAUser, "password": sim.DemoPlexTracPassword}

	resp, err := e.do(logical.UpdateOperation, "config", cfg)
	if err != nil || !resp.IsError() || !strings.Contains(errText(resp), "certificate") {
		t.Fatalf("an untrusted certificate must fail the check: %v %s", err, errText(resp))
	}
	ca := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsSrv.Certificate().Raw}))
	e.write("config", with(cfg, "ca_cert", ca))
	tok := e.read("token", nil).Data["token"].(string)
	if !e.sim.CheckToken(sim.PlexTrac, tok) {
		t.Fatal("token over TLS does not work")
	}
	if got := e.read("config", nil).Data["ca_cert"]; got != ca {
		t.Error("config read should show the (public) CA certificate byte for byte as written")
	}
}

// testCACertPEM is a real CA certificate (an httptest TLS server's), for config writes.
func testCACertPEM(t *testing.T) string {
	srv := httptest.NewTLSServer(nil)
	defer srv.Close()
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
}
