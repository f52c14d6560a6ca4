package mapping

import (
	"errors"
	"fmt"
	"math"
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
// A next hop without a line (nhLine 0) comes from outside a file: the
// defaults a caller gives for routes of another source (Attributes).
func (a *attrs) nextHopOrigin() string {
	switch {
	case a.nhLine == 0 && a.nhLevel == levelDefaults:
		return "from the defaults"
	case a.nhLevel == levelDefaults:
		return fmt.Sprintf("from the file's defaults, line %d", a.nhLine)
	case a.nhLevel == levelVM:
		return fmt.Sprintf("from the vm, line %d", a.nhLine)
	}
	return fmt.Sprintf("set on this IP, line %d", a.nhLine)
}

// familyProblem returns what is wrong with announcing p with the resolved
// attributes a, "" if nothing: an explicit next hop must be of p's family.
func (a *attrs) familyProblem(p netip.Prefix) string {
	if nh := a.nextHop; nh.IsValid() && nh.Is4() != p.Addr().Is4() {
		return fmt.Sprintf("%s is %s but its next-hop %s (%s) is %s",
			p, family(p.Addr().Is4()), nh, a.nextHopOrigin(), family(nh.Is4()))
	}
	return ""
}

func family(is4 bool) string {
	if is4 {
		return "IPv4"
	}
	return "IPv6"
}

// The attribute keys, as the mapping's YAML and the metadata's XML spell
// them, and what their values must be, for messages.
const (
	keyCommunities      = "communities"
	keyLargeCommunities = "large-communities"
	keyMED              = "med"
	keyLocalPref        = "local-pref"
	keyPrepend          = "as-path-prepend"
	keyNextHop          = "next-hop"

	attrKeyList = keyCommunities + ", " + keyLargeCommunities + ", " + keyMED + ", " +
		keyLocalPref + ", " + keyPrepend + ", " + keyNextHop

	// maxPrepend is the most extra copies of the local AS a level may ask for.
	maxPrepend = 16

	wantCommunity      = "ASN:value, each from 0 to 65535, or no-export, no-advertise, blackhole, graceful-shutdown"
	wantLargeCommunity = "GA:LD1:LD2, each from 0 to 4294967295"
)

// setText sets the attribute key (one of the attribute keys) of the level
// lvl from its text form, as the metadata's XML writes it: lists separated
// by white space, numbers in decimal, the next hop "self" or an address.
// line is where the value is, for the next hop's origin in messages. It
// returns what is wrong with the value, nil if nothing; a list reports each
// bad item. A key given twice is the caller's to refuse.
func (a *attrs) setText(key, value string, lvl level, line int) []string {
	switch key {
	case keyCommunities:
		list, problems := parseFields(value, "community", wantCommunity, parseCommunity)
		a.comms = normComms(list)
		a.set = true
		return problems
	case keyLargeCommunities:
		list, problems := parseFields(value, "large community", wantLargeCommunity, parseLargeCommunity)
		a.large = normLarge(list)
		a.set = true
		return problems
	case keyMED, keyLocalPref:
		v, err := strconv.ParseUint(value, 10, 32)
		if err != nil {
			return []string{fmt.Sprintf("want an integer from 0 to %d, got %q", uint32(math.MaxUint32), value)}
		}
		n := uint32(v)
		if key == keyMED {
			a.med = &n
		} else {
			a.localPref = &n
		}
	case keyPrepend:
		v, err := strconv.ParseUint(value, 10, 8)
		if err != nil || v > maxPrepend {
			return []string{fmt.Sprintf("want an integer from 0 to %d, got %q", maxPrepend, value)}
		}
		a.prepend, a.hasPrepend = uint8(v), true
	case keyNextHop:
		var nh netip.Addr
		if value != "self" {
			var problem string
			if nh, problem = parseNextHop(value); problem != "" {
				return []string{problem}
			}
		}
		a.nextHop, a.hasNextHop, a.nhLevel, a.nhLine = nh, true, lvl, line
	}
	a.set = true
	return nil
}

// parseFields parses a white-space separated list of items that parse
// accepts, and says what is wrong with each that it rejects (an invalid
// noun, wanting want).
func parseFields[T any](value, noun, want string, parse func(string) (T, bool)) ([]T, []string) {
	var list []T
	var problems []string
	for f := range strings.FieldsSeq(value) {
		v, ok := parse(f)
		if !ok {
			problems = append(problems, fmt.Sprintf("invalid %s %s (want %s)", noun, q(f), want))
			continue
		}
		list = append(list, v)
	}
	return list, problems
}

// Attributes are the BGP attributes that one level gives, for routes that
// do not come from a mapping file: the defaults that a program (the
// daemon's config) sets for the routes of another source, below the
// source's own levels (see MetadataOptions and NovaOptions). The zero value
// gives nothing. A nil pointer or an empty list does not give that
// attribute, and lower levels or the default (no MED, no local-pref, no
// prepend, next hop self) apply. The rules are those of a mapping file's
// defaults: communities add up with the other levels', the rest is
// overridden by a stronger level.
type Attributes struct {
	// Communities are standard communities (ParseCommunity).
	Communities []uint32
	// LargeCommunities are large communities (ParseLargeCommunity).
	LargeCommunities []LargeCommunity
	MED              *uint32
	// LocalPref is sent to iBGP peers only.
	LocalPref *uint32
	// ASPathPrepend is how many extra copies of the local AS, 0 to 16.
	ASPathPrepend *uint8
	// NextHop is an explicit next hop: a unicast address, not reserved,
	// of the family of the prefixes it is used for. NextHopSelf gives the
	// next hop "self" (the session's address). At most one of the two.
	NextHop     netip.Addr
	NextHopSelf bool
}

// Validate reports what is wrong with the attributes, nil if nothing: an
// AS-path prepend over 16, an explicit next hop that is not a unicast
// address (the reserved ranges of the mapping's IPs) or has a zone, both an
// explicit next hop and NextHopSelf.
func (x *Attributes) Validate() error {
	_, err := x.level()
	return err
}

// level returns the attributes as the defaults level of a resolution.
func (x *Attributes) level() (attrs, error) {
	var a attrs
	if x == nil {
		return a, nil
	}
	var errs []error
	if len(x.Communities) > 0 {
		a.comms, a.set = normComms(slices.Clone(x.Communities)), true
	}
	if len(x.LargeCommunities) > 0 {
		a.large, a.set = normLarge(slices.Clone(x.LargeCommunities)), true
	}
	if x.MED != nil {
		v := *x.MED
		a.med, a.set = &v, true
	}
	if x.LocalPref != nil {
		v := *x.LocalPref
		a.localPref, a.set = &v, true
	}
	if x.ASPathPrepend != nil {
		if *x.ASPathPrepend > maxPrepend {
			errs = append(errs, fmt.Errorf("%s: want an integer from 0 to %d, got %d", keyPrepend, maxPrepend, *x.ASPathPrepend))
		}
		a.prepend, a.hasPrepend, a.set = *x.ASPathPrepend, true, true
	}
	switch {
	case x.NextHop.IsValid() && x.NextHopSelf:
		errs = append(errs, fmt.Errorf("%s: both %s and self", keyNextHop, x.NextHop))
	case x.NextHop.IsValid():
		if _, problem := parseNextHop(x.NextHop.String()); problem != "" {
			errs = append(errs, fmt.Errorf("%s: %s", keyNextHop, problem))
		}
		a.nextHop, a.hasNextHop, a.nhLevel, a.set = x.NextHop, true, levelDefaults, true
	case x.NextHopSelf:
		a.hasNextHop, a.nhLevel, a.set = true, levelDefaults, true
	}
	if len(errs) > 0 {
		return attrs{}, fmt.Errorf("attributes: %w", errors.Join(errs...))
	}
	return (&attrs{}).with(&a), nil
}

// ParseCommunity parses a standard community as a mapping writes it:
// "ASN:value", each part a decimal from 0 to 65535, or one of the names
// no-export, no-advertise, blackhole (65535:666) and graceful-shutdown
// (65535:0). FormatCommunity is its inverse.
func ParseCommunity(s string) (uint32, error) {
	c, ok := parseCommunity(s)
	if !ok {
		return 0, fmt.Errorf("invalid community %s (want %s)", q(s), wantCommunity)
	}
	return c, nil
}

// ParseLargeCommunity parses a large community as a mapping writes it:
// "GA:LD1:LD2", each part a decimal from 0 to 4294967295.
func ParseLargeCommunity(s string) (LargeCommunity, error) {
	c, ok := parseLargeCommunity(s)
	if !ok {
		return LargeCommunity{}, fmt.Errorf("invalid large community %s (want %s)", q(s), wantLargeCommunity)
	}
	return c, nil
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
