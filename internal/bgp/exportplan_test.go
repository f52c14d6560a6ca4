package bgp

import (
	"errors"
	"net/netip"
	"slices"
	"testing"

	api "github.com/osrg/gobgp/v3/api"

	"github.com/virtbgp/virtbgp/internal/config"
)

// TestPlanExport checks the statements planExport makes per peer, in
// order, and the families it drops for want of a next hop.
func TestPlanExport(t *testing.T) {
	v4 := netip.MustParseAddr("198.18.0.1")
	v6 := netip.MustParseAddr("fd00::1")
	both := []config.Family{config.FamilyIPv4, config.FamilyIPv6}
	nh := func(peer netip.Addr, f config.Family) (netip.Addr, error) {
		if peer == v4 && f == config.FamilyIPv6 {
			return netip.MustParseAddr("fd00::11"), nil
		}
		return netip.Addr{}, errors.New("none on eth0")
	}
	med := uint32(7)
	type stmt struct {
		kind, action string
	}
	tests := []struct {
		name    string
		peers   []config.Peer
		want    []stmt
		dropped []DroppedFamily
		nextHop map[netip.Addr]map[config.Family]netip.Addr
	}{
		{"own family only", []config.Peer{{Address: v4, Families: []config.Family{config.FamilyIPv4}}}, nil, nil, map[netip.Addr]map[config.Family]netip.Addr{}},
		{"ipv6 over IPv4 from the interface", []config.Peer{{Address: v4, Families: both}},
			[]stmt{{"nexthop-ipv6", "next hop fd00::11"}}, nil,
			map[netip.Addr]map[config.Family]netip.Addr{v4: {config.FamilyIPv6: netip.MustParseAddr("fd00::11")}}},
		{"override wins", []config.Peer{{Address: v4, Families: both, NextHopIPv6: netip.MustParseAddr("2001:db8::2")}},
			[]stmt{{"nexthop-ipv6", "next hop 2001:db8::2"}}, nil,
			map[netip.Addr]map[config.Family]netip.Addr{v4: {config.FamilyIPv6: netip.MustParseAddr("2001:db8::2")}}},
		{"ipv4 over IPv6 without an address", []config.Peer{{Address: v6, Families: both}},
			[]stmt{{"nexthop-ipv4", "reject"}}, []DroppedFamily{{Peer: v6, Family: config.FamilyIPv4, Reason: "none on eth0"}},
			map[netip.Addr]map[config.Family]netip.Addr{}},
		{"every policy key, in order", []config.Peer{{Address: v4, Families: both, Export: config.PeerExport{
			Families: []config.Family{config.FamilyIPv4}, Prefixes: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")},
			Communities: []uint32{1}, ASPathPrepend: 2, MED: &med}}},
			[]stmt{{"families", "reject"}, {"prefixes-ipv4", "reject"}, {"prefixes-ipv6", "reject"}, {"nexthop-ipv6", "next hop fd00::11"}, {"attributes", "change"}},
			nil, map[netip.Addr]map[config.Family]netip.Addr{v4: {config.FamilyIPv6: netip.MustParseAddr("fd00::11")}}},
		{"a peer given twice makes its statements once", []config.Peer{{Address: v6, Families: both}, {Address: v6, Families: both}},
			[]stmt{{"nexthop-ipv4", "reject"}}, []DroppedFamily{{Peer: v6, Family: config.FamilyIPv4, Reason: "none on eth0"}},
			map[netip.Addr]map[config.Family]netip.Addr{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pl := planExport(65001, tt.peers, nh)
			var got []stmt
			for _, s := range pl.stmts {
				a := s.GetActions()
				act := "change"
				switch {
				case a.GetRouteAction() == api.RouteAction_REJECT:
					act = "reject"
				case a.GetNexthop() != nil:
					act = "next hop " + a.GetNexthop().GetAddress()
				}
				kind := s.GetName()[len(setName(tt.peers[0].Address.Unmap(), "")):]
				got = append(got, stmt{kind, act})
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("statements %v, want %v", got, tt.want)
			}
			if !slices.Equal(pl.dropped, tt.dropped) {
				t.Errorf("dropped %v, want %v", pl.dropped, tt.dropped)
			}
			if len(pl.nextHops) != len(tt.nextHop) {
				t.Errorf("next hops %v, want %v", pl.nextHops, tt.nextHop)
			}
			for a, m := range tt.nextHop {
				for f, want := range m {
					if pl.nextHops[a][f] != want {
						t.Errorf("next hop %s %s = %v, want %v", a, f, pl.nextHops[a][f], want)
					}
				}
			}
		})
	}
}
