// Go listens with MPTCP by default since 1.24; MPTCP sockets refuse
// TCP_MD5SIG, so GoBGP could not set passwords on its listeners.
//go:debug multipathtcp=0

package bgp_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/osrg/gobgp/v3/pkg/server"

	"github.com/virtbgp/virtbgp/internal/bgp"
	"github.com/virtbgp/virtbgp/internal/bgptest"
	"github.com/virtbgp/virtbgp/internal/config"
	"github.com/virtbgp/virtbgp/internal/testutil"
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

// Address families, as bgptest names them.
const (
	famV4 = "ipv4"
	famV6 = "ipv6"
)

var eventually = testutil.Eventually

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// ---------------------------------------------------------------- logging

// testLog is a slog handler that writes to t.Log while the test runs and
// keeps the records for assertions. Once the test's cleanup has run it
// drops everything: GoBGP goroutines outlive StopBgp, and t.Log after the
// end of a test panics.
type testLog struct {
	t     testing.TB
	level slog.Level

	mu    sync.Mutex
	done  bool
	lines []string // "LEVEL msg key=value ..."
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

// logged reports whether a record with message msg was logged whose
// attributes contain every one of attrs ("key=value", or the start of one:
// "reason=notification-received code 6").
func (h *testLog) logged(msg string, attrs ...string) bool {
	return h.count(msg, attrs...) > 0
}

// count is how many records logged would match.
func (h *testLog) count(msg string, attrs ...string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, l := range h.lines {
		_, rest, _ := strings.Cut(l, " ") // after the level
		if rest != msg && !strings.HasPrefix(rest, msg+" ") {
			continue
		}
		rest = rest[len(msg):]
		if !slices.ContainsFunc(attrs, func(a string) bool { return !strings.Contains(rest, " "+a) }) {
			n++
		}
	}
	return n
}

func (h *testLog) String() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.Join(h.lines, "\n")
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
	h.root.lines = append(h.root.lines, b.String())
	h.root.t.Log(b.String())
	return nil
}

func (h *testLogHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &testLogHandler{root: h.root, attrs: append(slices.Clip(h.attrs), as...)}
}

func (h *testLogHandler) WithGroup(string) slog.Handler { return h }

// ---------------------------------------------------------------- RIBs

// rib returns srv's Loc-RIB for the family, failing the test on an error.
func rib(t testing.TB, srv *server.BgpServer, family string) map[netip.Prefix][]bgptest.Path {
	t.Helper()
	paths, err := bgptest.ListPaths(context.Background(), srv, bgptest.Query{Family: family})
	if err != nil {
		t.Fatal(err)
	}
	return paths
}

// hasPrefixes reports "" when the ToR's RIB for family holds exactly want
// (one path each), else what differs.
func hasPrefixes(t testing.TB, r *bgptest.ToR, family string, want ...string) string {
	t.Helper()
	var got []string
	for p, paths := range rib(t, r.Server, family) {
		got = append(got, fmt.Sprintf("%s(%d)", p, len(paths)))
	}
	slices.Sort(got)
	var exp []string
	for _, p := range want {
		exp = append(exp, p+"(1)")
	}
	slices.Sort(exp)
	if !slices.Equal(got, exp) {
		return fmt.Sprintf("ToR AS %d RIB %s: got %v, want %v", r.ASN, family, got, exp)
	}
	return ""
}

// checkPath compares what a RIB holds for one prefix with what is expected;
// "" if it matches. neighbor is the address the path came from (ours, as
// the ToR sees it).
func checkPath(rib map[netip.Prefix][]bgptest.Path, prefix, neighbor, nexthop string, asPath []uint32,
	communities []uint32, large []mapping.LargeCommunity, med, localPref *uint32) string {
	paths := rib[netip.MustParsePrefix(prefix)]
	if len(paths) != 1 {
		return fmt.Sprintf("%s: %d paths, want 1", prefix, len(paths))
	}
	p := paths[0]
	var diffs []string
	if p.Neighbor != neighbor {
		diffs = append(diffs, fmt.Sprintf("from %s, want %s", p.Neighbor, neighbor))
	}
	if p.NextHop != addr(nexthop) {
		diffs = append(diffs, fmt.Sprintf("next hop %s, want %s", p.NextHop, nexthop))
	}
	if p.Origin == nil || *p.Origin != 0 {
		diffs = append(diffs, fmt.Sprintf("origin %v, want 0 (IGP)", p.Origin))
	}
	if !slices.Equal(p.ASPath, asPath) {
		diffs = append(diffs, fmt.Sprintf("as path %v, want %v", p.ASPath, asPath))
	}
	if !slices.Equal(p.Communities, communities) {
		diffs = append(diffs, fmt.Sprintf("communities %x, want %x", p.Communities, communities))
	}
	if !slices.Equal(p.LargeCommunities, large) {
		diffs = append(diffs, fmt.Sprintf("large communities %v, want %v", p.LargeCommunities, large))
	}
	if ptrString(p.MED) != ptrString(med) {
		diffs = append(diffs, fmt.Sprintf("med %s, want %s", ptrString(p.MED), ptrString(med)))
	}
	if ptrString(p.LocalPref) != ptrString(localPref) {
		diffs = append(diffs, fmt.Sprintf("local-pref %s, want %s", ptrString(p.LocalPref), ptrString(localPref)))
	}
	if len(diffs) > 0 {
		return prefix + ": " + strings.Join(diffs, "; ")
	}
	return ""
}

