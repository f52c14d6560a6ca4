package bgp

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"reflect"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
	"github.com/osrg/gobgp/v3/pkg/server"
	"google.golang.org/protobuf/proto"

	"github.com/virtbgp/virtbgp/mapping"
)

// buildPathAnypb is buildPath as it was before it produced the binary
// encoding: the same attributes, marshalled into protobuf Any messages with
// apiutil.NewPath. It is the reference TestBuildPathBinaryMatchesAnypb
// compares buildPath with.
func buildPathAnypb(r mapping.Route, localAS uint32) (*api.Path, error) {
	p := r.Prefix
	var nlri bgp.AddrPrefixInterface
	nexthop := r.NextHop
	if p.Addr().Is4() {
		nlri = bgp.NewIPAddrPrefix(uint8(p.Bits()), p.Addr().String())
		if !nexthop.IsValid() {
			nexthop = netip.IPv4Unspecified()
		}
	} else {
		nlri = bgp.NewIPv6AddrPrefix(uint8(p.Bits()), p.Addr().String())
		if !nexthop.IsValid() {
			nexthop = netip.IPv6Unspecified()
		}
	}

	asns := make([]uint32, r.ASPathPrepend)
	for i := range asns {
		asns[i] = localAS
	}
	segments := []bgp.AsPathParamInterface{}
	if len(asns) > 0 {
		segments = append(segments, bgp.NewAs4PathParam(bgp.BGP_ASPATH_ATTR_TYPE_SEQ, asns))
	}

	attrs := []bgp.PathAttributeInterface{
		bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP),
		bgp.NewPathAttributeAsPath(segments),
	}
	if p.Addr().Is4() {
		attrs = append(attrs, bgp.NewPathAttributeNextHop(nexthop.String()))
	} else {
		attrs = append(attrs, bgp.NewPathAttributeMpReachNLRI(nexthop.String(), []bgp.AddrPrefixInterface{nlri}))
	}
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

	path, err := apiutil.NewPath(nlri, false, attrs, time.Now())
	if err != nil {
		return nil, fmt.Errorf("encode path for %s: %w", r.Prefix, err)
	}
	return path, nil
}

func ptr(v uint32) *uint32 { return &v }

// equivRoutes are the routes the binary and the anypb paths are compared on.
func equivRoutes() map[string]mapping.Route {
	manyComms := make([]uint32, 100) // 400 octets: extended-length attribute
	for i := range manyComms {
		manyComms[i] = 65001<<16 | uint32(i)
	}
	return map[string]mapping.Route{
		"v4 bare": {Prefix: netip.MustParsePrefix("198.51.100.1/32")},
		"v4 full": {
			Prefix: netip.MustParsePrefix("198.51.100.2/32"),
			Communities: []uint32{65001<<16 | 100, mapping.CommunityGracefulShutdown, mapping.CommunityBlackhole,
				mapping.CommunityNoExport, mapping.CommunityNoAdvertise},
			LargeCommunities: []mapping.LargeCommunity{{GlobalAdmin: 65001, LocalData1: 1, LocalData2: 2}, {GlobalAdmin: 4200000000, LocalData1: 0, LocalData2: 0xFFFFFFFF}},
			MED:              ptr(10),
			LocalPref:        ptr(200),
			ASPathPrepend:    3,
		},
		"v4 med only":           {Prefix: netip.MustParsePrefix("198.51.100.3/32"), MED: ptr(0)},
		"v4 local-pref only":    {Prefix: netip.MustParsePrefix("198.51.100.4/32"), LocalPref: ptr(0)},
		"v4 well-known only":    {Prefix: netip.MustParsePrefix("198.51.100.5/32"), Communities: []uint32{mapping.CommunityNoExport}},
		"v4 large only":         {Prefix: netip.MustParsePrefix("198.51.100.6/32"), LargeCommunities: []mapping.LargeCommunity{{GlobalAdmin: 1, LocalData1: 2, LocalData2: 3}}},
		"v4 prepend 1":          {Prefix: netip.MustParsePrefix("198.51.100.7/32"), ASPathPrepend: 1},
		"v4 prepend 255":        {Prefix: netip.MustParsePrefix("198.51.100.8/32"), ASPathPrepend: 255},
		"v4 many communities":   {Prefix: netip.MustParsePrefix("198.51.100.9/32"), Communities: manyComms},
		"v4 explicit next hop":  {Prefix: netip.MustParsePrefix("198.51.100.0/28"), NextHop: netip.MustParseAddr("192.0.2.9"), MED: ptr(7)},
		"v4 next hop 0.0.0.0":   {Prefix: netip.MustParsePrefix("198.51.100.16/28"), NextHop: netip.MustParseAddr("0.0.0.0")},
		"v4 default route":      {Prefix: netip.MustParsePrefix("0.0.0.0/0"), ASPathPrepend: 2},
		"v4 /24 unmasked input": {Prefix: netip.MustParsePrefix("203.0.113.77/24"), LocalPref: ptr(150)},
		"v6 bare":               {Prefix: netip.MustParsePrefix("2001:db8::1/128")},
		"v6 full": {
			Prefix:           netip.MustParsePrefix("2001:db8::2/128"),
			Communities:      []uint32{mapping.CommunityNoAdvertise, 65001<<16 | 6, mapping.CommunityNoExport},
			LargeCommunities: []mapping.LargeCommunity{{GlobalAdmin: 65001, LocalData1: 6, LocalData2: 6}},
			MED:              ptr(60),
			LocalPref:        ptr(300),
			ASPathPrepend:    2,
		},
		"v6 med only":             {Prefix: netip.MustParsePrefix("2001:db8::3/128"), MED: ptr(1)},
		"v6 explicit next hop":    {Prefix: netip.MustParsePrefix("2001:db8:1::/64"), NextHop: netip.MustParseAddr("2001:db8::9"), LocalPref: ptr(50)},
		"v6 link-local next hop":  {Prefix: netip.MustParsePrefix("2001:db8:2::/48"), NextHop: netip.MustParseAddr("fe80::1"), ASPathPrepend: 1},
		"v6 many communities":     {Prefix: netip.MustParsePrefix("2001:db8::4/128"), Communities: manyComms, ASPathPrepend: 255},
		"v6 default route":        {Prefix: netip.MustParsePrefix("::/0"), Communities: []uint32{mapping.CommunityBlackhole}},
		"v6 odd length unmasked":  {Prefix: netip.MustParsePrefix("2001:db8:ffff:ffff::1/61"), MED: ptr(0xFFFFFFFF)},
		"v6 large communities x3": {Prefix: netip.MustParsePrefix("2001:db8::5/128"), LargeCommunities: []mapping.LargeCommunity{{GlobalAdmin: 3, LocalData1: 3, LocalData2: 3}, {GlobalAdmin: 1, LocalData1: 1, LocalData2: 1}, {GlobalAdmin: 2, LocalData1: 2, LocalData2: 2}}},
	}
}

