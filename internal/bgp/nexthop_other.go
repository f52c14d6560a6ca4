//go:build !linux

package bgp

import (
	"errors"
	"net/netip"

	"github.com/virtbgp/virtbgp/internal/config"
)

// KernelNextHop is the NextHopFunc of the running host; outside Linux it
// finds no address.
func KernelNextHop(netip.Addr, config.Family) (netip.Addr, error) {
	return netip.Addr{}, errors.New("finding the interface facing a peer needs Linux")
}

func watchAddresses(<-chan struct{}, func()) error { return nil }
