package mapping

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Well-known communities (RFC 1997, RFC 7999, RFC 8326).
const (
	CommunityGracefulShutdown uint32 = 0xFFFF0000 // 65535:0
	CommunityBlackhole        uint32 = 0xFFFF029A // 65535:666
	CommunityNoExport         uint32 = 0xFFFFFF01
	CommunityNoAdvertise      uint32 = 0xFFFFFF02
)

// LargeCommunity is an RFC 8092 large community GA:LD1:LD2.
type LargeCommunity struct {
	GlobalAdmin, LocalData1, LocalData2 uint32
}

func (c LargeCommunity) String() string {
	return fmt.Sprintf("%d:%d:%d", c.GlobalAdmin, c.LocalData1, c.LocalData2)
}

func compareLarge(a, b LargeCommunity) int {
	if a.GlobalAdmin != b.GlobalAdmin {
		return cmpU32(a.GlobalAdmin, b.GlobalAdmin)
	}
	if a.LocalData1 != b.LocalData1 {
		return cmpU32(a.LocalData1, b.LocalData1)
	}
	return cmpU32(a.LocalData2, b.LocalData2)
}

func cmpU32(a, b uint32) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Route is one host route with fully resolved BGP attributes, as the speaker
// announces it. Communities and LargeCommunities are sorted and free of
// duplicates (Normalize), so two Routes compare with Equal.
type Route struct {
	Prefix netip.Prefix
	// NextHop is the explicit next hop; the zero Addr means "self" (the
	// session's local address).
	NextHop          netip.Addr
	Communities      []uint32
	LargeCommunities []LargeCommunity
	MED              *uint32
	LocalPref        *uint32
	// ASPathPrepend is how many times the local AS is prepended.
	ASPathPrepend uint8
}

// Normalize sorts and de-duplicates the community lists in place.
func (r *Route) Normalize() {
	slices.Sort(r.Communities)
	r.Communities = slices.Compact(r.Communities)
	slices.SortFunc(r.LargeCommunities, compareLarge)
	r.LargeCommunities = slices.Compact(r.LargeCommunities)
}

// Equal reports whether two routes carry the same prefix and attributes.
// Both must be normalized.
func (r Route) Equal(o Route) bool {
	return r.Prefix == o.Prefix && r.NextHop == o.NextHop &&
		slices.Equal(r.Communities, o.Communities) &&
		slices.Equal(r.LargeCommunities, o.LargeCommunities) &&
		eqPtr(r.MED, o.MED) && eqPtr(r.LocalPref, o.LocalPref) &&
		r.ASPathPrepend == o.ASPathPrepend
}

// Clone returns a deep copy.
func (r Route) Clone() Route {
	r.Communities = slices.Clone(r.Communities)
	r.LargeCommunities = slices.Clone(r.LargeCommunities)
	if r.MED != nil {
		v := *r.MED
		r.MED = &v
	}
	if r.LocalPref != nil {
		v := *r.LocalPref
		r.LocalPref = &v
	}
	return r
}

func eqPtr(a, b *uint32) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// FormatCommunity renders a standard community as "asn:value", or its
// well-known name.
func FormatCommunity(c uint32) string {
	switch c {
	case CommunityGracefulShutdown:
		return "graceful-shutdown"
	case CommunityBlackhole:
		return "blackhole"
	case CommunityNoExport:
		return "no-export"
	case CommunityNoAdvertise:
		return "no-advertise"
	}
	return fmt.Sprintf("%d:%d", c>>16, c&0xFFFF)
}

// String renders the route in one line, for logs:
// "192.0.2.10/32 next-hop self med 10 local-pref 200 prepend 2 community [65001:100] large-community [65001:1:2]".
func (r Route) String() string {
	var b strings.Builder
	b.WriteString(r.Prefix.String())
	b.WriteString(" next-hop ")
	if r.NextHop.IsValid() {
		b.WriteString(r.NextHop.String())
	} else {
		b.WriteString("self")
	}
	if r.MED != nil {
		fmt.Fprintf(&b, " med %d", *r.MED)
	}
	if r.LocalPref != nil {
		fmt.Fprintf(&b, " local-pref %d", *r.LocalPref)
	}
	if r.ASPathPrepend > 0 {
		fmt.Fprintf(&b, " prepend %d", r.ASPathPrepend)
	}
	if len(r.Communities) > 0 {
		b.WriteString(" community [")
		for i, c := range r.Communities {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(FormatCommunity(c))
		}
		b.WriteByte(']')
	}
	if len(r.LargeCommunities) > 0 {
		b.WriteString(" large-community [")
		for i, c := range r.LargeCommunities {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(c.String())
		}
		b.WriteByte(']')
	}
	return b.String()
}
