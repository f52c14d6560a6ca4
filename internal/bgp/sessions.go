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

// When a session comes up, the speaker reads the capabilities the peer
// sent (GRSupport), for the status and for the warning about a peer that
// would drop this host's routes when virtbgp restarts (checkCapabilities).
// GoBGP's watch goroutine must not call GoBGP, so onPeerState marks the
// peer and watchSessions does the work.

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

// serviceSessions takes the marks of every peer and acts on them.
func (s *Speaker) serviceSessions(ctx context.Context) {
	var up []netip.Addr
	s.peerMu.Lock()
	for _, a := range slices.SortedFunc(maps.Keys(s.peers), netip.Addr.Compare) {
		t := s.peers[a]
		if t.checkCaps {
			up = append(up, a)
			t.checkCaps = false
		}
	}
	s.peerMu.Unlock()
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
