package bgp_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	packet "github.com/osrg/gobgp/v3/pkg/packet/bgp"

	"github.com/virtbgp/virtbgp/internal/bgp"
	"github.com/virtbgp/virtbgp/internal/bgptest"
	"github.com/virtbgp/virtbgp/internal/config"
)

// grConfig is the speaker config of these tests: graceful restart as
// shipped (restart time 1s, LLGR for an hour, the N bit), one peer per
// item of peers.
func grConfig(notification bool, stale time.Duration, peers ...config.Peer) config.BGP {
	return config.BGP{
		ASN:      localAS,
		RouterID: addr(routerID),
		GracefulRestart: config.GracefulRestart{Enabled: true, RestartTime: time.Second,
			LongLivedStaleTime: stale, Notification: notification},
		Peers: peers,
	}
}

// grPeer is a peer at a (port) with one family.
func grPeer(a string, port uint16, fam config.Family) config.Peer {
	return config.Peer{Address: addr(a), Port: port, ASN: torAS, HoldTime: 9 * time.Second,
		Keepalive: 3 * time.Second, Families: []config.Family{fam}}
}

// TestNotificationBit: with graceful-restart notification on, the
// speaker's graceful-restart capability has the N bit of RFC 8538. With a
// ToR that sets it too (as FRR does), a NOTIFICATION other than a Hard
// Reset (here an administrative reset, through GoBGP's API) ends the
// session at the ToR with graceful restart, so the ToR keeps the routes,
// while Stop still sends a Hard Reset, and the ToR drops them at once.
// Without it, the ToR drops the routes on both.
func TestNotificationBit(t *testing.T) {
	for _, tc := range []struct {
		name         string
		notification bool
		stop         bool   // Stop the speaker; else reset the session
		reason       string // the ToR's "Peer Down" reason, or its start
	}{
		{"reset, N negotiated", true, false, "graceful-restart"},
		{"reset, N off", false, false, "notification-received code 6(cease) subcode 4(administrative reset)"},
		{"stop, N negotiated", true, true, "hard-reset"},
		{"stop, N off", false, true, "notification-received code 6(cease) subcode 3(peer deconfigured)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			log, tl := newTestLog(t)
			tor := bgptest.MustStart(t, bgptest.Config{ASN: torAS, RouterID: "10.0.0.1", Listen: []string{tor1v4}, Log: log},
				bgptest.Neighbor{Address: addr("127.0.0.1"), ASN: localAS, Families: []string{famV4},
					GracefulRestart: true, LongLivedGracefulRestart: true, Notification: true})
			sp := startSpeaker(t, grConfig(tc.notification, time.Hour, grPeer(tor1v4, tor.Port, config.FamilyIPv4)), log, bgp.StartOptions{})
			waitEstablished(t, sp)
			if got := receivedNBit(t, tor, "127.0.0.1"); got != tc.notification {
				t.Errorf("N bit in the OPEN the ToR received = %v, want %v", got, tc.notification)
			}
			if err := sp.Announce(ctx, route("198.51.100.21/32")); err != nil {
				t.Fatal(err)
			}
			eventually(t, 5*time.Second, func() string { return hasPrefixes(t, tor, famV4, "198.51.100.21/32") })

			if tc.stop {
				if err := sp.Stop(ctx); err != nil {
					t.Fatal(err)
				}
			} else if err := bgp.GoBGPServer(sp).ResetPeer(ctx, &api.ResetPeerRequest{Address: tor1v4}); err != nil {
				t.Fatal(err)
			}
			eventually(t, 10*time.Second, func() string {
				if !tl.logged("Peer Down", "router=tor-10.0.0.1", "reason="+tc.reason) {
					return "the ToR logged no \"Peer Down\" with reason " + tc.reason
				}
				return ""
			})
			if tc.stop {
				// At once, not LLGR-stale for an hour.
				eventually(t, 5*time.Second, func() string { return hasPrefixes(t, tor, famV4) })
			}
		})
	}
}

// receivedNBit reports the N bit of the graceful-restart capability the ToR
// received from neighbor.
func receivedNBit(t *testing.T, r *bgptest.ToR, neighbor string) bool {
	t.Helper()
	for _, c := range receivedCaps(t, r, neighbor) {
		if gr, ok := c.(*packet.CapGracefulRestart); ok {
			return gr.Flags&0x04 != 0
		}
	}
	t.Fatalf("ToR got no graceful restart capability from %s", neighbor)
	return false
}

