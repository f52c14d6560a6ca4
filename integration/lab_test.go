package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	vblab "github.com/virtbgp/virtbgp/integration/lab"
	"github.com/virtbgp/virtbgp/mapping"
)

// upLab brings a real-world lab up (integration/lab) for the test and takes
// it down when the test ends, passed or failed; on failure it first logs
// the tails of the daemons' logs. After the teardown it checks that nothing
// of the lab is left: no namespace, no process, no mount.
func upLab(t *testing.T) *vblab.Lab {
	t.Helper()
	return upLabWith(t, vblab.Options{})
}

// upLabWith is upLab with lab options (Log is set here).
func upLabWith(t *testing.T, opts vblab.Options) *vblab.Lab {
	t.Helper()
	if testing.Short() {
		t.Skip("the real-world lab (libvirtd, QEMU, BIRD, FRR) does not run with -short")
	}
	log := slog.New(slog.DiscardHandler)
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})).With("test", t.Name())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	t0 := time.Now()
	opts.Log = log
	l, err := vblab.Up(ctx, opts)
	if err != nil {
		t.Fatalf("lab up: %v", err)
	}
	kind := "TCG"
	if l.KVM {
		kind = "KVM"
	}
	t.Logf("lab up in %v (%s guests, namespaces %s)", time.Since(t0).Round(time.Millisecond), kind, strings.Join(l.Namespaces(), " "))

	// Cleanups run last-in first-out: the check after the teardown.
	t.Cleanup(func() { checkLabGone(t, l) })
	t.Cleanup(func() {
		if t.Failed() {
			dumpLabLogs(t, l)
		}
		t0 := time.Now()
		if err := l.Down(context.Background()); err != nil {
			t.Errorf("lab down: %v", err)
		}
		t.Logf("lab down in %v", time.Since(t0).Round(time.Millisecond))
	})
	return l
}

// checkLabGone fails the test if anything of the lab survived Down.
func checkLabGone(t *testing.T, l *vblab.Lab) {
	for _, ns := range l.Namespaces() {
		if _, err := os.Stat(filepath.Join("/run/netns", ns)); err == nil {
			t.Errorf("namespace %s left after lab down", ns)
		}
	}
	// By PID and start time, so a recycled PID does not count.
	for _, p := range l.Processes() {
		if p.Alive {
			t.Errorf("process %s (pid %d) left after lab down", p.Name, p.PID)
		}
	}
	if m, err := os.ReadFile("/proc/self/mountinfo"); err == nil && strings.Contains(string(m), l.Dir) {
		t.Errorf("mounts of %s left after lab down", l.Dir)
	}
	if _, err := os.Stat(l.Dir); err == nil {
		t.Errorf("lab dir %s left after lab down", l.Dir)
	}
}

// dumpLabLogs logs the tails of the lab's logs, for a failed test.
func dumpLabLogs(t *testing.T, l *vblab.Lab) {
	files := []string{l.A.VirtbgpLogPath(), l.B.VirtbgpLogPath(), l.BIRD.Log,
		filepath.Join(l.FRR.Dir, "bgpd.log"),
		filepath.Join(l.A.Dir, "log", "libvirtd.log"), filepath.Join(l.B.Dir, "log", "libvirtd.log")}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		t.Logf("--- %s (last %d lines):\n%s", f, len(lines), strings.Join(lines, "\n"))
	}
}

const smokeMapping = `version: 1
vms:
  smoke:
    med: 42
    communities: ["65001:50", no-export]
    large-communities: ["65001:5:50"]
    ips: [192.0.2.50, "2001:db8:50::50"]
`

var (
	smoke4 = netip.MustParsePrefix("192.0.2.50/32")
	smoke6 = netip.MustParsePrefix("2001:db8:50::50/128")
)

