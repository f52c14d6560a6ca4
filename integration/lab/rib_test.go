package lab

import (
	"bytes"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/virtbgp/virtbgp/internal/config"
	"github.com/virtbgp/virtbgp/mapping"
)

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// want is the expected attributes of a path.
type want struct {
	nh     string
	source string
	best   bool
	asPath []uint32
	med    *uint32
	comms  []uint32
	large  []mapping.LargeCommunity
}

func checkPath(t *testing.T, rib RIB, prefix string, w want) {
	t.Helper()
	pfx := netip.MustParsePrefix(prefix)
	for _, p := range rib[pfx] {
		if p.NextHop != netip.MustParseAddr(w.nh) {
			continue
		}
		if p.Source != w.source || p.Best != w.best || !slices.Equal(p.ASPath, w.asPath) ||
			!eqU32(p.MED, w.med) || !slices.Equal(p.Communities, w.comms) || !slices.Equal(p.LargeCommunities, w.large) {
			t.Errorf("%s via %s:\n got %s\nwant source %s best %v as-path %v med %v communities %v large %v",
				prefix, w.nh, p, w.source, w.best, w.asPath, deref(w.med), w.comms, w.large)
		}
		return
	}
	t.Errorf("%s: no path via %s in\n%s", prefix, w.nh, rib)
}

func eqU32(a, b *uint32) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func deref(p *uint32) any {
	if p == nil {
		return nil
	}
	return *p
}

const (
	c65001x100 = 65001<<16 | 100
	noExport   = mapping.CommunityNoExport
)

var large112 = mapping.LargeCommunity{GlobalAdmin: 65001, LocalData1: 1, LocalData2: 2}

// Captured from the lab: the guest "demo" running on both hosts at once, so
// each prefix has a path from each.
func TestParseBIRDRoutes(t *testing.T) {
	rib, err := ParseBIRDRoutes(string(readTestdata(t, "bird-show-route-all.txt")))
	if err != nil {
		t.Fatal(err)
	}
	if len(rib) != 3 {
		t.Fatalf("%d prefixes, want 3:\n%s", len(rib), rib)
	}
	for _, pfx := range []string{"192.0.2.100/32", "192.0.2.101/32", "2001:db8::100/128"} {
		if n := len(rib[netip.MustParsePrefix(pfx)]); n != 2 {
			t.Errorf("%s: %d paths, want 2", pfx, n)
		}
	}
	checkPath(t, rib, "192.0.2.100/32", want{nh: "198.18.0.11", source: "hvA4", best: true, asPath: []uint32{65011},
		med: u32p(10), comms: []uint32{c65001x100}, large: []mapping.LargeCommunity{large112}})
	checkPath(t, rib, "192.0.2.100/32", want{nh: "198.18.0.12", source: "hvB4", asPath: []uint32{65012},
		med: u32p(10), comms: []uint32{c65001x100}, large: []mapping.LargeCommunity{large112}})
	checkPath(t, rib, "192.0.2.101/32", want{nh: "198.18.0.11", source: "hvA4", best: true, asPath: []uint32{65011},
		med: u32p(50), comms: []uint32{c65001x100, noExport}, large: []mapping.LargeCommunity{large112}})
	checkPath(t, rib, "2001:db8::100/128", want{nh: "fd00:198:18::12", source: "hvB6", asPath: []uint32{65012},
		med: u32p(10), comms: []uint32{c65001x100}, large: []mapping.LargeCommunity{large112}})
	best, ok := rib.Best(netip.MustParsePrefix("2001:db8::100/128"))
	if !ok || best.NextHop != netip.MustParseAddr("fd00:198:18::11") {
		t.Errorf("best of 2001:db8::100/128: %v %v", best, ok)
	}
	if lp := best.LocalPref; lp == nil || *lp != 100 {
		t.Errorf("local-pref %v, want 100", deref(lp))
	}
	if got := rib.NextHops(netip.MustParsePrefix("192.0.2.101/32")); !slices.Equal(got,
		[]netip.Addr{netip.MustParseAddr("198.18.0.11"), netip.MustParseAddr("198.18.0.12")}) {
		t.Errorf("next hops %v", got)
	}
}