// TestPeerGRSupport: once a session is up, the speaker reports what the
// peer announced about graceful restart (llgr, gr, none) and, when it
// announces long-lived graceful restart itself, warns once about each peer
// that would drop this host's routes after the restart time or at once.
func TestPeerGRSupport(t *testing.T) {
	for _, tc := range []struct {
		name  string
		stale time.Duration
		warn  int // warnings per peer that is not an LLGR helper
	}{{"llgr on", time.Hour, 1}, {"llgr off", 0, 0}} {
		t.Run(tc.name, func(t *testing.T) {
			log, tl := newTestLog(t)
			t1 := bgptest.MustStart(t, bgptest.Config{ASN: torAS, RouterID: "10.0.0.1", Listen: []string{tor1v4, tor1v6}, Log: log},
				bgptest.Neighbor{Address: addr(tor1v4), ASN: localAS, Families: []string{famV4}, GracefulRestart: true, LongLivedGracefulRestart: true},
				bgptest.Neighbor{Address: addr(tor1v6), ASN: localAS, Families: []string{famV6}, GracefulRestart: true})
			t2 := bgptest.MustStart(t, bgptest.Config{ASN: torAS, RouterID: "10.0.0.2", Listen: []string{tor2}, Log: log},
				bgptest.Neighbor{Address: addr(ibgpLocal), ASN: localAS, Families: []string{famV4}})
			p2 := grPeer(tor2, t2.Port, config.FamilyIPv4)
			p2.LocalAddress = addr(ibgpLocal)
			sp := startSpeaker(t, grConfig(true, tc.stale,
				grPeer(tor1v4, t1.Port, config.FamilyIPv4), grPeer(tor1v6, t1.Port, config.FamilyIPv6), p2), log, bgp.StartOptions{})
			want := map[string]bgp.GRSupport{tor1v4: bgp.GRLongLived, tor1v6: bgp.GRHelper, tor2: bgp.GRNone}
			eventually(t, 10*time.Second, func() string {
				ps, err := sp.Peers(context.Background())
				if err != nil {
					return err.Error()
				}
				for _, p := range ps {
					if p.State != bgp.StateEstablished || p.GracefulRestart != want[p.Address.String()] {
						return fmt.Sprintf("peer %s: %s, graceful restart %q, want established, %q",
							p.Address, p.State, p.GracefulRestart, want[p.Address.String()])
					}
				}
				return ""
			})
			// Peers reports the support after the warning is logged.
			for peer, gr := range want {
				n := tl.count("peer is not a long-lived graceful-restart helper", "peer="+peer)
				wantN := tc.warn
				if gr == bgp.GRLongLived {
					wantN = 0
				}
				if n != wantN {
					t.Errorf("peer %s (%s): %d warnings, want %d", peer, gr, n, wantN)
				}
				if wantN > 0 && !tl.logged("peer is not a long-lived graceful-restart helper",
					"peer="+peer, "graceful_restart="+string(gr), "restart_time=1s") {
					t.Errorf("peer %s: the warning lacks graceful_restart=%s or restart_time=1s:\n%s", peer, gr, tl)
				}
			}
		})
	}
}

// reconnectLab is a speaker with one session, to a ToR that tests restart
// at the same address and port: an LLGR helper with the N bit, as docs/tor
// makes FRR.
type reconnectLab struct {
	t   *testing.T
	log *slog.Logger
	tl  *testLog
	tor *bgptest.ToR
	sp  *bgp.Speaker
}

const readded = "peer added again to reconnect without GoBGP's idle hold"

// torNeighbor is the ToR's session with the speaker.
var torNeighbor = bgptest.Neighbor{Address: addr("127.0.0.1"), ASN: localAS, Families: []string{famV4},
	GracefulRestart: true, LongLivedGracefulRestart: true, Notification: true}

func newReconnectLab(t *testing.T) *reconnectLab {
	log, tl := newTestLog(t)
	l := &reconnectLab{t: t, log: log, tl: tl}
	l.tor = l.startToR(0, true)
	// The shipped connect retry (DefaultConnectRetry), not the test's 1s.
	cfg := grConfig(true, time.Hour, grPeer(tor1v4, l.tor.Port, config.FamilyIPv4))
	l.sp = startSpeaker(t, cfg, log, bgp.StartOptions{ConnectRetry: bgp.DefaultConnectRetry})
	waitEstablished(t, l.sp)
	if err := l.sp.Announce(context.Background(), route("198.51.100.22/32")); err != nil {
		t.Fatal(err)
	}
	l.wantRoute()
	if n := sentOpens(t, l.sp, tor1v4); n != 1 {
		t.Fatalf("GoBGP sent %d OPENs to the ToR, want 1", n)
	}
	return l
}

// startToR starts the ToR at port (0: a free one), with its session with
// the speaker unless neighbor is false.
func (l *reconnectLab) startToR(port uint16, neighbor bool) *bgptest.ToR {
	var ns []bgptest.Neighbor
	if neighbor {
		ns = append(ns, torNeighbor)
	}
	return bgptest.MustStart(l.t, bgptest.Config{ASN: torAS, RouterID: "10.0.0.1", Listen: []string{tor1v4}, Port: port, Log: l.log}, ns...)
}

// restart stops the ToR and starts a new one at its port, at once; it
// waits until the speaker has seen the session go down.
func (l *reconnectLab) restart(neighbor bool) {
	l.t.Helper()
	downs := l.tl.count("peer down", "peer="+tor1v4)
	l.tor.Stop()
	l.tor = l.startToR(l.tor.Port, neighbor)
	eventually(l.t, 5*time.Second, func() string {
		if n := l.tl.count("peer down", "peer="+tor1v4); n != downs+1 {
			return fmt.Sprintf("%d \"peer down\", want %d", n, downs+1)
		}
		return ""
	})
}

