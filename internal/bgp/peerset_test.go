package bgp_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"

	"github.com/virtbgp/virtbgp/internal/bgp"
	"github.com/virtbgp/virtbgp/internal/bgptest"
	"github.com/virtbgp/virtbgp/internal/config"
	"github.com/virtbgp/virtbgp/mapping"
)

func peerStatus(t *testing.T, sp *bgp.Speaker) map[string]bgp.PeerStatus {
	t.Helper()
	ps, err := sp.Peers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bgp.PeerStatus{}
	for _, p := range ps {
		out[p.Address.String()] = p
	}
	return out
}

// TestSetPeersTouchesOnlyWhatChanged reconfigures a running speaker: the
// unchanged session stays up all along, the changed one resets and comes
// back, the removed one goes.
func TestSetPeersTouchesOnlyWhatChanged(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	r := mapping.Route{Prefix: netip.MustParsePrefix("192.0.2.10/32")}
	if err := l.sp.Announce(ctx, r); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() string { return hasPrefixes(t, l.tor1, famV4, "192.0.2.10/32") })

	var peers []config.Peer
	for _, p := range l.cfg.Peers {
		switch p.Address.String() {
		case tor1v6: // removed
			continue
		case tor2: // changed
			p.HoldTime, p.Keepalive = 12*time.Second, 4*time.Second
		}
		peers = append(peers, p)
	}
	if err := l.sp.SetPeers(ctx, peers); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, func() string {
		st := peerStatus(t, l.sp)
		if _, ok := st[tor1v6]; ok {
			return "removed peer ::1 still listed"
		}
		if st[tor2].State != bgp.StateEstablished || st[tor2].LastDownReason == "" {
			return fmt.Sprintf("changed peer %s: state %s, last down %q; want re-established after a reset", tor2, st[tor2].State, st[tor2].LastDownReason)
		}
		return ""
	})
	st := peerStatus(t, l.sp)
	if p := st[tor1v4]; p.State != bgp.StateEstablished || p.LastDownReason != "" {
		t.Fatalf("unchanged peer %s: state %s, last down %q; want untouched", tor1v4, p.State, p.LastDownReason)
	}
	// The removed peer is gone from GoBGP, so its session cannot come back
	// (the speaker has no listener), and the ToR sees it down.
	if n := gobgpPeers(t, l.sp)[tor1v6]; n != 0 {
		t.Fatalf("GoBGP still has the removed peer %s", tor1v6)
	}
	eventually(t, 5*time.Second, func() string {
		if torSessionState(t, l.tor1, tor1v6) == api.PeerState_ESTABLISHED {
			return fmt.Sprintf("ToR still has a session with the removed peer %s", tor1v6)
		}
		return ""
	})
}

// gobgpPeers counts the neighbors configured in the speaker's GoBGP, by
// address.
func gobgpPeers(t *testing.T, sp *bgp.Speaker) map[string]int {
	t.Helper()
	out := map[string]int{}
	err := bgp.GoBGPServer(sp).ListPeer(context.Background(), &api.ListPeerRequest{}, func(p *api.Peer) {
		out[p.GetConf().GetNeighborAddress()]++
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// torSessionState is the state of the ToR's session with neighbor.
func torSessionState(t *testing.T, r *bgptest.ToR, neighbor string) api.PeerState_SessionState {
	t.Helper()
	var st api.PeerState_SessionState
	err := r.Server.ListPeer(context.Background(), &api.ListPeerRequest{Address: neighbor}, func(p *api.Peer) {
		st = p.GetState().GetSessionState()
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestDeferPeers starts in restarting mode without peers, announces, then
// adds the peers: the ToR gets the route.
func TestDeferPeers(t *testing.T) {
	log, _ := newTestLog(t)
	l := newLab(t)
	cfg := l.cfg
	cfg.RouterID = addr("192.0.2.9")
	_ = l.sp.Stop(context.Background()) // free the ToRs' neighbor slots
	sp := startSpeaker(t, cfg, log, bgp.StartOptions{DeferPeers: true, Restarting: true})
	ctx := context.Background()
	if err := sp.Announce(ctx, mapping.Route{Prefix: netip.MustParsePrefix("192.0.2.11/32")}); err != nil {
		t.Fatal(err)
	}
	// No session can come up before SetPeers: GoBGP has no peer (and the
	// speaker no listener).
	if ps := gobgpPeers(t, sp); len(ps) != 0 {
		t.Fatalf("GoBGP has peers %v before SetPeers", ps)
	}
	for _, p := range peerStatus(t, sp) {
		if p.State != bgp.StateIdle {
			t.Fatalf("before SetPeers: %+v, want idle", p)
		}
	}
	if err := sp.SetPeers(ctx, cfg.Peers); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, func() string { return hasPrefixes(t, l.tor1, famV4, "192.0.2.11/32") })
}
