package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	api "github.com/osrg/gobgp/v3/api"

	"github.com/virtbgp/virtbgp/internal/config"
)

// SessionState is the state of a BGP session (RFC 4271 8.2.2), in the
// lower-case words used in logs and status.
type SessionState string

// The session states. StateIdle is also reported for a peer of a speaker
// that is not running.
const (
	StateIdle        SessionState = "idle"
	StateConnect     SessionState = "connect"
	StateActive      SessionState = "active"
	StateOpenSent    SessionState = "opensent"
	StateOpenConfirm SessionState = "openconfirm"
	StateEstablished SessionState = "established"
	StateUnknown     SessionState = "unknown"
)

func sessionState(s api.PeerState_SessionState) SessionState {
	switch s {
	case api.PeerState_IDLE:
		return StateIdle
	case api.PeerState_CONNECT:
		return StateConnect
	case api.PeerState_ACTIVE:
		return StateActive
	case api.PeerState_OPENSENT:
		return StateOpenSent
	case api.PeerState_OPENCONFIRM:
		return StateOpenConfirm
	case api.PeerState_ESTABLISHED:
		return StateEstablished
	}
	return StateUnknown
}

// PeerStatus is the state of one configured peer.
type PeerStatus struct {
	// Address is the peer's address as configured; for an unnumbered peer
	// its link-local address with the interface as zone, the zero Addr
	// while it is not resolved (Waiting).
	Address netip.Addr
	// Interface is the interface of an unnumbered peer, "" for others.
	Interface string
	// Waiting says why an unnumbered peer has no session yet (no
	// link-local neighbour on its interface); "" once it is resolved.
	Waiting string
	// ASN is the peer's AS number as configured.
	ASN uint32
	// State is the session state.
	State SessionState
	// Uptime is how long the session has been established, in whole
	// seconds; zero unless State is StateEstablished.
	Uptime time.Duration
	// RoutesSent is the number of routes advertised to the peer (GoBGP's
	// adj-RIB-out, without End-of-RIB markers); zero unless established.
	RoutesSent uint64
	// Families are the address families configured for the session.
	Families []config.Family
	// LastDownReason says why the session last went down from established
	// ("hold-timer-expired", "notification-received cease/..."); empty if
	// it never did since Start.
	LastDownReason string
	// LastError is the last NOTIFICATION the session sent or received
	// ("sent NOTIFICATION open/bad peer as: ..."), while it is not
	// established: why a peer does not come up. Empty once it is up.
	LastError string
	// RoutesReceived is the number of routes the peer sent, which GoBGP
	// keeps though the speaker imports none (received.go); zero unless
	// established.
	RoutesReceived uint64
	// GracefulRestart is what the peer announced in the OPEN of its last
	// established session: whether it keeps this host's routes when virtbgp
	// restarts or the host dies (GRUnknown until a session is up).
	GracefulRestart GRSupport
	// SentByFamily is RoutesSent per family (every family of Families,
	// zero unless established).
	SentByFamily map[config.Family]uint64
	// UpdatesSent and UpdatesReceived are the UPDATE messages of the
	// current session (GoBGP counts per session); zero unless established.
	UpdatesSent, UpdatesReceived uint64
	// Flaps is how many times the session went down from established since
	// the speaker started.
	Flaps uint64
	// NotSent are the families of Families whose routes the peer does not
	// get, with why: its export policy's families, or no next hop of that
	// family for a session of the other (DroppedFamily).
	NotSent map[config.Family]string
}

// Carries returns the families whose routes the peer is sent: Families
// less NotSent.
func (p PeerStatus) Carries() []config.Family {
	var out []config.Family
	for _, f := range p.Families {
		if _, no := p.NotSent[f]; !no {
			out = append(out, f)
		}
	}
	return out
}

// peerTrack is what the speaker keeps of one configured peer. Guarded by
// Speaker.peerMu (cfg and addr are immutable).
type peerTrack struct {
	cfg  config.Peer
	addr netip.Addr // cfg.Address unmapped; also GoBGP's neighbor key

	state SessionState
	up    time.Time // when state became StateEstablished
	// pendingReason is the reason of GoBGP's last "Peer Down" log line,
	// waiting for the matching state event (logger.go: GoBGP's API does
	// not say why a session went down).
	pendingReason  string
	lastDownReason string
	lastError      string    // see PeerStatus.LastError
	notifiedAt     time.Time // when GoBGP last sent the peer a NOTIFICATION (peererror.go)
	receiveWarned  bool      // warned this session about its receive limit (received.go)

	// Marks for watchSessions (sessions.go), set by onPeerState:
	// checkCaps, the session came up; reconnect, it went back to Idle
	// after a connection (from OpenSent, OpenConfirm or Established).
	checkCaps, reconnect bool
	// reconnects are when watchSessions re-added the peer, within the last
	// fastReconnectWindow.
	reconnects []time.Time
	// gr is what the peer's last established session announced.
	gr GRSupport
	// flaps counts the sessions that went down from established.
	flaps uint64
}

