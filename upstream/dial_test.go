package upstream

import (
	"context"
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
	p, err := New(Config{Provider: Plaspy, URL: "http://0.0.0.0:1", Username: "u", APIKey: "k", RequestTimeout: time.Second},
		Deps{Clock: RealClock{}, Limiters: NewLimiters()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Login(context.Background()); err == nil || !strings.Contains(err.Error(), "unspecified address") {
		t.Fatalf("login to 0.0.0.0 went past the dial guard: %v", err)
	}
}
