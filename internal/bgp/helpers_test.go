// Go listens with MPTCP by default since 1.24; MPTCP sockets refuse
// TCP_MD5SIG, so GoBGP could not set passwords on its listeners.
//go:debug multipathtcp=0

package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	"github.com/osrg/gobgp/v3/pkg/packet/bgp"
	"github.com/osrg/gobgp/v3/pkg/server"

	"github.com/virtbgp/virtbgp/internal/config"
	"github.com/virtbgp/virtbgp/mapping"
)

// Addresses and AS numbers of the test lab. All of 127/8 is loopback on
// Linux, so 127.0.0.2 and 127.0.0.3 need no setup.
const (
	localAS   = 65001
	torAS     = 65000
	routerID  = "192.0.2.1"
	tor1v4    = "127.0.0.1" // eBGP ToR, IPv4 session (ipv4-unicast)
	tor1v6    = "::1"       // the same ToR, IPv6 session (ipv6-unicast)
	tor2      = "127.0.0.2" // iBGP ToR
	ibgpLocal = "127.0.0.3" // our local address towards the iBGP ToR
)

var (
	famV4 = &api.Family{Afi: api.Family_AFI_IP, Safi: api.Family_SAFI_UNICAST}
	famV6 = &api.Family{Afi: api.Family_AFI_IP6, Safi: api.Family_SAFI_UNICAST}
)

// ---------------------------------------------------------------- logging

// testLog is a slog handler that writes to t.Log while the test runs and
// keeps the messages for assertions. Once the test's cleanup has run it
// drops everything: GoBGP goroutines outlive StopBgp, and t.Log after the
// end of a test panics.
type testLog struct {
	t     testing.TB
	level slog.Level

	mu   sync.Mutex
	done bool
	msgs []string
}

func newTestLog(t testing.TB) (*slog.Logger, *testLog) {
	h := &testLog{t: t, level: slog.LevelInfo}
	if os.Getenv("VIRTBGP_TEST_DEBUG") != "" {
		h.level = slog.LevelDebug
	}
	// Registered first, so it runs last, after the servers are stopped.
	t.Cleanup(func() {
		h.mu.Lock()
		h.done = true
		h.mu.Unlock()
	})
	return slog.New(&testLogHandler{root: h}), h
}

func (h *testLog) messages() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.msgs)
}

type testLogHandler struct {
	root  *testLog
	attrs []slog.Attr
}

func (h *testLogHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.root.level }

func (h *testLogHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", r.Level, r.Message)
	for _, a := range h.attrs {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
	}
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	h.root.mu.Lock()
	defer h.root.mu.Unlock()
	if h.root.done {
		return nil
	}
	h.root.msgs = append(h.root.msgs, r.Message)
	h.root.t.Log(b.String())
	return nil
}

func (h *testLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &testLogHandler{root: h.root, attrs: append(slices.Clip(h.attrs), as...)}
}

func (h *testLogHandler) WithGroup(string) slog.Handler { return h }

// ---------------------------------------------------------------- polling

// eventually polls cond every 10ms until it returns "" or timeout passes,
// then fails the test with the last non-empty result.
func eventually(t testing.TB, timeout time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msg := cond()
		if msg == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// ---------------------------------------------------------------- ToRs

// freePort returns a TCP port that is free on both 127.0.0.1 and ::1 (and
// so on all of 127/8) at the time of the call.
func freePort(t testing.TB) int {
	t.Helper()
	for range 20 {
		l4, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("find a free port: %v", err)
		}
		port := l4.Addr().(*net.TCPAddr).Port
		l6, err := net.Listen("tcp", net.JoinHostPort("::1", strconv.Itoa(port)))
		l4.Close()
		if err == nil {
			l6.Close()
			return port
		}
	}
	t.Fatal("no port free on both 127.0.0.1 and ::1")
	return 0
}

// torNeighbor is one neighbor (us) of a test ToR. The ToR is passive
// unless remotePort is set.
type torNeighbor struct {
	addr       string
	asn        uint32
	family     *api.Family
	password   string
	allowOwnAS uint32
	// remotePort makes the ToR connect to us at addr:remotePort from
	// localAddr.
	remotePort int
	localAddr  string
}

// tor is a second in-process GoBGP server playing a top-of-rack router.
type tor struct {
	t    testing.TB
	srv  *server.BgpServer
	asn  uint32
	port int
}