func families(p config.Peer) []config.Family {
	if len(p.Families) == 0 {
		return []config.Family{config.FamilyIPv4, config.FamilyIPv6}
	}
	return p.Families
}

func apiFamily(f config.Family) *api.Family {
	if f == config.FamilyIPv6 {
		return &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
	}
	return &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
}

// seconds converts d to whole seconds for GoBGP, at least min when d > 0.
func seconds(d time.Duration, min uint64) uint64 {
	if d <= 0 {
		return 0
	}
	return max(uint64(d/time.Second), min)
}

// apiPeer is the GoBGP neighbor configuration of p.
func (s *Speaker) apiPeer(p config.Peer, opts StartOptions) *api.Peer {
	addr := p.Address.Unmap()
	connectRetry := opts.ConnectRetry
	if connectRetry <= 0 {
		connectRetry = DefaultConnectRetry
	}
	if p.HoldTime == 0 {
		// GoBGP takes hold time 0 as "default" (90s) and has no way to
		// propose 0. The negotiated hold time is the smaller of the two, so
		// a peer proposing 0 still gets 0.
		s.log.Warn("hold-time 0 cannot be proposed with GoBGP; proposing 90s", "peer", addr)
	}
	gr := s.cfg.GracefulRestart.Enabled
	ap := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: addr.String(),
			PeerAsn:         p.ASN,
			AuthPassword:    p.Password,
			// GoBGP drops local paths whose AS_PATH contains the peer's AS
			// unless this is set; towards iBGP peers that is our own AS,
			// which AS_PATH prepending puts there.
			AllowAspathLoopLocal: true,
		},
		Timers: &api.Timers{Config: &api.TimersConfig{
			ConnectRetry:      seconds(connectRetry, 1),
			HoldTime:          seconds(p.HoldTime, 3),
			KeepaliveInterval: seconds(p.Keepalive, 1),
		}},
		Transport: &api.Transport{
			RemotePort:  uint32(p.Port),
			PassiveMode: p.Passive,
		},
	}
	if p.LocalAddress.IsValid() {
		ap.Transport.LocalAddress = p.LocalAddress.Unmap().String()
	}
	if p.Interface != "" {
		// Unnumbered: the local address stays "::" with the interface
		// bound. GoBGP's own choice for a zoned neighbour, the interface's
		// link-local address with the zone, would become a nil next hop
		// "self" (server.go handleFSMMessage: net.ParseIP of the
		// configured local address); with "::" it takes the connection's
		// local address, the link-local one, without the zone.
		ap.Transport.LocalAddress = "::"
		ap.Transport.BindInterface = p.Interface
	}
	if p.MultihopTTL > 0 {
		ap.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: uint32(p.MultihopTTL)}
	}
	// Long-lived graceful restart (RFC 9494): after the restart time a
	// helper keeps our routes for the stale time, marked LLGR_STALE, so
	// that they still forward while nothing else exists but lose to any
	// fresh path at once (a VM started on another host).
	llgr := gr && s.cfg.GracefulRestart.LongLivedStaleTime > 0
	if gr {
		ap.GracefulRestart = &api.GracefulRestart{
			Enabled:          true,
			RestartTime:      uint32(min(seconds(s.cfg.GracefulRestart.RestartTime, 1), 4095)),
			LocalRestarting:  opts.Restarting,
			LonglivedEnabled: llgr,
			// RFC 8538, the N bit (see the GracefulRestart.Notification
			// doc). What GoBGP v3.37.0 does with it: it sets the bit in
			// the OPEN (fsm.go capabilitiesFromConfig) and counts it
			// negotiated when the peer's capability has it too (fsm.go
			// opensent, State.NotificationEnabled). Then a Cease that it
			// sends with subcode Maximum Number of Prefixes, Administrative
			// Shutdown or Peer De-configured goes out as a Hard Reset
			// (fsm.go sendMessageloop and established, packet/bgp
			// ShouldHardReset): DeletePeer and StopBgp send Peer
			// De-configured (server.go deleteNeighbor), so removing a peer
			// and Stop still make the peer drop our routes at once. A
			// hold-timer expiry and any other NOTIFICATION leave them
			// stale at the peer (RFC 8538 4), like the close without a
			// NOTIFICATION of a restart or a crash. Received, a
			// NOTIFICATION other than a Hard Reset makes GoBGP keep the
			// peer's routes, which the speaker does not import anyway.
			NotificationEnabled: s.cfg.GracefulRestart.Notification,
		}
	}
	for _, f := range families(p) {
		af := &api.AfiSafi{Config: &api.AfiSafiConfig{Family: apiFamily(f), Enabled: true}}
		if gr {
			af.MpGracefulRestart = &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}
		}
		receiveLimit(af, p)
		if llgr {
			af.LongLivedGracefulRestart = &api.LongLivedGracefulRestart{Config: &api.LongLivedGracefulRestartConfig{
				Enabled:     true,
				RestartTime: uint32(s.cfg.GracefulRestart.LongLivedStaleTime / time.Second),
			}}
		}
		ap.AfiSafis = append(ap.AfiSafis, af)
	}
	return ap
}

