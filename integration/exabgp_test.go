package integration

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	vblab "github.com/virtbgp/virtbgp/integration/lab"
)

// The benchmarks' reference speaker (issue 5): ExaBGP 4.2 in hvA's place,
// fed the classic announce and withdraw lines through its API process,
// reaches both ToRs with the attributes of the line, and withdraws.
func TestExaBGPReference(t *testing.T) {
	l := upLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e, err := l.A.StartExaBGP(ctx, vblab.ExaBGPConfig{Peers: []netip.Addr{vblab.BIRDv4, vblab.FRRv4}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := e.Stop(context.Background()); err != nil {
			t.Error(err)
		}
		if e.PID() != 0 {
			t.Errorf("exabgp %d still runs after Stop", e.PID())
		}
	}()

	pfx := netip.MustParsePrefix("192.0.2.90/32")
	line := vblab.AnnounceLine(pfx, 42, []string{"65000:7", "65000:999"})
	if want := "announce route 192.0.2.90/32 next-hop self med 42 community [65000:7 65000:999]"; line != want {
		t.Fatalf("line %q, want %q", line, want)
	}
	if err := e.Write(line); err != nil {
		t.Fatal(err)
	}
	err = l.WaitRIBs(ctx, 25*time.Millisecond, func(r vblab.Router, rib vblab.RIB) error {
		best, ok := rib.Best(pfx)
		switch {
		case !ok:
			return fmt.Errorf("no route for %s", pfx)
		case best.NextHop != l.A.IPv4:
			return vblab.Permanent(fmt.Errorf("%s via %s, want hvA %s", pfx, best.NextHop, l.A.IPv4))
		case best.MED == nil || *best.MED != 42:
			return vblab.Permanent(fmt.Errorf("%s: MED %v, want 42", pfx, best.MED))
		case !slices.Equal(best.Communities, []uint32{65000<<16 | 7, 65000<<16 | 999}):
			return vblab.Permanent(fmt.Errorf("%s: communities %v", pfx, best.Communities))
		case !slices.Equal(best.ASPath, []uint32{l.A.ASN}):
			return vblab.Permanent(fmt.Errorf("%s: AS path %v, want [%d]", pfx, best.ASPath, l.A.ASN))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("announce: %v", err)
	}

	if err := e.Write(vblab.WithdrawLine(pfx)); err != nil {
		t.Fatal(err)
	}
	err = l.WaitRIBs(ctx, 25*time.Millisecond, func(r vblab.Router, rib vblab.RIB) error {
		if ps := rib.Paths(pfx); len(ps) > 0 {
			return fmt.Errorf("%s still there: %v", pfx, ps)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("withdraw: %v", err)
	}
}
