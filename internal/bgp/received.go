package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	api "github.com/osrg/gobgp/v3/api"

	"github.com/virtbgp/virtbgp/internal/config"
)

// Routes a peer sends (issue 17, finding 10). The speaker imports none of
// them (setImportPolicy), but GoBGP v3.37.0 keeps every route a peer sends
// in the peer's Adj-RIB-In before any policy (server/peer.go handleUpdate:
// adjRibIn.Update), about 250 bytes each (BenchmarkReceivedRoutesMemory),
// and has no setting to keep none: a ToR that leaks a full table (a
// million routes) would cost the daemon a quarter of a gigabyte. So each
// peer has a receive limit: beyond it the speaker warns, once per session,
// and shows the count in status (ReceiveWarn, the default: the session is
// not touched), or GoBGP ends the session with a Cease, maximum number of
// prefixes reached, which drops the routes (ReceiveRestart).

// DefaultReceiveCheck is how often the speaker counts the routes each
// established peer sent, when StartOptions.ReceiveCheck is zero.
const DefaultReceiveCheck = 10 * time.Second

// receiveLimit sets GoBGP's prefix limit of one family of a peer whose
// receive-limit-action is restart.
func receiveLimit(af *api.AfiSafi, p config.Peer) {
	if p.ReceiveLimitAction == config.ReceiveRestart && p.ReceiveLimit > 0 {
		af.PrefixLimits = &api.PrefixLimit{Family: af.GetConfig().GetFamily(), MaxPrefixes: p.ReceiveLimit}
	}
}

// routesReceived counts the routes the peer at addr sent, in every
// family of p, as GoBGP holds them.
func (s *Speaker) routesReceived(ctx context.Context, p config.Peer) (uint64, error) {
	addr := p.Address.Unmap().String()
	var n uint64
	for _, f := range families(p) {
		t, err := s.srv.GetTable(ctx, &api.GetTableRequest{TableType: api.TableType_ADJ_IN, Family: apiFamily(f), Name: addr})
		if err != nil {
			return 0, fmt.Errorf("count routes received from %s (%s): %w", addr, f, err)
		}
		n += t.GetNumPath()
	}
	return n, nil
}

// watchReceived counts, every interval until ctx ends, the routes each
// established peer sent, and warns once per session about a peer beyond
// its receive limit.
func (s *Speaker) watchReceived(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultReceiveCheck
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		s.checkReceived(ctx)
	}
}

// checkReceived is one round of watchReceived.
func (s *Speaker) checkReceived(ctx context.Context) {
	type peer struct {
		cfg  config.Peer
		addr netip.Addr
	}
	var up []peer
	s.peerMu.Lock()
	for a, t := range s.peers {
		if t.state == StateEstablished && !t.receiveWarned && t.cfg.ReceiveLimit > 0 && t.cfg.ReceiveLimitAction == config.ReceiveWarn {
			up = append(up, peer{t.cfg, a})
		}
	}
	s.peerMu.Unlock()
	for _, p := range up {
		n, err := s.routesReceived(ctx, p.cfg)
		if err != nil || n <= uint64(p.cfg.ReceiveLimit) {
			continue // a peer removed meanwhile, or within its limit
		}
		s.peerMu.Lock()
		t := s.peers[p.addr]
		warn := t != nil && t.state == StateEstablished && !t.receiveWarned
		if warn {
			t.receiveWarned = true
		}
		s.peerMu.Unlock()
		if warn {
			s.log.Warn("peer sends more routes than its receive limit; virtbgp imports none, but keeps them in memory",
				"peer", p.addr, "routes", n, "receive_limit", p.cfg.ReceiveLimit,
				"hint", "filter what the ToR exports to this host (docs/tor), or set receive-limit-action: restart")
		}
	}
}
