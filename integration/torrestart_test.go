package integration

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	vblab "github.com/virtbgp/virtbgp/integration/lab"
)

// A ToR restart (issue 11): an operator restarts BIRD, then FRR
// ("systemctl restart": SIGTERM, then the same config again). The router
// ends its sessions with a NOTIFICATION and takes its routes out of its
// kernel table; virtbgp's sessions with it go idle and dial it again; once
// they are up, virtbgp sends every route again. The test measures, per
// router, how long after the stop (and after the new router was up and
// listening) every route was its best path again, in its RIB and in its
// kernel table, and checks that the other router saw nothing of it.

const trrMapping = `version: 1
vms:
  trr-a:
    ips: [192.0.2.111, "2001:db8:111::111"]
  trr-b:
    ips: [192.0.2.112, "2001:db8:112::112"]
  trr-mark-bird:
    ips: [192.0.2.113, "2001:db8:113::113"]
  trr-mark-frr:
    ips: [192.0.2.114, "2001:db8:114::114"]
`

// trrMarks are the routes of the marker guest started after each router's
// restart (trr-mark-bird, trr-mark-frr).
var trrMarks = map[string][]netip.Prefix{
	"bird": {netip.MustParsePrefix("192.0.2.113/32"), netip.MustParsePrefix("2001:db8:113::113/128")},
	"frr":  {netip.MustParsePrefix("192.0.2.114/32"), netip.MustParsePrefix("2001:db8:114::114/128")},
}

// trrBound is how long after a ToR is stopped every route of the hosts is
// back as its best path, in its RIB and in its kernel table.
//
// What it takes: the ToR's NOTIFICATION reaches virtbgp at once; GoBGP
// would keep the session idle for 5 s (its idle hold time, hard-coded),
// but virtbgp's speaker adds the idle peer again, and a new peer dials
// after a random 1 to 2 s (GoBGP's first connect retry). The ToR is
// passive and listens again within that (in the lab BIRD restarts in under
// 50 ms, FRR in under 1 s), so that dial succeeds and the routes follow
// within milliseconds: measured 1.6 s to 2.0 s. A dial that finds the ToR
// not yet listening is retried 1 to 2 s later (connect retry 1 s,
// randomized by GoBGP): 4 s at worst. The bound adds 1 s for a loaded
// machine. A route later than that means the fast reconnect did not
// happen, or that GoBGP's timers changed.
const trrBound = 5 * time.Second

// trrRoute is a route the ToRs must have: prefix via host.
type trrRoute struct {
	Prefix netip.Prefix
	Host   *vblab.Host
}

// TestLabToRRestart restarts BIRD, then FRR, with SIGTERM while both hosts
// announce routes: every route is the router's best path again, in its RIB
// and its kernel table, within trrBound of the stop; the other router
// deletes no kernel route and keeps its sessions with both hosts.
func TestLabToRRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	l := upLab(t)
	mp := filepath.Join(t.TempDir(), "mapping.yaml")
	if err := os.WriteFile(mp, []byte(trrMapping), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := l.StartVirtbgpAll(ctx, vblab.VirtbgpConfig{Mapping: mp}); err != nil {
		t.Fatal(err)
	}
	if err := l.A.CreateGuest(ctx, vblab.Guest{Name: "trr-a"}); err != nil {
		t.Fatal(err)
	}
	if err := l.B.CreateGuest(ctx, vblab.Guest{Name: "trr-b"}); err != nil {
		t.Fatal(err)
	}
	routes := []trrRoute{
		{netip.MustParsePrefix("192.0.2.111/32"), l.A}, {netip.MustParsePrefix("2001:db8:111::111/128"), l.A},
		{netip.MustParsePrefix("192.0.2.112/32"), l.B}, {netip.MustParsePrefix("2001:db8:112::112/128"), l.B},
	}
	if err := l.WaitRIBs(ctx, 50*time.Millisecond, func(_ vblab.Router, rib vblab.RIB) error {
		return trrMissing(rib, routes)
	}); err != nil {
		t.Fatal(err)
	}
	mon, err := l.MonitorRoutes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Close()

	routers := l.Routers()
	for i, r := range routers {
		other := routers[(i+1)%len(routers)]
		if !t.Run(r.Name(), func(t *testing.T) { trrRestart(ctx, t, l, mon, r, other, routes) }) {
			return
		}
	}
}