// startToR starts a ToR that listens on addrs at a free port, with graceful
// restart on and default (accept-all) policies, and stops it at cleanup.
func startToR(t testing.TB, log *slog.Logger, asn uint32, id string, addrs []string, ns ...torNeighbor) *tor {
	t.Helper()
	ctx := context.Background()
	var srv *server.BgpServer
	var port int
	for attempt := 0; ; attempt++ {
		port = freePort(t)
		srv = server.NewBgpServer(server.LoggerOption(newSlogLogger(log.With("component", "tor-"+id), nil)))
		go srv.Serve()
		err := srv.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{
			Asn: asn, RouterId: id, ListenPort: int32(port), ListenAddresses: addrs,
		}})
		if err == nil {
			break
		}
		srv.StopBgp(ctx, &api.StopBgpRequest{})
		if attempt == 5 {
			t.Fatalf("start ToR %s: %v", id, err)
		}
	}
	t.Cleanup(func() { srv.StopBgp(context.Background(), &api.StopBgpRequest{}) })
	for _, n := range ns {
		p := &api.Peer{
			Conf: &api.PeerConf{
				NeighborAddress: n.addr,
				PeerAsn:         n.asn,
				AuthPassword:    n.password,
				AllowOwnAsn:     n.allowOwnAS,
			},
			Transport: &api.Transport{
				PassiveMode:  n.remotePort == 0,
				RemotePort:   uint32(n.remotePort),
				LocalAddress: n.localAddr,
			},
			Timers:          &api.Timers{Config: &api.TimersConfig{HoldTime: 9, KeepaliveInterval: 3, ConnectRetry: 1}},
			GracefulRestart: &api.GracefulRestart{Enabled: true, RestartTime: 30},
			AfiSafis: []*api.AfiSafi{{
				Config:            &api.AfiSafiConfig{Family: n.family, Enabled: true},
				MpGracefulRestart: &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}},
			}},
		}
		if err := srv.AddPeer(ctx, &api.AddPeerRequest{Peer: p}); err != nil {
			t.Fatalf("ToR %s: add neighbor %s: %v", id, n.addr, err)
		}
	}
	return &tor{t: t, srv: srv, asn: asn, port: port}
}

// torPath is a path in a ToR's RIB, decoded.
type torPath struct {
	prefix      string
	neighbor    string
	nexthop     string
	origin      int
	asPath      []uint32
	communities []uint32
	large       []mapping.LargeCommunity
	med         *uint32
	localPref   *uint32
}

// rib returns the ToR's global RIB for the family: prefix -> paths.
func (r *tor) rib(fam *api.Family) map[string][]torPath {
	r.t.Helper()
	return listPaths(r.t, r.srv, &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: fam})
}

func listPaths(t testing.TB, srv *server.BgpServer, req *api.ListPathRequest) map[string][]torPath {
	t.Helper()
	out := map[string][]torPath{}
	err := srv.ListPath(context.Background(), req, func(d *api.Destination) {
		for _, p := range d.Paths {
			out[d.Prefix] = append(out[d.Prefix], decodePath(t, d.Prefix, p))
		}
	})
	if err != nil {
		t.Fatalf("list paths: %v", err)
	}
	return out
}

func decodePath(t testing.TB, prefix string, p *api.Path) torPath {
	t.Helper()
	attrs, err := apiutil.GetNativePathAttributes(p)
	if err != nil {
		t.Fatalf("decode attributes of %s: %v", prefix, err)
	}
	tp := torPath{prefix: prefix, neighbor: p.NeighborIp, origin: -1}
	for _, a := range attrs {
		switch a := a.(type) {
		case *bgp.PathAttributeOrigin:
			tp.origin = int(a.Value)
		case *bgp.PathAttributeNextHop:
			tp.nexthop = a.Value.String()
		case *bgp.PathAttributeMpReachNLRI:
			tp.nexthop = a.Nexthop.String()
		case *bgp.PathAttributeAsPath:
			tp.asPath = []uint32{}
			for _, seg := range a.Value {
				tp.asPath = append(tp.asPath, seg.GetAS()...)
			}
		case *bgp.PathAttributeCommunities:
			tp.communities = a.Value
		case *bgp.PathAttributeLargeCommunities:
			for _, c := range a.Values {
				tp.large = append(tp.large, mapping.LargeCommunity{GlobalAdmin: c.ASN, LocalData1: c.LocalData1, LocalData2: c.LocalData2})
			}
		case *bgp.PathAttributeMultiExitDisc:
			v := a.Value
			tp.med = &v
		case *bgp.PathAttributeLocalPref:
			v := a.Value
			tp.localPref = &v
		}
	}
	return tp
}

// hasPrefixes reports "" when the ToR's RIB for fam holds exactly want (one
// path each), else what differs.
func (r *tor) hasPrefixes(fam *api.Family, want ...string) string {
	rib := r.rib(fam)
	var got []string
	for p, paths := range rib {
		got = append(got, fmt.Sprintf("%s(%d)", p, len(paths)))
	}
	slices.Sort(got)
	var exp []string
	for _, p := range want {
		exp = append(exp, p+"(1)")
	}
	slices.Sort(exp)
	if !slices.Equal(got, exp) {
		return fmt.Sprintf("ToR AS %d RIB %s: got %v, want %v", r.asn, fam.Afi, got, exp)
	}
	return ""
}

// updatesReceived is the number of UPDATE messages the ToR received from
// the neighbor.
func (r *tor) updatesReceived(neighbor string) uint64 {
	r.t.Helper()
	var n uint64
	found := false
	err := r.srv.ListPeer(context.Background(), &api.ListPeerRequest{Address: neighbor}, func(p *api.Peer) {
		n = p.GetState().GetMessages().GetReceived().GetUpdate()
		found = true
	})
	if err != nil || !found {
		r.t.Fatalf("ToR AS %d: list neighbor %s: found=%v err=%v", r.asn, neighbor, found, err)
	}
	return n
}

