package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
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

// foConfig is the virtbgp config of the failover tests: the shipped
// defaults (graceful restart with a restart time of 1 s, long-lived stale
// time 3600 s, the N bit; hold time 9 s, which the lab writes too).
func foConfig(mapping string) vblab.VirtbgpConfig {
	return vblab.VirtbgpConfig{Mapping: mapping}
}

// foHold is the hold time of the lab's sessions (VirtbgpConfig's default,
// and virtbgp's).
const foHold = 9 * time.Second

// TestHostDeathFailover: host A dies in each way its ToRs can see it
// (vblab.Failures), its guest with it, and an HA manager starts the VM on
// host B at once. virtbgp runs its shipped defaults (long-lived graceful
// restart, restart time 1 s) and the ToRs the configs of docs/tor, so A's
// routes, once its session is down and the short restart time over, carry
// LLGR_STALE and lose to B's.
//
// For each failure and each ToR (BIRD, FRR), for IPv4 and IPv6:
//   - the ToR notices: within 1 s when the link goes down or the
//     connection is reset or closed, within the hold time when the host
//     falls silent;
//   - the ToR's kernel table points at B within 1 s of B's announcement;
//     when A fell silent, within the hold time plus 1 s;
//   - A comes back without the VM: its stale routes go at its End-of-RIB,
//     and B's route stays the ToRs' best all along: from the switch to B
//     until the end, no ToR forwards to A again.
func TestHostDeathFailover(t *testing.T) {
	for _, f := range vblab.Failures {
		t.Run(f.String(), func(t *testing.T) { testHostDeath(t, f) })
	}
}

func testHostDeath(t *testing.T, f vblab.Failure) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	l := upLab(t)
	mp := filepath.Join(t.TempDir(), "mapping.yaml")
	if err := os.WriteFile(mp, []byte(foMapping), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := foConfig(mp)
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

	// Host A dies, and its guest with it; the ToRs notice.
	detected := make(map[string]chan time.Time)
	for _, r := range l.Routers() {
		ch := make(chan time.Time, 1)
		detected[r.Name()] = ch
		go func() {
			at, err := l.WaitSessionDown(ctx, r, l.A.IPv4)
			if err != nil {
				t.Errorf("%s: %v", r.Name(), err)
			}
			ch <- at
		}()
	}
	failed, err := l.A.Fail(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.A.DestroyGuest(ctx, "fo-web"); err != nil {
		t.Fatal(err)
	}

	// The VM starts on host B.
	off := grLogSize(l.B.VirtbgpLogPath())
	from := mon.Len()
	if err := l.B.CreateGuest(ctx, vblab.Guest{Name: "fo-web"}); err != nil {
		t.Fatal(err)
	}
	foWant(ctx, t, l, l.B, false)
	announced := vblab.RoutesAnnounced(strings.Split(grReadLog(t, l.B.VirtbgpLogPath(), off), "\n"))

	detectLimit, moveLimit := time.Second, time.Second
	if f == vblab.FailSilent {
		detectLimit, moveLimit = foHold, foHold+time.Second
	}
	switched := map[int]int{} // per table, the index of the last switch event
	for _, r := range l.Routers() {
		at := <-detected[r.Name()]
		took := at.Sub(failed)
		t.Logf("%s: %s: session with host A down %v after the failure", f, r.Name(), took.Round(time.Millisecond))
		if took > detectLimit {
			t.Errorf("%s: %s noticed host A's failure after %v, want within %v", f, r.Name(), took.Round(time.Millisecond), detectLimit)
		}
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
			t.Logf("%s: %s: %s via host B %v after B announced it, %v after the failure",
				f, r.Name(), p, took.Round(time.Millisecond), ev.Time.Sub(failed).Round(time.Millisecond))
			if took > moveLimit {
				t.Errorf("%s: %s: %s moved to host B %v after B announced it, want within %v", f, r.Name(), p, took.Round(time.Millisecond), moveLimit)
			}
		}
		switched[table] = mon.Len()
	}

	// Host A comes back without the VM: at its End-of-RIB the ToRs drop
	// its stale routes; B's stay best.
	if err := l.A.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.A.StartVirtbgp(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitEstablished(ctx, l.A); err != nil {
		t.Fatal(err)
	}
	err = l.WaitRIBs(ctx, 50*time.Millisecond, func(_ vblab.Router, rib vblab.RIB) error {
		for _, p := range foPrefixes {
			if nhs := rib.NextHops(p); !slices.Equal(nhs, []netip.Addr{foNextHop(l.B, p)}) {
				return fmt.Errorf("%s: want only host B's path, have %v", p, nhs)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	foWant(ctx, t, l, l.B, false)
	// Every kernel route change up to now is in: none after each ToR's
	// switch to B touched the VM's prefixes.
	if err := mon.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	for i, ev := range mon.Events() {
		if i < switched[ev.Table] || !slices.Contains(foPrefixes, ev.Prefix) {
			continue
		}
		t.Errorf("%s: after the switch to host B, table %d changed: %s", f, ev.Table, ev.Line)
	}
}

// TestHostDeathNoRestart: host A dies and nothing starts its VM elsewhere.
// Its routes stay at both ToRs while no other path exists (a dead host's
// routes then blackhole no more than no route would, and a virtbgp that
// is only restarting loses nothing), LLGR_STALE after the restart time,
// and are gone when the long-lived stale time is over, not before.
func TestHostDeathNoRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	l := upLab(t)
	mp := filepath.Join(t.TempDir(), "mapping.yaml")
	if err := os.WriteFile(mp, []byte(foMapping), 0o644); err != nil {
		t.Fatal(err)
	}
	const restart, stale = time.Second, 4 * time.Second
	cfg := vblab.VirtbgpConfig{Mapping: mp, RestartTime: restart, LongLivedStaleTime: stale}
	if err := l.A.StartVirtbgp(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	if err := l.WaitEstablished(ctx, l.A); err != nil {
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
	from := mon.Len()
	failed, err := l.A.Fail(ctx, vblab.FailKill)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.A.DestroyGuest(ctx, "fo-web"); err != nil {
		t.Fatal(err)
	}
	foWant(ctx, t, l, l.A, true)
	for _, r := range l.Routers() {
		table := r.Table()
		for _, p := range foPrefixes {
			ev, err := mon.Wait(ctx, from, func(ev vblab.RouteEvent) bool {
				return ev.Deleted && ev.Table == table && ev.Prefix == p
			})
			if err != nil {
				t.Fatalf("%s: %s never gone: %v", r.Name(), p, err)
			}
			took := ev.Time.Sub(failed)
			t.Logf("%s: %s gone %v after host A died (restart time %v, long-lived stale time %v)", r.Name(), p, took.Round(time.Millisecond), restart, stale)
			if took < stale || took > restart+stale+2*time.Second {
				t.Errorf("%s: %s gone %v after host A died, want between %v and %v", r.Name(), p, took.Round(time.Millisecond), stale, restart+stale+2*time.Second)
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