// wantOnly waits until every ToR has, for both smoke prefixes, exactly one
// path: from host h, selected as best, with the mapping's attributes; or,
// with h nil, no path at all. (A router shows a new path a moment before
// it has run its best-path selection: the whole check is polled.)
func wantOnly(ctx context.Context, t *testing.T, l *vblab.Lab, h *vblab.Host) {
	t.Helper()
	wantComms := []uint32{65001<<16 | 50, mapping.CommunityNoExport}
	wantLarge := []mapping.LargeCommunity{{GlobalAdmin: 65001, LocalData1: 5, LocalData2: 50}}
	for _, r := range l.Routers() {
		var last vblab.RIB
		err := vblab.Eventually(ctx, 50*time.Millisecond, func(ctx context.Context) error {
			rib, err := r.Routes(ctx)
			if err != nil {
				return err
			}
			last = rib
			for _, pfx := range []netip.Prefix{smoke4, smoke6} {
				paths := rib.Paths(pfx)
				if h == nil {
					if len(paths) > 0 {
						return fmt.Errorf("%s still has %d path(s)", pfx, len(paths))
					}
					continue
				}
				nh := h.IPv4
				if pfx.Addr().Is6() {
					nh = h.IPv6
				}
				if len(paths) != 1 || paths[0].NextHop != nh {
					return fmt.Errorf("%s: want one path via %s, have %v", pfx, nh, rib.NextHops(pfx))
				}
				p := paths[0]
				if !p.Best || p.Peer != nh || !slices.Equal(p.ASPath, []uint32{h.ASN}) || p.MED == nil || *p.MED != 42 ||
					!slices.Equal(p.Communities, wantComms) || !slices.Equal(p.LargeCommunities, wantLarge) {
					return fmt.Errorf("path %s\nwant best, from %s, as-path [%d], med 42, community [65001:50 no-export], large-community [65001:5:50]",
						p, nh, h.ASN)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%s: %v\n%s", r.Name(), err, last)
		}
	}
}

// wantKernel waits until the route monitor has reported, after event index
// from, the smoke prefixes in each ToR's kernel table: via host h, or
// deleted when h is nil. It returns the events.
func wantKernel(ctx context.Context, t *testing.T, l *vblab.Lab, mon *vblab.RouteMonitor, from int, h *vblab.Host) []vblab.RouteEvent {
	t.Helper()
	var evs []vblab.RouteEvent
	for _, r := range l.Routers() {
		proto := map[string]string{"bird": "bird", "frr": "bgp"}[r.Name()]
		for _, pfx := range []netip.Prefix{smoke4, smoke6} {
			ev, err := mon.Wait(ctx, from, func(ev vblab.RouteEvent) bool {
				if ev.Prefix != pfx || ev.Table != r.Table() || ev.Proto != proto {
					return false
				}
				if h == nil {
					return ev.Deleted
				}
				nh := h.IPv4
				if pfx.Addr().Is6() {
					nh = h.IPv6
				}
				return !ev.Deleted && ev.Gateway == nh
			})
			if err != nil {
				t.Fatalf("%s: kernel table %d, %s via %v: %v; events:\n%s", r.Name(), r.Table(), pfx, h, err, eventLines(mon.Events()[from:]))
			}
			evs = append(evs, ev)
		}
	}
	return evs
}

// kernelSettled returns once the route monitor has reported every change
// the ToRs have made to their kernel tables so far for the prefixes of
// have, which both ToRs must have installed. BIRD (2.x) writes its kernel
// table while it changes its own, so what a caller read from BIRD is in
// the kernel already; zebra installs FRR's best paths afterwards, in order
// per prefix, so this waits until zebra reports each prefix installed and
// nothing queued. Then a marker route the test adds to a spare table of
// the tor namespace reaches ip monitor after every kernel change made
// before it.
func kernelSettled(ctx context.Context, t *testing.T, l *vblab.Lab, mon *vblab.RouteMonitor, have []netip.Prefix) {
	t.Helper()
	err := vblab.Eventually(ctx, 20*time.Millisecond, func(ctx context.Context) error {
		for _, pfx := range have {
			show := "show ip route "
			if pfx.Addr().Is6() {
				show = "show ipv6 route "
			}
			out, err := l.FRR.Vtysh(ctx, show+pfx.String()+" json")
			if err != nil {
				return err
			}
			var routes map[string][]struct {
				Protocol          string
				Installed, Queued bool
			}
			if err := json.Unmarshal([]byte(out), &routes); err != nil {
				return vblab.Permanent(fmt.Errorf("zebra's route %s: %w", pfx, err))
			}
			installed := false
			for _, r := range routes[pfx.String()] {
				if r.Queued {
					return fmt.Errorf("zebra has a change of %s queued", pfx)
				}
				installed = installed || (r.Protocol == "bgp" && r.Installed)
			}
			if !installed {
				return fmt.Errorf("zebra has not installed %s: %s", pfx, out)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("FRR: %v", err)
	}

	const table = 4243
	marker := netip.MustParsePrefix("198.18.0.253/32")
	from := mon.Len()
	ip := func(op string) error {
		_, err := exec.CommandContext(ctx, "ip", "-n", l.TorNS, "route", op, "blackhole", marker.String(), "table", fmt.Sprint(table)).CombinedOutput()
		return err
	}
	if err := ip("add"); err != nil {
		t.Fatalf("marker route: %v", err)
	}
	defer func() { _ = ip("del") }()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := mon.Wait(wctx, from, func(ev vblab.RouteEvent) bool {
		return ev.Prefix == marker && ev.Table == table && !ev.Deleted
	}); err != nil {
		t.Fatalf("marker route: %v", err)
	}
}

func eventLines(evs []vblab.RouteEvent) string {
	var b strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&b, "%s %s\n", ev.Time.Format("15:04:05.000000"), ev.Line)
	}
	return b.String()
}

// TestLabSmoke runs a real guest through the real lab: booted on hvA, both
// ToRs (BIRD and FRR) have its /32 and /128 via hvA with the mapped
// attributes; live-migrated to hvB, they have them via hvB only; destroyed,
// they have nothing. Throughout, ip -ts monitor route in the tor namespace
// sees each ToR's best-path changes in its kernel table, timestamped.
//
// virtbgp withdraws while a guest is paused (also during the switch-over
// of a migration); this test asserts end states only.
func TestLabSmoke(t *testing.T) {
	l := upLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	mp := filepath.Join(t.TempDir(), "mapping.yaml")
	if err := os.WriteFile(mp, []byte(smokeMapping), 0o644); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	if err := l.StartVirtbgpAll(ctx, vblab.VirtbgpConfig{Mapping: mp}); err != nil {
		t.Fatal(err)
	}
	t.Logf("virtbgp on both hosts, all 8 sessions established in %v", time.Since(t0).Round(time.Millisecond))
	mon, err := l.MonitorRoutes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Close()

	// Boot on hvA.
	t0 = time.Now()
	bootStart := t0
	if err := l.A.DefineGuest(ctx, vblab.Guest{Name: "smoke"}); err != nil {
		t.Fatal(err)
	}
	if err := l.A.StartGuest(ctx, "smoke"); err != nil {
		t.Fatal(err)
	}
	t.Logf("guest started on hvA in %v", time.Since(t0).Round(time.Millisecond))
	wantOnly(ctx, t, l, l.A)
	t.Logf("both ToRs have the routes via hvA %v after the start", time.Since(t0).Round(time.Millisecond))
	booted := wantKernel(ctx, t, l, mon, 0, l.A)

	// Live-migrate to hvB.
	from := mon.Len()
	t0 = time.Now()
	migrateStart := t0
	m, err := l.StartMigration(ctx, "smoke", l.A, l.B, vblab.MigrateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	ji, err := l.B.JobInfo(ctx, "smoke", true)
	if err != nil {
		t.Fatal(err)
	}
	downtime, _ := ji.Downtime()
	t.Logf("migrated in %v (guest downtime %v)", m.Took().Round(time.Millisecond), downtime)
	if st, err := l.B.GuestState(ctx, "smoke"); err != nil || !strings.HasPrefix(st, "running") {
		t.Fatalf("smoke on hvB: %q %v", st, err)
	}
	wantOnly(ctx, t, l, l.B)
	t.Logf("both ToRs have the routes via hvB only %v after the migration started", time.Since(t0).Round(time.Millisecond))
	moved := wantKernel(ctx, t, l, mon, from, l.B)

	// Destroy.
	from = mon.Len()
	t0 = time.Now()
	destroyStart := t0
	if err := l.B.DestroyGuest(ctx, "smoke"); err != nil {
		t.Fatal(err)
	}
	wantOnly(ctx, t, l, nil)
	t.Logf("both ToRs have no route %v after the destroy", time.Since(t0).Round(time.Millisecond))
	gone := wantKernel(ctx, t, l, mon, from, nil)

	// The kernel tables' timeline: each event stamped after its phase
	// began (the clocks are the same), in the order ip received them, with
	// sub-millisecond resolution.
	for i, phase := range []struct {
		start time.Time
		evs   []vblab.RouteEvent
	}{{bootStart, booted}, {migrateStart, moved}, {destroyStart, gone}} {
		for _, ev := range phase.evs {
			if ev.Time.Before(phase.start.Add(-5*time.Millisecond)) || ev.Time.After(time.Now()) {
				t.Errorf("phase %d began at %s, but its event is stamped %s: %s", i, phase.start.Format("15:04:05.000000"),
					ev.Time.Format("15:04:05.000000"), ev.Line)
			}
		}
	}
	all := mon.Events()
	frac := 0
	for i, ev := range all {
		if i > 0 && ev.Time.Before(all[i-1].Time) {
			t.Errorf("event %d stamped before event %d:\n%s", i, i-1, eventLines(all[i-1:i+1]))
		}
		if ev.Time.Nanosecond()%int(time.Millisecond) != 0 {
			frac++
		}
	}
	if frac == 0 {
		t.Errorf("no event timestamp finer than a millisecond:\n%s", eventLines(all))
	}
	t.Logf("kernel route events (BIRD: table %d proto bird, FRR: table %d proto bgp):\n%s",
		vblab.BIRDTable, vblab.FRRTable, eventLines(mon.Events()))
}