// Peers reports the configured peers in config order. The session states
// are the ones GoBGP's watch events reported (onPeerState); GoBGP is asked
// only for the routes sent to established peers. (Its ListPeer reads a
// peer's configuration while the session's goroutine writes it when it
// builds an OPEN, a data race in GoBGP v3.37.0: fsm.go capabilitiesFromConfig
// against server.go toConfig.)
func (s *Speaker) Peers(ctx context.Context) ([]PeerStatus, error) {
	s.mu.Lock()
	// SetPeers replaces these slices, never changes them.
	peers := inConfigOrder(s.want, s.cfg.Peers)
	running := s.state == lifecycleRunning
	dropped := s.export.dropped
	unres := s.unresolved
	s.mu.Unlock()

	out := make([]PeerStatus, len(peers))
	now := time.Now()
	s.peerMu.Lock()
	for i, p := range peers {
		out[i] = PeerStatus{
			Address:   p.Address,
			Interface: p.Interface,
			ASN:       p.ASN,
			State:     StateIdle,
			Families:  append([]config.Family(nil), families(p)...),
		}
		if !p.Address.IsValid() {
			for _, u := range unres {
				if u.peer.Interface == p.Interface {
					out[i].Waiting = u.why
				}
			}
			continue
		}
		for _, f := range out[i].Families {
			if p.Export.Families != nil && !slices.Contains(p.Export.Families, f) {
				notSent(&out[i], f, "not in its export families")
			}
		}
		for _, d := range dropped {
			if d.Peer == p.Address.Unmap() {
				notSent(&out[i], d.Family, "no "+string(d.Family)+" next hop: "+d.Reason)
			}
		}
		t := s.peers[p.Address.Unmap()]
		if t == nil {
			continue // SetPeers could not add it
		}
		out[i].LastDownReason = t.lastDownReason
		if t.state != StateEstablished {
			out[i].LastError = t.lastError
		}
		out[i].GracefulRestart = t.gr
		out[i].Flaps = t.flaps
		if running {
			out[i].State = t.state
			if t.state == StateEstablished {
				out[i].Uptime = max(now.Sub(t.up).Truncate(time.Second), 0)
			}
		}
	}
	s.peerMu.Unlock()

	for i := range out {
		if out[i].State != StateEstablished {
			continue
		}
		addr := peers[i].Address.Unmap().String()
		// ListPeer: see the note on GoBGP's data race above; the session
		// is established, so its OPEN has been built already.
		st, err := s.listPeer(ctx, peers[i].Address.Unmap())
		if err != nil {
			return nil, fmt.Errorf("read the message counts of %s: %w", addr, err)
		}
		if st.GetState().GetSessionState() == api.PeerState_ESTABLISHED {
			msgs := st.GetState().GetMessages()
			out[i].UpdatesSent = msgs.GetSent().GetUpdate()
			out[i].UpdatesReceived = msgs.GetReceived().GetUpdate()
		}
		out[i].SentByFamily = make(map[config.Family]uint64, len(out[i].Families))
		for _, f := range out[i].Families {
			t, err := s.srv.GetTable(ctx, &api.GetTableRequest{
				TableType: api.TableType_ADJ_OUT,
				Family:    apiFamily(f),
				Name:      addr,
			})
			if err != nil {
				return nil, fmt.Errorf("count routes sent to %s (%s): %w", addr, f, err)
			}
			out[i].RoutesSent += t.GetNumPath()
			out[i].SentByFamily[f] = t.GetNumPath()
		}
		n, err := s.routesReceived(ctx, peers[i])
		if err != nil {
			return nil, err
		}
		out[i].RoutesReceived = n
	}
	return out, nil
}

