package bgp_test

import (
	"context"
	"fmt"
	"maps"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	packet "github.com/osrg/gobgp/v3/pkg/packet/bgp"

	"github.com/virtbgp/virtbgp/internal/bgp"
	"github.com/virtbgp/virtbgp/internal/bgptest"
	"github.com/virtbgp/virtbgp/internal/config"
)

// TestRestartingTwoPeers restarts the speaker (graceful restart,
// restarting mode) with two peers, one of which comes up late. GoBGP ends
// the restart as soon as the first peer has sent End-of-RIB, and with it
// the restarting mode of the second peer, which has not sent its OPEN yet;
// the speaker adds the second peer again in restarting mode (grsync.go), so
// that its OPEN, when it comes, still carries the Restart State bit and the
// Forwarding State bit, and a helper keeps the routes it holds. It pins
// the GoBGP behaviour grsync.go relies on (see the GoBGP line of go.mod).
func TestRestartingTwoPeers(t *testing.T) {
	log, tl := newTestLog(t)
	ctx := context.Background()
	torA := bgptest.MustStart(t, bgptest.Config{ASN: torAS, RouterID: "10.0.0.1", Listen: []string{tor1v4}, Log: log},
		bgptest.Neighbor{Address: addr("127.0.0.1"), ASN: localAS, Families: []string{famV4}, GracefulRestart: true})
	// ToR B's port: nothing listens there until B starts.
	portB, err := bgptest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	peer := func(a string, port uint16) config.Peer {
		return config.Peer{Address: addr(a), Port: port, ASN: torAS,
			HoldTime: 9 * time.Second, Keepalive: 3 * time.Second, Families: []config.Family{config.FamilyIPv4}}
	}
	peerB := peer(tor2, portB)
	peerB.LocalAddress = addr(ibgpLocal)
	cfg := config.BGP{
		ASN:             localAS,
		RouterID:        addr(routerID),
		GracefulRestart: config.GracefulRestart{Enabled: true, RestartTime: 120 * time.Second},
		Peers:           []config.Peer{peer(tor1v4, torA.Port), peerB},
	}
	sp := startSpeaker(t, cfg, log, bgp.StartOptions{Restarting: true})
	if err := sp.Announce(ctx, route("198.51.100.14/32")); err != nil {
		t.Fatal(err)
	}

	// A's End-of-RIB ends GoBGP's restart: A gets the route...
	eventually(t, 10*time.Second, func() string { return hasPrefixes(t, torA, famV4, "198.51.100.14/32") })
	// ...and B, whose restarting mode went with it, is added again in
	// restarting mode.
	eventually(t, 5*time.Second, func() string {
		if !tl.logged("peer added again in restarting mode", "peer="+tor2) {
			return "peer " + tor2 + " not added again in restarting mode"
		}
		return ""
	})
	if !localRestarting(t, sp, tor2) {
		t.Fatalf("peer %s is not in restarting mode after it was added again", tor2)
	}

	// B comes up: the speaker's OPEN says it is restarting and kept its
	// forwarding state, and B gets the route.
	torB := bgptest.MustStart(t, bgptest.Config{ASN: torAS, RouterID: "10.0.0.2", Listen: []string{tor2}, Port: portB, Log: log},
		bgptest.Neighbor{Address: addr(ibgpLocal), ASN: localAS, Families: []string{famV4}, GracefulRestart: true})
	waitEstablished(t, sp) // B's OPEN is out; its capabilities stay
	restart, forwarding := receivedRestartFlags(t, torB, ibgpLocal)
	if !restart || !forwarding {
		t.Errorf("ToR B got an OPEN with Restart State %v and IPv4 Forwarding State %v, want both", restart, forwarding)
	}
	eventually(t, 10*time.Second, func() string { return hasPrefixes(t, torB, famV4, "198.51.100.14/32") })
}

// localRestarting reports whether the speaker's GoBGP has the peer in
// restarting mode.
func localRestarting(t *testing.T, sp *bgp.Speaker, peer string) bool {
	t.Helper()
	var on, found bool
	err := bgp.GoBGPServer(sp).ListPeer(context.Background(), &api.ListPeerRequest{Address: peer}, func(p *api.Peer) {
		on, found = p.GetGracefulRestart().GetLocalRestarting(), true
	})
	if err == nil && !found {
		err = fmt.Errorf("no peer %s", peer)
	}
	if err != nil {
		t.Fatal(err)
	}
	return on
}

