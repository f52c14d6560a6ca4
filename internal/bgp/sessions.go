package bgp

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	packet "github.com/osrg/gobgp/v3/pkg/packet/bgp"
)

// What the speaker does when a session comes up or goes down, beyond
// recording its state (onPeerState): GoBGP's watch goroutine must not call
// GoBGP, so onPeerState marks the peer and watchSessions does the work.
//
// Session up: read the capabilities the peer sent (GRSupport), for the
// status and for the warning about a peer that would drop this host's
// routes when virtbgp restarts (checkCapabilities).
//
// Session down: reconnect at once (reconnect). GoBGP v3.37.0 holds a
// session that went back to Idle after a connection (it was established,
// or the peer refused it in OpenSent or OpenConfirm, as a ToR that is
// still starting may) in Idle for 5s before it even starts connecting
// (fsm.go: holdtimeIdle = 5; idle() arms its timer with fsm.idleHoldTime,
// which is 0 for a new peer and 5 once that first timer has fired), then
// waits 1-2s more before the first attempt (connectLoop). Only ResetPeer
// changes the hold (to Timers.IdleHoldTimeAfterReset, server.go ResetPeer),
// and only for the next time the session enters Idle: it cannot shorten a
// hold that is running, and it would send a Cease on a session that is up.
// Disable and enable (adminStateCh) restart the running hold with the same
// 5s. A peer added anew starts with a hold of 0. So the speaker deletes the
// peer from GoBGP and adds it again while its session is in Idle: the
// session is then back 1-2s after the ToR is (connectLoop's first wait),
// instead of 6-7s.
//
// Why this is safe:
//   - It happens only while GoBGP reports the session Idle after OPENs
//     were exchanged (not to a peer SetPeers has just added), and it is done
//     well within the 5s hold (a ListPeer and a DeletePeer on GoBGP's main
//     loop): the old session has no connection, so DeletePeer sends no
//     NOTIFICATION. A session that is already connecting again is left
//     alone.
//   - A peer GoBGP still has in restarting mode (the session dropped before
//     GoBGP ended the restart) is added again in restarting mode and
//     becomes pending for grsync.go, so its next OPEN has the Restart State
//     and Forwarding State bits, as the old session's would have had.
//   - What GoBGP keeps per session is renegotiated by the next OPEN anyway:
//     graceful restart and LLGR capabilities, the N bit, End-of-RIB state.
//     What it kept of the peer's routes (stale, as the peer's helper) goes,
//     but the speaker imports nothing.
//   - A session that keeps failing is re-added at most fastReconnectBurst
//     times within fastReconnectWindow; beyond that GoBGP's own 5s hold
//     applies.

// A peer is re-added for a fast reconnect at most fastReconnectBurst times
// within fastReconnectWindow: enough for a ToR that restarts and refuses
// the first attempt or two while it starts (FRR), not a loop against a
// peer that refuses every session.
const (
	fastReconnectBurst  = 3
	fastReconnectWindow = 30 * time.Second
)

// recentReconnects returns the times of at, oldest first, that are within
// fastReconnectWindow before now.
func recentReconnects(at []time.Time, now time.Time) []time.Time {
	i := 0
	for i < len(at) && now.Sub(at[i]) >= fastReconnectWindow {
		i++
	}
	return at[i:]
}

// GRSupport is what a peer announced in the OPEN of its last established
// session about keeping this host's routes when the session ends without a
// Hard Reset (virtbgp restarted, crashed, or the host died).
type GRSupport string

// The GR supports. GRUnknown: no session established since the speaker
// started.
const (
	GRUnknown GRSupport = ""
	// GRNone: no graceful-restart capability; the peer drops the routes
	// when the session ends.
	GRNone GRSupport = "none"
	// GRHelper: graceful restart (RFC 4724) without long-lived graceful
	// restart; the peer drops the routes after our restart time.
	GRHelper GRSupport = "gr"
	// GRLongLived: graceful restart and long-lived graceful restart (RFC
	// 9494); after our restart time the peer keeps the routes LLGR-stale
	// for our long-lived stale time.
	GRLongLived GRSupport = "llgr"
)

// grSupport classifies the capabilities of a peer's OPEN. LLGR counts only
// with graceful restart beside it, as for GoBGP's own helper (fsm.go
// opensent: LongLivedEnabled needs both capabilities).
func grSupport(caps []packet.ParameterCapabilityInterface) GRSupport {
	var gr, llgr bool
	for _, c := range caps {
		switch c.Code() {
		case packet.BGP_CAP_GRACEFUL_RESTART:
			gr = true
		case packet.BGP_CAP_LONG_LIVED_GRACEFUL_RESTART:
			llgr = true
		}
	}
	switch {
	case gr && llgr:
		return GRLongLived
	case gr:
		return GRHelper
	}
	return GRNone
}

// kickSessions asks watchSessions to look at the marked peers. It is
// called from GoBGP's watch goroutine: it must not call GoBGP.
func (s *Speaker) kickSessions() {
	select {
	case s.sessionCheck <- struct{}{}:
	default:
	}
}

// watchSessions does what onPeerState marked, until ctx ends.
func (s *Speaker) watchSessions(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.sessionCheck:
			s.serviceSessions(ctx)
		}
	}
}

