package bgp

import (
	"context"
	"net/netip"
	"slices"
	"time"

	"github.com/virtbgp/virtbgp/internal/config"
)

// NeighborFunc finds the link-local address of the one BGP neighbour on an
// interface (BGP unnumbered), with the interface as the zone
// ("fe80::1%eth1"); an error says why there is none.
type NeighborFunc func(ifname string) (netip.Addr, error)

// RAInterval is how often the speaker sends a router advertisement on each
// interface of an unnumbered peer. FRR's bgpd learns the address of
// `neighbor IF interface` from the neighbour's router advertisements
// (zebra's rtadv), and FRR itself advertises every 10s on such links.
var RAInterval = 10 * time.Second

// unresolved is an interface peer whose neighbour is not known yet.
type unresolved struct {
	peer config.Peer
	why  string
}

// resolvePeers returns peers with each interface peer's Address set to its
// neighbour's link-local address (with the zone), as nb finds it now; where
// nb finds none, the address in prev (the interface's peer in GoBGP now)
// stays, so that a neighbour entry that expires or fails for a moment does
// not reset a session. The interface peers with neither are left out and
// returned apart, with why. It is pure but for nb.
func resolvePeers(peers []config.Peer, prev map[string]netip.Addr, nb NeighborFunc) ([]config.Peer, []unresolved) {
	out := make([]config.Peer, 0, len(peers))
	var missing []unresolved
	for _, p := range peers {
		if p.Interface == "" {
			out = append(out, p)
			continue
		}
		a, err := nb(p.Interface)
		if err != nil && prev[p.Interface].IsValid() {
			a, err = prev[p.Interface], nil
		}
		if err != nil {
			missing = append(missing, unresolved{peer: p, why: err.Error()})
			continue
		}
		p.Address = a
		out = append(out, p)
	}
	return out, missing
}

// unnumberedAddrs returns the address of each unnumbered peer in
// configured, by interface.
func unnumberedAddrs(configured map[netip.Addr]config.Peer) map[string]netip.Addr {
	out := map[string]netip.Addr{}
	for a, p := range configured {
		if p.Interface != "" {
			out[p.Interface] = a
		}
	}
	return out
}

// interfaces returns the interfaces of the unnumbered peers, sorted.
func interfaces(peers []config.Peer) []string {
	var out []string
	for _, p := range peers {
		if p.Interface != "" && !slices.Contains(out, p.Interface) {
			out = append(out, p.Interface)
		}
	}
	slices.Sort(out)
	return out
}

// setUnnumbered makes the speaker follow the unnumbered peers of want: it
// records the ones not resolved (for Peers) and runs one router
// advertisement sender per interface, stopping those of interfaces no
// longer configured. Call with mu held.
func (s *Speaker) setUnnumbered(want []config.Peer, missing []unresolved) {
	for _, u := range missing {
		prev := ""
		for _, o := range s.unresolved {
			if o.peer.Interface == u.peer.Interface {
				prev = o.why
			}
		}
		if prev != u.why {
			s.log.Warn("unnumbered peer not resolved; waiting for its link-local address",
				"interface", u.peer.Interface, "asn", u.peer.ASN, "reason", u.why)
		}
	}
	s.unresolved = missing
	ifs := interfaces(want)
	set := make(map[string]bool, len(ifs))
	for _, name := range ifs {
		set[name] = true
	}
	s.unnumIfs.Store(set)
	if len(ifs) > 0 && s.watchNeigh && !s.neighWatching {
		s.neighWatching = true
		if err := watchNeighbors(s.watchCtx.Done(), s.unnumberedInterface, s.kickExport); err != nil {
			s.log.Warn("cannot follow the host's neighbour table; unnumbered peers are resolved at start and reload only", "error", err)
		}
	}
	if s.noRA {
		return
	}
	for name, stop := range s.raSenders {
		if !slices.Contains(ifs, name) {
			stop()
			delete(s.raSenders, name)
		}
	}
	for _, name := range ifs {
		if _, ok := s.raSenders[name]; ok {
			continue
		}
		ctx, cancel := context.WithCancel(s.watchCtx)
		s.raSenders[name] = cancel
		go sendRouterAdvertisements(ctx, name, RAInterval, s.log)
	}
}

// unnumberedInterface reports whether ifname is the interface of an
// unnumbered peer of the speaker. It does not wait for mu (held across
// GoBGP calls), so that the neighbour watch keeps reading netlink.
func (s *Speaker) unnumberedInterface(ifname string) bool {
	set, _ := s.unnumIfs.Load().(map[string]bool)
	return set[ifname]
}
