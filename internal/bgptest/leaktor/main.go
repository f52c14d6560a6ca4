// Command leaktor is a ToR that leaks its table, for
// BenchmarkReceivedRoutesMemory (internal/bgp): an in-process GoBGP router
// (bgptest) in a process of its own, so that what it holds does not count
// in the memory of the speaker under test. It originates -routes IPv4 /32s
// (10.0.0.0 onwards), accepts a session from -neighbor (AS -neighbor-as)
// on -listen, prints "ready PORT" and runs until its standard input closes.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	packet "github.com/osrg/gobgp/v3/pkg/packet/bgp"

	"github.com/virtbgp/virtbgp/internal/bgptest"
)

func main() {
	listen := flag.String("listen", "127.0.0.1", "address to listen on")
	neighbor := flag.String("neighbor", "127.0.0.1", "the speaker's address")
	neighborAS := flag.Uint("neighbor-as", 65001, "the speaker's AS")
	routes := flag.Int("routes", 300000, "routes to originate")
	flag.Parse()
	if err := run(*listen, *neighbor, uint32(*neighborAS), *routes); err != nil {
		fmt.Fprintln(os.Stderr, "leaktor:", err)
		os.Exit(1)
	}
}

func run(listen, neighbor string, neighborAS uint32, n int) error {
	ctx := context.Background()
	nb, err := netip.ParseAddr(neighbor)
	if err != nil {
		return fmt.Errorf("neighbor: %w", err)
	}
	tor, err := bgptest.Start(ctx, bgptest.Config{ASN: 65000, RouterID: "10.0.0.1", Listen: []string{listen}})
	if err != nil {
		return err
	}
	defer tor.Stop()
	attrs := []packet.PathAttributeInterface{
		packet.NewPathAttributeOrigin(packet.BGP_ORIGIN_ATTR_TYPE_IGP),
		packet.NewPathAttributeNextHop(listen),
	}
	for j := range n {
		a := netip.AddrFrom4([4]byte{10, byte(j >> 16), byte(j >> 8), byte(j)})
		p, err := apiutil.NewPath(packet.NewIPAddrPrefix(32, a.String()), false, attrs, time.Now())
		if err == nil {
			_, err = tor.Server.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: p})
		}
		if err != nil {
			return fmt.Errorf("originate %s: %w", a, err)
		}
	}
	if err := tor.AddNeighbor(ctx, bgptest.Neighbor{Address: nb, ASN: neighborAS, Families: []string{"ipv4"}}); err != nil {
		return err
	}
	fmt.Printf("ready %d\n", tor.Port)
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}