// serviceSessions takes the marks of every peer and acts on them: first the
// reconnects, which are urgent, then the capability checks.
func (s *Speaker) serviceSessions(ctx context.Context) {
	var up, down []netip.Addr
	s.peerMu.Lock()
	for _, a := range slices.SortedFunc(maps.Keys(s.peers), netip.Addr.Compare) {
		t := s.peers[a]
		if t.reconnect {
			down = append(down, a)
			t.reconnect = false
		}
		if t.checkCaps {
			up = append(up, a)
			t.checkCaps = false
		}
	}
	s.peerMu.Unlock()
	for _, a := range down {
		s.reconnect(ctx, a)
	}
	for _, a := range up {
		s.checkCapabilities(ctx, a)
	}
}

// listPeer returns GoBGP's view of the peer at a (nil if it has none).
func (s *Speaker) listPeer(ctx context.Context, a netip.Addr) (*api.Peer, error) {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var st *api.Peer
	err := s.srv.ListPeer(cctx, &api.ListPeerRequest{Address: a.String()}, func(p *api.Peer) { st = p })
	return st, err
}

// reconnect deletes the peer at a from GoBGP and adds it again, so that its
// session, which went back to Idle, reconnects without GoBGP's 5s idle
// hold (see the top of this file).
func (s *Speaker) reconnect(ctx context.Context, a netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != lifecycleRunning {
		return
	}
	p, ok := s.configured[a]
	if !ok {
		return // removed or being replaced (SetPeers)
	}
	now := time.Now()
	s.peerMu.Lock()
	t := s.peers[a]
	var recent []time.Time
	if t != nil {
		t.reconnects = recentReconnects(t.reconnects, now)
		recent = t.reconnects
	}
	s.peerMu.Unlock()
	if t == nil {
		return
	}
	if len(recent) >= fastReconnectBurst {
		s.log.Debug("peer re-added for fast reconnects too often; leaving the reconnect to GoBGP",
			"peer", a, "reconnects", len(recent), "window", fastReconnectWindow)
		return
	}
	st, err := s.listPeer(ctx, a)
	if err != nil || st == nil {
		return
	}
	if st.GetState().GetSessionState() != api.PeerState_IDLE {
		return // connecting again already, or back up
	}
	if msgs := st.GetState().GetMessages(); msgs.GetSent().GetOpen() == 0 && msgs.GetReceived().GetOpen() == 0 {
		// A peer GoBGP has had no session with: one SetPeers added or
		// replaced after the session went down. It has no idle hold.
		return
	}
	opts := s.startOpts
	opts.Restarting = st.GetGracefulRestart().GetLocalRestarting()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err = s.srv.DeletePeer(cctx, &api.DeletePeerRequest{Address: a.String()})
	if err == nil {
		err = s.srv.AddPeer(cctx, &api.AddPeerRequest{Peer: s.apiPeer(p, opts)})
		if err != nil {
			// GoBGP has no such peer now: a config reload adds it again.
			delete(s.configured, a)
			delete(s.grPending, a)
		}
	}
	cancel()
	if err != nil {
		s.log.Error("cannot add a peer again for a fast reconnect", "peer", a, "error", err)
		return
	}
	if opts.Restarting {
		s.grPending[a] = true
	}
	s.peerMu.Lock()
	t.reconnects = append(t.reconnects, now)
	s.peerMu.Unlock()
	s.log.Info("peer added again to reconnect without GoBGP's idle hold", "peer", a, "restarting", opts.Restarting)
}

// checkCapabilities records what the peer at a announced about graceful
// restart in the OPEN of its established session and, when this speaker
// announces long-lived graceful restart, warns if the peer does not: a
// virtbgp restart then loses this host's routes at that peer.
func (s *Speaker) checkCapabilities(ctx context.Context, a netip.Addr) {
	s.mu.Lock()
	running := s.state == lifecycleRunning
	s.mu.Unlock()
	if !running {
		return
	}
	// ListPeer: see the note on GoBGP's data race in Peers; the session is
	// established, so its OPEN has been built already.
	st, err := s.listPeer(ctx, a)
	if err != nil || st == nil || st.GetState().GetSessionState() != api.PeerState_ESTABLISHED {
		return // gone again: the next session is checked when it is up
	}
	caps, err := apiutil.UnmarshalCapabilities(st.GetState().GetRemoteCap())
	if err != nil {
		s.log.Warn("cannot read the capabilities a peer sent", "peer", a, "error", err)
		return
	}
	support := grSupport(caps)
	s.peerMu.Lock()
	t := s.peers[a]
	var asn uint32
	if t != nil {
		asn = t.cfg.ASN
	}
	s.peerMu.Unlock()
	if t == nil {
		return
	}
	// Warn first, record after: a status that shows the support has had
	// its warning logged (the tests rely on it).
	if gr := s.cfg.GracefulRestart; gr.Enabled && gr.LongLivedStaleTime > 0 && support != GRLongLived {
		effect := "a virtbgp restart or a failure of this host removes this host's routes at this peer after restart_time"
		if support == GRNone {
			effect = "a virtbgp restart or a failure of this host removes this host's routes at this peer at once"
		}
		s.log.Warn("peer is not a long-lived graceful-restart helper",
			"peer", a, "asn", asn, "graceful_restart", support, "restart_time", gr.RestartTime,
			"effect", effect, "hint", "make the peer a long-lived graceful-restart helper (docs/tor)")
	}
	s.peerMu.Lock()
	t.gr = support
	s.peerMu.Unlock()
}