// announce originates a route on the ToR (towards us).
func (r *tor) announce(prefix netip.Prefix, nexthop string) {
	r.t.Helper()
	nlri := bgp.NewIPAddrPrefix(uint8(prefix.Bits()), prefix.Addr().String())
	path, err := apiutil.NewPath(nlri, false, []bgp.PathAttributeInterface{
		bgp.NewPathAttributeOrigin(bgp.BGP_ORIGIN_ATTR_TYPE_IGP),
		bgp.NewPathAttributeNextHop(nexthop),
	}, time.Now())
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.srv.AddPath(context.Background(), &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: path}); err != nil {
		r.t.Fatalf("ToR AS %d: add path %s: %v", r.asn, prefix, err)
	}
}

// ---------------------------------------------------------------- the lab

// lab is the speaker under test with its two ToRs:
//   - tor1 (AS 65000): eBGP over IPv4 at 127.0.0.1 (ipv4-unicast) and over
//     IPv6 at ::1 (ipv6-unicast);
//   - tor2 (AS 65001, our AS): iBGP at 127.0.0.2, reached from our local
//     address 127.0.0.3 (ipv4-unicast).
type lab struct {
	sp   *Speaker
	tor1 *tor
	tor2 *tor
	log  *testLog
}

// labOption changes the speaker config of a lab before it starts.
type labOption func(*config.BGP)

func newLab(t testing.TB, opts ...labOption) *lab {
	t.Helper()
	log, tl := newTestLog(t)
	t1 := startToR(t, log, torAS, "10.0.0.1", []string{tor1v4, tor1v6},
		torNeighbor{addr: "127.0.0.1", asn: localAS, family: famV4},
		torNeighbor{addr: "::1", asn: localAS, family: famV6})
	t2 := startToR(t, log, localAS, "10.0.0.2", []string{tor2},
		// AS_PATH prepending puts the ToR's own AS (ours) into the path;
		// GoBGP rejects that unless allowed (allowas-in).
		torNeighbor{addr: ibgpLocal, asn: localAS, family: famV4, allowOwnAS: 10})

	cfg := config.BGP{
		ASN:             localAS,
		RouterID:        netip.MustParseAddr(routerID),
		GracefulRestart: config.GracefulRestart{Enabled: true, RestartTime: 120 * time.Second},
		Peers: []config.Peer{
			{Address: netip.MustParseAddr(tor1v4), Port: uint16(t1.port), ASN: torAS,
				HoldTime: 9 * time.Second, Keepalive: 3 * time.Second, Families: []config.Family{config.FamilyIPv4}},
			{Address: netip.MustParseAddr(tor1v6), Port: uint16(t1.port), ASN: torAS,
				HoldTime: 9 * time.Second, Keepalive: 3 * time.Second, Families: []config.Family{config.FamilyIPv6}},
			{Address: netip.MustParseAddr(tor2), Port: uint16(t2.port), ASN: localAS,
				LocalAddress: netip.MustParseAddr(ibgpLocal),
				HoldTime:     9 * time.Second, Keepalive: 3 * time.Second, Families: []config.Family{config.FamilyIPv4}},
		},
	}
	for _, o := range opts {
		o(&cfg)
	}
	sp := startSpeaker(t, cfg, log, StartOptions{})
	l := &lab{sp: sp, tor1: t1, tor2: t2, log: tl}
	l.waitEstablished(t, sp)
	return l
}

// startSpeaker starts a speaker with a 1s connect-retry and stops it at
// cleanup.
func startSpeaker(t testing.TB, cfg config.BGP, log *slog.Logger, opts StartOptions) *Speaker {
	t.Helper()
	sp := New(cfg, log)
	if opts.ConnectRetry == 0 {
		opts.ConnectRetry = time.Second
	}
	if err := sp.StartWith(context.Background(), opts); err != nil {
		t.Fatalf("start speaker: %v", err)
	}
	t.Cleanup(func() {
		if err := sp.Stop(context.Background()); err != nil {
			t.Errorf("stop speaker: %v", err)
		}
	})
	return sp
}

// waitEstablished waits until every peer of sp is established and logs how
// long it took.
func (l *lab) waitEstablished(t testing.TB, sp *Speaker) {
	t.Helper()
	start := time.Now()
	eventually(t, 10*time.Second, func() string {
		ps, err := sp.Peers(context.Background())
		if err != nil {
			return err.Error()
		}
		for _, p := range ps {
			if p.State != StateEstablished {
				return fmt.Sprintf("peer %s is %s", p.Address, p.State)
			}
		}
		return ""
	})
	t.Logf("all sessions established after %v", time.Since(start).Round(time.Millisecond))
}

func u32(v uint32) *uint32 { return &v }

func ptrString(p *uint32) string {
	if p == nil {
		return "none"
	}
	return strconv.FormatUint(uint64(*p), 10)
}
