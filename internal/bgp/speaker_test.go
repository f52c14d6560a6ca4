package bgp_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/virtbgp/virtbgp/internal/bgp"
	"github.com/virtbgp/virtbgp/internal/bgptest"
	"github.com/virtbgp/virtbgp/internal/config"
	"github.com/virtbgp/virtbgp/mapping"
)

// speakerIface mirrors reconcile.Speaker (internal/reconcile/types.go). The
// test does not import reconcile, so that this package's tests do not depend
// on the reconciler building.
type speakerIface interface {
	Announce(ctx context.Context, r mapping.Route) error
	Withdraw(ctx context.Context, p netip.Prefix) error
}

var _ speakerIface = (*bgp.Speaker)(nil)

func route(prefix string) mapping.Route {
	return mapping.Route{Prefix: netip.MustParsePrefix(prefix)}
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// TestAttributes announces IPv4 and IPv6 routes with every attribute and
// checks what the eBGP and iBGP ToRs receive.
func TestAttributes(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()

	full := mapping.Route{
		Prefix:           netip.MustParsePrefix("198.51.100.10/32"),
		Communities:      []uint32{mapping.CommunityNoExport, 65001<<16 | 100},
		LargeCommunities: []mapping.LargeCommunity{{GlobalAdmin: 65001, LocalData1: 1, LocalData2: 2}},
		MED:              u32(10),
		LocalPref:        u32(200),
		ASPathPrepend:    2,
	}
	explicit := mapping.Route{
		Prefix:  netip.MustParsePrefix("198.51.100.16/28"),
		NextHop: netip.MustParseAddr("192.0.2.99"),
	}
	v6 := mapping.Route{
		Prefix:           netip.MustParsePrefix("2001:db8::10/128"),
		Communities:      []uint32{65001<<16 | 6},
		LargeCommunities: []mapping.LargeCommunity{{GlobalAdmin: 65001, LocalData1: 6, LocalData2: 6}},
		MED:              u32(60),
		LocalPref:        u32(300),
		ASPathPrepend:    1,
	}
	v6explicit := mapping.Route{
		Prefix:  netip.MustParsePrefix("2001:db8:1::/64"),
		NextHop: netip.MustParseAddr("2001:db8::99"),
	}
	for _, r := range []mapping.Route{full, explicit, v6, v6explicit} {
		if err := l.sp.Announce(ctx, r); err != nil {
			t.Fatal(err)
		}
	}

	comms := []uint32{65001<<16 | 100, mapping.CommunityNoExport} // sorted
	large := full.LargeCommunities
	// eBGP over IPv4: next hop self = our end of the session, local AS
	// prepended by GoBGP once more, LOCAL_PREF stripped.
	eventually(t, 5*time.Second, func() string {
		got := rib(t, l.tor1.Server, famV4)
		return cmpAll(
			checkPath(got, "198.51.100.10/32", tor1v4, "127.0.0.1", []uint32{localAS, localAS, localAS}, comms, large, u32(10), nil),
			checkPath(got, "198.51.100.16/28", tor1v4, "192.0.2.99", []uint32{localAS}, nil, nil, nil, nil),
		)
	})
	// eBGP over IPv6: MP_REACH_NLRI with next hop self = ::1.
	eventually(t, 5*time.Second, func() string {
		got := rib(t, l.tor1.Server, famV6)
		return cmpAll(
			checkPath(got, "2001:db8::10/128", tor1v6, "::1", []uint32{localAS, localAS}, v6.Communities, v6.LargeCommunities, u32(60), nil),
			checkPath(got, "2001:db8:1::/64", tor1v6, "2001:db8::99", []uint32{localAS}, nil, nil, nil, nil),
		)
	})
	// iBGP: next hop self = the configured local address, AS path as
	// originated (prepend only), LOCAL_PREF kept (GoBGP's default 100 when
	// unset).
	eventually(t, 5*time.Second, func() string {
		got := rib(t, l.tor2.Server, famV4)
		return cmpAll(
			checkPath(got, "198.51.100.10/32", ibgpLocal, ibgpLocal, []uint32{localAS, localAS}, comms, large, u32(10), u32(200)),
			checkPath(got, "198.51.100.16/28", ibgpLocal, "192.0.2.99", []uint32{}, nil, nil, nil, u32(100)),
		)
	})
	// IPv6 routes do not leak into the IPv4-only sessions and vice versa.
	if msg := hasPrefixes(t, l.tor2, famV6); msg != "" {
		t.Error(msg)
	}
}

// TestWithdraw withdraws one of three routes: exactly that one goes away.
func TestWithdraw(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	// A status reader runs alongside the reconciler's calls (for -race);
	// each Peers waits for GoBGP's main loop.
	done := make(chan struct{})
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			select {
			case <-done:
				return
			default:
			}
			if _, err := l.sp.Peers(ctx); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	defer func() { close(done); <-readerDone }()
	for _, p := range []string{"198.51.100.1/32", "198.51.100.2/32", "198.51.100.32/28"} {
		if err := l.sp.Announce(ctx, route(p)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.sp.Announce(ctx, route("2001:db8::1/128")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() string {
		return hasPrefixes(t, l.tor1, famV4, "198.51.100.1/32", "198.51.100.2/32", "198.51.100.32/28")
	})
	eventually(t, 5*time.Second, func() string { return hasPrefixes(t, l.tor1, famV6, "2001:db8::1/128") })

	// Only the prefix matters for a withdraw, not the attributes; its
	// host bits do not either.
	if err := l.sp.Withdraw(ctx, pfx("198.51.100.2/32")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() string {
		return cmpAll(
			hasPrefixes(t, l.tor1, famV4, "198.51.100.1/32", "198.51.100.32/28"),
			hasPrefixes(t, l.tor2, famV4, "198.51.100.1/32", "198.51.100.32/28"),
		)
	})
	if msg := hasPrefixes(t, l.tor1, famV6, "2001:db8::1/128"); msg != "" {
		t.Error(msg)
	}

	// Not announced (any more, or ever): no-op.
	for _, p := range []string{"198.51.100.2/32", "203.0.113.1/32", "2001:db8::2/128"} {
		if err := l.sp.Withdraw(ctx, pfx(p)); err != nil {
			t.Errorf("withdraw %s (not announced): %v", p, err)
		}
	}
	if err := l.sp.Withdraw(ctx, pfx("2001:db8::1:0/64")); err != nil { // 2001:db8::/64 was never announced
		t.Fatal(err)
	}
	if err := l.sp.Withdraw(ctx, pfx("2001:db8::1/128")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() string { return hasPrefixes(t, l.tor1, famV6) })

	// Our own RIB holds exactly what is announced, the one place the
	// speaker's routes live.
	local := rib(t, bgp.GoBGPServer(l.sp), famV4)
	var got []string
	for p, paths := range local {
		got = append(got, fmt.Sprintf("%s(%d)", p, len(paths)))
	}
	slices.Sort(got)
	if want := []string{"198.51.100.1/32(1)", "198.51.100.32/28(1)"}; !slices.Equal(got, want) {
		t.Errorf("speaker RIB = %v, want %v", got, want)
	}
	if v6 := rib(t, bgp.GoBGPServer(l.sp), famV6); len(v6) != 0 {
		t.Errorf("speaker IPv6 RIB = %v, want empty", v6)
	}
	// A host-bits prefix withdraws its masked prefix.
	if err := l.sp.Withdraw(ctx, pfx("198.51.100.33/28")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() string { return hasPrefixes(t, l.tor1, famV4, "198.51.100.1/32") })
}

// TestReplace announces a prefix with MED 10, then MED 20: the ToR ends up
// with one path with MED 20.
func TestReplace(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	r := route("198.51.100.7/32")
	r.MED = u32(10)
	if err := l.sp.Announce(ctx, r); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() string {
		return checkPath(rib(t, l.tor1.Server, famV4), "198.51.100.7/32", tor1v4, "127.0.0.1", []uint32{localAS}, nil, nil, u32(10), nil)
	})
	r.MED = u32(20)
	r.Communities = []uint32{65001<<16 | 20}
	if err := l.sp.Announce(ctx, r); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() string {
		return cmpAll(
			checkPath(rib(t, l.tor1.Server, famV4), "198.51.100.7/32", tor1v4, "127.0.0.1", []uint32{localAS}, r.Communities, nil, u32(20), nil),
			checkPath(rib(t, l.tor2.Server, famV4), "198.51.100.7/32", ibgpLocal, ibgpLocal, []uint32{}, r.Communities, nil, u32(20), u32(100)),
		)
	})
	local := rib(t, bgp.GoBGPServer(l.sp), famV4)
	if n := len(local[netip.MustParsePrefix("198.51.100.7/32")]); n != 1 {
		t.Errorf("speaker RIB has %d paths for the prefix, want 1", n)
	}
	// Replacing the next hop works the same way.
	r.NextHop = netip.MustParseAddr("192.0.2.50")
	if err := l.sp.Announce(ctx, r); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() string {
		return checkPath(rib(t, l.tor1.Server, famV4), "198.51.100.7/32", tor1v4, "192.0.2.50", []uint32{localAS}, r.Communities, nil, u32(20), nil)
	})
}