// wantRoute waits until the ToR has the speaker's route.
func (l *reconnectLab) wantRoute() {
	l.t.Helper()
	eventually(l.t, 5*time.Second, func() string { return hasPrefixes(l.t, l.tor, famV4, "198.51.100.22/32") })
}

// readds is how many times the speaker re-added the peer.
func (l *reconnectLab) readds() int { return l.tl.count(readded, "peer="+tor1v4) }

// TestReconnectAfterToRRestart: a ToR restarts (its server stops, a new
// one starts at the same address and port). GoBGP alone would hold the
// session in Idle for 5s and wait 1-2s more before it connects; the
// speaker instead adds the peer to GoBGP again, whose new session has no
// idle hold. Structurally: the session that comes back is the re-added
// peer's first (one OPEN sent). This happens fastReconnectBurst (3) times
// within fastReconnectWindow (30s); a fourth restart is left to GoBGP: no
// re-add, and the session comes back on the same GoBGP peer (its second
// OPEN). The times are logged, not asserted.
func TestReconnectAfterToRRestart(t *testing.T) {
	l := newReconnectLab(t)
	var fast []string
	for i := 1; i <= 3; i++ {
		start := time.Now()
		l.restart(true)
		waitEstablished(t, l.sp)
		fast = append(fast, time.Since(start).Round(time.Millisecond).String())
		l.wantRoute()
		if i == 1 && !l.tl.logged("peer down", "peer="+tor1v4, "reason=hard-reset") {
			// The ToR stopped with a Hard Reset: the N bit was negotiated.
			t.Errorf("no \"peer down\" with reason hard-reset:\n%s", l.tl)
		}
		if n := l.readds(); n != i {
			t.Fatalf("restart %d: %d %q, want %d", i, n, readded, i)
		}
		if n := sentOpens(t, l.sp, tor1v4); n != 1 {
			t.Fatalf("restart %d: GoBGP's peer has sent %d OPENs, want 1 (the session of the re-added peer)", i, n)
		}
	}

	start := time.Now()
	l.restart(true)
	waitEstablished(t, l.sp)
	slow := time.Since(start)
	l.wantRoute()
	if n := l.readds(); n != 3 {
		t.Errorf("%d %q after a fourth restart within %v, want still 3", n, readded, 30*time.Second)
	}
	if n := sentOpens(t, l.sp, tor1v4); n != 2 {
		t.Errorf("after the fourth restart, GoBGP's peer has sent %d OPENs, want 2 (its own reconnect)", n)
	}
	if l.tl.logged("peer is not a long-lived graceful-restart helper") {
		t.Errorf("warned about an LLGR helper:\n%s", l.tl)
	}
	t.Logf("session back after a ToR restart: %s with the re-added peer, %v with GoBGP's own idle hold and connect retry",
		strings.Join(fast, ", "), slow.Round(time.Millisecond))
}

// TestReconnectAfterRefusedAttempt: the ToR that comes back refuses the
// first attempt (it closes the connection: it has no session configured
// for the speaker yet, as a ToR may while it starts). GoBGP holds such a
// session in Idle for 5s too; the speaker re-adds the peer after it as
// after a session that was up, so the session is up 1-2s after the ToR
// accepts it. Structurally: two re-adds, and the session is the second
// re-added peer's first.
func TestReconnectAfterRefusedAttempt(t *testing.T) {
	l := newReconnectLab(t)
	l.restart(false)
	eventually(t, 10*time.Second, func() string {
		if n := l.readds(); n != 2 {
			return fmt.Sprintf("%d %q, want 2 (after the session and after the refused attempt)", n, readded)
		}
		return ""
	})
	start := time.Now()
	if err := l.tor.AddNeighbor(context.Background(), torNeighbor); err != nil {
		t.Fatal(err)
	}
	waitEstablished(t, l.sp)
	took := time.Since(start)
	l.wantRoute()
	if n := sentOpens(t, l.sp, tor1v4); n != 1 {
		t.Errorf("GoBGP's peer has sent %d OPENs, want 1 (the session of the second re-added peer)", n)
	}
	t.Logf("session up %v after the ToR accepted it", took.Round(time.Millisecond))
}

// sentOpens is how many OPENs the speaker's GoBGP peer at addr has sent.
func sentOpens(t *testing.T, sp *bgp.Speaker, peer string) uint64 {
	t.Helper()
	var n uint64
	found := false
	err := bgp.GoBGPServer(sp).ListPeer(context.Background(), &api.ListPeerRequest{Address: peer}, func(p *api.Peer) {
		n, found = p.GetState().GetMessages().GetSent().GetOpen(), true
	})
	if err == nil && !found {
		err = fmt.Errorf("no peer %s", peer)
	}
	if err != nil {
		t.Fatal(err)
	}
	return n
}