// trrRestart restarts r with SIGTERM, measures when routes were back at r
// and checks that other saw nothing of it.
func trrRestart(ctx context.Context, t *testing.T, l *vblab.Lab, mon *vblab.RouteMonitor, r, other vblab.Router, routes []trrRoute) {
	offsets := map[*vblab.Host]int64{}
	for _, h := range l.Hosts() {
		offsets[h] = grLogSize(h.VirtbgpLogPath())
	}
	from := mon.Len()
	rs, err := l.RestartRouter(ctx, r, syscall.SIGTERM)
	if err != nil {
		t.Fatal(err)
	}

	// Wait well beyond trrBound, so that a late route is measured too.
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()

	// Back in r's RIB: every route its best path via its host. The time is
	// that of the poll that saw it (20 ms apart, plus the command's time).
	var ribBack time.Time
	err = vblab.Eventually(wctx, 20*time.Millisecond, func(ctx context.Context) error {
		rib, err := r.Routes(ctx)
		if err != nil {
			return err
		}
		if err := trrMissing(rib, routes); err != nil {
			return err
		}
		ribBack = time.Now()
		return nil
	})
	if err != nil {
		t.Fatalf("%s: routes not back in its RIB: %v", r.Name(), err)
	}

	// Back in r's kernel table: the route's last event since the restart is
	// an add via its host, after the delete of the stop. The times are ip
	// monitor's (microseconds).
	table := r.Table()
	back := map[netip.Prefix]vblab.RouteEvent{}
	gone := map[netip.Prefix]vblab.RouteEvent{}
	err = vblab.Eventually(wctx, 10*time.Millisecond, func(context.Context) error {
		evs := mon.Events()[from:]
		for _, w := range routes {
			var add, del vblab.RouteEvent
			for _, ev := range evs {
				if ev.Table != table || ev.Prefix != w.Prefix {
					continue
				}
				if ev.Deleted {
					del, add = ev, vblab.RouteEvent{}
				} else if ev.Gateway == foNextHop(w.Host, w.Prefix) {
					add = ev
				} else {
					add = vblab.RouteEvent{}
				}
			}
			if del.Time.IsZero() || add.Time.IsZero() {
				return fmt.Errorf("%s in table %d since the restart: deleted %v, then added via %s %v", w.Prefix, table, !del.Time.IsZero(), foNextHop(w.Host, w.Prefix), !add.Time.IsZero())
			}
			gone[w.Prefix], back[w.Prefix] = del, add
		}
		return nil
	})
	if err != nil {
		t.Fatalf("%s: routes not back in its kernel table: %v", r.Name(), err)
	}

	// A later event that must follow in both tables: a guest started now,
	// whose routes both routers install. Until it, the other router's
	// table has no delete, and r's table deletes none of the routes again.
	mark := "trr-mark-" + r.Name()
	markPfx := trrMarks[r.Name()]
	if err := l.A.CreateGuest(ctx, vblab.Guest{Name: mark}); err != nil {
		t.Fatal(err)
	}
	for _, tbl := range []int{table, other.Table()} {
		isMark := func(ev vblab.RouteEvent) bool {
			return ev.Table == tbl && slices.Contains(markPfx, ev.Prefix) && !ev.Deleted
		}
		if _, err := mon.Wait(ctx, from, isMark); err != nil {
			t.Fatalf("table %d: no route of %s: %v", tbl, mark, err)
		}
		evs := mon.Events()[from:]
		for _, e := range evs[:slices.IndexFunc(evs, isMark)] {
			if e.Table != tbl || !e.Deleted {
				continue
			}
			if tbl == other.Table() {
				t.Errorf("%s (not restarted) deleted a kernel route while %s restarted: %s", other.Name(), r.Name(), e.Line)
			} else if b, ok := back[e.Prefix]; ok && e.Time.After(b.Time) {
				t.Errorf("%s deleted %s again after it was back: %s", r.Name(), e.Prefix, e.Line)
			}
		}
	}

	// virtbgp's view, up to the marker's announcement in its log: each
	// host's sessions with r went down and came up again, those with other
	// stayed up.
	var peerDown, peerUp time.Time
	for _, h := range l.Hosts() {
		evs := trrPeerEvents(grReadLog(t, h.VirtbgpLogPath(), offsets[h]))
		for _, a := range l.RouterAddrs(r, h) {
			down := slices.IndexFunc(evs, func(e trrPeerEvent) bool { return e.Peer == a && e.Down })
			up := slices.IndexFunc(evs, func(e trrPeerEvent) bool { return e.Peer == a && !e.Down })
			if down < 0 || up < 0 || up < down {
				t.Errorf("%s: virtbgp's session with %s %s did not go down and up again: %+v", h.Name, r.Name(), a, evs)
				continue
			}
			t.Logf("%s: session with %s %s down %v after the stop (%s), up %v after", h.Name, r.Name(), a,
				evs[down].Time.Sub(rs.Stop).Round(time.Millisecond), evs[down].Reason, evs[up].Time.Sub(rs.Stop).Round(time.Millisecond))
			peerDown = trrLatest(peerDown, evs[down].Time)
			peerUp = trrLatest(peerUp, evs[up].Time)
		}
		for _, a := range l.RouterAddrs(other, h) {
			for _, e := range evs {
				if e.Peer == a {
					t.Errorf("%s: virtbgp's session with %s %s changed while %s restarted: %+v", h.Name, other.Name(), a, r.Name(), e)
				}
			}
		}
	}

	var kernelFirst, kernelBack time.Time
	var gap time.Duration
	for _, w := range routes {
		at := back[w.Prefix].Time
		if kernelFirst.IsZero() || at.Before(kernelFirst) {
			kernelFirst = at
		}
		kernelBack = trrLatest(kernelBack, at)
		gap = max(gap, at.Sub(gone[w.Prefix].Time))
	}
	ms := func(d time.Duration) string { return d.Round(time.Millisecond).String() }
	t.Logf("tor_restart router=%s signal=SIGTERM routes=%d stop_to_exit=%s stop_to_up=%s stop_to_peer_down=%s stop_to_session_up=%s stop_to_kernel_first=%s stop_to_kernel_last=%s up_to_kernel_last=%s stop_to_rib=%s kernel_gap_max=%s bound=%s",
		r.Name(), len(routes), ms(rs.Stopped.Sub(rs.Stop)), ms(rs.Up.Sub(rs.Stop)), ms(peerDown.Sub(rs.Stop)), ms(peerUp.Sub(rs.Stop)),
		ms(kernelFirst.Sub(rs.Stop)), ms(kernelBack.Sub(rs.Stop)), ms(kernelBack.Sub(rs.Up)), ms(ribBack.Sub(rs.Stop)), ms(gap), trrBound)
	if d := kernelBack.Sub(rs.Stop); d > trrBound {
		t.Errorf("%s: the last route was back in its kernel table %s after the stop, want within %s", r.Name(), ms(d), trrBound)
	}
	if d := ribBack.Sub(rs.Stop); d > trrBound {
		t.Errorf("%s: every route was back in its RIB %s after the stop, want within %s", r.Name(), ms(d), trrBound)
	}
	if mon.Lost() > 0 {
		t.Errorf("the route monitor lost events %d times: the kernel figures are incomplete", mon.Lost())
	}
}

