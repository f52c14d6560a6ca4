//go:build linux

package bgp

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv6"
)

// KernelLinkLocalNeighbor is the NeighborFunc of the running host. As
// GoBGP's neighbor-interface (GetIPv6LinkLocalNeighborAddress), it reads the
// kernel's IPv6 neighbour table of the interface and wants exactly one
// link-local neighbour that is not one of the interface's own addresses
// and whose entry is usable (not FAILED or INCOMPLETE). The router's
// advertisements or any packet from it create the entry.
func KernelLinkLocalNeighbor(ifname string) (netip.Addr, error) {
	link, err := netlink.LinkByName(ifname)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("interface %s: %w", ifname, err)
	}
	neighs, err := netlink.NeighList(link.Attrs().Index, netlink.FAMILY_V6)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("list the IPv6 neighbours of %s: %w", ifname, err)
	}
	own, err := netlink.AddrList(link, netlink.FAMILY_V6)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("list the addresses of %s: %w", ifname, err)
	}
	var found []netip.Addr
	for _, n := range neighs {
		a, ok := netip.AddrFromSlice(n.IP)
		if !ok || !a.IsLinkLocalUnicast() || n.State&(netlink.NUD_FAILED|netlink.NUD_INCOMPLETE) != 0 {
			continue
		}
		if slices.ContainsFunc(own, func(o netlink.Addr) bool { return o.IP.Equal(n.IP) }) {
			continue
		}
		if !slices.Contains(found, a) {
			found = append(found, a)
		}
	}
	switch len(found) {
	case 0:
		return netip.Addr{}, fmt.Errorf("no IPv6 link-local neighbour on %s yet (its router advertisements create one)", ifname)
	case 1:
		return found[0].WithZone(ifname), nil
	}
	slices.SortFunc(found, netip.Addr.Compare)
	return netip.Addr{}, fmt.Errorf("%d IPv6 link-local neighbours on %s (%v): BGP unnumbered needs a point-to-point link", len(found), ifname, found)
}

// watchNeighbors calls changed after every change of an IPv6 link-local
// neighbour on an interface for which mine returns true, until done is
// closed. It returns an error when it cannot subscribe.
func watchNeighbors(done <-chan struct{}, mine func(ifname string) bool, changed func()) error {
	ch := make(chan netlink.NeighUpdate, 64)
	if err := netlink.NeighSubscribe(ch, done); err != nil {
		return fmt.Errorf("subscribe to neighbour changes: %w", err)
	}
	go func() {
		for u := range ch {
			if u.Family != netlink.FAMILY_V6 || !u.IP.IsLinkLocalUnicast() {
				continue
			}
			// One link asked for (net.InterfaceByIndex lists them all).
			link, err := netlink.LinkByIndex(u.LinkIndex)
			if err != nil || !mine(link.Attrs().Name) {
				continue
			}
			changed()
		}
	}()
	return nil
}

// routerAdvertisement is the ICMPv6 router advertisement the speaker sends
// (RFC 4861 4.2): no hop limit, no flags, router lifetime 0 (this host is
// no default router), no reachable or retransmit time, and the source
// link-layer address option when mac is known.
func routerAdvertisement(mac net.HardwareAddr) ([]byte, error) {
	body := make([]byte, 12) // hop limit, flags, lifetime, reachable, retrans
	if len(mac) == 6 {
		body = append(body, 1, 1) // source link-layer address, 8 bytes
		body = append(body, mac...)
	}
	m := icmp.Message{Type: ipv6.ICMPTypeRouterAdvertisement, Body: &icmp.RawBody{Data: body}}
	// No pseudo header: the kernel computes the checksum of ICMPv6.
	b, err := m.Marshal(nil)
	if err != nil {
		return nil, fmt.Errorf("build a router advertisement: %w", err)
	}
	return b, nil
}

// sendRouterAdvertisements sends a router advertisement to all nodes
// (ff02::1) on interface ifname at once and then every interval, until ctx
// ends, so that the router at the other end of an unnumbered link learns
// this host's link-local address (FRR's bgpd does so for `neighbor IF
// interface`). Failures are logged once until a send works again.
func sendRouterAdvertisements(ctx context.Context, ifname string, interval time.Duration, log *slog.Logger) {
	var failing string
	fail := func(err error) {
		if err.Error() != failing {
			failing = err.Error()
			log.Warn("cannot send router advertisements", "interface", ifname, "error", err)
		}
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := sendRA(ifname); err != nil {
			fail(err)
		} else if failing != "" {
			failing = ""
			log.Info("sending router advertisements again", "interface", ifname)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sendRA sends one router advertisement on ifname.
func sendRA(ifname string) error {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return fmt.Errorf("interface %s: %w", ifname, err)
	}
	msg, err := routerAdvertisement(ifi.HardwareAddr)
	if err != nil {
		return err
	}
	c, err := icmp.ListenPacket("ip6:ipv6-icmp", "::")
	if err != nil {
		return fmt.Errorf("open an ICMPv6 socket: %w", err)
	}
	defer c.Close()
	pc := c.IPv6PacketConn()
	// RFC 4861 6.1.2: a receiver drops an advertisement whose hop limit is
	// not 255.
	if err := pc.SetMulticastHopLimit(255); err != nil {
		return fmt.Errorf("set the hop limit: %w", err)
	}
	if err := pc.SetMulticastInterface(ifi); err != nil {
		return fmt.Errorf("select interface %s: %w", ifname, err)
	}
	if err := pc.SetMulticastLoopback(false); err != nil {
		return fmt.Errorf("turn multicast loopback off: %w", err)
	}
	dst := &net.IPAddr{IP: net.IPv6linklocalallnodes, Zone: ifname}
	if _, err := c.WriteTo(msg, dst); err != nil {
		return fmt.Errorf("send to %s: %w", dst, err)
	}
	return nil
}