// wire is a native attribute as it goes on the wire: its type, flags and
// serialized bytes, and the Go type GoBGP decoded it into.
type wire struct {
	code   bgp.BGPAttrType
	flags  bgp.BGPAttrFlag
	goType string
	bytes  []byte
}

func (w wire) String() string {
	return fmt.Sprintf("%s %s flags %#02x %x", w.code, w.goType, uint8(w.flags), w.bytes)
}

func wireAttrs(t *testing.T, attrs []bgp.PathAttributeInterface) []wire {
	t.Helper()
	out := make([]wire, len(attrs))
	for i, a := range attrs {
		b, err := a.Serialize()
		if err != nil {
			t.Fatalf("serialize %v: %v", a, err)
		}
		out[i] = wire{code: a.GetType(), flags: a.GetFlags(), goType: reflect.TypeOf(a).String(), bytes: b}
	}
	return out
}

// decoded is what GoBGP's api2Path reads from an api.Path: the native NLRI
// and attributes (via apiutil) and the other fields.
type decoded struct {
	nlriType  string
	nlriStr   string
	nlriBytes []byte
	attrs     []wire
	rest      *api.Path // the path without Nlri, Pattrs, NlriBinary, PattrsBinary and Age
}

func decode(t *testing.T, p *api.Path) decoded {
	t.Helper()
	nlri, err := apiutil.GetNativeNlri(p)
	if err != nil {
		t.Fatalf("GetNativeNlri: %v", err)
	}
	nb, err := nlri.Serialize()
	if err != nil {
		t.Fatal(err)
	}
	attrs, err := apiutil.GetNativePathAttributes(p)
	if err != nil {
		t.Fatalf("GetNativePathAttributes: %v", err)
	}
	rest := proto.Clone(p).(*api.Path)
	rest.Nlri, rest.Pattrs, rest.NlriBinary, rest.PattrsBinary, rest.Age = nil, nil, nil, nil, nil
	return decoded{
		nlriType: reflect.TypeOf(nlri).String(), nlriStr: nlri.String(), nlriBytes: nb,
		attrs: wireAttrs(t, attrs), rest: rest,
	}
}

