package bgp

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	api "github.com/osrg/gobgp/v3/api"

	"github.com/virtbgp/virtbgp/internal/config"
)

// SetPeers makes the speaker's sessions those of peers, touching only what
// differs: a new peer is added, a removed one deleted (its session closes
// with a Cease), and a peer whose configuration changed is replaced (only
// its session resets). Sessions of unchanged peers stay up. A peer whose
// export policy (export, next-hop-ipv4/-ipv6) alone changed keeps its
// session: it is sent exactly the routes whose export to it changed
// (updateExport), the other peers nothing. The first call
// after StartWith with DeferPeers adds the initial peers, in restarting
// mode if the start asked for it. The peers must be valid (config.Load
// checks them).
//
// An unnumbered peer (config.Peer.Interface) is added once its interface
// has one link-local neighbour, with that address; until then it is listed
// by Peers as waiting, and the speaker tries again whenever the neighbour
// table of its interface changes. A changed neighbour address replaces the
// peer.
func (s *Speaker) SetPeers(ctx context.Context, peers []config.Peer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state != lifecycleRunning {
		return errors.New("the bgp speaker is not running")
	}
	return s.setPeers(ctx, peers)
}

// setPeers is SetPeers with mu held.
func (s *Speaker) setPeers(ctx context.Context, configured []config.Peer) error {
	s.want = slices.Clone(configured)
	peers, missing := resolvePeers(configured, unnumberedAddrs(s.configured), s.neighbor)
	s.setUnnumbered(configured, missing)
	want := make(map[netip.Addr]config.Peer, len(peers))
	for _, p := range peers {
		want[p.Address.Unmap()] = p
	}
	var errs []error
	for _, a := range slices.SortedFunc(maps.Keys(s.configured), netip.Addr.Compare) {
		if p, keep := want[a]; keep && sessionEqual(p, s.configured[a]) {
			// Only the export policy (updateExport below) or a warning
			// receive-limit may differ.
			s.configured[a] = p
			s.trackPeer(p)
			continue
		}
		if err := s.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: a.String()}); err != nil {
			errs = append(errs, fmt.Errorf("delete peer %s: %w", a, err))
			continue
		}
		delete(s.configured, a)
		delete(s.grPending, a)
		if _, replaced := want[a]; replaced {
			s.log.Info("peer configuration changed; resetting its session", "peer", a)
			continue // keep its watch state (last down reason) across the reset
		}
		s.untrackPeer(a)
		s.log.Info("peer removed", "peer", a)
	}
	var add []config.Peer
	fresh := map[netip.Addr]bool{}
	for _, p := range peers {
		if _, have := s.configured[p.Address.Unmap()]; !have {
			add = append(add, p)
			fresh[p.Address.Unmap()] = true
		}
	}
	// The policy first, so that added peers get it with their first
	// UPDATE; kept peers get the routes whose export to them changes.
	s.cfg.Peers = slices.Clone(peers)
	if err := s.updateExport(ctx, fresh); err != nil {
		errs = append(errs, err)
	}
	if err := s.addPeers(ctx, add); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// addPeers adds peers to GoBGP and to the watch state. Only the peers of
// the first addition after a start use its Restarting option: a peer added
// later is not part of the restart. Call with mu held.
func (s *Speaker) addPeers(ctx context.Context, peers []config.Peer) error {
	opts := s.startOpts
	if s.peersAdded {
		opts.Restarting = false
	}
	s.peersAdded = true
	for _, p := range peers {
		if err := ctx.Err(); err != nil {
			return err
		}
		a := p.Address.Unmap()
		s.trackPeer(p)
		if err := s.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: s.apiPeer(p, opts)}); err != nil {
			s.untrackPeer(a)
			return fmt.Errorf("add peer %s (AS %d): %w", a, p.ASN, err)
		}
		s.configured[a] = p
		if opts.Restarting {
			s.grPending[a] = true
		}
		if s.state == lifecycleRunning {
			s.log.Info("peer added", "peer", a, "asn", p.ASN, "restarting", opts.Restarting)
		}
	}
	return nil
}

func (s *Speaker) trackPeer(p config.Peer) {
	s.peerMu.Lock()
	defer s.peerMu.Unlock()
	a := p.Address.Unmap()
	if t, ok := s.peers[a]; ok {
		t.cfg = p
		return
	}
	s.peers[a] = &peerTrack{cfg: p, addr: a, state: StateIdle}
}

func (s *Speaker) untrackPeer(a netip.Addr) {
	s.peerMu.Lock()
	defer s.peerMu.Unlock()
	delete(s.peers, a)
}
