package mapping

import (
	"fmt"
	"net/netip"

	"github.com/virtbgp/virtbgp/fileerr"
)

// The default shortest prefixes any source may announce: a service IP is a
// host route, an anycast service or a floating pool rarely more than a /24
// of IPv4 or a /48 of IPv6, the longest prefixes the Internet's routers
// accept. A shorter prefix is almost always a typo (2000::/3, 1.0.0.0/8)
// that would pull a whole range of other people's traffic to this host.
const (
	DefaultMinBits4 = 24
	DefaultMinBits6 = 48
)

// DefaultLimits are the Limits when the config sets none.
var DefaultLimits = Limits{MinBits4: DefaultMinBits4, MinBits6: DefaultMinBits6}

// Limits are what any route may be, whatever its source (the mapping
// files, virtbgp's or Nova's metadata): the config's routes section. They
// sit above each source's own Allow.
type Limits struct {
	// MinBits4 and MinBits6 are the shortest IPv4 and IPv6 prefix any
	// source may announce, from MinAllowedBits4 to 32 and from
	// MinAllowedBits6 to 128.
	MinBits4, MinBits6 int
	// Pools, when not empty, are the only prefixes routes may lie in: each
	// route must be one of them or lie inside one. Their rules are those
	// of Allow.Prefixes.
	Pools []netip.Prefix
}

// Problem returns why p breaks the limits, naming the rule, or "" if it
// does not.
func (l *Limits) Problem(p netip.Prefix) string {
	is4 := p.Addr().Is4()
	min := l.MinBits6
	key := "ipv6"
	if is4 {
		min, key = l.MinBits4, "ipv4"
	}
	switch {
	case p.Bits() == 0:
		return fmt.Sprintf("%s is the default route: virtbgp announces service addresses, never the default route", p)
	case p.Bits() < min:
		return fmt.Sprintf("%s is a /%d, shorter than routes.min-prefix-length.%s (/%d): too broad for a service address", p, p.Bits(), key, min)
	case !l.InPools(p):
		return fmt.Sprintf("%s lies outside routes.allowed-prefixes %v", p, l.Pools)
	}
	return ""
}

// InPools reports whether p may lie where it is: there are no Pools, or p
// is one of them or lies inside one.
func (l *Limits) InPools(p netip.Prefix) bool {
	return len(l.Pools) == 0 || inside(p, l.Pools)
}

// CheckLimits reports every mapped prefix of m that breaks l, each at its
// file and line, as a sorted fileerr.ErrorList; nil if none does.
func (m *Mapping) CheckLimits(l Limits) error {
	if m == nil {
		return nil
	}
	var errs fileerr.ErrorList
	for i := range m.prefixes {
		e := &m.prefixes[i]
		p := e.prefix()
		if problem := l.Problem(p); problem != "" {
			vm := &m.vms[e.vm]
			errs = append(errs, fileerr.Error{File: vm.File, Line: int(e.line),
				Msg: fmt.Sprintf("%s: %s", vmWhat(vm.Key), problem)})
		}
	}
	if len(errs) == 0 {
		return nil
	}
	errs.Sort()
	return errs
}
