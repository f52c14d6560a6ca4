//go:build linux

package bgp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/virtbgp/virtbgp/internal/config"
)

// KernelNextHop is the NextHopFunc of the running host: it asks the kernel
// for the route to peer, and returns the lowest usable global address of
// family fam on that route's interface (not tentative, deprecated or failed
// duplicate address detection). This is what BIRD and FRR use as the next
// hop of the other family in the same role.
func KernelNextHop(peer netip.Addr, fam config.Family) (netip.Addr, error) {
	routes, err := netlink.RouteGet(net.IP(peer.AsSlice()))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("look up the route to %s: %w", peer, err)
	}
	if len(routes) == 0 || routes[0].LinkIndex == 0 {
		return netip.Addr{}, fmt.Errorf("no route to %s", peer)
	}
	link, err := netlink.LinkByIndex(routes[0].LinkIndex)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("look up interface %d facing %s: %w", routes[0].LinkIndex, peer, err)
	}
	name := link.Attrs().Name
	nlFam := netlink.FAMILY_V4
	if fam == config.FamilyIPv6 {
		nlFam = netlink.FAMILY_V6
	}
	addrs, err := netlink.AddrList(link, nlFam)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("list the addresses of %s: %w", name, err)
	}
	var usable []netip.Addr
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || a.Scope != unix.RT_SCOPE_UNIVERSE {
			continue
		}
		ip = ip.Unmap()
		if a.Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DEPRECATED|unix.IFA_F_DADFAILED) != 0 || !ip.IsGlobalUnicast() {
			continue
		}
		usable = append(usable, ip)
	}
	if len(usable) == 0 {
		return netip.Addr{}, errors.New("interface " + name + " facing the peer has no usable global " + string(fam) + " address")
	}
	return slices.MinFunc(usable, netip.Addr.Compare), nil
}

// watchAddresses calls changed after every change of the host's global
// (universe scope) addresses, the only ones KernelNextHop uses, until done
// is closed: the link-local address each new VM interface gets re-plans
// nothing. It returns an error when it cannot subscribe.
func watchAddresses(done <-chan struct{}, changed func()) error {
	ch := make(chan netlink.AddrUpdate, 64)
	if err := netlink.AddrSubscribeWithOptions(ch, done, netlink.AddrSubscribeOptions{}); err != nil {
		return fmt.Errorf("subscribe to address changes: %w", err)
	}
	go func() {
		for u := range ch {
			if u.Scope == unix.RT_SCOPE_UNIVERSE {
				changed()
			}
		}
	}()
	return nil
}