// trrMissing says which of routes rib lacks as a best path via its host.
func trrMissing(rib vblab.RIB, routes []trrRoute) error {
	var missing []string
	for _, w := range routes {
		nh := foNextHop(w.Host, w.Prefix)
		if b, ok := rib.Best(w.Prefix); !ok || b.NextHop != nh {
			missing = append(missing, fmt.Sprintf("%s via %s (have %v)", w.Prefix, nh, rib.NextHops(w.Prefix)))
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("no best path for %s", strings.Join(missing, ", "))
	}
	return nil
}

// trrLatest returns the later of a and b.
func trrLatest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// trrPeerEvent is a "peer down" or "peer established" line of virtbgp's
// log.
type trrPeerEvent struct {
	Time   time.Time
	Peer   netip.Addr
	Down   bool
	Reason string
}

var (
	trrPeerLine   = regexp.MustCompile(`^time=(\S+) .*msg="peer (down|established)".* peer=(\S+)`)
	trrPeerReason = regexp.MustCompile(` reason=("(?:[^"\\]|\\.)*"|\S+)`)
)

// trrPeerEvents returns the session changes in log, in order.
func trrPeerEvents(log string) []trrPeerEvent {
	var out []trrPeerEvent
	for _, line := range strings.Split(log, "\n") {
		m := trrPeerLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, m[1])
		if err != nil {
			continue
		}
		a, err := netip.ParseAddr(m[3])
		if err != nil {
			continue
		}
		e := trrPeerEvent{Time: at, Peer: a, Down: m[2] == "down"}
		if r := trrPeerReason.FindStringSubmatch(line); r != nil {
			e.Reason = r[1]
			if s, err := strconv.Unquote(r[1]); err == nil {
				e.Reason = s
			}
		}
		out = append(out, e)
	}
	return out
}