// Prepends, no MED, a best path that is not listed first, sorted
// communities, an IPv6 next hop with a link-local one after it.
func TestParseBIRDRoutesEdges(t *testing.T) {
	rib, err := ParseBIRDRoutes(string(readTestdata(t, "bird-prepend.txt")))
	if err != nil {
		t.Fatal(err)
	}
	checkPath(t, rib, "192.0.2.60/32", want{nh: "198.18.0.12", source: "hvB4", asPath: []uint32{65012, 65012, 65012, 65012}})
	checkPath(t, rib, "192.0.2.60/32", want{nh: "198.18.0.11", source: "hvA4", best: true, asPath: []uint32{65011}, med: u32p(0),
		comms: []uint32{c65001x100, mapping.CommunityGracefulShutdown}, // sorted: 65001:100 < 65535:0
		large: []mapping.LargeCommunity{large112, {GlobalAdmin: 65001, LocalData1: 2, LocalData2: 3}}})
	checkPath(t, rib, "2001:db8:60::60/128", want{nh: "fd00:198:18::11", source: "hvA6", best: true, asPath: []uint32{65011}})

	if _, err := ParseBIRDRoutes("BIRD 2.0.12 ready.\nnonsense\n"); err == nil {
		t.Error("nonsense parsed")
	}
	rib, err = ParseBIRDRoutes("BIRD 2.0.12 ready.\n")
	if err != nil || len(rib) != 0 {
		t.Errorf("empty output: %v %v", rib, err)
	}
}

func TestParseBIRDProtocols(t *testing.T) {
	ps := ParseBIRDProtocols(string(readTestdata(t, "bird-show-protocols.txt")))
	got := map[string]string{}
	for _, p := range ps {
		got[p.Name] = p.Proto + " " + p.State + " " + p.BGPState
	}
	for name, w := range map[string]string{
		"device1": "Device up ", "kernel4": "Kernel up ",
		"hvA4": "BGP up Established", "hvA6": "BGP up Established", "hvB4": "BGP up Established", "hvB6": "BGP up Established",
	} {
		if got[name] != w {
			t.Errorf("%s: %q, want %q", name, got[name], w)
		}
	}
	// A session that is not up, in BIRD's words.
	ps = ParseBIRDProtocols("hvA4       BGP        ---        start  2026-11-21 06:11:39.947  Active        Socket: Connection refused\n")
	if len(ps) != 1 || ps[0].BGPState != "Active" || ps[0].Info != "Active Socket: Connection refused" {
		t.Errorf("%+v", ps)
	}
}

