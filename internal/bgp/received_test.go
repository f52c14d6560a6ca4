package bgp_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/virtbgp/virtbgp/internal/bgp"
	"github.com/virtbgp/virtbgp/internal/bgptest"
	"github.com/virtbgp/virtbgp/internal/config"
)

// Issue 17, finding 10: 300k routes sent by a ToR raised virtbgp's memory
// from 40 to 285 MB, unseen. Against two real GoBGP ToRs that each send
// 1500 routes to a speaker with receive-limit 1000: with the default
// action (warn) the speaker warns once and shows the count, and the
// session stays up; with restart, the session ends with a Cease (maximum
// number of prefixes), which drops the routes.
func TestReceiveLimit(t *testing.T) {
	log, tl := newTestLog(t)
	const n, limit = 1500, 1000
	warnTor := bgptest.MustStart(t, bgptest.Config{ASN: torAS, RouterID: "10.0.0.1", Listen: []string{tor1v4}, Log: log})
	restartTor := bgptest.MustStart(t, bgptest.Config{ASN: 65002, RouterID: "10.0.0.2", Listen: []string{tor2}, Log: log})
	announceMany(t, warnTor, n)
	announceMany(t, restartTor, n)
	peer := func(a string, tor *bgptest.ToR, action config.ReceiveAction) config.Peer {
		return config.Peer{Address: addr(a), Port: tor.Port, ASN: tor.ASN, HoldTime: 9 * time.Second, Keepalive: 3 * time.Second,
			Families: []config.Family{config.FamilyIPv4}, ReceiveLimit: limit, ReceiveLimitAction: action}
	}
	restartPeer := peer(tor2, restartTor, config.ReceiveRestart)
	restartPeer.LocalAddress = addr(ibgpLocal)
	// The watch's own rounds are an hour apart: the test runs them.
	sp := startSpeaker(t, config.BGP{ASN: localAS, RouterID: addr(routerID), Peers: []config.Peer{
		peer(tor1v4, warnTor, config.ReceiveWarn), restartPeer,
	}}, log, bgp.StartOptions{ReceiveCheck: time.Hour})
	ctx := context.Background()
	for _, n := range []struct {
		tor  *bgptest.ToR
		addr string
	}{{warnTor, tor1v4}, {restartTor, ibgpLocal}} {
		if err := n.tor.AddNeighbor(ctx, bgptest.Neighbor{Address: addr(n.addr), ASN: localAS, Families: []string{famV4}}); err != nil {
			t.Fatal(err)
		}
	}

	const warning = "peer sends more routes than its receive limit; virtbgp imports none, but keeps them in memory"
	eventually(t, 30*time.Second, func() string {
		ps, err := sp.Peers(ctx)
		if err != nil {
			return err.Error()
		}
		w, r := ps[0], ps[1]
		if w.State != bgp.StateEstablished || w.RoutesReceived != n {
			return fmt.Sprintf("warn peer: %s with %d routes received, want established with %d", w.State, w.RoutesReceived, n)
		}
		if !strings.Contains(r.LastDownReason, "maximum number of prefixes") {
			return fmt.Sprintf("restart peer: %s with %d routes received, last down %q; want a Cease for the prefix limit", r.State, r.RoutesReceived, r.LastDownReason)
		}
		return ""
	})
	bgp.CheckReceived(sp, ctx)
	if got := tl.count(warning, "peer="+tor1v4, fmt.Sprintf("routes=%d", n), fmt.Sprintf("receive_limit=%d", limit)); got != 1 {
		t.Errorf("%d warnings about the warn peer, want 1:\n%s", got, tl)
	}
	if tl.logged(warning, "peer="+tor2) {
		t.Errorf("warned about the restart peer, whose session ends instead:\n%s", tl)
	}

	// Once per session: a later round, after one more route has arrived,
	// does not warn again, and the session is still up.
	announceMany(t, warnTor, n+1)
	eventually(t, 10*time.Second, func() string {
		ps, err := sp.Peers(ctx)
		if err != nil {
			return err.Error()
		}
		if ps[0].State != bgp.StateEstablished || ps[0].RoutesReceived != n+1 {
			return fmt.Sprintf("warn peer: %s with %d routes received, want established with %d", ps[0].State, ps[0].RoutesReceived, n+1)
		}
		return ""
	})
	bgp.CheckReceived(sp, ctx)
	if got := tl.count(warning, "peer="+tor1v4); got != 1 {
		t.Errorf("%d warnings about the warn peer after a second round, want 1", got)
	}
}
