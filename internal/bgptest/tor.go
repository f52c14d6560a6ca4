// Package bgptest runs a real in-process GoBGP router that plays the
// top-of-rack switch in tests, and reads what it (or any other GoBGP server,
// such as the speaker under test) holds in plain Go types.
// It is a test helper, not part of the daemon.
//
// Sessions with a Password need TCP MD5 signatures on GoBGP's listeners,
// which MPTCP sockets (Go's default since 1.24) refuse: a test binary that
// uses them must put "//go:debug multipathtcp=0" in one of its test files.
package bgptest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"syscall"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
	"github.com/osrg/gobgp/v3/pkg/server"

	vbgp "github.com/virtbgp/virtbgp/internal/bgp"
	"github.com/virtbgp/virtbgp/mapping"
)

// Neighbor is one session of the ToR.
type Neighbor struct {
	Address  netip.Addr // the speaker's address as the ToR sees it
	ASN      uint32     // the speaker's AS
	Families []string   // "ipv4", "ipv6"
	// AllowOwnAS accepts paths that carry the ToR's own AS (allowas-in), as
	// an iBGP ToR must for a speaker that prepends its (shared) AS.
	AllowOwnAS bool
	// Password is the session's TCP MD5 password (see the package doc).
	Password string
	// RemotePort, when set, makes the ToR connect actively to the speaker at
	// this port; otherwise the ToR is passive.
	RemotePort uint16
	// LocalAddress is the ToR's source address for an active session.
	LocalAddress netip.Addr
	// GracefulRestart makes the ToR a graceful-restart helper (RFC 4724)
	// with per-family MP-GR; it also makes the ToR send End-of-RIB, which a
	// speaker in restarting mode waits for.
	GracefulRestart bool
	// LongLivedGracefulRestart, with GracefulRestart, makes the ToR a
	// long-lived graceful-restart helper (RFC 9494) too, as docs/tor makes
	// BIRD and FRR: once the speaker's restart time is over, the ToR keeps
	// its routes with LLGR_STALE for the stale time the speaker announced.
	LongLivedGracefulRestart bool
	// Notification, with GracefulRestart, sets the N bit of RFC 8538 in the
	// ToR's graceful-restart capability, as FRR does: where the speaker sets
	// it too, a NOTIFICATION other than a Hard Reset ends the session with
	// graceful restart, and the ToR sends a Hard Reset when it stops.
	Notification bool
}

// Config is the ToR's global configuration.
type Config struct {
	ASN      uint32       // the ToR's AS
	RouterID string       // the ToR's router ID, an IPv4 address
	Listen   []string     // addresses to listen on
	Port     uint16       // port to listen on; 0 chooses a free one
	Log      *slog.Logger // nil: discard GoBGP's logs
}

// ToR is a running in-process GoBGP router.
type ToR struct {
	Server *server.BgpServer // the GoBGP server, for what the helpers do not cover
	ASN    uint32            // the ToR's AS
	Port   uint16            // the port it listens on, at every address of Config.Listen
}

// FreePort returns a TCP port that was free a moment ago on 127.0.0.1 and,
// where the host has IPv6 loopback, on ::1 too (and so on all of 127/8).
func FreePort() (uint16, error) {
	var port int
	for range 20 {
		l4, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("find a free port: %w", err)
		}
		port = l4.Addr().(*net.TCPAddr).Port
		l6, err := net.Listen("tcp", net.JoinHostPort("::1", strconv.Itoa(port)))
		l4.Close()
		if err == nil {
			l6.Close()
			return uint16(port), nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) {
			return uint16(port), nil // no IPv6 loopback
		}
	}
	return 0, fmt.Errorf("find a free port: none of 20 was free on both 127.0.0.1 and ::1 (last %d)", port)
}

// Family returns the GoBGP API family for "ipv4" or "ipv6" unicast.
func Family(name string) *api.Family {
	if name == "ipv6" {
		return &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
	}
	return &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
}

// Start runs a ToR listening on cfg.Listen (cfg.Port, or a free port) with the given
// neighbors. Stop it with Stop.
func Start(ctx context.Context, cfg Config, neighbors ...Neighbor) (*ToR, error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var t *ToR
	for attempt := 0; ; attempt++ {
		port, err := cfg.Port, error(nil)
		if port == 0 {
			port, err = FreePort()
		}
		if err != nil {
			return nil, err
		}
		s := server.NewBgpServer(server.LoggerOption(vbgp.NewGoBGPLogger(log.With("router", "tor-"+cfg.RouterID))))
		go s.Serve()
		err = s.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
			Asn: cfg.ASN, RouterId: cfg.RouterID, ListenPort: int32(port), ListenAddresses: cfg.Listen,
		}})
		if err == nil {
			t = &ToR{Server: s, ASN: cfg.ASN, Port: port}
			break
		}
		s.Stop()
		if attempt == 5 || cfg.Port != 0 { // a free port was taken meanwhile, six times
			return nil, fmt.Errorf("start ToR AS %d: %w", cfg.ASN, err)
		}
	}
	for _, n := range neighbors {
		if err := t.AddNeighbor(ctx, n); err != nil {
			t.Stop()
			return nil, err
		}
	}
	return t, nil
}

