package bgp

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"time"

	api "github.com/osrg/gobgp/v3/api"
)

// Graceful restart with several peers.
//
// GoBGP ends its restarting mode for all peers at once, as soon as every
// peer it knows has sent End-of-RIB; a peer whose session is not up yet
// counts as having sent it. So when the first ToR session comes up and its
// End-of-RIB arrives, GoBGP clears LocalRestarting for the peers that are
// still connecting, and their OPEN then goes out without the Restart State
// and Forwarding State bits. A helper that gets an OPEN without the
// Forwarding State bit for a family must drop the routes it kept at once
// (RFC 4724 4.2): BIRD and FRR do, and the routes come back only with the
// UPDATEs that follow, after a moment without them.
//
// The speaker therefore remembers the peers added in restarting mode whose
// session has not come up since (grPending), and deletes and adds again, in
// restarting mode, each of them that is not yet sending its OPEN and lost
// its restarting mode.
//
// When to look, from GoBGP's API alone (GoBGP v3.37.0, server.go
// handleFSMMessage): GoBGP ends the restart either when a session becomes
// established or when an End-of-RIB arrives, and then sends a watch event
// (the peer's state event, or the table's End-of-RIB event) from the same
// step of its main loop. A ListPeer made after that event is answered by
// the main loop once that step is done, so it sees LocalRestarting cleared.
// The only other place that clears LocalRestarting is the deferral timer,
// for established peers, which are not pending. So after each such event
// (watchRestarting), a pending peer that ListPeer shows not restarting is
// one whose restart GoBGP ended early. TestRestartingTwoPeers pins this.

// kickRestarting asks watchRestarting to look at the pending peers. It is
// called from GoBGP's watch goroutine: it must not call GoBGP.
func (s *Speaker) kickRestarting() {
	select {
	case s.grCheck <- struct{}{}:
	default:
	}
}

// watchRestarting re-adds pending restarting peers after each event that
// may follow the end of the restart, until ctx ends.
func (s *Speaker) watchRestarting(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.grCheck:
			s.restoreRestarting(ctx)
		}
	}
}

// restoreRestarting deletes and adds again, in restarting mode, every
// pending restarting peer whose session is not up and that GoBGP took out
// of restarting mode before it sent its OPEN.
func (s *Speaker) restoreRestarting(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != lifecycleRunning {
		return
	}
	for _, a := range slices.SortedFunc(maps.Keys(s.grPending), netip.Addr.Compare) {
		p, ok := s.configured[a]
		if !ok {
			delete(s.grPending, a)
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		var st *api.Peer
		err := s.srv.ListPeer(cctx, &api.ListPeerRequest{Address: a.String()}, func(p *api.Peer) { st = p })
		cancel()
		if err != nil || st == nil {
			continue
		}
		switch st.GetState().GetSessionState() {
		case api.PeerState_OPENSENT, api.PeerState_OPENCONFIRM, api.PeerState_ESTABLISHED:
			// Its OPEN is out; whatever it said stays.
			delete(s.grPending, a)
			continue
		}
		// GoBGP reports the session state from its main loop, after the
		// session's own goroutine has moved on; the OPEN counters are
		// bumped when an OPEN is sent or received. Either means the session
		// is coming up: deleting it now would send a Cease, which makes a
		// helper flush the routes it kept.
		if msgs := st.GetState().GetMessages(); msgs.GetSent().GetOpen() > 0 || msgs.GetReceived().GetOpen() > 0 {
			delete(s.grPending, a)
			continue
		}
		if st.GetGracefulRestart().GetLocalRestarting() {
			continue // the restart goes on
		}
		opts := s.startOpts
		opts.Restarting = true
		cctx, cancel = context.WithTimeout(ctx, 5*time.Second)
		err = s.srv.DeletePeer(cctx, &api.DeletePeerRequest{Address: a.String()})
		if err == nil {
			err = s.srv.AddPeer(cctx, &api.AddPeerRequest{Peer: s.apiPeer(p, opts)})
		}
		cancel()
		if err != nil {
			s.log.Error("cannot add a peer again in restarting mode", "peer", a, "error", err)
			delete(s.grPending, a)
			continue
		}
		s.log.Info("peer added again in restarting mode", "peer", a,
			"reason", "GoBGP ended the restart when another peer sent End-of-RIB, before this session came up")
	}
}
