package bgp

import (
	"net/netip"
	"slices"
	"testing"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"

	"github.com/virtbgp/virtbgp/mapping"
)

func TestNormalizeRoute(t *testing.T) {
	r, err := normalizeRoute(mapping.Route{
		Prefix:      netip.MustParsePrefix("198.51.100.21/28"),
		NextHop:     netip.MustParseAddr("0.0.0.0"),
		Communities: []uint32{3, 1, 3},
		MED:         u32(7),
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Prefix.String() != "198.51.100.16/28" || r.NextHop.IsValid() || !slices.Equal(r.Communities, []uint32{1, 3}) {
		t.Errorf("normalized: %v", r)
	}

	for _, bad := range []mapping.Route{
		{},
		{Prefix: netip.MustParsePrefix("198.51.100.1/32"), NextHop: netip.MustParseAddr("2001:db8::1")},
		{Prefix: netip.MustParsePrefix("198.51.100.1/32"), NextHop: netip.MustParseAddr("::ffff:192.0.2.1")},
		{Prefix: netip.MustParsePrefix("2001:db8::1/128"), NextHop: netip.MustParseAddr("192.0.2.1")},
		{Prefix: netip.MustParsePrefix("2001:db8::1/128"), NextHop: netip.MustParseAddr("fe80::1%eth0")},
	} {
		if _, err := normalizeRoute(bad); err == nil {
			t.Errorf("normalizeRoute(%v): no error", bad)
		}
	}
}

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
		}, family: famV4, nexthop: "0.0.0.0"},
		{route: mapping.Route{Prefix: netip.MustParsePrefix("198.51.100.0/24"), NextHop: netip.MustParseAddr("192.0.2.9")},
			family: famV4, nexthop: "192.0.2.9"},
		{route: mapping.Route{Prefix: netip.MustParsePrefix("2001:db8::1/128"), MED: u32(1)},
			family: famV6, nexthop: "::", mpReach: true},
		{route: mapping.Route{Prefix: netip.MustParsePrefix("2001:db8::/64"), NextHop: netip.MustParseAddr("2001:db8::9")},
			family: famV6, nexthop: "2001:db8::9", mpReach: true},
	} {
		r := c.route
		p, err := buildPath(r, localAS)
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
		tp := decodePath(t, r.Prefix.String(), p)
		wantAS := []uint32{}
		for range r.ASPathPrepend {
			wantAS = append(wantAS, localAS)
		}
		if msg := checkPath(map[string][]torPath{r.Prefix.String(): {tp}}, r.Prefix.String(), "", c.nexthop,
			wantAS, r.Communities, r.LargeCommunities, r.MED, r.LocalPref); msg != "" {
			t.Error(msg)
		}
		attrs, _ := apiutil.GetNativePathAttributes(p)
		hasMP := slices.ContainsFunc(attrs, func(a bgp.PathAttributeInterface) bool {
			return a.GetType() == bgp.BGP_ATTR_TYPE_MP_REACH_NLRI
		})
		hasNH := slices.ContainsFunc(attrs, func(a bgp.PathAttributeInterface) bool {
			return a.GetType() == bgp.BGP_ATTR_TYPE_NEXT_HOP
		})
		if hasMP != c.mpReach || hasNH == c.mpReach {
			t.Errorf("%v: MP_REACH_NLRI %v, NEXT_HOP %v", r.Prefix, hasMP, hasNH)
		}
	}
}
