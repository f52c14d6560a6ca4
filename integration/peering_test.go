package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	vblab "github.com/virtbgp/virtbgp/integration/lab"
	"github.com/virtbgp/virtbgp/internal/status"
	"github.com/virtbgp/virtbgp/mapping"
)

// virtbgpStatus is the host's virtbgp status --json.
func virtbgpStatus(ctx context.Context, t *testing.T, h *vblab.Host) status.Report {
	t.Helper()
	out, err := h.VirtbgpCtl(ctx, "status", "--json")
	if err != nil {
		t.Fatalf("virtbgp status: %v: %s", err, out)
	}
	var rep status.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("virtbgp status --json: %v: %s", err, out)
	}
	return rep
}

const dualMapping = `version: 1
vms:
  dual:
    ips: [192.0.2.60, "2001:db8:60::60"]
`

var (
	dual4 = netip.MustParsePrefix("192.0.2.60/32")
	dual6 = netip.MustParsePrefix("2001:db8:60::60/128")
)

// birdSession is what BIRD says of one protocol: since when it is in its
// state, and the route updates it received (all channels).
type birdSession struct {
	since   string
	updates int
}

var (
	birdProtoLine   = regexp.MustCompile(`(?m)^(\S+)\s+BGP\s+\S+\s+up\s+(\S+ \S+)\s+Established`)
	birdImportLines = regexp.MustCompile(`(?m)^\s+Import updates:\s+(\d+)`)
)

func birdStats(ctx context.Context, t *testing.T, l *vblab.Lab, proto string) birdSession {
	t.Helper()
	out, err := l.BIRD.Birdc(ctx, "show", "protocols", "all", proto)
	if err != nil {
		t.Fatal(err)
	}
	m := birdProtoLine.FindStringSubmatch(out)
	if m == nil || m[1] != proto {
		t.Fatalf("BIRD protocol %s is not up:\n%s", proto, out)
	}
	s := birdSession{since: m[2]}
	for _, u := range birdImportLines.FindAllStringSubmatch(out, -1) {
		n, _ := strconv.Atoi(u[1])
		s.updates += n
	}
	return s
}

// frrSession is what FRR says of one neighbor: how often the session was
// established and the UPDATEs received.
type frrSession struct {
	established, updates int
}

func frrStats(ctx context.Context, t *testing.T, l *vblab.Lab, peer netip.Addr) frrSession {
	t.Helper()
	return frrStatsOf(ctx, t, l, peer.String())
}

// frrStatsOf is frrStats of the neighbor FRR calls peer: its address, or
// the interface of an unnumbered one.
func frrStatsOf(ctx context.Context, t *testing.T, l *vblab.Lab, peer string) frrSession {
	t.Helper()
	out, err := l.FRR.Vtysh(ctx, "show bgp neighbors "+peer+" json")
	if err != nil {
		t.Fatal(err)
	}
	var n map[string]struct {
		ConnectionsEstablished int `json:"connectionsEstablished"`
		MessageStats           struct {
			UpdatesRecv int `json:"updatesRecv"`
		} `json:"messageStats"`
	}
	if err := json.Unmarshal([]byte(out), &n); err != nil {
		t.Fatalf("FRR neighbor %s: %v: %s", peer, err, out)
	}
	s, ok := n[peer]
	if !ok {
		t.Fatalf("FRR has no neighbor %s: %s", peer, out)
	}
	return frrSession{established: s.ConnectionsEstablished, updates: s.MessageStats.UpdatesRecv}
}