// TestIdempotentAnnounce: re-announcing an equal route sends no UPDATE.
func TestIdempotentAnnounce(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	r := mapping.Route{
		Prefix:      netip.MustParsePrefix("198.51.100.8/32"),
		Communities: []uint32{2, 1},
		MED:         u32(5),
	}
	if err := l.sp.Announce(ctx, r); err != nil {
		t.Fatal(err)
	}
	// Once the route is in the ToR's RIB, the ToR has counted every UPDATE
	// sent before it on the session (End-of-RIB included); nothing else is
	// sent until the next change.
	eventually(t, 5*time.Second, func() string { return hasPrefixes(t, l.tor1, famV4, "198.51.100.8/32") })
	before := updatesReceived(t, l.tor1, tor1v4)

	// The same route, also as an unnormalized equal copy.
	same := r.Clone()
	same.Communities = []uint32{1, 2, 2}
	for range 3 {
		if err := l.sp.Announce(ctx, r); err != nil {
			t.Fatal(err)
		}
		if err := l.sp.Announce(ctx, same); err != nil {
			t.Fatal(err)
		}
	}
	// A change is one UPDATE. GoBGP handles the AddPaths in order and sends
	// on the session in order, so any UPDATE the equal routes caused
	// reaches the ToR before the change does.
	r.MED = u32(6)
	if err := l.sp.Announce(ctx, r); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() string {
		return checkPath(rib(t, l.tor1.Server, famV4), "198.51.100.8/32", tor1v4, "127.0.0.1", []uint32{localAS},
			[]uint32{1, 2}, nil, u32(6), nil)
	})
	if got := updatesReceived(t, l.tor1, tor1v4) - before; got != 1 {
		t.Fatalf("ToR received %d UPDATEs for 6 equal re-announces and a MED change, want 1 (the change)", got)
	}
}

