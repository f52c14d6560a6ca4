package bgp_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	packet "github.com/osrg/gobgp/v3/pkg/packet/bgp"

	"github.com/virtbgp/virtbgp/internal/bgp"
	"github.com/virtbgp/virtbgp/internal/bgptest"
	"github.com/virtbgp/virtbgp/internal/config"
)

// announceMany originates n IPv4 /32s (10.0.0.0 onwards) on the ToR.
func announceMany(tb testing.TB, tor *bgptest.ToR, n int) {
	tb.Helper()
	attrs := []packet.PathAttributeInterface{
		packet.NewPathAttributeOrigin(packet.BGP_ORIGIN_ATTR_TYPE_IGP),
		packet.NewPathAttributeNextHop("127.0.0.1"),
	}
	for j := range n {
		a := netip.AddrFrom4([4]byte{10, byte(j >> 16), byte(j >> 8), byte(j)})
		p, err := apiutil.NewPath(packet.NewIPAddrPrefix(32, a.String()), false, attrs, time.Now())
		if err == nil {
			_, err = tor.Server.AddPath(context.Background(), &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: p})
		}
		if err != nil {
			tb.Fatal(err)
		}
	}
}

// heapInUse is the live heap after two collections.
func heapInUse() uint64 {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse
}

// BenchmarkReceivedRoutesMemory: what the routes a ToR sends cost the
// speaker, which imports none of them (issue 17, finding 10): the live
// heap with the ToR's routes in its own RIB, before and after a session
// that carries them to the speaker, per route. b.N is ignored: each run is
// one session with VIRTBGP_RECEIVED_ROUTES routes (default 300000), with
// receive-limit 1000 and its action warn (the default: the routes are kept)
// or restart (the session ends at the limit, the routes are dropped).
//
//	go test -run '^$' -bench ReceivedRoutesMemory -benchtime 1x ./internal/bgp/
func BenchmarkReceivedRoutesMemory(b *testing.B) {
	n := 300000
	if s := os.Getenv("VIRTBGP_RECEIVED_ROUTES"); s != "" {
		if _, err := fmt.Sscan(s, &n); err != nil {
			b.Fatal(err)
		}
	}
	for _, action := range []config.ReceiveAction{config.ReceiveWarn, config.ReceiveRestart} {
		b.Run(string(action), func(b *testing.B) {
			for b.Loop() {
				receivedMemory(b, n, action)
			}
		})
	}
}

func receivedMemory(b *testing.B, n int, action config.ReceiveAction) {
	log, _ := newTestLog(b)
	tor := bgptest.MustStart(b, bgptest.Config{ASN: torAS, RouterID: "10.0.0.1", Listen: []string{tor1v4}, Log: log})
	announceMany(b, tor, n)
	sp := startSpeaker(b, config.BGP{ASN: localAS, RouterID: addr(routerID), Peers: []config.Peer{{
		Address: addr(tor1v4), Port: tor.Port, ASN: torAS, HoldTime: 9 * time.Second, Keepalive: 3 * time.Second,
		Families: []config.Family{config.FamilyIPv4}, ReceiveLimit: 1000, ReceiveLimitAction: action,
	}}}, log, bgp.StartOptions{})
	before := heapInUse()
	ctx := context.Background()
	if err := tor.AddNeighbor(ctx, bgptest.Neighbor{Address: addr(tor1v4), ASN: localAS, Families: []string{famV4}}); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	eventually(b, 5*time.Minute, func() string {
		ps, err := sp.Peers(ctx)
		if err != nil {
			return err.Error()
		}
		switch {
		case action == config.ReceiveWarn && ps[0].RoutesReceived != uint64(n):
			return fmt.Sprintf("%s: %d routes received, want %d", ps[0].State, ps[0].RoutesReceived, n)
		case action == config.ReceiveRestart && !strings.Contains(ps[0].LastDownReason, "maximum number of prefixes"):
			return fmt.Sprintf("%s: %d routes received, last down %q", ps[0].State, ps[0].RoutesReceived, ps[0].LastDownReason)
		}
		return ""
	})
	took := time.Since(start)
	after := heapInUse()
	delta := float64(int64(after) - int64(before))
	b.ReportMetric(delta/float64(n), "B/route")
	b.ReportMetric(delta/(1<<20), "MiB")
	b.Logf("%s: %d routes sent, %s: live heap %d -> %d MiB (%+.1f MiB, %.0f B/route)",
		action, n, took.Round(time.Millisecond), before>>20, after>>20, delta/(1<<20), delta/float64(n))
}