// inConfigOrder returns the peers of want in their order, unnumbered ones
// as resolved (from resolved) or as configured (not resolved).
func inConfigOrder(want, resolved []config.Peer) []config.Peer {
	out := make([]config.Peer, 0, len(want))
	for _, p := range want {
		if p.Interface != "" {
			for _, r := range resolved {
				if r.Interface == p.Interface {
					p = r
				}
			}
		}
		out = append(out, p)
	}
	return out
}

func notSent(p *PeerStatus, f config.Family, why string) {
	if p.NotSent == nil {
		p.NotSent = map[config.Family]string{}
	}
	if _, have := p.NotSent[f]; !have {
		p.NotSent[f] = why
	}
}

// trackOf returns the watch state of the peer at address a, nil if none.
// GoBGP's peer events give an unnumbered peer's link-local address without
// the zone (watchEventPeer.PeerAddress is a net.IP), so a link-local a
// without zone matches the one peer with that address on any interface
// (not one if two interfaces have neighbours with the same address).
// Call with peerMu held.
func (s *Speaker) trackOf(a netip.Addr) *peerTrack {
	if t := s.peers[a]; t != nil || a.Zone() != "" || !a.IsLinkLocalUnicast() {
		return t
	}
	var found *peerTrack
	for k, t := range s.peers {
		if k.WithZone("") == a {
			if found != nil {
				return nil
			}
			found = t
		}
	}
	return found
}

// onPeerDownLogged is called by the GoBGP logger adapter with the reason of
// a session that went down; the state event that follows logs it.
func (s *Speaker) onPeerDownLogged(addr, reason string) {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return
	}
	s.peerMu.Lock()
	if t := s.trackOf(a.Unmap()); t != nil {
		t.pendingReason = reason
	}
	s.peerMu.Unlock()
}

// onWatchEvent handles the events of GoBGP's watch: peer state events, and
// the End-of-RIBs the peers send while the speaker is restarting. It is
// called from GoBGP's watch goroutine, one event at a time.
func (s *Speaker) onWatchEvent(ev *api.WatchEventResponse) {
	if ev.GetTable() != nil { // only End-of-RIBs are watched
		s.kickRestarting()
		return
	}
	pe := ev.GetPeer()
	if pe == nil || pe.GetType() != api.WatchEventResponse_PeerEvent_STATE {
		return
	}
	s.onPeerState(pe.GetPeer().GetState())
}

// onPeerState records a peer's new session state and logs sessions coming
// up and going down.
func (s *Speaker) onPeerState(ps *api.PeerState) {
	a, err := netip.ParseAddr(ps.GetNeighborAddress())
	if err != nil {
		return
	}
	a = a.Unmap()
	next := sessionState(ps.GetSessionState())

	s.peerMu.Lock()
	t := s.trackOf(a)
	if t == nil {
		s.peerMu.Unlock()
		return
	}
	a = t.addr // an unnumbered peer's, with the zone
	prev := t.state
	t.state = next
	if next == StateEstablished && prev != StateEstablished {
		t.up = time.Now()
		t.checkCaps, t.reconnect = true, false
		t.lastError = ""
		t.receiveWarned = false
	}
	reason := ""
	if prev == StateEstablished && next != StateEstablished {
		reason = t.pendingReason
		if reason == "" {
			reason = "unknown"
		}
		t.lastDownReason = reason
		t.pendingReason = ""
		t.flaps++
		t.checkCaps = false
	}
	if next == StateIdle && (prev == StateOpenSent || prev == StateOpenConfirm || prev == StateEstablished) {
		t.reconnect = true // sessions.go: GoBGP holds it in Idle for 5s now
	}
	if next == StateIdle && (prev == StateOpenSent || prev == StateOpenConfirm) {
		refusedByPeer(t, time.Now())
	}
	kick := t.checkCaps || t.reconnect
	asn := t.cfg.ASN
	s.peerMu.Unlock()
	if kick {
		defer s.kickSessions() // sessions.go, after the log line below
	}

	switch {
	case prev == next:
	case next == StateEstablished:
		s.mu.Lock()
		delete(s.grPending, a)
		s.mu.Unlock()
		s.kickRestarting() // grsync.go: GoBGP may have ended the restart
		s.log.Info("peer established", "peer", a, "asn", asn)
	case prev == StateEstablished:
		s.mu.Lock()
		stopping := s.state != lifecycleRunning
		s.mu.Unlock()
		level := slog.LevelWarn
		if stopping {
			level = slog.LevelInfo
		}
		s.log.Log(context.Background(), level, "peer down", "peer", a, "asn", asn, "reason", reason)
	default:
		s.log.Debug("peer state changed", "peer", a, "asn", asn, "from", prev, "to", next)
	}
}