func compareDecoded(t *testing.T, what string, got, want decoded) {
	t.Helper()
	if got.nlriType != want.nlriType || got.nlriStr != want.nlriStr || !bytes.Equal(got.nlriBytes, want.nlriBytes) {
		t.Errorf("%s: NLRI %s %s %x, want %s %s %x", what, got.nlriType, got.nlriStr, got.nlriBytes,
			want.nlriType, want.nlriStr, want.nlriBytes)
	}
	if !proto.Equal(got.rest, want.rest) {
		t.Errorf("%s: other path fields %v, want %v", what, got.rest, want.rest)
	}
	if len(got.attrs) != len(want.attrs) {
		t.Errorf("%s: %d attributes %v, want %d %v", what, len(got.attrs), got.attrs, len(want.attrs), want.attrs)
		return
	}
	// Same order too: GoBGP keeps the order of an originated path's
	// attributes (it sorts them by type when it builds the UPDATE anyway).
	for i := range got.attrs {
		g, w := got.attrs[i], want.attrs[i]
		if g.code != w.code || g.flags != w.flags || g.goType != w.goType || !bytes.Equal(g.bytes, w.bytes) {
			t.Errorf("%s: attribute %d: %v, want %v", what, i, g, w)
		}
	}
}

// TestBuildPathBinaryMatchesAnypb checks that the binary path buildPath
// makes is the anypb path the old builder made, as GoBGP sees them:
//   - decoded with apiutil.GetNativeNlri / GetNativePathAttributes (what
//     api2Path does on AddPath and DeletePath), the NLRI and every attribute
//     have the same type, flags and wire encoding, in the same order, and the
//     other api.Path fields are the same;
//   - added to a GoBGP server each, the paths GoBGP keeps in its RIB (its
//     table.Path, as ListPath returns it) are the same;
//   - a DeletePath with the binary path removes a path added as anypb.
func TestBuildPathBinaryMatchesAnypb(t *testing.T) {
	const as = 65001
	routes := equivRoutes()
	for name, r := range routes {
		nr, err := normalizeRoute(r)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		routes[name] = nr
	}

	paths := map[string][2]*api.Path{} // name: {binary, anypb}
	for name, r := range routes {
		bin, err := buildPath(r, as)
		if err != nil {
			t.Fatalf("%s: buildPath: %v", name, err)
		}
		ref, err := buildPathAnypb(r, as)
		if err != nil {
			t.Fatalf("%s: buildPathAnypb: %v", name, err)
		}
		if len(bin.NlriBinary) == 0 || len(bin.PattrsBinary) == 0 || bin.Nlri != nil || len(bin.Pattrs) > 0 {
			t.Errorf("%s: not a binary-only path: %v", name, bin)
		}
		compareDecoded(t, name, decode(t, bin), decode(t, ref))
		paths[name] = [2]*api.Path{bin, ref}
	}

	// Through GoBGP's RIB.
	ctx := context.Background()
	newServer := func() *server.BgpServer {
		s := server.NewBgpServer()
		go s.Serve()
		if err := s.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{Asn: as, RouterId: "192.0.2.1", ListenPort: -1}}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.StopBgp(context.Background(), &api.StopBgpRequest{}) })
		return s
	}
	binSrv, refSrv := newServer(), newServer()
	for name, p := range paths {
		if _, err := binSrv.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: p[0]}); err != nil {
			t.Fatalf("%s: AddPath(binary): %v", name, err)
		}
		if _, err := refSrv.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: p[1]}); err != nil {
			t.Fatalf("%s: AddPath(anypb): %v", name, err)
		}
	}
	list := func(s *server.BgpServer) map[string]decoded {
		out := map[string]decoded{}
		for _, fam := range []*api.Family{family(netip.MustParsePrefix("0.0.0.0/0")), family(netip.MustParsePrefix("::/0"))} {
			err := s.ListPath(ctx, &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: fam}, func(d *api.Destination) {
				for _, p := range d.Paths {
					if _, dup := out[d.Prefix]; dup {
						t.Errorf("%s: more than one path", d.Prefix)
					}
					out[d.Prefix] = decode(t, p)
				}
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		return out
	}
	binRIB, refRIB := list(binSrv), list(refSrv)
	if len(binRIB) != len(routes) || len(refRIB) != len(routes) {
		t.Fatalf("RIBs hold %d (binary) and %d (anypb) paths, want %d", len(binRIB), len(refRIB), len(routes))
	}
	for name, r := range routes {
		pfx := r.Prefix.String()
		b, ok1 := binRIB[pfx]
		w, ok2 := refRIB[pfx]
		if !ok1 || !ok2 {
			t.Errorf("%s: %s in binary RIB %v, in anypb RIB %v", name, pfx, ok1, ok2)
			continue
		}
		// Uuid is AddPath's random ID of the path.
		b.rest.Uuid, w.rest.Uuid = nil, nil
		compareDecoded(t, name+" (RIB)", b, w)
	}

	// Withdraw: the binary path deletes the path added as anypb.
	for name, p := range paths {
		if err := refSrv.DeletePath(ctx, &api.DeletePathRequest{TableType: api.TableType_GLOBAL, Family: p[0].Family, Path: p[0]}); err != nil {
			t.Fatalf("%s: DeletePath(binary): %v", name, err)
		}
	}
	if left := list(refSrv); len(left) != 0 {
		t.Errorf("after deleting every path with its binary form, the RIB holds %d paths", len(left))
	}
}
