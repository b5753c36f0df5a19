package upstream

import (
	"fmt"
	"net"
	"syscall"
)

// NeverUpstream says why ip can never be an upstream login API, or nil. Link-local addresses
// (169.254.0.0/16, fe80::/10) are where cloud metadata services answer, and the unspecified
// address means "this host" to some stacks. Private and loopback addresses stay allowed:
// self-hosted PlexTrac lives there.
func NeverUpstream(ip net.IP) error {
	switch {
	case ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast():
		return fmt.Errorf("%s is a link-local address, where cloud metadata services answer; it is never an upstream API", ip)
	case ip.IsUnspecified():
		return fmt.Errorf("%s is the unspecified address, not an upstream host", ip)
	}
	return nil
}

// refuseNeverUpstream is the dialer's Control: it runs after name resolution and before the
// connection is made, so a host name that resolves to a metadata service is refused too,
// without a packet sent.
func refuseNeverUpstream(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip != nil {
		return NeverUpstream(ip)
	}
	return nil
}

// guardedDialer dials with refuseNeverUpstream. Each call's request_timeout bounds the dial,
// and Go's default keep-alive applies.
func guardedDialer() *net.Dialer {
	return &net.Dialer{Control: refuseNeverUpstream}
}
