// Package egress decides which addresses VRSky's outbound connectors may
// connect to. Tenants choose the URLs of their sinks; without a policy a
// tenant could make the server call its own cloud metadata service
// (169.254.169.254), its admin ports on loopback, or the private network
// it runs in, and read the answers back through error messages.
//
// The check runs on the address actually dialled (net.Dialer.Control),
// after name resolution, so a DNS name that points at a refused address
// is refused too, and no re-resolution can slip past it.
package egress

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// Policy is a set of reachable addresses.
type Policy int

const (
	// Private allows public, private (RFC 1918, fc00::/7) and loopback
	// addresses: connectors may reach services on the same machine and
	// network, as a single-machine install needs. Link-local addresses
	// (169.254.0.0/16 with the cloud metadata services, fe80::/10),
	// multicast and unspecified ones stay refused. The default.
	Private Policy = iota
	// Public allows public unicast addresses only: for servers whose
	// tenants must not reach the network the server runs in.
	Public
	// All allows any address.
	All
)

// ErrDenied is returned, wrapped, for a connection the policy refuses.
var ErrDenied = errors.New("address not allowed by the egress policy")

// Parse reads a policy name: private, public or all.
func Parse(s string) (Policy, error) {
	switch s {
	case "private":
		return Private, nil
	case "public":
		return Public, nil
	case "all":
		return All, nil
	}
	return 0, fmt.Errorf("egress policy %q: want private, public or all", s)
}

func (p Policy) String() string {
	switch p {
	case Public:
		return "public"
	case All:
		return "all"
	}
	return "private"
}

// Allows reports whether the policy lets a connection reach ip.
func (p Policy) Allows(ip netip.Addr) bool {
	ip = ip.Unmap()
	switch {
	case p == All:
		return true
	case !ip.IsValid(), ip.IsUnspecified(), ip.IsMulticast(), ip.IsLinkLocalUnicast(),
		ip.IsLinkLocalMulticast(), ip.IsInterfaceLocalMulticast():
		return false
	case ip.IsLoopback(), ip.IsPrivate():
		return p == Private
	}
	return true
}

// Control is a net.Dialer.Control that refuses what the policy does not
// allow, with an error wrapping ErrDenied.
func (p Policy) Control(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("%w: %q is not an IP address", ErrDenied, host)
	}
	if !p.Allows(ip) {
		return fmt.Errorf("%w (%s): %s", ErrDenied, p, ip.Unmap())
	}
	return nil
}
