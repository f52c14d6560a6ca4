package bgp_test

import (
	"context"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/virtbgp/virtbgp/internal/bgp"
	"github.com/virtbgp/virtbgp/internal/bgptest"
	"github.com/virtbgp/virtbgp/internal/config"
	"github.com/virtbgp/virtbgp/mapping"
)

// announceBenchRoutes is how many routes one BenchmarkAnnounce op announces.
const announceBenchRoutes = 10_000

// BenchmarkAnnounce measures Speaker.Announce: one op announces
// announceBenchRoutes IPv4 /32 routes (with MED, communities incl. a
// well-known one, a large community and one prepend) on a started speaker,
//   - peer: with one established eBGP in-process peer (a bgptest ToR,
//     ipv4-unicast), to which GoBGP sends the UPDATEs in its own goroutines,
//     concurrently with the loop;
//   - nopeer: with no peer at all (the speaker and GoBGP's RIB only).
//
// Every op changes the MED, so that every Announce replaces the route
// (AddPath) instead of being skipped as unchanged.
// benchRoutes returns announceBenchRoutes routes, the i-th for the /32
// 10.0.0.0 + i, built by route.
func benchRoutes(route func(i int, p netip.Prefix) mapping.Route) []mapping.Route {
	routes := make([]mapping.Route, announceBenchRoutes)
	base := netip.MustParseAddr("10.0.0.0").As4()
	for i := range routes {
		a := base
		a[1], a[2], a[3] = byte(i>>16), byte(i>>8), byte(i)
		routes[i] = route(i, netip.PrefixFrom(netip.AddrFrom4(a), 32))
	}
	return routes
}

func BenchmarkAnnounce(b *testing.B) {
	b.Run("peer", func(b *testing.B) { benchmarkAnnounce(b, true) })
	b.Run("nopeer", func(b *testing.B) { benchmarkAnnounce(b, false) })
}

func benchmarkAnnounce(b *testing.B, withPeer bool) {
	log := slog.New(slog.DiscardHandler)
	cfg := config.BGP{ASN: localAS, RouterID: addr(routerID)}
	if withPeer {
		tor := bgptest.MustStart(b, bgptest.Config{ASN: torAS, RouterID: "10.0.0.1", Listen: []string{tor1v4}, Log: log},
			bgptest.Neighbor{Address: addr(tor1v4), ASN: localAS, Families: []string{famV4}})
		cfg.Peers = []config.Peer{{Address: addr(tor1v4), Port: tor.Port, ASN: torAS,
			HoldTime: 9 * time.Second, Keepalive: 3 * time.Second, Families: []config.Family{config.FamilyIPv4}}}
	}
	sp := startSpeaker(b, cfg, log, bgp.StartOptions{})
	if withPeer {
		waitEstablished(b, sp)
	}

	routes := benchRoutes(func(i int, p netip.Prefix) mapping.Route {
		return mapping.Route{
			Prefix:           p,
			Communities:      []uint32{65001<<16 | 100, mapping.CommunityNoExport},
			LargeCommunities: []mapping.LargeCommunity{{GlobalAdmin: 65001, LocalData1: 1, LocalData2: uint32(i)}},
			ASPathPrepend:    1,
		}
	})
	ctx := context.Background()
	var med uint32
	b.ReportAllocs()
	for b.Loop() {
		med++
		for i := range routes {
			routes[i].MED = &med
			if err := sp.Announce(ctx, routes[i]); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*announceBenchRoutes), "ns/route")
}

// BenchmarkBuildPath measures building the API path of one route with every
// attribute.
func BenchmarkBuildPath(b *testing.B) {
	r := mapping.Route{
		Prefix:           netip.MustParsePrefix("198.51.100.10/32"),
		Communities:      []uint32{65001<<16 | 100, mapping.CommunityNoExport},
		LargeCommunities: []mapping.LargeCommunity{{GlobalAdmin: 65001, LocalData1: 1, LocalData2: 2}},
		MED:              u32(10),
		LocalPref:        u32(200),
		ASPathPrepend:    2,
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := bgp.BuildPath(r, localAS); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWithdraw measures Speaker.Withdraw: one op withdraws
// announceBenchRoutes IPv4 /32 routes from a started speaker without peers
// (the routes are announced again, untimed, before each op).
func BenchmarkWithdraw(b *testing.B) {
	log := slog.New(slog.DiscardHandler)
	sp := startSpeaker(b, config.BGP{ASN: localAS, RouterID: addr(routerID)}, log, bgp.StartOptions{})
	routes := benchRoutes(func(_ int, p netip.Prefix) mapping.Route {
		return mapping.Route{Prefix: p, Communities: []uint32{65001<<16 | 100}, MED: u32(10)}
	})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		for _, r := range routes {
			if err := sp.Announce(ctx, r); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		for _, r := range routes {
			if err := sp.Withdraw(ctx, r.Prefix); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*announceBenchRoutes), "ns/route")
}
