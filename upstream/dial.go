package upstream

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
)

// metadataAddrs are cloud metadata services that answer outside link-local, so the link-local
// rule alone misses them. (AWS, GCP, Azure, Oracle and DigitalOcean answer on 169.254.169.254.)
var metadataAddrs = map[netip.Addr]string{
	netip.MustParseAddr("fd00:ec2::254"):   "AWS's IPv6 instance metadata service",
	netip.MustParseAddr("100.100.100.200"): "Alibaba Cloud's metadata service",
}

// The IPv6 prefixes that carry an IPv4 address a host or a translator on its path delivers
// to: connecting to one of them reaches the IPv4 address, so that address is judged too.
var (
	nat64WellKnown = netip.MustParsePrefix("64:ff9b::/96")    // RFC 6052: IPv4 in the last 32 bits
	nat64Local     = netip.MustParsePrefix("64:ff9b:1::/48")  // RFC 8215: the operator picks the layout
	v4Translated   = netip.MustParsePrefix("::ffff:0:0:0/96") // RFC 2765 (SIIT): IPv4 in the last 32 bits
	sixToFour      = netip.MustParsePrefix("2002::/16")       // RFC 3056: IPv4 in bits 16-47
	v4Compatible   = netip.MustParsePrefix("::/96")           // RFC 4291 §2.5.5.1, deprecated
)

// NeverUpstream says why addr can never be an upstream login API, or nil:
//   - an address with a zone: zones select the interface of a link-local address, and no
//     upstream needs one;
//   - link-local (169.254.0.0/16, fe80::/10), where cloud metadata services answer, and the
//     unspecified address, which means "this host" to some stacks;
//   - the metadata services in metadataAddrs;
//   - an IPv6 address that carries an IPv4 address refused by these rules: IPv4-mapped,
//     IPv4-compatible, IPv4-translated (::ffff:0:0:0/96), NAT64 (64:ff9b::/96, and
//     64:ff9b:1::/48 in every RFC 6052 layout that fits in it) and 6to4 (2002::/16).
//
// Private and loopback addresses stay allowed: self-hosted instances live there.
func NeverUpstream(addr netip.Addr) error {
	if addr.Zone() != "" {
		return fmt.Errorf("%s has an IPv6 zone, which only link-local addresses (where cloud metadata services answer) need; it is never an upstream API", addr)
	}
	if err := refusedIP(addr); err != nil {
		return err
	}
	for _, e := range embeddedIPv4(addr) {
		// 0.0.0.0 is what another layout of 64:ff9b:1::/48 reads from the zeros of a real
		// one, and no translator or tunnel delivers to it (::ffff:0.0.0.0 is refused above).
		if err := refusedIP(e.v4); err != nil && !e.v4.IsUnspecified() {
			return fmt.Errorf("%s carries %s (%s): %w", addr, e.v4, e.how, err)
		}
	}
	return nil
}

// NeverUpstreamHost is NeverUpstream for a URL's host: nil for a name, whose addresses the dial
// guard judges once resolved, and a refusal for a zone even on something that is not an address.
func NeverUpstreamHost(host string) error {
	addr, err := netip.ParseAddr(host)
	if err != nil {
		if strings.Contains(host, "%") {
			return fmt.Errorf("%q has a zone, which only link-local addresses (where cloud metadata services answer) need; it is never an upstream API", host)
		}
		return nil
	}
	return NeverUpstream(addr)
}

// refusedIP applies the rules that do not depend on how the address is written.
func refusedIP(a netip.Addr) error {
	a = a.Unmap()
	switch {
	case a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast():
		return fmt.Errorf("%s is a link-local address, where cloud metadata services answer; it is never an upstream API", a)
	case a.IsUnspecified():
		return fmt.Errorf("%s is the unspecified address, not an upstream host", a)
	case metadataAddrs[a] != "":
		return fmt.Errorf("%s is %s; it is never an upstream API", a, metadataAddrs[a])
	}
	return nil
}

type embedded struct {
	v4  netip.Addr
	how string
}

// embeddedIPv4 returns the IPv4 addresses a carries in the forms NeverUpstream decodes.
func embeddedIPv4(a netip.Addr) []embedded {
	if !a.Is6() {
		return nil
	}
	b := a.As16()
	at := func(i, j, k, l int) netip.Addr { return netip.AddrFrom4([4]byte{b[i], b[j], b[k], b[l]}) }
	switch {
	case a.Is4In6():
		return []embedded{{a.Unmap(), "IPv4-mapped"}}
	case nat64WellKnown.Contains(a):
		return []embedded{{at(12, 13, 14, 15), "NAT64 64:ff9b::/96"}}
	case nat64Local.Contains(a):
		// RFC 6052 §2.2: bits 64-71 (byte 8) are the zero "u" octet, skipped by every layout.
		// A /48 prefix puts the IPv4 in bytes 6,7,9,10; a /56 in 7,9,10,11; a /64 in 9-12;
		// a /96 in 12-15. Which one an operator chose is not visible, so all are judged: a
		// real target whose bytes read as a refused address in another layout (10.1.169.254
		// in the /48 layout reads as 169.254.0.0 in the /64 one) is refused too, a rare cost
		// for not letting 169.254.169.254 through in any of them.
		const how = "NAT64 64:ff9b:1::/48"
		return []embedded{{at(6, 7, 9, 10), how}, {at(7, 9, 10, 11), how}, {at(9, 10, 11, 12), how}, {at(12, 13, 14, 15), how}}
	case v4Translated.Contains(a):
		return []embedded{{at(12, 13, 14, 15), "IPv4-translated"}}
	case sixToFour.Contains(a):
		return []embedded{{at(2, 3, 4, 5), "6to4 2002::/16"}}
	case v4Compatible.Contains(a) && !a.IsLoopback() && !a.IsUnspecified():
		return []embedded{{at(12, 13, 14, 15), "IPv4-compatible"}}
	}
	return nil
}

// refuseNeverUpstream is the dialer's Control: it runs after name resolution and before the
// connection is made, so a host name that resolves to a metadata service is refused too,
// without a packet sent. The address is always an IP literal here, zone included; anything
// else is refused rather than waved through.
func refuseNeverUpstream(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("dial guard: %q is not an IP address", host)
	}
	if err := NeverUpstream(addr); err != nil {
		return fmt.Errorf("%w: %w", errNeverUpstream, err)
	}
	return nil
}

// errNeverUpstream marks the dial guard's refusals, so that an error names them without
// quoting the address DNS gave.
var errNeverUpstream = errors.New("dial guard")

// guardedDialer dials with refuseNeverUpstream, then check (Deps.DialCheck) when set. Each
// call's request_timeout bounds the dial, and Go's default keep-alive applies.
func guardedDialer(check func(address string) error) *net.Dialer {
	if check == nil {
		return &net.Dialer{Control: refuseNeverUpstream}
	}
	return &net.Dialer{Control: func(network, address string, c syscall.RawConn) error {
		if err := refuseNeverUpstream(network, address, c); err != nil {
			return err
		}
		return check(address)
	}}
}
