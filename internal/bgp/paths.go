package bgp

import (
	"errors"
	"fmt"
	"net/netip"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"

	"github.com/virtbgp/virtbgp/mapping"
)

// normalizeRoute returns a deep copy of r with the prefix masked and the
// community lists sorted and de-duplicated, so that it compares with
// mapping.Route.Equal and encodes to the same path as any equal route.
func normalizeRoute(r mapping.Route) (mapping.Route, error) {
	if !r.Prefix.IsValid() {
		return mapping.Route{}, errors.New("invalid prefix")
	}
	r = r.Clone()
	r.Prefix = r.Prefix.Masked()
	r.Normalize()
	if nh := r.NextHop; nh.IsValid() {
		if nh.Zone() != "" {
			return mapping.Route{}, fmt.Errorf("%s: next hop %s has a zone", r.Prefix, nh)
		}
		if nh.IsUnspecified() {
			// 0.0.0.0 / :: is how GoBGP spells "self"; keep one spelling.
			r.NextHop = netip.Addr{}
		} else if r.Prefix.Addr().Is4() != nh.Is4() {
			return mapping.Route{}, fmt.Errorf("%s: next hop %s is of the other address family", r.Prefix, nh)
		}
	}
	return r, nil
}

// family returns the GoBGP address family of a prefix: IPv4 unicast for
// IPv4, IPv6 unicast otherwise.
func family(p netip.Prefix) *api.Family {
	if p.Addr().Is4() {
		return &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	}
	return &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
}

// buildPath turns a normalized route into the GoBGP API path that
// originates it from localAS.
//
//   - NLRI: IPv4 unicast with a NEXT_HOP attribute for IPv4 prefixes; IPv6
//     unicast with MP_REACH_NLRI for IPv6 prefixes.
//   - Next hop: 0.0.0.0 or :: for "self"; GoBGP replaces an unspecified next
//     hop of a local path with the session's local address for every peer
//     (table.UpdatePathAttrs). An explicit next hop is sent unchanged.
//   - ORIGIN IGP.
//   - AS_PATH: localAS ASPathPrepend times (empty when 0), as one AS_SEQUENCE
//     of 4-octet ASes. GoBGP adds the local AS once more towards eBGP peers,
//     and nothing towards iBGP peers.
//   - COMMUNITIES, LARGE_COMMUNITY, MULTI_EXIT_DISC, LOCAL_PREF when set.
//     GoBGP strips LOCAL_PREF towards eBGP peers (BgpServer.postFilterpath)
//     and adds LOCAL_PREF 100 towards iBGP peers when unset.
//
// The path carries the NLRI and the attributes in their wire encoding
// (api.Path.NlriBinary, PattrsBinary), which GoBGP decodes directly
// (apiutil.GetNativeNlri, GetNativePathAttributes), instead of as protobuf
// Any messages, which cost a marshal here and an unmarshal there. Age is not
// set: GoBGP ignores it on AddPath and DeletePath (api2Path stamps the path
// with time.Now()).
func buildPath(r mapping.Route, localAS uint32) (*api.Path, error) {
	p := r.Prefix
	nlri, nextHop := nlriAndNextHop(p, r.NextHop)

	var segments []bgp.AsPathParamInterface
	if r.ASPathPrepend > 0 {
		asns := make([]uint32, r.ASPathPrepend)
		for i := range asns {
			asns[i] = localAS
		}
		segments = []bgp.AsPathParamInterface{bgp.NewAs4PathParam(bgp.BGP_ASPATH_ATTR_TYPE_SEQ, asns)}
	}

	attrs := make([]bgp.PathAttributeInterface, 0, 7)
	attrs = append(attrs,
		bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP),
		bgp.NewPathAttributeAsPath(segments),
		nextHop,
	)
	if r.MED != nil {
		attrs = append(attrs, bgp.NewPathAttributeMultiExitDisc(*r.MED))
	}
	if r.LocalPref != nil {
		attrs = append(attrs, bgp.NewPathAttributeLocalPref(*r.LocalPref))
	}
	if len(r.Communities) > 0 {
		attrs = append(attrs, bgp.NewPathAttributeCommunities(r.Communities))
	}
	if len(r.LargeCommunities) > 0 {
		lc := make([]*bgp.LargeCommunity, len(r.LargeCommunities))
		for i, c := range r.LargeCommunities {
			lc[i] = bgp.NewLargeCommunity(c.GlobalAdmin, c.LocalData1, c.LocalData2)
		}
		attrs = append(attrs, bgp.NewPathAttributeLargeCommunities(lc))
	}

	return encodePath(p, nlri, attrs)
}

// withdrawPath is the path that withdraws prefix p (masked): its NLRI and
// the next hop attribute GoBGP's decoding of a path wants, nothing else.
func withdrawPath(p netip.Prefix) (*api.Path, error) {
	nlri, nextHop := nlriAndNextHop(p, netip.Addr{})
	return encodePath(p, nlri, []bgp.PathAttributeInterface{nextHop})
}

// nlriAndNextHop returns the NLRI of prefix p and the attribute that
// carries nextHop (the unspecified address, GoBGP's "self", when invalid):
// NEXT_HOP for IPv4, MP_REACH_NLRI for IPv6.
func nlriAndNextHop(p netip.Prefix, nextHop netip.Addr) (bgp.AddrPrefixInterface, bgp.PathAttributeInterface) {
	if p.Addr().Is4() {
		if !nextHop.IsValid() {
			nextHop = netip.IPv4Unspecified()
		}
		return bgp.NewIPAddrPrefix(uint8(p.Bits()), p.Addr().String()), bgp.NewPathAttributeNextHop(nextHop.String())
	}
	if !nextHop.IsValid() {
		nextHop = netip.IPv6Unspecified()
	}
	nlri := bgp.NewIPv6AddrPrefix(uint8(p.Bits()), p.Addr().String())
	return nlri, bgp.NewPathAttributeMpReachNLRI(nextHop.String(), []bgp.AddrPrefixInterface{nlri})
}

// encodePath puts the NLRI and the attributes of prefix p, in their wire
// encoding, into an API path.
func encodePath(p netip.Prefix, nlri bgp.AddrPrefixInterface, attrs []bgp.PathAttributeInterface) (*api.Path, error) {
	nlriBin, err := nlri.Serialize()
	if err != nil {
		return nil, fmt.Errorf("encode NLRI %s: %w", p, err)
	}
	pattrs := make([][]byte, len(attrs))
	for i, a := range attrs {
		if pattrs[i], err = a.Serialize(); err != nil {
			return nil, fmt.Errorf("encode %s attribute of %s: %w", a.GetType(), p, err)
		}
	}
	return &api.Path{
		Family:       family(p),
		NlriBinary:   nlriBin,
		PattrsBinary: pattrs,
	}, nil
}
