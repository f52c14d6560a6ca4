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

// Issue 17, finding 11: a peer that does not come up because the config
// has its AS number wrong showed no reason in status, only in the log.
// Peers now says why (the NOTIFICATION GoBGP sent), against a real GoBGP
// ToR, or that the peer refused the session (a ToR with this host's AS
// wrong); once the config is fixed and the session is up, the error is
// gone.
func TestPeerLastError(t *testing.T) {
	log, _ := newTestLog(t)
	tor := bgptest.MustStart(t, bgptest.Config{ASN: torAS, RouterID: "10.0.0.1", Listen: []string{tor1v4}, Log: log},
		bgptest.Neighbor{Address: addr(tor1v4), ASN: localAS, Families: []string{famV4}})
	peer := config.Peer{Address: addr(tor1v4), Port: tor.Port, ASN: 65099, HoldTime: 9 * time.Second, Keepalive: 3 * time.Second,
		Families: []config.Family{config.FamilyIPv4}}
	sp := startSpeaker(t, config.BGP{ASN: localAS, RouterID: addr(routerID), Peers: []config.Peer{peer}}, log, bgp.StartOptions{})
	ctx := context.Background()
	const want = "sent NOTIFICATION code 2(open) subcode 2(bad peer as): as number mismatch expected 65099, received 65000"
	eventually(t, 15*time.Second, func() string {
		ps, err := sp.Peers(ctx)
		if err != nil {
			return err.Error()
		}
		if ps[0].State == bgp.StateEstablished || ps[0].LastError != want {
			return fmt.Sprintf("peer %s: %s, last error %q; want %q", ps[0].Address, ps[0].State, ps[0].LastError, want)
		}
		return ""
	})

	// The other way round: the ToR has our AS wrong and refuses our OPEN.
	// GoBGP does not say what the NOTIFICATION it received said, but
	// status says that the peer refused the session.
	refusing := bgptest.MustStart(t, bgptest.Config{ASN: 65002, RouterID: "10.0.0.2", Listen: []string{tor2}, Log: log},
		bgptest.Neighbor{Address: addr(ibgpLocal), ASN: 65077, Families: []string{famV4}})
	refused := config.Peer{Address: addr(tor2), Port: refusing.Port, ASN: 65002, LocalAddress: addr(ibgpLocal),
		HoldTime: 9 * time.Second, Keepalive: 3 * time.Second, Families: []config.Family{config.FamilyIPv4}}
	if err := sp.SetPeers(ctx, []config.Peer{peer, refused}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, func() string {
		ps, err := sp.Peers(ctx)
		if err != nil {
			return err.Error()
		}
		if !strings.HasPrefix(ps[1].LastError, "the peer ended the session during the OPEN exchange") {
			return fmt.Sprintf("peer %s: %s, last error %q; want the peer's refusal", ps[1].Address, ps[1].State, ps[1].LastError)
		}
		if ps[0].LastError != want {
			return fmt.Sprintf("peer %s: last error %q, want still %q", ps[0].Address, ps[0].LastError, want)
		}
		return ""
	})

	peer.ASN = torAS
	if err := sp.SetPeers(ctx, []config.Peer{peer}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, func() string {
		ps, err := sp.Peers(ctx)
		if err != nil {
			return err.Error()
		}
		if ps[0].State != bgp.StateEstablished || ps[0].LastError != "" || strings.Contains(fmt.Sprint(ps), "NOTIFICATION") {
			return fmt.Sprintf("peer %s: %s, last error %q; want established without an error", ps[0].Address, ps[0].State, ps[0].LastError)
		}
		return ""
	})
}