// FRR 8.4's "show bgp ipv4 unicast json detail" and the same for IPv6, in
// one vtysh call.
func TestParseFRRRoutes(t *testing.T) {
	rib, err := ParseFRRRoutes(readTestdata(t, "frr-json-detail.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rib) != 3 {
		t.Fatalf("%d prefixes, want 3:\n%s", len(rib), rib)
	}
	checkPath(t, rib, "192.0.2.100/32", want{nh: "198.18.0.11", source: "198.18.0.11", best: true, asPath: []uint32{65011},
		med: u32p(10), comms: []uint32{c65001x100}, large: []mapping.LargeCommunity{large112}})
	checkPath(t, rib, "192.0.2.100/32", want{nh: "198.18.0.12", source: "198.18.0.12", asPath: []uint32{65012},
		med: u32p(10), comms: []uint32{c65001x100}, large: []mapping.LargeCommunity{large112}})
	checkPath(t, rib, "192.0.2.101/32", want{nh: "198.18.0.12", source: "198.18.0.12", asPath: []uint32{65012},
		med: u32p(50), comms: []uint32{c65001x100, noExport}, large: []mapping.LargeCommunity{large112}})
	checkPath(t, rib, "2001:db8::100/128", want{nh: "fd00:198:18::11", source: "fd00:198:18::11", best: true, asPath: []uint32{65011},
		med: u32p(10), comms: []uint32{c65001x100}, large: []mapping.LargeCommunity{large112}})
	for pfx, paths := range rib {
		for _, p := range paths {
			if p.Peer != netip.MustParseAddr(p.Source) {
				t.Errorf("%s: peer %s, source %s", pfx, p.Peer, p.Source)
			}
		}
	}
}

// "show bgp ipv4 unicast <prefix> json", and the per-prefix object form of
// later FRR releases with well-known community names and a link-local
// next hop listed first.
func TestParseFRRRoutesOtherForms(t *testing.T) {
	rib, err := ParseFRRRoutes(readTestdata(t, "frr-prefix.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rib) != 1 {
		t.Fatalf("%d prefixes, want 1:\n%s", len(rib), rib)
	}
	checkPath(t, rib, "192.0.2.101/32", want{nh: "198.18.0.11", source: "198.18.0.11", best: true, asPath: []uint32{65011},
		med: u32p(50), comms: []uint32{c65001x100, noExport}, large: []mapping.LargeCommunity{large112}})

	rib, err = ParseFRRRoutes(readTestdata(t, "frr9-detail.json"))
	if err != nil {
		t.Fatal(err)
	}
	checkPath(t, rib, "2001:db8:60::60/128", want{nh: "fd00:198:18::12", source: "fd00:198:18::12", best: true,
		asPath: []uint32{65012, 65012}, comms: []uint32{mapping.CommunityGracefulShutdown, mapping.CommunityBlackhole}})

	if _, err := ParseFRRRoutes([]byte(`{"routes": {"nonsense": []}}`)); err == nil {
		t.Error("a bad prefix parsed")
	}
	if _, err := ParseFRRRoutes([]byte(`% Unknown command`)); err == nil {
		t.Error("an error message parsed")
	}
}

func TestParseFRRNeighbors(t *testing.T) {
	ss, err := ParseFRRNeighbors(readTestdata(t, "frr-neighbors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range ss {
		got = append(got, s.Name+" "+s.Peer.String()+" "+s.State)
		if !s.Established {
			t.Errorf("%+v not established", s)
		}
	}
	w := []string{"hvA4 198.18.0.11 Established", "hvB4 198.18.0.12 Established",
		"hvA6 fd00:198:18::11 Established", "hvB6 fd00:198:18::12 Established"}
	if !slices.Equal(got, w) {
		t.Errorf("got %q\nwant %q", got, w)
	}
}

// TestParseFRRUnnumberedNeighbors: FRR keys an unnumbered neighbor by its
// interface and gives its address, once known, in bgpNeighborAddr.
func TestParseFRRUnnumberedNeighbors(t *testing.T) {
	ss, err := ParseFRRNeighbors([]byte(`{"vA": {"nbrDesc": "hvAu", "bgpState": "Established", "bgpNeighborAddr": "fe80::1"},
		"vB": {"nbrDesc": "hvBu", "bgpState": "Active", "bgpNeighborAddr": "none"}}`))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range ss {
		got = append(got, fmt.Sprintf("%s %s %v %s %t", s.Name, s.Interface, s.Peer, s.State, s.Established))
	}
	w := []string{"hvBu vB invalid IP Active false", "hvAu vA fe80::1 Established true"}
	if !slices.Equal(got, w) {
		t.Errorf("got %q\nwant %q", got, w)
	}
}

func TestParseRouteEvent(t *testing.T) {
	var evs []RouteEvent
	for _, line := range strings.Split(string(readTestdata(t, "ip-monitor-route.txt")), "\n") {
		if ev, ok := ParseRouteEvent(line); ok {
			evs = append(evs, ev)
		}
	}
	if len(evs) != 8 {
		t.Fatalf("%d events, want 8: %+v", len(evs), evs)
	}
	type short struct {
		del          bool
		typ, pfx, gw string
		table        int
		proto, dev   string
		micros       int
	}
	got := func(ev RouteEvent) short {
		gw := ""
		if ev.Gateway.IsValid() {
			gw = ev.Gateway.String()
		}
		return short{ev.Deleted, ev.Type, ev.Prefix.String(), gw, ev.Table, ev.Proto, ev.Dev, ev.Time.Nanosecond() / 1000}
	}
	for i, w := range []short{
		{false, "", "192.0.2.50/32", "198.18.0.11", 100, "bird", "br0", 465410},
		{false, "", "192.0.2.50/32", "198.18.0.12", 100, "bird", "br0", 467273},
		{false, "", "2001:db8:50::50/128", "fd00:198:18::11", 254, "bgp", "br0", 468781},
		{false, "", "192.0.2.50/32", "198.18.0.11", 254, "bgp", "br0", 471262},
		{true, "", "192.0.2.50/32", "198.18.0.12", 100, "bird", "br0", 472945},
		{true, "", "2001:db8:50::50/128", "fd00:198:18::11", 254, "bgp", "br0", 474793},
		{false, "local", "fe80::7441:bcff:fe5d:7121/128", "", 255, "kernel", "br0", 558501},
		{false, "", "192.0.2.100/32", "198.18.0.11", 254, "bgp", "br0", 1}, // FRR: with nhid
	} {
		if g := got(evs[i]); g != w {
			t.Errorf("event %d: got %+v\nwant %+v", i, g, w)
		}
	}
	if d := evs[1].Time.Sub(evs[0].Time); d != 1863*time.Microsecond {
		t.Errorf("time between the first two: %v", d)
	}
}

func TestParseJobInfo(t *testing.T) {
	j := ParseJobInfo(string(readTestdata(t, "domjobinfo.txt")))
	if j["Operation"] != "Incoming migration" {
		t.Errorf("operation %q", j["Operation"])
	}
	d, ok := j.Downtime()
	if !ok || d <= 0 || d > time.Second {
		t.Errorf("downtime %v %v", d, ok)
	}
	if ms, ok := j.Millis("Time elapsed"); !ok || ms <= 0 {
		t.Errorf("time elapsed %v %v", ms, ok)
	}
	if _, ok := j.Millis("No such key"); ok {
		t.Error("a missing key has a value")
	}
}

// The config the lab writes for virtbgp is one virtbgp accepts, with what
// the test chose.
func TestVirtbgpYAML(t *testing.T) {
	l := newLab(Options{Dir: "/tmp/x", Prefix: "p-", ToRASN: 65000, HostAASN: 65011, HostBASN: 65012}, nil)
	prepend := 5
	text, err := l.B.VirtbgpYAML(VirtbgpConfig{Mapping: "/tmp/m.yaml", Paused: "keep", StandbyPrepend: &prepend,
		HoldTime: 6 * time.Second, RestartTime: 30 * time.Second, ResyncInterval: -1, NoMappingWatch: true,
		GracefulShutdownTime: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("virtbgp.yaml", []byte(text))
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if cfg.BGP.ASN != 65012 || cfg.BGP.RouterID.String() != "198.18.0.12" || cfg.Libvirt.URI != l.B.URI ||
		cfg.Mapping.Path != "/tmp/m.yaml" || len(cfg.BGP.Peers) != 4 {
		t.Errorf("config %+v\n%s", cfg, text)
	}
	for _, p := range cfg.BGP.Peers {
		if p.ASN != 65000 || p.HoldTime != 6*time.Second {
			t.Errorf("peer %+v", p)
		}
	}
	if cfg.Control.Socket != "/tmp/x/hvB/virtbgp.sock" || cfg.StateDir != "/tmp/x/hvB/virtbgp-state" ||
		cfg.Mapping.Watch || cfg.Drain.GracefulShutdownTime != 2*time.Second || cfg.ResyncInterval != 0 ||
		cfg.Policy.StandbyPrepend != 5 || string(cfg.Policy.Paused) != "keep" {
		t.Errorf("config %+v\n%s", cfg, text)
	}
	if _, err := l.A.VirtbgpYAML(VirtbgpConfig{}); err == nil {
		t.Error("a config without a mapping")
	}
}

func TestGuestXML(t *testing.T) {
	x := GuestXML(Guest{Name: "g1", UUID: "11111111-2222-3333-4444-555555555555"}, false)
	for _, w := range []string{"<domain type='qemu'>", "<name>g1</name>", "<uuid>11111111-2222-3333-4444-555555555555</uuid>",
		"<memory unit='MiB'>64</memory>", "machine='pc'"} {
		if !strings.Contains(x, w) {
			t.Errorf("no %q in\n%s", w, x)
		}
	}
	if x := GuestXML(Guest{Name: "g2", MemoryMiB: 128, Kernel: "/k.bin"}, true); !strings.Contains(x, "<domain type='kvm'>") || strings.Contains(x, "<uuid>") ||
		!strings.Contains(x, ">128<") || !strings.Contains(x, "<kernel>/k.bin</kernel>") {
		t.Errorf("kvm guest:\n%s", x)
	}
}

func TestProcStat(t *testing.T) {
	state, start, err := procStat(os.Getpid())
	if err != nil || start == 0 || state == 'Z' {
		t.Fatalf("%c %d %v", state, start, err)
	}
	p := &process{Name: "self", PID: os.Getpid(), Start: start}
	if !p.alive() {
		t.Error("this process is not alive")
	}
	p.Start++
	if p.alive() {
		t.Error("a process with another start time is alive (PID reuse)")
	}
}

func TestNewUUID(t *testing.T) {
	a, b := newUUID(), newUUID()
	if a == b || len(a) != 36 || a[14] != '4' {
		t.Errorf("%s %s", a, b)
	}
}

// The fill-memory kernel, byte for byte as assembled by hand (and booted
// by QEMU in the lab).
func TestFillMemoryKernel(t *testing.T) {
	want := []byte{
		0x02, 0xb0, 0xad, 0x1b, 0x00, 0x00, 0x01, 0x00, 0xfe, 0x4f, 0x51, 0xe4, // magic, flags, checksum
		0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, // header, load, load end
		0x00, 0x00, 0x00, 0x00, 0x20, 0x00, 0x10, 0x00, // bss end, entry
		0xbf, 0x00, 0x00, 0x20, 0x00, // mov edi, 0x200000
		0xb9, 0x00, 0x00, 0xf0, 0x00, // mov ecx, 60 MiB / 4
		0xb8, 0x5a, 0x5a, 0x5a, 0x5a, // mov eax, 0x5a5a5a5a
		0xf3, 0xab, 0xfa, 0xf4, 0xeb, 0xfd, // rep stosd; cli; hlt; jmp hlt
	}
	if got := FillMemoryKernel(60); !slices.Equal(got, want) {
		t.Errorf("got  % x\nwant % x", got, want)
	}
}

// An ECMP route (FRR's, with maximum-paths: two hosts announce the same
// prefix) comes with its next hops on the lines under it; the monitor
// puts them into Nexthops, and leaves Gateway empty.
func TestMonitorMultipath(t *testing.T) {
	data := readTestdata(t, "ip-monitor-multipath.txt")
	// All of ip's output in one read, and one byte a read (the next-hop
	// lines come after their route's event went out).
	for _, r := range []io.Reader{bytes.NewReader(data), iotest.OneByteReader(bytes.NewReader(data))} {
		m := &RouteMonitor{changed: make(chan struct{}), done: make(chan struct{})}
		m.read(r, make(chan struct{}))
		checkMultipathEvents(t, m.Events())
	}
	if _, ok := ParseNexthopLine("nexthop via 198.18.0.11 dev br0"); ok {
		t.Error("a next-hop line without its indentation")
	}
	if a, ok := ParseNexthopLine("\tnexthop via inet6 fd00:198:18::11 dev br0 weight 1"); !ok || a != netip.MustParseAddr("fd00:198:18::11") {
		t.Errorf("via inet6: %v %v", a, ok)
	}
}

func checkMultipathEvents(t *testing.T, evs []RouteEvent) {
	t.Helper()
	var got []string
	for _, ev := range evs {
		s := fmt.Sprintf("%s t%d %s", ev.Prefix, ev.Table, ev.Gateway)
		if ev.Gateway.IsValid() == (len(ev.Nexthops) > 0) {
			t.Errorf("%s: gateway %s and next hops %v", ev.Prefix, ev.Gateway, ev.Nexthops)
		}
		for _, nh := range ev.Nexthops {
			s += " " + nh.String()
		}
		got = append(got, s)
	}
	want := []string{
		"192.0.2.9/32 t100 198.18.0.11",
		"192.0.2.9/32 t254 198.18.0.11",
		"192.0.2.9/32 t254 invalid IP 198.18.0.11 198.18.0.12",
		"192.0.2.9/32 t100 198.18.0.12",
		"192.0.2.9/32 t254 198.18.0.12",
		"192.0.2.9/32 t100 198.18.0.11",
		"192.0.2.9/32 t254 invalid IP 198.18.0.11 198.18.0.12",
		"2001:db8:9::9/128 t254 invalid IP fd00:198:18::11 fd00:198:18::12",
		"2001:db8:9::9/128 t254 fd00:198:18::11",
	}
	if !slices.Equal(got, want) {
		t.Errorf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
