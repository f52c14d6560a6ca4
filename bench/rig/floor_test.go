package rig

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/osrg/gobgp/v3/pkg/packet/bgp"

	"github.com/virtbgp/virtbgp/integration/lab"
)

// TestEncodeUpdates decodes the floor's UPDATEs back: one per route, with
// the route's prefix, MED and communities, the host's AS path and next hop.
func TestEncodeUpdates(t *testing.T) {
	r := &Rig{Host: &lab.Host{IPv4: netip.MustParseAddr("198.18.0.11"), ASN: 65011}}
	routes := Flat(Routes(3, 2))
	buf, err := r.EncodeUpdates(routes)
	if err != nil {
		t.Fatal(err)
	}
	for i, rt := range routes {
		if len(buf) < bgp.BGP_HEADER_LENGTH {
			t.Fatalf("route %d: %d bytes left", i, len(buf))
		}
		n := int(buf[16])<<8 | int(buf[17])
		m, err := bgp.ParseBGPMessage(buf[:n])
		if err != nil {
			t.Fatalf("route %d: %v", i, err)
		}
		buf = buf[n:]
		u, ok := m.Body.(*bgp.BGPUpdate)
		if !ok || len(u.NLRI) != 1 || u.NLRI[0].String() != rt.Prefix.String() {
			t.Fatalf("route %d: %v, want one UPDATE for %s", i, m.Body, rt.Prefix)
		}
		var med uint32
		var comms []uint32
		var nh string
		var asPath []uint32
		for _, a := range u.PathAttributes {
			switch a := a.(type) {
			case *bgp.PathAttributeMultiExitDisc:
				med = a.Value
			case *bgp.PathAttributeCommunities:
				comms = a.Value
			case *bgp.PathAttributeNextHop:
				nh = a.Value.String()
			case *bgp.PathAttributeAsPath:
				for _, p := range a.Value {
					asPath = append(asPath, p.GetAS()...)
				}
			}
		}
		var want []uint32
		for _, c := range rt.Communities {
			v, err := parseCommunity(c)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, v)
		}
		if med != rt.MED || !slices.Equal(comms, want) || nh != "198.18.0.11" || !slices.Equal(asPath, []uint32{65011}) {
			t.Errorf("route %d: med %d communities %v next hop %s AS path %v, want %d %v 198.18.0.11 [65011]", i, med, comms, nh, asPath, rt.MED, want)
		}
	}
	if len(buf) != 0 {
		t.Errorf("%d bytes after the last UPDATE", len(buf))
	}
}
