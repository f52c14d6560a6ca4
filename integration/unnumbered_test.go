package integration

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	vblab "github.com/virtbgp/virtbgp/integration/lab"
)

// TestUnnumberedFRR runs virtbgp on hvA with a BGP unnumbered peer
// ("interface: eth0") and FRR's `neighbor vA interface` (docs/tor:
// peer-group VIRTBGPLL). FRR learns hvA's link-local address from the
// router advertisements virtbgp sends, virtbgp FRR's from the kernel's
// neighbour table, and the session runs over the link-local addresses. It
// checks that FRR holds the guest's /32 and /128 via hvA's link-local
// address (the /32 with the IPv6 next hop of RFC 8950), with the community
// of its export policy, installed both in its kernel table via that
// address on vA, and that virtbgp's status shows the peer by interface
// with the routes FRR holds; then that a one-line edit of the peer's
// policy and a reload change the routes at FRR with no session reset.
func TestUnnumberedFRR(t *testing.T) {
	l := upLabWith(t, vblab.Options{FRRUnnumbered: true, OneSessionPerToR: true})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h := l.A

	mp := filepath.Join(t.TempDir(), "mapping.yaml")
	if err := os.WriteFile(mp, []byte(dualMapping), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := vblab.VirtbgpConfig{
		Mapping:   mp,
		PeerExtra: map[netip.Addr]string{vblab.FRRv4: `export: {communities: ["65011:77"]}`},
	}
	if err := h.StartVirtbgp(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	mon, err := l.MonitorRoutes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer mon.Close()

	// FRR's unnumbered session on vA comes up; its address is hvA's
	// link-local address.
	var ll netip.Addr
	err = vblab.Eventually(ctx, 100*time.Millisecond, func(ctx context.Context) error {
		ss, err := l.FRR.Sessions(ctx)
		if err != nil {
			return err
		}
		for _, s := range ss {
			if s.Interface == h.Link {
				if !s.Established {
					return fmt.Errorf("FRR's session on %s: %s (neighbor %v)", h.Link, s.State, s.Peer)
				}
				ll = s.Peer
				return nil
			}
		}
		return fmt.Errorf("FRR has no neighbor %s", h.Link)
	})
	if err != nil {
		t.Fatalf("%v; virtbgp log:\n%s", err, vblab.Tail(h.VirtbgpLogPath(), 30))
	}
	if !ll.IsLinkLocalUnicast() {
		t.Fatalf("FRR's unnumbered neighbor on %s is %v, want hvA's link-local address", h.Link, ll)
	}

	if err := h.DefineGuest(ctx, vblab.Guest{Name: "dual"}); err != nil {
		t.Fatal(err)
	}
	if err := h.StartGuest(ctx, "dual"); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	err = vblab.Eventually(wctx, 50*time.Millisecond, func(ctx context.Context) error {
		rib, err := l.FRR.Routes(ctx)
		if err != nil {
			return err
		}
		for _, pfx := range []netip.Prefix{dual4, dual6} {
			paths := rib.Paths(pfx)
			if len(paths) != 1 {
				return fmt.Errorf("%s: %d paths, want 1 via %s", pfx, len(paths), ll)
			}
			p := paths[0]
			if !p.Best || p.NextHop != ll || !slices.Equal(p.ASPath, []uint32{h.ASN}) || !slices.Equal(p.Communities, []uint32{65011<<16 | 77}) {
				return fmt.Errorf("path %s\nwant best, next hop %s, as-path [%d], communities [65011:77]", p, ll, h.ASN)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Usable next hops: zebra installed both routes via hvA's link-local
	// address on vA.
	for _, pfx := range []netip.Prefix{dual4, dual6} {
		if _, err := mon.Wait(wctx, 0, func(ev vblab.RouteEvent) bool {
			return ev.Prefix == pfx && ev.Table == l.FRR.Table() && ev.Proto == "bgp" && !ev.Deleted &&
				ev.Gateway == ll && ev.Dev == h.Link
		}); err != nil {
			t.Fatalf("frr: kernel table %d, %s via %s dev %s: %v; events:\n%s", l.FRR.Table(), pfx, ll, h.Link, err, eventLines(mon.Events()))
		}
	}

	// virtbgp's status: the FRR peer by interface, with its link-local
	// neighbour (FRR's address on vA), established, and the routes FRR
	// holds from it.
	out, err := exec.CommandContext(ctx, "ip", "-n", l.TorNS, "-6", "-o", "addr", "show", "dev", h.Link, "scope", "link").Output()
	if err != nil {
		t.Fatalf("FRR's link-local address on %s: %v", h.Link, err)
	}
	var torLL netip.Addr
	if f := strings.Fields(string(out)); len(f) >= 4 {
		if p, err := netip.ParsePrefix(f[3]); err == nil {
			torLL = p.Addr()
		}
	}
	frrBefore := frrStatsOf(ctx, t, l, h.Link)
	rep := virtbgpStatus(ctx, t, h)
	var found bool
	for _, p := range rep.Peers {
		if p.Interface != "eth0" {
			continue
		}
		found = true
		a, err := netip.ParseAddr(p.Address)
		want := map[string]int{"ipv4": 1, "ipv6": 1}
		if err != nil || a.WithZone("") != torLL || a.Zone() != "eth0" || p.State != "established" || p.Waiting != "" ||
			!maps.Equal(p.RoutesSentByFamily, want) || p.RoutesSent != 2 {
			t.Errorf("status of interface eth0: address %q, state %s, waiting %q, sent %d %v; want %s%%eth0, established, sent 2 %v",
				p.Address, p.State, p.Waiting, p.RoutesSent, p.RoutesSentByFamily, torLL, want)
		}
	}
	if !found {
		t.Errorf("status has no peer on interface eth0: %+v", rep.Peers)
	}

	// A one-line edit of the unnumbered peer's policy and a reload: the
	// session stays, FRR gets exactly the two changed routes.
	cfg.PeerExtra[vblab.FRRv4] = `export: {communities: ["65011:78"]}`
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
	err = vblab.Eventually(wctx, 50*time.Millisecond, func(ctx context.Context) error {
		rib, err := l.FRR.Routes(ctx)
		if err != nil {
			return err
		}
		for _, pfx := range []netip.Prefix{dual4, dual6} {
			if paths := rib.Paths(pfx); len(paths) != 1 || !slices.Equal(paths[0].Communities, []uint32{65011<<16 | 78}) {
				return fmt.Errorf("%s: %v, want one path with community 65011:78", pfx, paths)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	frrAfter := frrStatsOf(ctx, t, l, h.Link)
	if frrAfter.established != frrBefore.established {
		t.Errorf("the unnumbered session was reset: established %d times, before %d", frrAfter.established, frrBefore.established)
	}
	// GoBGP's soft reset out ends each family with an End-of-RIB: the two
	// changed routes and two markers, nothing else.
	if got := frrAfter.updates - frrBefore.updates; got != 4 {
		t.Errorf("FRR received %d UPDATEs for the edit, want 4 (its two changed routes, an End-of-RIB per family)", got)
	}
	// The UPDATEs virtbgp counts are the ones FRR received.
	for _, p := range virtbgpStatus(ctx, t, h).Peers {
		if p.Interface == "eth0" && p.UpdatesSent != frrAfter.updates {
			t.Errorf("status: %d UPDATEs sent to FRR, FRR received %d", p.UpdatesSent, frrAfter.updates)
		}
	}
}
