package bgp_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/virtbgp/virtbgp/internal/bgp"
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
	if err := l.tor1.WaitEstablished(shortCtx(t, 2*time.Second), addr(tor1v6)); err == nil {
		// WaitEstablished returns nil only when established.
		t.Fatalf("ToR still has a session with the removed peer %s", tor1v6)
	}
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
	time.Sleep(500 * time.Millisecond)
	if err := l.tor1.WaitEstablished(shortCtx(t, 100*time.Millisecond), addr(tor1v4)); err == nil {
		t.Fatal("a session came up before SetPeers")
	}
	if err := sp.SetPeers(ctx, cfg.Peers); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, func() string { return hasPrefixes(t, l.tor1, famV4, "192.0.2.11/32") })
}

func shortCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