// AddNeighbor adds a session: passive unless n.RemotePort is set.
func (t *ToR) AddNeighbor(ctx context.Context, n Neighbor) error {
	p := &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: n.Address.String(), PeerAsn: n.ASN, AuthPassword: n.Password},
		Transport: &api.Transport{PassiveMode: n.RemotePort == 0, RemotePort: uint32(n.RemotePort)},
		Timers:    &api.Timers{Config: &api.TimersConfig{HoldTime: 9, KeepaliveInterval: 3, ConnectRetry: 1}},
	}
	if n.AllowOwnAS {
		p.Conf.AllowOwnAsn = 16 // any number of prepends
	}
	if n.LocalAddress.IsValid() {
		p.Transport.LocalAddress = n.LocalAddress.String()
	}
	if n.GracefulRestart {
		p.GracefulRestart = &api.GracefulRestart{
			Enabled:             true,
			RestartTime:         120,
			LonglivedEnabled:    n.LongLivedGracefulRestart,
			NotificationEnabled: n.Notification,
		}
	}
	for _, f := range n.Families {
		af := &api.AfiSafi{Config: &api.AfiSafiConfig{Family: Family(f), Enabled: true}}
		if n.GracefulRestart {
			af.MpGracefulRestart = &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}
		}
		p.AfiSafis = append(p.AfiSafis, af)
	}
	err := t.Server.AddPeer(ctx, &api.AddPeerRequest{Peer: p})
	if err != nil {
		return fmt.Errorf("ToR AS %d: add neighbor %s: %w", t.ASN, n.Address, err)
	}
	return nil
}

// Stop stops the router (its sessions close with a NOTIFICATION). Stopping
// a stopped ToR does nothing.
func (t *ToR) Stop() {
	// BgpServer.Stop is StopBgp, which is a no-op once stopped.
	t.Server.Stop()
}

// Announce originates prefix on the ToR, towards its neighbors, with ORIGIN
// IGP and nextHop (NEXT_HOP for IPv4, MP_REACH_NLRI for IPv6).
func (t *ToR) Announce(ctx context.Context, prefix netip.Prefix, nextHop netip.Addr) error {
	attrs := []bgp.PathAttributeInterface{bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP)}
	var nlri bgp.AddrPrefixInterface
	if prefix.Addr().Is4() {
		nlri = bgp.NewIPAddrPrefix(uint8(prefix.Bits()), prefix.Addr().String())
		attrs = append(attrs, bgp.NewPathAttributeNextHop(nextHop.String()))
	} else {
		nlri = bgp.NewIPv6AddrPrefix(uint8(prefix.Bits()), prefix.Addr().String())
		attrs = append(attrs, bgp.NewPathAttributeMpReachNLRI(nextHop.String(), []bgp.AddrPrefixInterface{nlri}))
	}
	path, err := apiutil.NewPath(nlri, false, attrs, time.Now())
	if err == nil {
		_, err = t.Server.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: path})
	}
	if err != nil {
		return fmt.Errorf("ToR AS %d: announce %s: %w", t.ASN, prefix, err)
	}
	return nil
}

// Path is one path in a RIB, decoded.
type Path struct {
	Prefix           netip.Prefix
	NextHop          netip.Addr
	Origin           *uint8 // ORIGIN: 0 IGP, 1 EGP, 2 INCOMPLETE; nil if absent
	ASPath           []uint32
	Communities      []uint32
	LargeCommunities []mapping.LargeCommunity
	MED              *uint32
	LocalPref        *uint32
	Best             bool
	Neighbor         string // the peer the path came from, as GoBGP spells it
}

// String formats the path's prefix and attributes for test messages.
func (p Path) String() string {
	s := fmt.Sprintf("%s via %s as-path %v", p.Prefix, p.NextHop, p.ASPath)
	if p.MED != nil {
		s += " med " + strconv.FormatUint(uint64(*p.MED), 10)
	}
	if p.LocalPref != nil {
		s += " local-pref " + strconv.FormatUint(uint64(*p.LocalPref), 10)
	}
	for _, c := range p.Communities {
		s += " " + mapping.FormatCommunity(c)
	}
	for _, c := range p.LargeCommunities {
		s += " " + c.String()
	}
	return s
}

// Query selects the paths ListPaths returns.
type Query struct {
	// Family is "ipv4" or "ipv6"; "" means both unicast families.
	Family string
	// AdjIn, if valid, selects the adj-RIB-in of this neighbor (what it
	// sent, before import policy) instead of the Loc-RIB.
	AdjIn netip.Addr
}