// receivedRestartFlags returns the Restart State bit of the graceful
// restart capability the ToR received from neighbor, and the Forwarding
// State bit of its IPv4 unicast tuple.
func receivedRestartFlags(t *testing.T, r *bgptest.ToR, neighbor string) (restart, forwarding bool) {
	t.Helper()
	for _, c := range receivedCaps(t, r, neighbor) {
		gr, ok := c.(*packet.CapGracefulRestart)
		if !ok {
			continue
		}
		restart = gr.Flags&0x08 != 0
		for _, tu := range gr.Tuples {
			if packet.AfiSafiToRouteFamily(tu.AFI, tu.SAFI) == packet.RF_IPv4_UC {
				forwarding = tu.Flags&0x80 != 0
			}
		}
		return restart, forwarding
	}
	t.Fatalf("ToR got no graceful restart capability from %s", neighbor)
	return false, false
}

// TestLongLivedGracefulRestartCapability: with long-lived-stale-time set,
// each session's OPEN carries the LLGR capability (RFC 9494) with that
// stale time for each of its families, beside graceful restart; without
// it, none.
func TestLongLivedGracefulRestartCapability(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stale time.Duration
	}{{"on", 3600 * time.Second}, {"off", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			log, _ := newTestLog(t)
			tor := bgptest.MustStart(t, bgptest.Config{ASN: torAS, RouterID: "10.0.0.1", Listen: []string{tor1v4}, Log: log},
				bgptest.Neighbor{Address: addr("127.0.0.1"), ASN: localAS, Families: []string{famV4, famV6}, GracefulRestart: true})
			cfg := config.BGP{
				ASN:      localAS,
				RouterID: addr(routerID),
				GracefulRestart: config.GracefulRestart{Enabled: true, RestartTime: time.Second,
					LongLivedStaleTime: tc.stale},
				Peers: []config.Peer{{Address: addr(tor1v4), Port: tor.Port, ASN: torAS, HoldTime: 9 * time.Second,
					Keepalive: 3 * time.Second, Families: []config.Family{config.FamilyIPv4, config.FamilyIPv6}}},
			}
			sp := startSpeaker(t, cfg, log, bgp.StartOptions{})
			waitEstablished(t, sp)
			got := receivedLLGR(t, tor, "127.0.0.1")
			want := map[packet.RouteFamily]uint32{}
			if tc.stale > 0 {
				want[packet.RF_IPv4_UC] = 3600
				want[packet.RF_IPv6_UC] = 3600
			}
			if !maps.Equal(got, want) {
				t.Fatalf("LLGR stale times the ToR received = %v, want %v", got, want)
			}
		})
	}
}

// receivedLLGR returns the stale time per family of the long-lived
// graceful restart capability the ToR received from neighbor (none: empty).
func receivedLLGR(t *testing.T, r *bgptest.ToR, neighbor string) map[packet.RouteFamily]uint32 {
	t.Helper()
	out := map[packet.RouteFamily]uint32{}
	for _, c := range receivedCaps(t, r, neighbor) {
		if l, ok := c.(*packet.CapLongLivedGracefulRestart); ok {
			for _, tu := range l.Tuples {
				out[packet.AfiSafiToRouteFamily(tu.AFI, tu.SAFI)] = tu.RestartTime
			}
		}
	}
	return out
}

// receivedCaps returns the capabilities of the OPEN the ToR received from
// neighbor.
func receivedCaps(t *testing.T, r *bgptest.ToR, neighbor string) []packet.ParameterCapabilityInterface {
	t.Helper()
	var caps []packet.ParameterCapabilityInterface
	var derr error
	err := r.Server.ListPeer(context.Background(), &api.ListPeerRequest{Address: neighbor}, func(p *api.Peer) {
		caps, derr = apiutil.UnmarshalCapabilities(p.GetState().GetRemoteCap())
	})
	if err == nil {
		err = derr
	}
	if err != nil {
		t.Fatal(err)
	}
	return caps
}
