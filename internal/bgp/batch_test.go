package bgp_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/virtbgp/virtbgp/mapping"
)

// TestAnnounceAllWithdrawAll: a batch reaches the ToRs route by route with
// each route's attributes; a bad route fails alone; a prefix given twice
// ends with the last one; a batch withdraw removes exactly its prefixes,
// and the speaker's memory matches the ToR.
func TestAnnounceAllWithdrawAll(t *testing.T) {
	l := newLab(t)
	ctx := context.Background()
	const n = 300
	var rs []mapping.Route
	var want []string
	for i := range n {
		r := route(fmt.Sprintf("10.%d.%d.1/32", i/250, i%250))
		r.MED = u32(uint32(i))
		r.Communities = []uint32{65000<<16 | uint32(i)}
		rs = append(rs, r)
		want = append(want, r.Prefix.String())
	}
	// A next hop of the other family: this route fails, the others not.
	bad := route("10.200.0.1/32")
	bad.NextHop = netip.MustParseAddr("2001:db8::1")
	rs = append(rs[:100], append([]mapping.Route{bad}, rs[100:]...)...)
	// The same prefix again, later in the batch, with another MED.
	again := rs[0].Clone()
	again.MED = u32(7777)
	rs = append(rs, again)

	errs := l.sp.AnnounceAll(ctx, rs)
	if len(errs) != len(rs) {
		t.Fatalf("%d results for %d routes", len(errs), len(rs))
	}
	for i, err := range errs {
		if i == 100 {
			if err == nil || !strings.Contains(err.Error(), "other address family") {
				t.Errorf("bad route: %v, want an address family error", err)
			}
		} else if err != nil {
			t.Errorf("route %d (%s): %v", i, rs[i].Prefix, err)
		}
	}
	eventually(t, 10*time.Second, func() string { return hasPrefixes(t, l.tor1, famV4, want...) })
	tor := rib(t, l.tor1.Server, famV4)
	for i, r := range rs {
		if i == 100 {
			continue
		}
		med := r.MED
		if i == 0 {
			med = again.MED
		}
		if msg := checkPath(tor, r.Prefix.String(), tor1v4, "127.0.0.1", []uint32{localAS}, r.Communities, nil, med, nil); msg != "" {
			t.Error(msg)
		}
	}

	// Withdraw every other route, plus one never announced.
	var gone []mapping.Route
	var kept []string
	for i, r := range rs[:n] {
		if i == 100 {
			continue
		}
		if i%2 == 0 {
			gone = append(gone, r)
		} else {
			kept = append(kept, r.Prefix.String())
		}
	}
	gone = append(gone, route("192.0.2.99/32"))
	for i, err := range l.sp.WithdrawAll(ctx, gone) {
		if err != nil {
			t.Errorf("withdraw %s: %v", gone[i].Prefix, err)
		}
	}
	// rs[100] is the bad route, so rs[:n] skipped one announced route:
	kept = append(kept, rs[n].Prefix.String())
	eventually(t, 10*time.Second, func() string { return hasPrefixes(t, l.tor1, famV4, kept...) })
	if got := len(l.sp.Routes()); got != len(kept) {
		t.Errorf("Routes() has %d routes, want %d", got, len(kept))
	}
}
