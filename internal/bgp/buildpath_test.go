package bgp_test

import (
	"net/netip"
	"slices"
	"testing"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	packet "github.com/osrg/gobgp/v3/pkg/packet/bgp"

	"github.com/virtbgp/virtbgp/internal/bgp"
	"github.com/virtbgp/virtbgp/internal/bgptest"
	"github.com/virtbgp/virtbgp/mapping"
)

// TestBuildPath decodes the paths buildPath makes for every kind of route.
func TestBuildPath(t *testing.T) {
	for _, c := range []struct {
		route   mapping.Route
		family  *api.Family
		nexthop string
		mpReach bool
	}{
		{route: mapping.Route{
			Prefix:           netip.MustParsePrefix("198.51.100.1/32"),
			Communities:      []uint32{1, mapping.CommunityNoExport},
			LargeCommunities: []mapping.LargeCommunity{{GlobalAdmin: 65001, LocalData1: 1, LocalData2: 2}},
			MED:              u32(10),
			LocalPref:        u32(200),
			ASPathPrepend:    3,
		}, family: bgptest.Family(famV4), nexthop: "0.0.0.0"},
		{route: mapping.Route{Prefix: netip.MustParsePrefix("198.51.100.0/24"), NextHop: netip.MustParseAddr("192.0.2.9")},
			family: bgptest.Family(famV4), nexthop: "192.0.2.9"},
		{route: mapping.Route{Prefix: netip.MustParsePrefix("2001:db8::1/128"), MED: u32(1)},
			family: bgptest.Family(famV6), nexthop: "::", mpReach: true},
		{route: mapping.Route{Prefix: netip.MustParsePrefix("2001:db8::/64"), NextHop: netip.MustParseAddr("2001:db8::9")},
			family: bgptest.Family(famV6), nexthop: "2001:db8::9", mpReach: true},
	} {
		r := c.route
		p, err := bgp.BuildPath(r, localAS)
		if err != nil {
			t.Fatalf("%v: %v", r, err)
		}
		if p.Family.Afi != c.family.Afi || p.Family.Safi != c.family.Safi {
			t.Errorf("%v: family %v", r.Prefix, p.Family)
		}
		nlri, err := apiutil.GetNativeNlri(p)
		if err != nil || nlri.String() != r.Prefix.String() {
			t.Errorf("%v: nlri %v, %v", r.Prefix, nlri, err)
		}
		tp, err := bgptest.DecodePath(p)
		if err != nil {
			t.Fatalf("%v: %v", r.Prefix, err)
		}
		wantAS := []uint32{}
		for range r.ASPathPrepend {
			wantAS = append(wantAS, localAS)
		}
		if msg := checkPath(map[netip.Prefix][]bgptest.Path{r.Prefix: {tp}}, r.Prefix.String(), "", c.nexthop,
			wantAS, r.Communities, r.LargeCommunities, r.MED, r.LocalPref); msg != "" {
			t.Error(msg)
		}
		attrs, _ := apiutil.GetNativePathAttributes(p)
		hasMP := slices.ContainsFunc(attrs, func(a packet.PathAttributeInterface) bool {
			return a.GetType() == packet.BGP_ATTR_TYPE_MP_REACH_NLRI
		})
		hasNH := slices.ContainsFunc(attrs, func(a packet.PathAttributeInterface) bool {
			return a.GetType() == packet.BGP_ATTR_TYPE_NEXT_HOP
		})
		if hasMP != c.mpReach || hasNH == c.mpReach {
			t.Errorf("%v: MP_REACH_NLRI %v, NEXT_HOP %v", r.Prefix, hasMP, hasNH)
		}
	}
}
