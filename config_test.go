package sessiontoken

import (
	"encoding/pem"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/hashicorp/vault/sdk/logical"

	"github.com/sessiontoken/vault-plugin-secrets-sessiontoken/sim"
)

func TestURLsThatAreNeverAnUpstreamAreRefused(t *testing.T) {
	e := newEnv(t)
	for raw, why := range map[string]string{
		"http://169.254.169.254/latest": "link-local", "http://[fe80::1]:8080": "link-local", "http://[::ffff:169.254.169.254]": "link-local",
		"http://169.254.169.254./": "link-local", "http://0.0.0.0:8200": "unspecified", "http://[::]:8200": "unspecified",
	} {
		// verify=false: refused at write time, before any connection could be made.
		msg := expectRejected(t, e, with(e.plextracConfig(false), "url", raw, "verify", false), "url")
		if !strings.Contains(msg, why) {
			t.Errorf("%s: %q does not say %s", raw, msg, why)
		}
	}
	assertNothingDialled(t, e)
	e.write("config", with(e.plextracConfig(false), "url", strings.Replace(e.url, "127.0.0.1", "localhost", 1))) // loopback stays allowed
}

func TestUnparsableURLIsNeverEchoedWithItsUserinfo(t *testing.T) {
	e := newEnv(t)
	for _, raw := range []string{"https://svc:hunter2%zz@acme.plextrac.com", "https://svc:hunter2 x@acme plextrac.com", "https://svc:hunter2@[::1"} {
		if msg := expectRejected(t, e, with(e.plextracConfig(false), "url", raw, "verify", false), "url"); strings.Contains(msg, "hunter2") {
			t.Errorf("%q echoes the URL's password", msg)
		}
	}
}

// A URL naming an address the dial guard refuses is refused when it is written, before any
// connection could be made (verify=false): zones, link-local IPv4 carried inside IPv6 in
// every form a stack or a translator delivers, and the metadata services outside link-local.
func TestURLsWithZonesEmbeddedIPv4OrMetadataAreRefused(t *testing.T) {
	e := newEnv(t)
	for raw, why := range map[string]string{
		"http://[fe80::a9fe:a9fe%25eth0]/":     "zone",
		"http://[fe80::1%25lo]:8080/":          "zone",
		"http://[::1%25lo]:8200/":              "zone", // any zone, even on loopback
		"http://[::ffff:a9fe:a9fe]/":           "link-local",
		"http://[64:ff9b::169.254.169.254]/":   "link-local", // NAT64 64:ff9b::/96
		"http://[64:ff9b::a9fe:a9fe]/latest":   "link-local",
		"http://[64:ff9b:1:a9fe:a9:fe00::]/":   "link-local", // NAT64 64:ff9b:1::/48: bytes 6,7,9,10
		"http://[2002:a9fe:a9fe::1]/":          "link-local", // 6to4
		"http://[::ffff:0:a9fe:a9fe]/":         "link-local", // IPv4-translated (SIIT)
		"http://[fd00:ec2::254]/latest":        "AWS",
		"http://100.100.100.200/latest":        "Alibaba",
		"http://100.100.100.200./latest":       "Alibaba",
		"http://[::ffff:100.100.100.200]/":     "Alibaba",
		"http://[64:ff9b::6464:64c8]/":         "Alibaba",
		"http://[2002:6464:64c8::]/":           "Alibaba",
		"http://[64:ff9b:1:6464:64:c800::]/":   "Alibaba",
		"https://[fe80::a9fe:a9fe%25eth0]:443": "zone",
	} {
		t.Run(raw, func(t *testing.T) {
			msg := expectRejected(t, e, with(e.plextracConfig(false), "url", raw, "verify", false), "url")
			if !strings.Contains(msg, why) {
				t.Errorf("%q does not say %s", msg, why)
			}
		})
	}
	// Private addresses, inside IPv6 or not, stay allowed: self-hosted instances live there.
	// Stored with verify=false, so nothing dials them; and every test mount's dial check
	// (loopbackOnly) would fail the test and stop a dial to them before a connection is made.
	for _, raw := range []string{"http://10.0.0.5:8200", "http://[64:ff9b::a00:5]/", "http://[fd00:ec2::253]/", "http://[::ffff:192.168.1.9]/"} {
		e.write("config", with(e.plextracConfig(false), "url", raw, "verify", false))
	}
	assertNothingDialled(t, e)
}

// assertNothingDialled fails when the mount made any upstream call: every call, a refused or
// failed dial included, is counted by outcome (Deps.Observe), so none counted means no
// connection to a test's non-loopback address was even attempted.
func assertNothingDialled(t *testing.T, e *env) {
	t.Helper()
	if calls := e.b.metrics.upstreamCalls(); len(calls) != 0 {
		t.Fatalf("upstream calls were made: %v", calls)
	}
}

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
