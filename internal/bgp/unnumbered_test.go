package bgp

import (
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/virtbgp/virtbgp/internal/config"
)

// TestResolvePeers checks how unnumbered peers get their address: the
// neighbour found now, else the one in GoBGP already, else none (left out,
// with why); numbered peers pass unchanged.
func TestResolvePeers(t *testing.T) {
	ll := netip.MustParseAddr("fe80::1%eth1")
	old := netip.MustParseAddr("fe80::9%eth2")
	nb := func(ifname string) (netip.Addr, error) {
		if ifname == "eth1" {
			return ll, nil
		}
		return netip.Addr{}, errors.New("no IPv6 link-local neighbour on " + ifname + " yet")
	}
	numbered := config.Peer{Address: netip.MustParseAddr("198.18.0.1"), ASN: 65000}
	tests := []struct {
		name    string
		peers   []config.Peer
		prev    map[string]netip.Addr
		want    []netip.Addr
		missing []string
	}{
		{"numbered only", []config.Peer{numbered}, nil, []netip.Addr{numbered.Address}, nil},
		{"resolved", []config.Peer{{Interface: "eth1"}, numbered}, nil, []netip.Addr{ll, numbered.Address}, nil},
		{"not resolved", []config.Peer{{Interface: "eth2"}, numbered}, nil, []netip.Addr{numbered.Address},
			[]string{"eth2: no IPv6 link-local neighbour on eth2 yet"}},
		{"kept while the neighbour is gone", []config.Peer{{Interface: "eth2"}}, map[string]netip.Addr{"eth2": old}, []netip.Addr{old}, nil},
		{"a new neighbour replaces the old", []config.Peer{{Interface: "eth1"}}, map[string]netip.Addr{"eth1": old}, []netip.Addr{ll}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, missing := resolvePeers(tt.peers, tt.prev, nb)
			var addrs []netip.Addr
			for _, p := range got {
				addrs = append(addrs, p.Address)
			}
			var why []string
			for _, u := range missing {
				why = append(why, u.peer.Interface+": "+u.why)
			}
			if !slices.Equal(addrs, tt.want) || !slices.Equal(why, tt.missing) {
				t.Errorf("resolved %v, missing %q; want %v, %q", addrs, why, tt.want, tt.missing)
			}
		})
	}
}

// TestUnnumberedExportAndTransport checks what an unnumbered peer gets in
// GoBGP: its link-local neighbour with the zone, local address "::" bound
// to the interface (so that "self" is the link-local address, not nil),
// both families, and no next-hop rewrite in the export policy (IPv4 routes
// keep the link-local next hop, RFC 8950).
func TestUnnumberedExportAndTransport(t *testing.T) {
	p := config.Peer{Interface: "eth1", Address: netip.MustParseAddr("fe80::1%eth1"), ASN: 65000,
		Families: []config.Family{config.FamilyIPv4, config.FamilyIPv6}, HoldTime: 9e9}
	s := New(config.BGP{ASN: 65001, RouterID: netip.MustParseAddr("192.0.2.1")}, nil)
	ap := s.apiPeer(p, StartOptions{})
	if ap.Conf.NeighborAddress != "fe80::1%eth1" || ap.Transport.LocalAddress != "::" || ap.Transport.BindInterface != "eth1" || len(ap.AfiSafis) != 2 {
		t.Errorf("neighbor %q, local address %q, bind interface %q, %d families; want fe80::1%%eth1, ::, eth1, 2",
			ap.Conf.NeighborAddress, ap.Transport.LocalAddress, ap.Transport.BindInterface, len(ap.AfiSafis))
	}
	nhCalled := false
	pl := planExport(65001, []config.Peer{p, {Interface: "eth2"}}, func(netip.Addr, config.Family) (netip.Addr, error) {
		nhCalled = true
		return netip.Addr{}, errors.New("none")
	})
	if nhCalled || len(pl.stmts) != 0 || len(pl.dropped) != 0 {
		t.Errorf("export plan: next hop looked up %t, %d statements, dropped %v; want none", nhCalled, len(pl.stmts), pl.dropped)
	}
	if len(pl.sets) != 1 || pl.sets[0].List[0] != "fe80::1/128" {
		t.Errorf("neighbor sets %v; want one, fe80::1/128 (GoBGP compares the address without zone)", pl.sets)
	}
}
