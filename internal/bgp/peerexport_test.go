package bgp_test

import (
	"context"
	"errors"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"

	"github.com/virtbgp/virtbgp/internal/bgp"
	"github.com/virtbgp/virtbgp/internal/bgptest"
	"github.com/virtbgp/virtbgp/internal/config"
	"github.com/virtbgp/virtbgp/mapping"
)

// flaps is how many times the ToR's session with addr has been established.
func flaps(t testing.TB, r *bgptest.ToR, a string) uint32 {
	t.Helper()
	var n uint32
	if err := r.Server.ListPeer(context.Background(), &api.ListPeerRequest{Address: a}, func(p *api.Peer) {
		n = p.GetState().GetFlops()
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPeerExportPolicy runs two eBGP ToRs, each with one IPv4 session
// carrying IPv4 and IPv6, and per-peer export policies: the first ToR gets
// a community and a MED, the second a prepend, a large community and a
// prefix allow-list, and has no IPv6 next hop. It checks what each ToR
// holds, that the IPv6 routes get the IPv6 next hop of the interface (here
// a stand-in NextHopFunc) and never the IPv4-mapped one, then that a
// one-line policy edit (SetPeers) changes the routes at that ToR with no
// session reset and sends nothing to the other.
func TestPeerExportPolicy(t *testing.T) {
	ctx := context.Background()
	log, _ := newTestLog(t)
	const (
		torA, torB = "127.0.0.1", "127.0.0.2"
		localB     = "127.0.0.3"
		asA, asB   = 65000, 65002
		nhA        = "2001:db8:ff::1"
	)
	both := []string{famV4, famV6}
	ta := bgptest.MustStart(t, bgptest.Config{ASN: asA, RouterID: "10.0.0.1", Listen: []string{torA}, Log: log},
		bgptest.Neighbor{Address: addr(torA), ASN: localAS, Families: both})
	tb := bgptest.MustStart(t, bgptest.Config{ASN: asB, RouterID: "10.0.0.2", Listen: []string{torB}, Log: log},
		bgptest.Neighbor{Address: addr(localB), ASN: localAS, Families: both})

	fams := []config.Family{config.FamilyIPv4, config.FamilyIPv6}
	peerA := config.Peer{Address: addr(torA), Port: ta.Port, ASN: asA, HoldTime: 9 * time.Second, Keepalive: 3 * time.Second,
		Families: fams, Export: config.PeerExport{Communities: []uint32{localAS<<16 | 1}, MED: u32(5)}}
	peerB := config.Peer{Address: addr(torB), Port: tb.Port, ASN: asB, LocalAddress: addr(localB),
		HoldTime: 9 * time.Second, Keepalive: 3 * time.Second, Families: fams,
		Export: config.PeerExport{
			ASPathPrepend:    1,
			LargeCommunities: []mapping.LargeCommunity{{GlobalAdmin: localAS, LocalData2: 2}},
			Prefixes:         []netip.Prefix{pfx("198.51.100.0/24"), pfx("2001:db8::/32")},
		}}
	cfg := config.BGP{ASN: localAS, RouterID: addr(routerID), Peers: []config.Peer{peerA, peerB}}
	nextHop := func(peer netip.Addr, fam config.Family) (netip.Addr, error) {
		if peer == addr(torA) && fam == config.FamilyIPv6 {
			return addr(nhA), nil
		}
		return netip.Addr{}, errors.New("interface lo facing the peer has no usable global " + string(fam) + " address")
	}
	sp := startSpeaker(t, cfg, log, bgp.StartOptions{NextHop: nextHop})
	waitEstablished(t, sp)

	for _, r := range []string{"198.51.100.10/32", "203.0.113.1/32", "2001:db8::10/128"} {
		if err := sp.Announce(ctx, route(r)); err != nil {
			t.Fatal(err)
		}
	}
	commA := []uint32{localAS<<16 | 1}
	largeB := []mapping.LargeCommunity{{GlobalAdmin: localAS, LocalData2: 2}}
	eventually(t, 5*time.Second, func() string {
		a4, a6 := rib(t, ta.Server, famV4), rib(t, ta.Server, famV6)
		return cmpAll(
			checkPath(a4, "198.51.100.10/32", torA, torA, []uint32{localAS}, commA, nil, u32(5), nil),
			checkPath(a4, "203.0.113.1/32", torA, torA, []uint32{localAS}, commA, nil, u32(5), nil),
			checkPath(a6, "2001:db8::10/128", torA, nhA, []uint32{localAS}, commA, nil, u32(5), nil),
			// The allow-list keeps 203.0.113.1 from B; IPv6 has no next
			// hop towards B: not sent rather than sent IPv4-mapped.
			hasPrefixes(t, tb, famV4, "198.51.100.10/32"),
			checkPath(rib(t, tb.Server, famV4), "198.51.100.10/32", localB, localB, []uint32{localAS, localAS}, nil, largeB, nil, nil),
		)
	})
	if got := hasPrefixes(t, tb, famV6); got != "" {
		t.Error(got)
	}
	want := []bgp.DroppedFamily{{Peer: addr(torB), Family: config.FamilyIPv6,
		Reason: "interface lo facing the peer has no usable global ipv6 address"}}
	if got := sp.Dropped(); !slices.Equal(got, want) {
		t.Errorf("Dropped() = %v, want %v", got, want)
	}

	// Per peer and family, what the ToRs hold; UPDATEs as they count them.
	ps, err := sp.Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wantSent := map[netip.Addr]map[config.Family]uint64{
		addr(torA): {config.FamilyIPv4: 2, config.FamilyIPv6: 1},
		addr(torB): {config.FamilyIPv4: 1, config.FamilyIPv6: 0},
	}
	for _, p := range ps {
		if !maps.Equal(p.SentByFamily, wantSent[p.Address]) || p.RoutesSent != wantSent[p.Address][config.FamilyIPv4]+wantSent[p.Address][config.FamilyIPv6] {
			t.Errorf("peer %s: sent %v (%d), want %v", p.Address, p.SentByFamily, p.RoutesSent, wantSent[p.Address])
		}
		tor, nb := ta, torA
		if p.Address == addr(torB) {
			tor, nb = tb, localB
		}
		if got := updatesReceived(t, tor, nb); p.UpdatesSent != got {
			t.Errorf("peer %s: %d UPDATEs sent, the ToR received %d", p.Address, p.UpdatesSent, got)
		}
		if p.Flaps != 0 {
			t.Errorf("peer %s: %d flaps", p.Address, p.Flaps)
		}
	}
	if why := ps[1].NotSent[config.FamilyIPv6]; !strings.HasPrefix(why, "no ipv6 next hop: ") || !slices.Equal(ps[1].Carries(), []config.Family{config.FamilyIPv4}) {
		t.Errorf("peer B: not sent %v, carries %v", ps[1].NotSent, ps[1].Carries())
	}
	if len(ps[0].NotSent) != 0 {
		t.Errorf("peer A: not sent %v", ps[0].NotSent)
	}

	// A one-line edit of A's policy: another community.
	flapsA, flapsB := flaps(t, ta, torA), flaps(t, tb, localB)
	updA, updB := updatesReceived(t, ta, torA), updatesReceived(t, tb, localB)
	edited := peerA
	edited.Export.Communities = []uint32{localAS<<16 | 9}
	if err := sp.SetPeers(ctx, []config.Peer{edited, peerB}); err != nil {
		t.Fatal(err)
	}
	commA = []uint32{localAS<<16 | 9}
	eventually(t, 5*time.Second, func() string {
		a4, a6 := rib(t, ta.Server, famV4), rib(t, ta.Server, famV6)
		return cmpAll(
			checkPath(a4, "198.51.100.10/32", torA, torA, []uint32{localAS}, commA, nil, u32(5), nil),
			checkPath(a4, "203.0.113.1/32", torA, torA, []uint32{localAS}, commA, nil, u32(5), nil),
			checkPath(a6, "2001:db8::10/128", torA, nhA, []uint32{localAS}, commA, nil, u32(5), nil),
		)
	})
	// GoBGP v3 has no Adj-RIB-Out: the soft reset out sends A all of its
	// routes again (docs/design.md), here all changed: one UPDATE for the
	// two IPv4 routes (equal attributes), one for the IPv6 route.
	if got := updatesReceived(t, ta, torA) - updA; got != 2 {
		t.Errorf("A received %d UPDATEs for the edit, want 2 (its 3 routes)", got)
	}
	// B's policy did not change: after one new route, B has received
	// exactly that one UPDATE (the edit sent it nothing).
	if err := sp.Announce(ctx, route("198.51.100.11/32")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() string { return hasPrefixes(t, tb, famV4, "198.51.100.10/32", "198.51.100.11/32") })
	if got := updatesReceived(t, tb, localB) - updB; got != 1 {
		t.Errorf("B received %d UPDATEs, want 1 (the new route only)", got)
	}
	if a, b := flaps(t, ta, torA), flaps(t, tb, localB); a != flapsA || b != flapsB {
		t.Errorf("sessions established again: A %d -> %d, B %d -> %d times", flapsA, a, flapsB, b)
	}

	// B's allow-list narrowed: B gets the withdrawal of 198.51.100.11/32
	// (GoBGP alone would never send it) and nothing else, A nothing. Each
	// ToR's Adj-RIB-In events count the routes it receives; a route
	// announced afterwards, which both get, is the barrier.
	recvA, recvB := watchAdjIn(t, ta), watchAdjIn(t, tb)
	narrowed := peerB
	narrowed.Export.Prefixes = []netip.Prefix{pfx("198.51.100.10/32"), pfx("198.51.100.20/32"), pfx("2001:db8::/32")}
	if err := sp.SetPeers(ctx, []config.Peer{edited, narrowed}); err != nil {
		t.Fatal(err)
	}
	barrier := func(r string) {
		t.Helper()
		if err := sp.Announce(ctx, route(r)); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, func() string {
			if recvA.get()[r] == 0 || recvB.get()[r] == 0 {
				return r + " not at both ToRs yet"
			}
			return ""
		})
	}
	barrier("198.51.100.20/32")
	if got, want := recvB.take(), map[string]int{"-198.51.100.11/32": 1, "198.51.100.20/32": 1}; !maps.Equal(got, want) {
		t.Errorf("B received %v for its narrowing and the next route, want %v", got, want)
	}
	if got, want := recvA.take(), map[string]int{"198.51.100.20/32": 1}; !maps.Equal(got, want) {
		t.Errorf("A received %v for B's narrowing and the next route, want %v", got, want)
	}
	eventually(t, 5*time.Second, func() string { return hasPrefixes(t, tb, famV4, "198.51.100.10/32", "198.51.100.20/32") })

	// B's allow-list widened again: B gets 198.51.100.11/32, with its
	// attributes and no marker, and nothing else; A nothing.
	if err := sp.SetPeers(ctx, []config.Peer{edited, peerB}); err != nil {
		t.Fatal(err)
	}
	barrier("198.51.100.21/32")
	if got, want := recvB.take(), map[string]int{"198.51.100.11/32": 1, "198.51.100.21/32": 1}; !maps.Equal(got, want) {
		t.Errorf("B received %v for its widening and the next route, want %v", got, want)
	}
	if got, want := recvA.take(), map[string]int{"198.51.100.21/32": 1}; !maps.Equal(got, want) {
		t.Errorf("A received %v for B's widening and the next route, want %v", got, want)
	}
	eventually(t, 5*time.Second, func() string {
		return checkPath(rib(t, tb.Server, famV4), "198.51.100.11/32", localB, localB, []uint32{localAS, localAS}, nil, largeB, nil, nil)
	})
	if a, b := flaps(t, ta, torA), flaps(t, tb, localB); a != flapsA || b != flapsB {
		t.Errorf("sessions established again: A %d -> %d, B %d -> %d times", flapsA, a, flapsB, b)
	}
	ps, err = sp.Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.State != bgp.StateEstablished {
			t.Errorf("peer %s is %s after the edit", p.Address, p.State)
		}
	}
}

// adjInCounter counts the routes a ToR receives, by prefix ("-" before
// the prefix for a withdrawal), from its Adj-RIB-In events.
type adjInCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func watchAdjIn(t testing.TB, r *bgptest.ToR) *adjInCounter {
	t.Helper()
	c := &adjInCounter{n: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if err := r.Server.WatchEvent(ctx, &api.WatchEventRequest{Table: &api.WatchEventRequest_Table{
		Filters: []*api.WatchEventRequest_Table_Filter{{Type: api.WatchEventRequest_Table_Filter_ADJIN}},
	}}, func(ev *api.WatchEventResponse) {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, p := range ev.GetTable().GetPaths() {
			k := "undecodable"
			if nlri, err := apiutil.GetNativeNlri(p); err == nil {
				k = nlri.String()
			}
			if p.GetIsWithdraw() {
				k = "-" + k
			}
			c.n[k]++
		}
	}); err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *adjInCounter) get() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.n)
}

// take returns the counts and starts again from zero.
func (c *adjInCounter) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n
	c.n = map[string]int{}
	return n
}
