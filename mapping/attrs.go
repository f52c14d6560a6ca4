package mapping

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// level is where in a file an attribute was given.
type level uint8

// The levels, from the weakest to the strongest.
const (
	levelDefaults level = iota + 1
	levelVM
	levelIP
)

// attrs is the set of BGP attributes one level of a file gives (own
// attributes), or, after merging the levels with with, the resolved set an IP
// gets. The lists are normalized (sorted, free of duplicates) and clipped;
// like the pointers they are shared between the routes that resolve to
// them, and never written after they are built.
type attrs struct {
	comms      []uint32
	large      []LargeCommunity
	med        *uint32
	localPref  *uint32
	prepend    uint8
	hasPrepend bool
	// nextHop is the explicit next hop, the zero Addr for "self";
	// hasNextHop tells whether this level gave one, and nhLevel and nhLine
	// where it comes from, for messages.
	nextHop    netip.Addr
	hasNextHop bool
	nhLevel    level
	nhLine     int
	// set is true when the level gives any attribute.
	set bool
}

// with returns the attributes of parent overridden by own: own's MED,
// local-pref, prepend and next hop win, communities and large communities
// add up. When own gives no list the result shares parent's, so that the
// routes of a VM without attributes share the file's attribute lists.
func (parent *attrs) with(own *attrs) attrs {
	r := *parent
	if !own.set {
		return r
	}
	r.set = true
	r.comms = union(parent.comms, own.comms, normComms)
	r.large = union(parent.large, own.large, normLarge)
	if own.med != nil {
		r.med = own.med
	}
	if own.localPref != nil {
		r.localPref = own.localPref
	}
	if own.hasPrepend {
		r.prepend = own.prepend
	}
	if own.hasNextHop {
		r.nextHop, r.hasNextHop, r.nhLevel, r.nhLine = own.nextHop, true, own.nhLevel, own.nhLine
	}
	return r
}

// union returns the normalized union of two normalized lists, sharing one of
// them when the other is empty.
func union[T any](a, b []T, norm func([]T) []T) []T {
	if len(b) == 0 {
		return a
	}
	if len(a) == 0 {
		return b
	}
	return norm(slices.Concat(a, b))
}

// normComms sorts and de-duplicates a community list (Route.Normalize), and
// clips it so that an append by a caller cannot write into a shared array.
func normComms(list []uint32) []uint32 {
	rt := Route{Communities: list}
	rt.Normalize()
	return slices.Clip(rt.Communities)
}

// normLarge is normComms for large communities.
func normLarge(list []LargeCommunity) []LargeCommunity {
	rt := Route{LargeCommunities: list}
	rt.Normalize()
	return slices.Clip(rt.LargeCommunities)
}

// route builds the route for prefix p with the resolved attributes a.
func (a *attrs) route(p netip.Prefix) Route {
	return Route{
		Prefix:           p,
		NextHop:          a.nextHop,
		Communities:      a.comms,
		LargeCommunities: a.large,
		MED:              a.med,
		LocalPref:        a.localPref,
		ASPathPrepend:    a.prepend,
	}
}

// nextHopOrigin describes where the next hop of a comes from, for messages.
func (a *attrs) nextHopOrigin() string {
	switch a.nhLevel {
	case levelDefaults:
		return fmt.Sprintf("from the file's defaults, line %d", a.nhLine)
	case levelVM:
		return fmt.Sprintf("from the vm, line %d", a.nhLine)
	}
	return fmt.Sprintf("set on this IP, line %d", a.nhLine)
}

// Names of the well-known communities, as the mapping accepts them.
var communityNames = [...]struct {
	name  string
	value uint32
}{
	{"no-export", CommunityNoExport},
	{"no-advertise", CommunityNoAdvertise},
	{"blackhole", CommunityBlackhole},
	{"graceful-shutdown", CommunityGracefulShutdown},
}

// parseCommunity parses a standard community: "ASN:value", each part a
// decimal from 0 to 65535, or a well-known name.
func parseCommunity(s string) (uint32, bool) {
	for _, n := range communityNames {
		if s == n.name {
			return n.value, true
		}
	}
	asn, val, ok := strings.Cut(s, ":")
	if !ok {
		return 0, false
	}
	hi, err1 := strconv.ParseUint(asn, 10, 16)
	lo, err2 := strconv.ParseUint(val, 10, 16)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return uint32(hi)<<16 | uint32(lo), true
}

// parseLargeCommunity parses a large community "GA:LD1:LD2", each part a
// decimal from 0 to 4294967295.
func parseLargeCommunity(s string) (LargeCommunity, bool) {
	var parts [3]uint32
	for i := range parts {
		var part string
		if i < 2 {
			var ok bool
			if part, s, ok = strings.Cut(s, ":"); !ok {
				return LargeCommunity{}, false
			}
		} else {
			part = s
		}
		v, err := strconv.ParseUint(part, 10, 32)
		if err != nil {
			return LargeCommunity{}, false
		}
		parts[i] = uint32(v)
	}
	return LargeCommunity{GlobalAdmin: parts[0], LocalData1: parts[1], LocalData2: parts[2]}, true
}