// TestImportRejectAll: a route the ToR announces reaches our adj-RIB-in but
// not our RIB; our own routes are still accepted.
func TestImportRejectAll(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	if err := l.tor1.Announce(ctx, netip.MustParsePrefix("203.0.113.0/24"), addr("127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	if err := l.tor2.Announce(ctx, netip.MustParsePrefix("203.0.113.128/25"), addr("127.0.0.2")); err != nil {
		t.Fatal(err)
	}
	if err := l.sp.Announce(ctx, route("198.51.100.9/32")); err != nil {
		t.Fatal(err)
	}
	// The ToR routes did arrive...
	eventually(t, 5*time.Second, func() string {
		for _, n := range []struct{ addr, prefix string }{{tor1v4, "203.0.113.0/24"}, {tor2, "203.0.113.128/25"}} {
			in, err := bgptest.ListPaths(ctx, bgp.GoBGPServer(l.sp), bgptest.Query{Family: famV4, AdjIn: addr(n.addr)})
			if err != nil {
				return err.Error()
			}
			if len(in[netip.MustParsePrefix(n.prefix)]) != 1 {
				return fmt.Sprintf("adj-rib-in of %s: %v", n.addr, in)
			}
		}
		return ""
	})
	// ...and are not in the RIB, where our own route is.
	eventually(t, 5*time.Second, func() string { return hasPrefixes(t, l.tor1, famV4, "203.0.113.0/24", "198.51.100.9/32") })
	local := rib(t, bgp.GoBGPServer(l.sp), famV4)
	if len(local) != 1 || len(local[netip.MustParsePrefix("198.51.100.9/32")]) != 1 {
		t.Errorf("speaker RIB = %v, want only 198.51.100.9/32", local)
	}
	// And so we do not pass the routes of one ToR on to the other.
	if msg := hasPrefixes(t, l.tor2, famV4, "203.0.113.128/25", "198.51.100.9/32"); msg != "" {
		t.Error(msg)
	}
}

// TestPeers checks Peers() and the session logs, including a session
// going down.
func TestPeers(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	for _, p := range []string{"198.51.100.1/32", "198.51.100.2/32", "2001:db8::1/128"} {
		if err := l.sp.Announce(ctx, route(p)); err != nil {
			t.Fatal(err)
		}
	}
	want := []struct {
		addr     string
		asn      uint32
		sent     uint64
		families []config.Family
	}{
		{tor1v4, torAS, 2, []config.Family{config.FamilyIPv4}},
		{tor1v6, torAS, 1, []config.Family{config.FamilyIPv6}},
		{tor2, localAS, 2, []config.Family{config.FamilyIPv4}},
	}
	eventually(t, 5*time.Second, func() string {
		ps, err := l.sp.Peers(ctx)
		if err != nil {
			return err.Error()
		}
		if len(ps) != len(want) {
			return fmt.Sprintf("%d peers, want %d", len(ps), len(want))
		}
		for i, w := range want {
			p := ps[i]
			if p.Address.String() != w.addr || p.ASN != w.asn || p.State != bgp.StateEstablished ||
				p.RoutesSent != w.sent || !slices.Equal(p.Families, w.families) ||
				p.Uptime < 0 || p.Uptime > time.Minute || p.LastDownReason != "" {
				return fmt.Sprintf("peer %d: %+v, want %+v established", i, p, w)
			}
		}
		return ""
	})
	for _, p := range []struct{ peer, asn string }{
		{"127.0.0.1", "65000"},
		{"::1", "65000"},
		{"127.0.0.2", "65001"},
	} {
		if !l.log.logged("peer established", "peer="+p.peer, "asn="+p.asn) {
			t.Errorf("log has no \"peer established\" for %s (AS %s):\n%s", p.peer, p.asn, l.log)
		}
	}

	// The iBGP ToR goes away: GoBGP sends us a Cease. The reason comes
	// from GoBGP's "Peer Down" log message (logger.go): this pins it.
	// First the ToR must have read our UPDATEs (RoutesSent counts what
	// GoBGP is to send, not what it sent): the ToR closes the session
	// right after the Cease, and unread data would make that close a
	// reset, which discards the Cease before we read it.
	eventually(t, 5*time.Second, func() string { return hasPrefixes(t, l.tor2, famV4, "198.51.100.1/32", "198.51.100.2/32") })
	l.tor2.Stop()
	eventually(t, 5*time.Second, func() string {
		ps, err := l.sp.Peers(ctx)
		if err != nil {
			return err.Error()
		}
		p := ps[2]
		if p.State == bgp.StateEstablished || p.RoutesSent != 0 || p.Uptime != 0 || !strings.Contains(p.LastDownReason, "cease") {
			return fmt.Sprintf("after the ToR stopped: %+v", p)
		}
		return ""
	})
	if !l.log.logged("peer down", "peer=127.0.0.2", "asn=65001", "reason=notification-received code 6(cease)") {
		t.Errorf("no down message in the log:\n%s", l.log)
	}

	// Stopped: every peer idle, nothing announced.
	if err := l.sp.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	ps, err := l.sp.Peers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.State != bgp.StateIdle {
			t.Errorf("after Stop: %+v", p)
		}
	}
	if err := l.sp.Announce(ctx, route("198.51.100.3/32")); err == nil {
		t.Error("after Stop: Announce succeeded")
	}
	// The ToR drops our routes at once (Cease, no graceful restart).
	eventually(t, 5*time.Second, func() string { return hasPrefixes(t, l.tor1, famV4) })
}

