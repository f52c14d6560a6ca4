// Package bgptest runs a real in-process GoBGP router that plays the
// top-of-rack switch in tests, and reads what it received in plain Go types.
// It is a test helper, not part of the daemon.
package bgptest

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
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
	ASN      uint32
	Families []string // "ipv4", "ipv6"
	// AllowOwnAS accepts paths that carry the ToR's own AS (allowas-in), as
	// an iBGP ToR must for a speaker that prepends its (shared) AS.
	AllowOwnAS bool
	Password   string
	// RemotePort, when set, makes the ToR connect actively to the speaker at
	// this port; otherwise the ToR is passive.
	RemotePort   uint16
	LocalAddress netip.Addr
	// GracefulRestart makes the ToR a graceful-restart helper (RFC 4724)
	// with per-family MP-GR.
	GracefulRestart bool
}

// Config is the ToR's global configuration.
type Config struct {
	ASN      uint32
	RouterID string
	Listen   []string     // addresses to listen on (a free port is chosen)
	Log      *slog.Logger // nil: discard GoBGP's logs
}

// ToR is a running in-process GoBGP router.
type ToR struct {
	Server *server.BgpServer
	ASN    uint32
	Port   uint16
}

// FreePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func FreePort() (uint16, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return uint16(l.Addr().(*net.TCPAddr).Port), nil
}

// Family returns the GoBGP API family for "ipv4" or "ipv6" unicast.
func Family(name string) *api.Family {
	if name == "ipv6" {
		return &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
	}
	return &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
}

// Start runs a ToR listening on cfg.Listen (a free port) with the given
// neighbors. Stop it with Stop.
func Start(ctx context.Context, cfg Config, neighbors ...Neighbor) (*ToR, error) {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var t *ToR
	for attempt := 0; ; attempt++ {
		port, err := FreePort()
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
		_ = s.StopBgp(ctx, &api.StopBgpRequest{})
		s.Stop()
		if attempt == 5 { // the free port was taken meanwhile, six times
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

// AddNeighbor adds a passive session.
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
		p.GracefulRestart = &api.GracefulRestart{Enabled: true, RestartTime: 120}
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

// Stop stops the router (its sessions close with a NOTIFICATION).
func (t *ToR) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = t.Server.StopBgp(ctx, &api.StopBgpRequest{})
	t.Server.Stop()
}

// Path is one path in the ToR's RIB, decoded.
type Path struct {
	Prefix           netip.Prefix
	NextHop          netip.Addr
	ASPath           []uint32
	Communities      []uint32
	LargeCommunities []mapping.LargeCommunity
	MED              *uint32
	LocalPref        *uint32
	Best             bool
	Neighbor         string // the peer the path came from
}

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

// Paths returns every path of both unicast families in the ToR's RIB
// (Loc-RIB), by prefix.
func (t *ToR) Paths(ctx context.Context) (map[netip.Prefix][]Path, error) {
	out := map[netip.Prefix][]Path{}
	for _, fam := range []string{"ipv4", "ipv6"} {
		var derr error
		err := t.Server.ListPath(ctx, &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: Family(fam)},
			func(d *api.Destination) {
				for _, ap := range d.Paths {
					p, err := decode(ap)
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
			return nil, fmt.Errorf("ToR AS %d: list %s paths: %w", t.ASN, fam, err)
		}
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

func decode(ap *api.Path) (Path, error) {
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

// UpdatesReceived returns how many UPDATE messages the ToR received from addr.
func (t *ToR) UpdatesReceived(ctx context.Context, addr netip.Addr) (uint64, error) {
	var n uint64
	err := t.Server.ListPeer(ctx, &api.ListPeerRequest{Address: addr.String()}, func(p *api.Peer) {
		if p.State != nil && p.State.Messages != nil && p.State.Messages.Received != nil {
			n = p.State.Messages.Received.Update
		}
	})
	if err != nil {
		return 0, fmt.Errorf("ToR AS %d: list peer %s: %w", t.ASN, addr, err)
	}
	return n, nil
}