// ListPaths returns the paths of s's RIB that q selects, by prefix. s is any
// GoBGP server: a ToR's, or the speaker's under test.
func ListPaths(ctx context.Context, s *server.BgpServer, q Query) (map[netip.Prefix][]Path, error) {
	fams := []string{"ipv4", "ipv6"}
	if q.Family != "" {
		fams = []string{q.Family}
	}
	req := &api.ListPathRequest{TableType: api.TableType_GLOBAL}
	if q.AdjIn.IsValid() {
		req = &api.ListPathRequest{TableType: api.TableType_ADJ_IN, Name: q.AdjIn.String()}
	}
	out := map[netip.Prefix][]Path{}
	for _, fam := range fams {
		req.Family = Family(fam)
		var derr error
		err := s.ListPath(ctx, req, func(d *api.Destination) {
			for _, ap := range d.Paths {
				p, err := DecodePath(ap)
				if err != nil {
					derr = err
					return
				}
				out[p.Prefix] = append(out[p.Prefix], p)
			}
		})
		if err == nil {
			err = derr
		}
		if err != nil {
			return nil, fmt.Errorf("list %s paths (%s %s): %w", fam, req.TableType, req.Name, err)
		}
	}
	return out, nil
}

// Paths returns every path of both unicast families in the ToR's RIB
// (Loc-RIB), by prefix.
func (t *ToR) Paths(ctx context.Context) (map[netip.Prefix][]Path, error) {
	out, err := ListPaths(ctx, t.Server, Query{})
	if err != nil {
		return nil, fmt.Errorf("ToR AS %d: %w", t.ASN, err)
	}
	return out, nil
}

// Best returns the best path per prefix.
func (t *ToR) Best(ctx context.Context) (map[netip.Prefix]Path, error) {
	all, err := t.Paths(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[netip.Prefix]Path, len(all))
	for p, ps := range all {
		for _, x := range ps {
			if x.Best {
				out[p] = x
			}
		}
	}
	return out, nil
}

// DecodePath decodes a GoBGP API path (with its NLRI), such as one a
// ListPath callback gets or one built for AddPath.
func DecodePath(ap *api.Path) (Path, error) {
	nlri, err := apiutil.GetNativeNlri(ap)
	if err != nil {
		return Path{}, fmt.Errorf("decode NLRI: %w", err)
	}
	pfx, err := netip.ParsePrefix(nlri.String())
	if err != nil {
		return Path{}, fmt.Errorf("decode NLRI %q: %w", nlri.String(), err)
	}
	attrs, err := apiutil.GetNativePathAttributes(ap)
	if err != nil {
		return Path{}, fmt.Errorf("decode attributes of %s: %w", pfx, err)
	}
	p := Path{Prefix: pfx, Best: ap.Best, Neighbor: ap.NeighborIp}
	for _, a := range attrs {
		switch a := a.(type) {
		case *bgp.PathAttributeOrigin:
			v := a.Value
			p.Origin = &v
		case *bgp.PathAttributeNextHop:
			p.NextHop, _ = netip.AddrFromSlice(a.Value)
			p.NextHop = p.NextHop.Unmap()
		case *bgp.PathAttributeMpReachNLRI:
			p.NextHop, _ = netip.AddrFromSlice(a.Nexthop)
			if p.Prefix.Addr().Is4() {
				p.NextHop = p.NextHop.Unmap()
			}
		case *bgp.PathAttributeAsPath:
			for _, seg := range a.Value {
				p.ASPath = append(p.ASPath, seg.GetAS()...)
			}
		case *bgp.PathAttributeCommunities:
			p.Communities = slices.Clone(a.Value)
		case *bgp.PathAttributeLargeCommunities:
			for _, c := range a.Values {
				p.LargeCommunities = append(p.LargeCommunities, mapping.LargeCommunity{GlobalAdmin: c.ASN, LocalData1: c.LocalData1, LocalData2: c.LocalData2})
			}
		case *bgp.PathAttributeMultiExitDisc:
			v := a.Value
			p.MED = &v
		case *bgp.PathAttributeLocalPref:
			v := a.Value
			p.LocalPref = &v
		}
	}
	return p, nil
}

// WaitEstablished waits until the session with addr is established.
func (t *ToR) WaitEstablished(ctx context.Context, addr netip.Addr) error {
	for {
		var state api.PeerState_SessionState
		err := t.Server.ListPeer(ctx, &api.ListPeerRequest{Address: addr.String()}, func(p *api.Peer) {
			state = p.State.SessionState
		})
		if err != nil {
			return fmt.Errorf("ToR AS %d: list peer %s: %w", t.ASN, addr, err)
		}
		if state == api.PeerState_ESTABLISHED {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("ToR AS %d: session with %s not established (state %s): %w", t.ASN, addr, state, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// UpdatesReceived returns how many UPDATE messages the ToR received from
// addr; an error if addr is not a neighbor.
func (t *ToR) UpdatesReceived(ctx context.Context, addr netip.Addr) (uint64, error) {
	var n uint64
	found := false
	err := t.Server.ListPeer(ctx, &api.ListPeerRequest{Address: addr.String()}, func(p *api.Peer) {
		n = p.GetState().GetMessages().GetReceived().GetUpdate()
		found = true
	})
	if err == nil && !found {
		err = errors.New("no such neighbor")
	}
	if err != nil {
		return 0, fmt.Errorf("ToR AS %d: list peer %s: %w", t.ASN, addr, err)
	}
	return n, nil
}
