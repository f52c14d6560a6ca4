package mapping

import (
	"errors"
	"net/netip"
)

// ParsePrefix parses a route's prefix by the rules of a mapping file's ips:
// an address (a host route, /32 or /128) or a prefix in CIDR notation,
// without host bits, without an IPv6 zone, holding no reserved address. It
// is for the routes of other sources that must obey the same rules (the
// manual routes of the API).
func ParsePrefix(s string) (netip.Prefix, error) {
	p, problem := parsePrefix(s)
	if problem != "" {
		return netip.Prefix{}, errors.New(problem)
	}
	return p, nil
}

// ParseNextHop parses an explicit next hop by the rules of a mapping file:
// a unicast address, not reserved, without a zone.
func ParseNextHop(s string) (netip.Addr, error) {
	a, problem := parseNextHop(s)
	if problem != "" {
		return netip.Addr{}, errors.New(problem)
	}
	return a, nil
}
