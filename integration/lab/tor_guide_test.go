package lab_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/virtbgp/virtbgp/integration/lab"
)

// TestToRGuide runs the ToR configs of docs/tor (which the lab's BIRD and
// FRR use as they are) against ExaBGP speaking for both hypervisors, and
// checks that they do what docs/tor/README.md says: only /32s of the
// service pools get in, the ToRs export nothing, FRR spreads an anycast
// /32 over both hosts, the data-center timers win the negotiation, the
// limits and graceful-restart capabilities are there, and bgpd refused no
// line.
func TestToRGuide(t *testing.T) {
	log := labTestLog(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	l, err := lab.Up(ctx, lab.Options{NoVirtbgp: true, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := l.Down(context.Background()); err != nil {
			t.Error(err)
		}
	})
	if errs := l.FRR.ConfigErrors(); len(errs) > 0 {
		t.Errorf("bgpd refused lines of its config: %v", errs)
	}

	// ExaBGP proposes a hold time of 30 s; the ToRs' 9 s must win.
	both := []netip.Addr{lab.BIRDv4, lab.FRRv4}
	ea, err := l.A.StartExaBGP(ctx, lab.ExaBGPConfig{Peers: both, HoldTime: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ea.Stop(context.Background()) })
	eb, err := l.B.StartExaBGP(ctx, lab.ExaBGPConfig{Peers: both, HoldTime: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eb.Stop(context.Background()) })

	pfx := netip.MustParsePrefix
	accepted := []netip.Prefix{pfx("192.0.2.7/32"), pfx("10.1.2.3/32"), pfx("198.51.100.7/32")}
	rejected := []netip.Prefix{
		pfx("192.0.2.0/25"),    // in a pool, not a /32
		pfx("10.0.0.0/8"),      // a pool itself
		pfx("203.0.113.7/32"),  // a /32 outside the pools
		pfx("198.51.101.7/32"), // just past a pool
	}
	anycast := pfx("192.0.2.9/32")
	// The last line: once it is in, every line before it was processed.
	sentinel := pfx("192.0.2.254/32")
	var lines []string
	for _, p := range append(append(append([]netip.Prefix{}, rejected...), accepted...), anycast, sentinel) {
		lines = append(lines, lab.AnnounceLine(p, 10, nil))
	}
	if err := ea.Write(lines...); err != nil {
		t.Fatal(err)
	}
	if err := eb.Write(lab.AnnounceLine(anycast, 10, nil)); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	err = l.WaitRIBs(wctx, 100*time.Millisecond, func(r lab.Router, rib lab.RIB) error {
		for _, p := range append(accepted, sentinel) {
			if len(rib.Paths(p)) != 1 {
				return fmt.Errorf("%s: %d paths, want 1", p, len(rib.Paths(p)))
			}
		}
		if n := len(rib.Paths(anycast)); n != 2 {
			return fmt.Errorf("%s: %d paths, want 2 (one per host)", anycast, n)
		}
		for _, p := range rejected {
			if len(rib.Paths(p)) != 0 {
				return lab.Permanent(fmt.Errorf("%s got in: %v", p, rib.Paths(p)))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// Anycast: FRR installs both hosts as next hops (multipath-relax,
	// maximum-paths); BIRD's kernel protocol, the lab's own, installs its
	// best path only.
	err = lab.Eventually(wctx, 100*time.Millisecond, func(ctx context.Context) error {
		out, err := exec.CommandContext(ctx, "ip", "-n", l.TorNS, "-4", "route", "show", anycast.String(), "table", fmt.Sprint(lab.FRRTable)).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip route: %v: %s", err, out)
		}
		for _, h := range []*lab.Host{l.A, l.B} {
			if !strings.Contains(string(out), "nexthop via "+h.IPv4.String()+" ") {
				return fmt.Errorf("FRR's route for %s is not via both hosts: %s", anycast, out)
			}
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}

	for _, h := range []*lab.Host{l.A, l.B} {
		name := h.Name + "4"
		// BIRD: negotiated timers, limit, GR and LLGR, nothing exported.
		out, err := l.BIRD.Birdc(ctx, "show", "protocols", "all", name)
		if err != nil {
			t.Fatal(err)
		}
		for _, re := range []string{`Hold timer:\s+\S+/9\n`, `Keepalive timer:\s+\S+/3\n`,
			`Local capabilities(?s:.*)\n\s+Graceful restart\n(?s:.*)\n\s+Long-lived graceful restart\n(?s:.*)Neighbor capabilities`,
			`Input filter:\s+virtbgp_import4\n`, `Output filter:\s+REJECT\n`,
			`Import limit:\s+20000\n\s+Action:\s+block\n`, `Routes:\s+\d+ imported, 0 exported`} {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Errorf("bird %s: no %q in:\n%s", name, re, out)
			}
		}
		// FRR: the same, from its JSON.
		out, err = l.FRR.Vtysh(ctx, "show bgp neighbors "+h.IPv4.String()+" json")
		if err != nil {
			t.Fatal(err)
		}
		var nb map[string]struct {
			PeerGroup string `json:"peerGroup"`
			Hold      int    `json:"bgpTimerHoldTimeMsecs"`
			Keepalive int    `json:"bgpTimerKeepAliveIntervalMsecs"`
			Caps      struct {
				// FRR 8.4 names it gracefulRestart when both sides
				// advertise it, gracefulRestartCapability otherwise.
				GR    string `json:"gracefulRestart"`
				GROne string `json:"gracefulRestartCapability"`
				LLGR  string `json:"longLivedGracefulRestart"`
			} `json:"neighborCapabilities"`
			GR struct {
				Local string `json:"localGrMode"`
			} `json:"gracefulRestartInfo"`
			AF map[string]struct {
				In      string `json:"routeMapForIncomingAdvertisements"`
				Out     string `json:"routeMapForOutgoingAdvertisements"`
				Max     int    `json:"prefixAllowedMax"`
				MaxWarn bool   `json:"prefixAllowedMaxWarning"`
				Sent    int    `json:"sentPrefixCounter"`
			} `json:"addressFamilyInfo"`
		}
		if err := json.Unmarshal([]byte(out), &nb); err != nil {
			t.Fatalf("frr neighbor json: %v\n%s", err, out)
		}
		n := nb[h.IPv4.String()]
		af := n.AF["ipv4Unicast"]
		// ExaBGP announces no graceful restart: FRR advertises it
		// (helper) and LLGR.
		if n.PeerGroup != "VIRTBGP4" || n.Hold != 9000 || n.Keepalive != 3000 ||
			!strings.HasPrefix(n.Caps.GR+n.Caps.GROne, "advertised") || !strings.HasPrefix(n.Caps.LLGR, "advertised") ||
			!strings.HasPrefix(n.GR.Local, "Helper") ||
			af.In != "VB-IMPORT" || af.Out != "VB-EXPORT" || af.Max != 20000 || !af.MaxWarn || af.Sent != 0 {
			t.Errorf("frr neighbor %s: %+v", h.IPv4, n)
		}
	}
}
