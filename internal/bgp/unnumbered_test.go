package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"

	"github.com/virtbgp/virtbgp/internal/config"
	"github.com/virtbgp/virtbgp/internal/testutil"
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

// TestUnnumberedPeerWaitsForItsNeighbour runs a speaker (in-process GoBGP)
// with an unnumbered peer whose interface has no neighbour yet: Peers lists
// it as waiting, with why, and GoBGP has no such peer; once the neighbour
// is there and the neighbour table changes, the peer is added with the
// neighbour's address and the same session settings.
func TestUnnumberedPeerWaitsForItsNeighbour(t *testing.T) {
	var mu sync.Mutex
	nbErr := errors.New("no IPv6 link-local neighbour on lo yet")
	ll := netip.MustParseAddr("fe80::7%lo")
	nb := func(string) (netip.Addr, error) {
		mu.Lock()
		defer mu.Unlock()
		if nbErr != nil {
			return netip.Addr{}, nbErr
		}
		return ll, nil
	}
	cfg := config.BGP{ASN: 65001, RouterID: netip.MustParseAddr("192.0.2.1"), ListenPort: 0,
		Peers: []config.Peer{{Interface: "lo", ASN: 65000, Port: 1179, HoldTime: 9 * time.Second, Keepalive: 3 * time.Second,
			Families: []config.Family{config.FamilyIPv4, config.FamilyIPv6}}}}
	log, logs := testutil.Logger()
	s := New(cfg, log)
	if err := s.StartWith(context.Background(), StartOptions{Neighbor: nb, NoRouterAdvertisements: true, NextHop: func(netip.Addr, config.Family) (netip.Addr, error) {
		return netip.Addr{}, errors.New("unused")
	}}); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	}()
	ctx := context.Background()
	ps, err := s.Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 1 || ps[0].Interface != "lo" || ps[0].Address.IsValid() || ps[0].Waiting != nbErr.Error() || ps[0].State != StateIdle {
		t.Fatalf("peers before the neighbour: %+v; want lo waiting %q", ps, nbErr)
	}
	if n := gobgpPeers(t, s); n != 0 {
		t.Fatalf("GoBGP has %d peers before the neighbour, want 0", n)
	}
	if !strings.Contains(logs.String(), `msg="unnumbered peer not resolved; waiting for its link-local address"`) {
		t.Errorf("no log line for the waiting peer:\n%s", logs)
	}

	mu.Lock()
	nbErr = nil
	mu.Unlock()
	s.kickExport() // what a neighbour table change does
	testutil.Eventually(t, 10*time.Second, func() string {
		ps, err := s.Peers(ctx)
		if err != nil {
			return err.Error()
		}
		if len(ps) != 1 || ps[0].Address != ll || ps[0].Interface != "lo" || ps[0].Waiting != "" {
			return fmt.Sprintf("peers %+v; want lo at %s", ps, ll)
		}
		if n := gobgpPeers(t, s); n != 1 {
			return fmt.Sprintf("GoBGP has %d peers, want 1", n)
		}
		return ""
	})
}

// gobgpPeers counts the peers configured in s's GoBGP.
func gobgpPeers(t *testing.T, s *Speaker) int {
	t.Helper()
	n := 0
	if err := s.srv.ListPeer(context.Background(), &api.ListPeerRequest{}, func(*api.Peer) { n++ }); err != nil {
		t.Fatal(err)
	}
	return n
}