func cmpAll(msgs ...string) string {
	var out []string
	for _, m := range msgs {
		if m != "" {
			out = append(out, m)
		}
	}
	return strings.Join(out, "\n")
}

// updatesReceived is the number of UPDATE messages the ToR received from
// the neighbor.
func updatesReceived(t testing.TB, r *bgptest.ToR, neighbor string) uint64 {
	t.Helper()
	n, err := r.UpdatesReceived(context.Background(), addr(neighbor))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// ---------------------------------------------------------------- the lab

// lab is the speaker under test with its two ToRs:
//   - tor1 (AS 65000): eBGP over IPv4 at 127.0.0.1 (ipv4-unicast) and over
//     IPv6 at ::1 (ipv6-unicast);
//   - tor2 (AS 65001, our AS): iBGP at 127.0.0.2, reached from our local
//     address 127.0.0.3 (ipv4-unicast).
//
// The ToRs are graceful-restart helpers with default (accept-all) policies.
type lab struct {
	cfg  config.BGP
	sp   *bgp.Speaker
	tor1 *bgptest.ToR
	tor2 *bgptest.ToR
	log  *testLog
}

// labOption changes the speaker config of a lab before it starts.
type labOption func(*config.BGP)

func newLab(t testing.TB, opts ...labOption) *lab {
	t.Helper()
	log, tl := newTestLog(t)
	t1 := bgptest.MustStart(t, bgptest.Config{ASN: torAS, RouterID: "10.0.0.1", Listen: []string{tor1v4, tor1v6}, Log: log},
		bgptest.Neighbor{Address: addr(tor1v4), ASN: localAS, Families: []string{famV4}, GracefulRestart: true},
		bgptest.Neighbor{Address: addr(tor1v6), ASN: localAS, Families: []string{famV6}, GracefulRestart: true})
	t2 := bgptest.MustStart(t, bgptest.Config{ASN: localAS, RouterID: "10.0.0.2", Listen: []string{tor2}, Log: log},
		// AS_PATH prepending puts the ToR's own AS (ours) into the path;
		// GoBGP rejects that unless allowed (allowas-in).
		bgptest.Neighbor{Address: addr(ibgpLocal), ASN: localAS, Families: []string{famV4}, AllowOwnAS: true, GracefulRestart: true})

	cfg := config.BGP{
		ASN:             localAS,
		RouterID:        addr(routerID),
		GracefulRestart: config.GracefulRestart{Enabled: true, RestartTime: 120 * time.Second},
		Peers: []config.Peer{
			{Address: addr(tor1v4), Port: t1.Port, ASN: torAS,
				HoldTime: 9 * time.Second, Keepalive: 3 * time.Second, Families: []config.Family{config.FamilyIPv4}},
			{Address: addr(tor1v6), Port: t1.Port, ASN: torAS,
				HoldTime: 9 * time.Second, Keepalive: 3 * time.Second, Families: []config.Family{config.FamilyIPv6}},
			{Address: addr(tor2), Port: t2.Port, ASN: localAS,
				LocalAddress: addr(ibgpLocal),
				HoldTime:     9 * time.Second, Keepalive: 3 * time.Second, Families: []config.Family{config.FamilyIPv4}},
		},
	}
	for _, o := range opts {
		o(&cfg)
	}
	sp := startSpeaker(t, cfg, log, bgp.StartOptions{})
	waitEstablished(t, sp)
	return &lab{cfg: cfg, sp: sp, tor1: t1, tor2: t2, log: tl}
}

// startSpeaker starts a speaker with a 1s connect-retry and stops it at
// cleanup.
func startSpeaker(t testing.TB, cfg config.BGP, log *slog.Logger, opts bgp.StartOptions) *bgp.Speaker {
	t.Helper()
	sp := bgp.New(cfg, log)
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
func waitEstablished(t testing.TB, sp *bgp.Speaker) {
	t.Helper()
	start := time.Now()
	eventually(t, 10*time.Second, func() string {
		ps, err := sp.Peers(context.Background())
		if err != nil {
			return err.Error()
		}
		for _, p := range ps {
			if p.State != bgp.StateEstablished {
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