// TestOneSessionPerToRBothFamilies runs virtbgp on hvA with one IPv4
// session per ToR carrying IPv4 and IPv6 (docs/tor: BIRD's virtbgp46,
// FRR's VIRTBGP46), and per-peer export policies: BIRD's session gets a
// community, FRR's a prepend and a large community. It checks that both
// ToRs hold the guest's /32 via hvA's IPv4 address and its /128 via hvA's
// global IPv6 address on the link (not an IPv4-mapped one), with the
// attributes of their own policy, and installed those in their kernel
// tables; then that a one-line edit of BIRD's policy (its allow-list
// widened to the /128) and a reload send BIRD that one route, with no
// session reset, and send FRR nothing.
func TestOneSessionPerToRBothFamilies(t *testing.T) {
	l := upLabWith(t, vblab.Options{OneSessionPerToR: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h := l.A

	mp := filepath.Join(t.TempDir(), "mapping.yaml")
	if err := os.WriteFile(mp, []byte(dualMapping), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := vblab.VirtbgpConfig{
		Mapping: mp,
		PeerExtra: map[netip.Addr]string{
			vblab.BIRDv4: `export: {communities: ["65011:1"], prefixes: [192.0.2.60/32]}`,
			vblab.FRRv4:  `export: {as-path-prepend: 1, large-communities: ["65011:0:2"]}`,
		},
	}
	if err := h.StartVirtbgp(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitEstablished(ctx, h); err != nil {
		t.Fatal(err)
	}
	mon, err := l.MonitorRoutes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Close()
	if err := h.DefineGuest(ctx, vblab.Guest{Name: "dual"}); err != nil {
		t.Fatal(err)
	}
	if err := h.StartGuest(ctx, "dual"); err != nil {
		t.Fatal(err)
	}

	type want struct {
		prefixes []netip.Prefix
		asPath   []uint32
		comms    []uint32
		large    []mapping.LargeCommunity
	}
	wants := map[string]want{
		// BIRD's allow-list has only the /32 at first.
		"bird": {prefixes: []netip.Prefix{dual4}, asPath: []uint32{h.ASN}, comms: []uint32{65011<<16 | 1}},
		"frr":  {prefixes: []netip.Prefix{dual4, dual6}, asPath: []uint32{h.ASN, h.ASN}, large: []mapping.LargeCommunity{{GlobalAdmin: 65011, LocalData2: 2}}},
	}
	check := func(r vblab.Router, rib vblab.RIB) error {
		w := wants[r.Name()]
		for _, pfx := range []netip.Prefix{dual4, dual6} {
			nh := h.IPv4
			if pfx.Addr().Is6() {
				nh = h.IPv6
			}
			paths := rib.Paths(pfx)
			if !slices.Contains(w.prefixes, pfx) {
				if len(paths) != 0 {
					return fmt.Errorf("%s: %d paths, want none (export.prefixes)", pfx, len(paths))
				}
				continue
			}
			if len(paths) != 1 {
				return fmt.Errorf("%s: %d paths, want 1 via %s", pfx, len(paths), nh)
			}
			p := paths[0]
			if !p.Best || p.NextHop != nh || p.Peer != h.IPv4 || !slices.Equal(p.ASPath, w.asPath) ||
				!slices.Equal(p.Communities, w.comms) || !slices.Equal(p.LargeCommunities, w.large) {
				return fmt.Errorf("path %s\nwant best, next hop %s, from %s, as-path %v, communities %v, large communities %v",
					p, nh, h.IPv4, w.asPath, w.comms, w.large)
			}
		}
		return nil
	}
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := l.WaitRIBs(wctx, 50*time.Millisecond, check); err != nil {
		t.Fatal(err)
	}
	// Usable next hops: each ToR installed its routes in its kernel table
	// via hvA's addresses on the link.
	installed := func(r vblab.Router, pfx netip.Prefix) {
		t.Helper()
		proto := map[string]string{"bird": "bird", "frr": "bgp"}[r.Name()]
		nh := h.IPv4
		if pfx.Addr().Is6() {
			nh = h.IPv6
		}
		if _, err := mon.Wait(wctx, 0, func(ev vblab.RouteEvent) bool {
			return ev.Prefix == pfx && ev.Table == r.Table() && ev.Proto == proto && !ev.Deleted && ev.Gateway == nh
		}); err != nil {
			t.Fatalf("%s: kernel table %d, %s via %s: %v; events:\n%s", r.Name(), r.Table(), pfx, nh, err, eventLines(mon.Events()))
		}
	}
	for _, r := range l.Routers() {
		for _, pfx := range wants[r.Name()].prefixes {
			installed(r, pfx)
		}
	}

	// virtbgp's status counts what the ToRs hold: per peer and family, the
	// routes sent are the ToR's paths from hvA; FRR counts the UPDATEs.
	rep := virtbgpStatus(ctx, t, h)
	if len(rep.Peers) != 2 || len(rep.Routes) != 2 {
		t.Fatalf("status: %d peers, %d routes; want 2 and 2", len(rep.Peers), len(rep.Routes))
	}
	ribs := map[netip.Addr]vblab.Router{h.ToR(vblab.BIRDv4): l.BIRD, h.ToR(vblab.FRRv4): l.FRR}
	for _, p := range rep.Peers {
		r := ribs[netip.MustParseAddr(p.Address)]
		rib, err := r.Routes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		held := map[string]int{"ipv4": 0, "ipv6": 0}
		for pfx, paths := range rib {
			for _, path := range paths {
				if path.Peer == h.IPv4 {
					held[map[bool]string{true: "ipv4", false: "ipv6"}[pfx.Addr().Is4()]]++
				}
			}
		}
		if !maps.Equal(p.RoutesSentByFamily, held) || p.RoutesSent != held["ipv4"]+held["ipv6"] || len(p.NotSent) != 0 || p.Flaps != 0 {
			t.Errorf("status of %s: sent %d %v, not sent %v, flaps %d; %s holds %v", p.Address, p.RoutesSent, p.RoutesSentByFamily, p.NotSent, p.Flaps, r.Name(), held)
		}
		if r == l.FRR {
			if got := frrStats(ctx, t, l, h.IPv4).updates; p.UpdatesSent != got {
				t.Errorf("status: %d UPDATEs sent to FRR, FRR received %d", p.UpdatesSent, got)
			}
		}
	}
	for _, rt := range rep.Routes {
		if rt.NotCarried != "" {
			t.Errorf("route %s flagged: %s", rt.Prefix, rt.NotCarried)
		}
	}

	// A one-line edit of BIRD's policy, its allow-list widened to the
	// /128, and a reload.
	birdBefore, frrBefore := birdStats(ctx, t, l, h.Name+"4"), frrStats(ctx, t, l, h.IPv4)
	cfg.PeerExtra[vblab.BIRDv4] = `export: {communities: ["65011:1"], prefixes: [192.0.2.60/32, "2001:db8:60::/48"]}`
	text, err := h.VirtbgpYAML(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(h.VirtbgpConfigPath(), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := h.VirtbgpCtl(ctx, "reload"); err != nil {
		t.Fatalf("reload: %v: %s", err, out)
	}
	w := wants["bird"]
	w.prefixes = []netip.Prefix{dual4, dual6}
	wants["bird"] = w
	if err := l.WaitRIBs(wctx, 50*time.Millisecond, check); err != nil {
		t.Fatal(err)
	}
	installed(l.BIRD, dual6)
	birdAfter := birdStats(ctx, t, l, h.Name+"4")
	if birdAfter.since != birdBefore.since {
		t.Errorf("BIRD's session was reset: up since %s, before since %s", birdAfter.since, birdBefore.since)
	}
	// One of BIRD's routes changed (the /128 is new), and only that one
	// was sent: the /32 was not sent again.
	if got := birdAfter.updates - birdBefore.updates; got != 1 {
		t.Errorf("BIRD received %d route updates for the edit, want 1 (its one changed route)", got)
	}
	// FRR's policy did not change: the guest's destruction is the next
	// thing FRR hears (two withdrawals); nothing came before it.
	if err := h.DestroyGuest(ctx, "dual"); err != nil {
		t.Fatal(err)
	}
	err = l.WaitRIBs(wctx, 50*time.Millisecond, func(r vblab.Router, rib vblab.RIB) error {
		if n := len(rib.Paths(dual4)) + len(rib.Paths(dual6)); n > 0 {
			return fmt.Errorf("%d paths left", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	frrAfter := frrStats(ctx, t, l, h.IPv4)
	if frrAfter.established != frrBefore.established {
		t.Errorf("FRR's session was reset: established %d times, before %d", frrAfter.established, frrBefore.established)
	}
	if got := frrAfter.updates - frrBefore.updates; got != 2 {
		t.Errorf("FRR received %d UPDATEs after the edit, want 2 (the withdrawals of the destroy only)", got)
	}
	logText, _ := os.ReadFile(h.VirtbgpLogPath())
	if !strings.Contains(string(logText), `msg="peer export policy changed; changed routes sent" part=bgp peer=`+h.ToR(vblab.BIRDv4).String()+" routes_changed=1 routes_withdrawn=0") {
		t.Errorf("no log line of the export policy change towards BIRD")
	}
}

// TestNextHopFollowsAddressChanges runs virtbgp on hvA with one IPv4
// session per ToR carrying both families, then takes hvA's global IPv6
// address off its link: virtbgp must withdraw the /128 from both ToRs (it
// has no usable IPv6 next hop any more; the IPv4-mapped one would be
// rejected), keep the /32 and the sessions, flag the route in its status,
// and announce the /128 again, via the address, once it is back.
func TestNextHopFollowsAddressChanges(t *testing.T) {
	l := upLabWith(t, vblab.Options{OneSessionPerToR: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h := l.A

	mp := filepath.Join(t.TempDir(), "mapping.yaml")
	if err := os.WriteFile(mp, []byte(dualMapping), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := h.StartVirtbgp(ctx, vblab.VirtbgpConfig{Mapping: mp}); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitEstablished(ctx, h); err != nil {
		t.Fatal(err)
	}
	if err := h.DefineGuest(ctx, vblab.Guest{Name: "dual"}); err != nil {
		t.Fatal(err)
	}
	if err := h.StartGuest(ctx, "dual"); err != nil {
		t.Fatal(err)
	}
	want := func(v6 bool) func(vblab.Router, vblab.RIB) error {
		return func(r vblab.Router, rib vblab.RIB) error {
			if got := rib.NextHops(dual4); !slices.Equal(got, []netip.Addr{h.IPv4}) {
				return fmt.Errorf("%s via %v, want via %s", dual4, got, h.IPv4)
			}
			got := rib.NextHops(dual6)
			if v6 && !slices.Equal(got, []netip.Addr{h.IPv6}) {
				return fmt.Errorf("%s via %v, want via %s", dual6, got, h.IPv6)
			}
			if !v6 && len(got) > 0 {
				return fmt.Errorf("%s still via %v", dual6, got)
			}
			return nil
		}
	}
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := l.WaitRIBs(wctx, 50*time.Millisecond, want(true)); err != nil {
		t.Fatal(err)
	}
	before := frrStats(ctx, t, l, h.IPv4)
	birdSince := birdStats(ctx, t, l, h.Name+"4").since

	addr := h.IPv6.String() + "/64"
	ip := func(op string) {
		t.Helper()
		args := []string{"-n", h.NS, "addr", op, addr, "dev", "eth0"}
		if op == "add" {
			args = append(args, "nodad")
		}
		if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	ip("del")
	if err := l.WaitRIBs(wctx, 50*time.Millisecond, want(false)); err != nil {
		t.Fatal(err)
	}
	rep := virtbgpStatus(ctx, t, h)
	for _, rt := range rep.Routes {
		want := map[string]string{dual4.String(): "", dual6.String(): "no peer carries ipv6"}[rt.Prefix]
		if rt.NotCarried != want {
			t.Errorf("status: route %s not carried %q, want %q", rt.Prefix, rt.NotCarried, want)
		}
	}
	for _, p := range rep.Peers {
		if why := p.NotSent["ipv6"]; !strings.HasPrefix(why, "no ipv6 next hop: interface eth0 facing the peer has no usable global ipv6 address") {
			t.Errorf("status: peer %s: ipv6 not sent %q", p.Address, why)
		}
		if p.RoutesSentByFamily["ipv6"] != 0 || p.RoutesSentByFamily["ipv4"] != 1 {
			t.Errorf("status: peer %s sends %v", p.Address, p.RoutesSentByFamily)
		}
	}

	ip("add")
	if err := l.WaitRIBs(wctx, 50*time.Millisecond, want(true)); err != nil {
		t.Fatal(err)
	}
	if after := frrStats(ctx, t, l, h.IPv4); after.established != before.established {
		t.Errorf("FRR's session was reset: established %d times, before %d", after.established, before.established)
	}
	if since := birdStats(ctx, t, l, h.Name+"4").since; since != birdSince {
		t.Errorf("BIRD's session was reset: up since %s, before since %s", since, birdSince)
	}
	logText, _ := os.ReadFile(h.VirtbgpLogPath())
	for _, line := range []string{
		`msg="routes of a family are not sent to a peer: no next hop of that family"`,
		`msg="routes of a family are sent to a peer again: a next hop of that family was found"`,
	} {
		if !strings.Contains(string(logText), line) {
			t.Errorf("virtbgp did not log %s", line)
		}
	}
}
