package integration

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	vblab "github.com/virtbgp/virtbgp/integration/lab"
)

var anycastIP = netip.MustParsePrefix("192.0.2.200/32")

// anycastMapping is the mapping of both hosts: two entries claim one
// anycast IP, each with an exec check that fails while the file
// fail-<domain> exists in dir.
func anycastMapping(dir string) string {
	return fmt.Sprintf(`version: 1
defaults:
  health:
    checks:
      - type: exec
        command: [/bin/sh, -c, 'test ! -e %s/fail-$VIRTBGP_DOMAIN']
        interval: 300ms
        timeout: 250ms
        rise: 1
        fall: 2
vms:
  any-a: {ips: [{prefix: 192.0.2.200, anycast: true}]}
  any-b: {ips: [{prefix: 192.0.2.200, anycast: true}]}
  mig: {ips: [192.0.2.201]}
`, dir)
}

// TestLabAnycast runs one anycast IP on a guest on each lab host: both ToRs
// (BIRD and FRR) have two paths for it, one via each host; while one
// member's check fails only the other's path remains, and it comes back
// when the check passes; a live migration of one member to the other host
// keeps the IP announced throughout (no deletion of the route from either
// ToR's kernel table), from the one host that then has both members.
func TestLabAnycast(t *testing.T) {
	l := upLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	mp := filepath.Join(dir, "mapping.yaml")
	if err := os.WriteFile(mp, []byte(anycastMapping(dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := l.StartVirtbgpAll(ctx, vblab.VirtbgpConfig{Mapping: mp, LogLevel: "info"}); err != nil {
		t.Fatal(err)
	}
	if err := l.A.CreateGuest(ctx, vblab.Guest{Name: "any-a"}); err != nil {
		t.Fatal(err)
	}
	if err := l.B.CreateGuest(ctx, vblab.Guest{Name: "any-b"}); err != nil {
		t.Fatal(err)
	}
	wantPaths(ctx, t, l, "both members up", l.A, l.B)

	t.Run("one member fails, one path remains", func(t *testing.T) {
		fail := filepath.Join(dir, "fail-any-a")
		if err := os.WriteFile(fail, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		wantPaths(ctx, t, l, "any-a's check failing", l.B)
		if err := os.Remove(fail); err != nil {
			t.Fatal(err)
		}
		wantPaths(ctx, t, l, "any-a's check passing again", l.A, l.B)
	})
	t.Run("live migration of a member keeps the IP", func(t *testing.T) {
		mon, err := l.MonitorRoutes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer mon.Close()
		m, err := l.StartMigration(ctx, "any-a", l.A, l.B, vblab.MigrateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		wantPaths(ctx, t, l, "any-a migrated to hvB", l.B)
		// The end state is in both ToRs' kernel tables (a later event than
		// any deletion would be); none of the events removed the route.
		changes := 0
		for _, ev := range mon.Events() {
			if ev.Prefix != anycastIP {
				continue
			}
			changes++
			if ev.Deleted {
				t.Errorf("the anycast route was deleted from a ToR's kernel table during the migration: %s", ev.Line)
			}
		}
		// FRR's ECMP route lost hvA's next hop: the monitor saw it.
		if changes == 0 {
			t.Error("no kernel route change of the anycast IP seen during the migration")
		}
		t.Logf("%d kernel route changes of %s during the migration, none a deletion", changes, anycastIP)
		st, err := l.B.VirtbgpCtl(ctx, "status")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(st, "any-a") || !strings.Contains(st, "any-b") {
			t.Errorf("hvB's status lacks a member:\n%s", st)
		}
	})
}

// TestLabHealthMigration live-migrates a guest whose route has a health
// check: the route never leaves either ToR's kernel table (the source's
// paused guest keeps its checks' state and its depreferenced route; the
// destination's guest, arrived by migration, starts up, not "starting"),
// and ends via the destination.
func TestLabHealthMigration(t *testing.T) {
	l := upLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	mp := filepath.Join(dir, "mapping.yaml")
	if err := os.WriteFile(mp, []byte(anycastMapping(dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := l.StartVirtbgpAll(ctx, vblab.VirtbgpConfig{Mapping: mp, LogLevel: "info"}); err != nil {
		t.Fatal(err)
	}
	if err := l.A.CreateGuest(ctx, vblab.Guest{Name: "mig"}); err != nil {
		t.Fatal(err)
	}
	p := netip.MustParsePrefix("192.0.2.201/32")
	wantVia(ctx, t, l, p, "the check passes on hvA", l.A)
	mon, err := l.MonitorRoutes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Close()
	m, err := l.StartMigration(ctx, "mig", l.A, l.B, vblab.MigrateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	wantVia(ctx, t, l, p, "the migration to hvB", l.B)
	changes := 0
	for _, ev := range mon.Events() {
		if ev.Prefix != p {
			continue
		}
		changes++
		if ev.Deleted {
			t.Errorf("the route was deleted from a ToR's kernel table during the migration: %s", ev.Line)
		}
	}
	if changes == 0 {
		t.Error("no kernel route change seen during the migration")
	}
	// Neither host let health decide anything during the migration: the
	// source kept its switch-over route until the guest stopped there
	// (withdrawn as domain-gone, not for health), and the destination did
	// not hold back the arrived guest's route as starting.
	for _, h := range []*vblab.Host{l.A, l.B} {
		b, err := os.ReadFile(h.VirtbgpLogPath())
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "domain=mig") && (strings.Contains(line, "reason=health") || strings.Contains(line, "health_reason=starting")) {
				t.Errorf("%s: %s", h.Name, line)
			}
		}
	}
}

// wantVia waits until both ToRs have exactly one path for p, via each
// of hosts.
func wantVia(ctx context.Context, t *testing.T, l *vblab.Lab, p netip.Prefix, after string, hosts ...*vblab.Host) {
	t.Helper()
	var want []netip.Addr
	for _, h := range hosts {
		want = append(want, h.IPv4)
	}
	slices.SortFunc(want, netip.Addr.Compare)
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for _, r := range l.Routers() {
		err := vblab.Eventually(wctx, 100*time.Millisecond, func(ctx context.Context) error {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			rib, err := r.Routes(ctx)
			if err != nil {
				return err
			}
			got := rib.NextHops(p)
			slices.SortFunc(got, netip.Addr.Compare)
			if !slices.Equal(got, want) {
				return fmt.Errorf("%s: %s via %v, want via %v", r.Name(), p, got, want)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("after %s: %v", after, err)
		}
	}
}

// wantPaths waits until both ToRs have exactly one path for the anycast IP
// via each of hosts.
func wantPaths(ctx context.Context, t *testing.T, l *vblab.Lab, after string, hosts ...*vblab.Host) {
	t.Helper()
	wantVia(ctx, t, l, anycastIP, after, hosts...)
}
