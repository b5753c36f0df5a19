package upstream

import (
	"strings"
	"testing"
	"time"
)

// The dialer's guard runs before any connection: tested on the address strings alone, and end
// to end only with the unspecified address, which is this machine.
func TestDialGuardRefusesLinkLocalAndUnspecified(t *testing.T) {
	for _, addr := range []string{"169.254.169.254:80", "[fe80::1]:443", "0.0.0.0:8200", "[::]:8200", "[::ffff:169.254.169.254]:80"} {
		if err := refuseNeverUpstream("tcp", addr, nil); err == nil {
			t.Errorf("%s allowed", addr)
		}
	}
	for _, addr := range []string{"127.0.0.1:8200", "[::1]:8200", "172.16.0.1:443"} {
		if err := refuseNeverUpstream("tcp", addr, nil); err != nil {
			t.Errorf("%s refused: %v (loopback and private hosts are valid upstreams)", addr, err)
		}
	}
	// An IP literal is refused before any client exists: New applies CheckURL, as a config
	// write does; the guard above is what a name that resolves to one meets.
	_, err := New(Config{Provider: Plaspy, URL: "http://0.0.0.0:1", Username: "u", APIKey: "k", RequestTimeout: time.Second},
		Deps{Clock: RealClock{}, Limiters: NewLimiters(), TOTPSteps: NewTOTPSteps()})
	if err == nil || !strings.Contains(err.Error(), "unspecified address") {
		t.Fatalf("a client for 0.0.0.0 was built: %v", err)
	}
}

// Every form the write-time check refuses is refused by the dial guard too, on the address Go
// hands its Control after resolution; zones and IPv4 carried inside IPv6 included.
func TestDialGuardRefusesZonesEmbeddedIPv4AndMetadata(t *testing.T) {
	control := guardedDialer(nil).Control // never dials: only the guard is called
	refused := map[string]string{
		"[fe80::a9fe:a9fe%eth0]:80":       "zone",
		"[fe80::1%1]:443":                 "zone",
		"[::1%lo]:8200":                   "zone", // any zone, even on loopback
		"[::ffff:a9fe:a9fe]:80":           "link-local",
		"[64:ff9b::a9fe:a9fe]:80":         "link-local", // NAT64 /96
		"[64:ff9b::169.254.169.254]:80":   "link-local",
		"[64:ff9b:1:a9fe:a9:fe00::]:80":   "link-local", // NAT64 local-use, /48 layout: u octet skipped
		"[64:ff9b:1::a9fe:a9fe]:80":       "link-local", // the same prefix in its /96 layout
		"[2002:a9fe:a9fe::1]:80":          "link-local", // 6to4
		"[::a9fe:a9fe]:80":                "link-local", // IPv4-compatible
		"[::ffff:0:a9fe:a9fe]:80":         "link-local", // IPv4-translated (SIIT)
		"[::ffff:0.0.0.0]:80":             "unspecified",
		"[fd00:ec2::254]:80":              "AWS",
		"100.100.100.200:80":              "Alibaba",
		"[::ffff:100.100.100.200]:80":     "Alibaba",
		"[64:ff9b::6464:64c8]:80":         "Alibaba",
		"[2002:6464:64c8::]:80":           "Alibaba",
		"[64:ff9b:1:6464:64:c800::]:80":   "Alibaba",
		"metadata.google.internal:80":     "not an IP address", // never unresolved here
		"[fe80::a9fe:a9fe%25eth0]:80":     "zone",
		"[::ffff:169.254.169.254%eth0]:1": "zone",
	}
	for addr, why := range refused {
		err := control("tcp", addr, nil)
		if err == nil || !strings.Contains(err.Error(), why) {
			t.Errorf("%s: got %v, want a refusal saying %q", addr, err, why)
		}
	}
	for _, addr := range []string{"127.0.0.1:8200", "[::1]:8200", "10.0.0.5:443", "[fd00:ec2::253]:443",
		"[64:ff9b::a00:5]:443", "[2002:a00:5::1]:443", "[::ffff:127.0.0.1]:8200", "[2001:db8::a9fe:a9fe]:443", "[64:ff9b:1::a00:5]:443", "[64:ff9b:1:a00:0:500::]:443"} {
		if err := control("tcp", addr, nil); err != nil {
			t.Errorf("%s refused: %v (loopback, private and ordinary addresses are valid upstreams)", addr, err)
		}
	}
}