// TestMD5 brings up a session with a TCP MD5 password.
func TestMD5(t *testing.T) {
	if err := bgp.ProbeTCPMD5(true); err != nil {
		t.Skipf("kernel without TCP MD5 signatures: %v", err)
	}
	log, _ := newTestLog(t)
	r := bgptest.MustStart(t, bgptest.Config{ASN: torAS, RouterID: "10.0.0.9", Listen: []string{tor2}, Log: log},
		bgptest.Neighbor{Address: addr("127.0.0.1"), ASN: localAS, Families: []string{famV4}, Password: "s3cret", GracefulRestart: true})
	cfg := config.BGP{
		ASN:      localAS,
		RouterID: addr(routerID),
		Peers: []config.Peer{{
			Address: addr(tor2), Port: r.Port, ASN: torAS, Password: "s3cret",
			HoldTime: 9 * time.Second, Keepalive: 3 * time.Second, Families: []config.Family{config.FamilyIPv4},
		}},
	}
	sp := startSpeaker(t, cfg, log, bgp.StartOptions{})
	waitEstablished(t, sp)
	if err := sp.Announce(context.Background(), route("198.51.100.11/32")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() string { return hasPrefixes(t, r, famV4, "198.51.100.11/32") })
}

// TestListen: the speaker listens (ListenPort) and the peer is passive
// with a password; the ToR connects to us.
func TestListen(t *testing.T) {
	if err := bgp.ProbeTCPMD5(true); err != nil {
		t.Skipf("no TCP MD5 signatures on listening sockets: %v", err)
	}
	log, _ := newTestLog(t)
	port, err := bgptest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	r := bgptest.MustStart(t, bgptest.Config{ASN: torAS, RouterID: "10.0.0.7", Listen: []string{tor2}, Log: log},
		bgptest.Neighbor{Address: addr("127.0.0.1"), ASN: localAS, Families: []string{famV4}, Password: "s3cret",
			RemotePort: port, LocalAddress: addr(tor2), GracefulRestart: true})
	cfg := config.BGP{
		ASN:        localAS,
		RouterID:   addr(routerID),
		ListenPort: port,
		Peers: []config.Peer{{
			Address: netip.MustParseAddr(tor2), ASN: torAS, Password: "s3cret", Passive: true,
			HoldTime: 9 * time.Second, Keepalive: 3 * time.Second, Families: []config.Family{config.FamilyIPv4},
		}},
	}
	sp := startSpeaker(t, cfg, log, bgp.StartOptions{})
	waitEstablished(t, sp)
	if err := sp.Announce(context.Background(), route("198.51.100.13/32")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() string { return hasPrefixes(t, r, famV4, "198.51.100.13/32") })
}

