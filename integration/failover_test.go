package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"net/netip"

	vblab "github.com/virtbgp/virtbgp/integration/lab"
)

// Host failure with long-lived graceful restart (issue 11).

const foMapping = `version: 1
vms:
  fo-web:
    ips: [192.0.2.81, "2001:db8:81::81"]
`

var foPrefixes = []netip.Prefix{netip.MustParsePrefix("192.0.2.81/32"), netip.MustParsePrefix("2001:db8:81::81/128")}

// llgrStale is the LLGR_STALE community (RFC 9494).
const llgrStale = 0xFFFF0006

// TestHostDeathFailover: host A dies (its virtbgp is killed, so the kernel
// closes its sessions, and its guest is gone), and an HA manager starts
// the VM on host B. virtbgp announces long-lived graceful restart
// (restart-time 1s, long-lived-stale-time 300s) and the ToRs run the
// configs of docs/tor: A's routes stay while nothing else exists, marked
// LLGR_STALE once the restart time is over, and lose to B's the moment B
// announces them. Each ToR's kernel table points at B within 1 s of B's
// announcement, on BIRD and on FRR, for IPv4 and IPv6.
func TestHostDeathFailover(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	l := upLab(t)
	mp := filepath.Join(t.TempDir(), "mapping.yaml")
	if err := os.WriteFile(mp, []byte(foMapping), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := vblab.VirtbgpConfig{Mapping: mp, RestartTime: time.Second, LongLivedStaleTime: 300 * time.Second}
	for _, h := range l.Hosts() {
		if err := h.StartVirtbgp(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.WaitEstablished(ctx, l.A, l.B); err != nil {
		t.Fatal(err)
	}
	if err := l.A.CreateGuest(ctx, vblab.Guest{Name: "fo-web"}); err != nil {
		t.Fatal(err)
	}
	foWant(ctx, t, l, l.A, false)
	mon, err := l.MonitorRoutes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Close()

	// Host A dies.
	if err := l.A.StopVirtbgp(ctx, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if err := l.A.DestroyGuest(ctx, "fo-web"); err != nil {
		t.Fatal(err)
	}
	// Nothing else exists: both ToRs keep A's routes, LLGR_STALE after the
	// restart time.
	foWant(ctx, t, l, l.A, true)

	// The VM starts on host B.
	off := grLogSize(l.B.VirtbgpLogPath())
	from := mon.Len()
	if err := l.B.CreateGuest(ctx, vblab.Guest{Name: "fo-web"}); err != nil {
		t.Fatal(err)
	}
	foWant(ctx, t, l, l.B, false)
	announced := foAnnounced(t, grReadLog(t, l.B.VirtbgpLogPath(), off))
	for _, r := range l.Routers() {
		table := r.Table()
		for _, p := range foPrefixes {
			nh := foNextHop(l.B, p)
			ev, err := mon.Wait(ctx, from, func(ev vblab.RouteEvent) bool {
				return !ev.Deleted && ev.Table == table && ev.Prefix == p && ev.Gateway == nh
			})
			if err != nil {
				t.Fatalf("%s: %s never via %s in table %d: %v", r.Name(), p, nh, table, err)
			}
			at, ok := announced[p]
			if !ok {
				t.Fatalf("host B's virtbgp log has no announce of %s", p)
			}
			took := ev.Time.Sub(at)
			t.Logf("%s: %s via host B %v after B announced it", r.Name(), p, took.Round(time.Millisecond))
			if took > time.Second {
				t.Errorf("%s: %s moved to host B %v after B announced it, want within 1s", r.Name(), p, took.Round(time.Millisecond))
			}
		}
	}
}

// foNextHop is h's next hop for p's family.
func foNextHop(h *vblab.Host, p netip.Prefix) netip.Addr {
	if p.Addr().Is6() {
		return h.IPv6
	}
	return h.IPv4
}

// foWant waits until both ToRs' best path for every prefix of foPrefixes
// is via h, and carries LLGR_STALE if stale (and not if not).
func foWant(ctx context.Context, t *testing.T, l *vblab.Lab, h *vblab.Host, stale bool) {
	t.Helper()
	err := l.WaitRIBs(ctx, 50*time.Millisecond, func(_ vblab.Router, rib vblab.RIB) error {
		for _, p := range foPrefixes {
			b, ok := rib.Best(p)
			if !ok || b.NextHop != foNextHop(h, p) {
				return fmt.Errorf("%s: want a best path via %s, have %v", p, foNextHop(h, p), rib.NextHops(p))
			}
			if got := slices.Contains(b.Communities, llgrStale); got != stale {
				return fmt.Errorf("%s via %s: LLGR_STALE %v, want %v", p, foNextHop(h, p), got, stale)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// foAnnounced returns when virtbgp's log says each prefix was announced
// (the last time in log).
func foAnnounced(t *testing.T, log string) map[netip.Prefix]time.Time {
	t.Helper()
	out := map[netip.Prefix]time.Time{}
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, `msg="route announced"`) {
			continue
		}
		var at time.Time
		var pfx netip.Prefix
		for _, f := range strings.Fields(line) {
			if v, ok := strings.CutPrefix(f, "time="); ok {
				at, _ = time.Parse(time.RFC3339Nano, v)
			}
			if v, ok := strings.CutPrefix(f, "prefix="); ok {
				pfx, _ = netip.ParsePrefix(v)
			}
		}
		if !at.IsZero() && pfx.IsValid() {
			out[pfx] = at
		}
	}
	return out
}
