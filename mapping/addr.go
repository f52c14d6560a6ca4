package mapping

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/virtbgp/virtbgp/fileerr"
)

// reservedRange is a range of addresses that must never be announced for a
// VM, nor be used as a next hop.
type reservedRange struct {
	prefix netip.Prefix
	why    string
}

// reservedRanges returns the reserved ranges of one family (IPv4 when is4).
func reservedRanges(is4 bool) []reservedRange {
	if is4 {
		return reserved4[:]
	}
	return reserved6[:]
}

// The reserved ranges by family: constant tables, never written.
var (
	reserved4 = [...]reservedRange{
		{netip.MustParsePrefix("0.0.0.0/32"), "unspecified"},
		{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
		{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
		{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
		{netip.MustParsePrefix("255.255.255.255/32"), "limited broadcast"},
	}
	reserved6 = [...]reservedRange{
		{netip.MustParsePrefix("::/128"), "unspecified"},
		{netip.MustParsePrefix("::1/128"), "loopback"},
		{netip.MustParsePrefix("fe80::/10"), "link-local"},
		{netip.MustParsePrefix("ff00::/8"), "multicast"},
		{netip.MustParsePrefix("::ffff:0:0/96"), "IPv4-mapped"},
	}
)

// reservedOverlap returns the reserved range that p overlaps, if any.
func reservedOverlap(p netip.Prefix) (reservedRange, bool) {
	if p.IsSingleIP() && !reservedAddr(p.Addr()) {
		return reservedRange{}, false // the common case, made cheap
	}
	for _, r := range reservedRanges(p.Addr().Is4()) {
		if r.prefix.Overlaps(p) {
			return r, true
		}
	}
	return reservedRange{}, false
}

// reservedAddr reports whether a is in one of the reserved ranges, like
// reservedOverlap but without the tables.
func reservedAddr(a netip.Addr) bool {
	return a.IsUnspecified() || a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsMulticast() ||
		a.Is4In6() || (a.Is4() && a.As4() == [4]byte{255, 255, 255, 255})
}

// parsePrefix parses one entry of ips: an address (a host route: /32 or
// /128) or a prefix in CIDR notation. On failure it returns the problem,
// without context, for the caller to place.
func parsePrefix(s string) (netip.Prefix, string) {
	var p netip.Prefix
	if i := strings.IndexByte(s, '/'); i >= 0 {
		if strings.IndexByte(s[:i], '%') >= 0 {
			return p, fmt.Sprintf("%s: IPv6 zones are not allowed", printable(fileerr.Clip(s, maxQuoted)))
		}
		var err error
		if p, err = netip.ParsePrefix(s); err != nil {
			return p, fmt.Sprintf("invalid IP prefix %s", q(s))
		}
		if m := p.Masked(); m != p {
			return p, fmt.Sprintf("%s has host bits set (the prefix is %s)", p, m)
		}
	} else {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return p, fmt.Sprintf("invalid IP address %s", q(s))
		}
		if a.Zone() != "" {
			return p, fmt.Sprintf("%s: IPv6 zones are not allowed", printable(fileerr.Clip(s, maxQuoted)))
		}
		p = netip.PrefixFrom(a, a.BitLen())
	}
	if p.Bits() == 0 {
		return p, fmt.Sprintf("%s is the default route: a mapping names service addresses, never the default route", p)
	}
	if r, bad := reservedOverlap(p); bad {
		if p.IsSingleIP() {
			return p, fmt.Sprintf("%s is a reserved address (%s)", p.Addr(), r.why)
		}
		return p, fmt.Sprintf("%s contains reserved addresses (%s %s)", p, r.why, r.prefix)
	}
	return p, ""
}

// parseNextHop parses an explicit next hop: a unicast address, not reserved.
func parseNextHop(s string) (netip.Addr, string) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return a, fmt.Sprintf("want \"self\" or an IP address, got %s", q(s))
	}
	if a.Zone() != "" {
		return a, fmt.Sprintf("%s: IPv6 zones are not allowed", printable(fileerr.Clip(s, maxQuoted)))
	}
	if r, bad := reservedOverlap(netip.PrefixFrom(a, a.BitLen())); bad {
		return a, fmt.Sprintf("%s is a reserved address (%s)", a, r.why)
	}
	return a, ""
}

// parseUUID reports whether s is a UUID in the 8-4-4-4-12 hexadecimal form,
// and returns it in lower case.
func parseUUID(s string) (string, bool) {
	if len(s) != 36 {
		return "", false
	}
	upper := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return "", false
			}
			continue
		}
		switch {
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f':
		case 'A' <= c && c <= 'F':
			upper = true
		default:
			return "", false
		}
	}
	if upper {
		s = strings.ToLower(s)
	}
	return s, true
}

// lowerUUID returns s in lower case, without allocating when it already is.
func lowerUUID(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

// nestedConflicts finds the prefixes that are mapped twice: in a list of n
// prefixes sorted as netip.Prefix.Compare sorts them, it calls conflict(i,
// outer) for each i whose prefix is that of an earlier outer, or lies
// inside it. prefix(i) gives the i-th prefix, and false to leave it out.
//
// Prefixes nest or are disjoint. In this order a prefix comes before those
// inside it, so each prefix is checked against the outermost one still
// open: the last one not inside another. One sweep, O(n).
func nestedConflicts(n int, prefix func(i int) (netip.Prefix, bool), conflict func(i, outer int)) {
	outer := -1
	var op netip.Prefix // the prefix of outer
	for i := range n {
		p, ok := prefix(i)
		if !ok {
			continue
		}
		if outer >= 0 && op.Bits() <= p.Bits() && op.Contains(p.Addr()) {
			conflict(i, outer)
			continue
		}
		outer, op = i, p
	}
}

// printable returns s, quoted if it has a control character, so that a
// message stays on one line.
func printable(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] == 0x7f {
			return strconv.Quote(s)
		}
	}
	return s
}