// TestRestarting starts the speaker in graceful-restart restarting mode:
// the routes added right after the start reach the ToR once it has sent
// its End-of-RIB.
func TestRestarting(t *testing.T) {
	log, _ := newTestLog(t)
	r := bgptest.MustStart(t, bgptest.Config{ASN: torAS, RouterID: "10.0.0.8", Listen: []string{tor1v4}, Log: log},
		bgptest.Neighbor{Address: addr("127.0.0.1"), ASN: localAS, Families: []string{famV4}, GracefulRestart: true})
	cfg := config.BGP{
		ASN:             localAS,
		RouterID:        addr(routerID),
		GracefulRestart: config.GracefulRestart{Enabled: true, RestartTime: 120 * time.Second},
		Peers: []config.Peer{{
			Address: addr(tor1v4), Port: r.Port, ASN: torAS,
			HoldTime: 9 * time.Second, Keepalive: 3 * time.Second, Families: []config.Family{config.FamilyIPv4},
		}},
	}
	sp := startSpeaker(t, cfg, log, bgp.StartOptions{Restarting: true})
	if err := sp.Announce(context.Background(), route("198.51.100.12/32")); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() string { return hasPrefixes(t, r, famV4, "198.51.100.12/32") })
}

// TestLifecycle covers the calls that are not allowed, or no-ops, before
// Start and after Stop, and config errors.
func TestLifecycle(t *testing.T) {
	log, _ := newTestLog(t)
	ctx := context.Background()
	cfg := config.BGP{ASN: localAS, RouterID: addr(routerID)}

	sp := bgp.New(cfg, log)
	if err := sp.Announce(ctx, route("198.51.100.1/32")); err == nil || !strings.Contains(err.Error(), "not started") {
		t.Errorf("Announce before Start: %v", err)
	}
	if err := sp.Withdraw(ctx, pfx("198.51.100.1/32")); err == nil {
		t.Error("Withdraw before Start: no error")
	}
	if ps, err := sp.Peers(ctx); err != nil || len(ps) != 0 {
		t.Errorf("Peers before Start: %v, %v", ps, err)
	}

	sp = startSpeaker(t, cfg, log, bgp.StartOptions{})
	if err := sp.Start(ctx); err == nil {
		t.Error("second Start: no error")
	}
	if err := sp.Announce(ctx, route("198.51.100.1/32")); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := sp.Announce(cctx, route("198.51.100.2/32")); err == nil {
		t.Error("Announce with a cancelled context: no error")
	}
	for _, bad := range []mapping.Route{
		{Prefix: netip.MustParsePrefix("198.51.100.3/32"), NextHop: netip.MustParseAddr("2001:db8::1")},
		{Prefix: netip.MustParsePrefix("2001:db8::3/128"), NextHop: netip.MustParseAddr("192.0.2.1")},
		{Prefix: netip.MustParsePrefix("2001:db8::3/128"), NextHop: netip.MustParseAddr("fe80::1%eth0")},
		{},
	} {
		if err := sp.Announce(ctx, bad); err == nil {
			t.Errorf("Announce(%v): no error", bad)
		}
	}
	if err := sp.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := sp.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if err := sp.Announce(ctx, route("198.51.100.1/32")); err == nil || !strings.Contains(err.Error(), "stopped") {
		t.Errorf("Announce after Stop: %v", err)
	}
	if err := sp.Start(ctx); err == nil {
		t.Error("Start after Stop: no error")
	}

	// The listen port is taken: Start fails, and can be retried.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lcfg := cfg
	lcfg.ListenPort = uint16(busy.Addr().(*net.TCPAddr).Port)
	sp = bgp.New(lcfg, log)
	if err := sp.Start(ctx); err == nil || !strings.Contains(err.Error(), "start GoBGP") {
		t.Errorf("Start on a busy port: %v", err)
	}
	busy.Close()
	if err := sp.Start(ctx); err != nil {
		t.Errorf("Start again once the port is free: %v", err)
	}
	if err := sp.Stop(ctx); err != nil {
		t.Error(err)
	}

	for name, c := range map[string]struct {
		cfg  config.BGP
		opts bgp.StartOptions
	}{
		"no asn":       {cfg: config.BGP{RouterID: addr(routerID)}},
		"v6 router id": {cfg: config.BGP{ASN: 1, RouterID: netip.MustParseAddr("2001:db8::1")}},
		"restarting":   {cfg: cfg, opts: bgp.StartOptions{Restarting: true}},
		"duplicate peer": {cfg: config.BGP{ASN: 1, RouterID: addr(routerID), Peers: []config.Peer{
			{Address: netip.MustParseAddr("192.0.2.7"), ASN: 2}, {Address: netip.MustParseAddr("192.0.2.7"), ASN: 2}}}},
	} {
		if err := bgp.New(c.cfg, log).StartWith(ctx, c.opts); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
