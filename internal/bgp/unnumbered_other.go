//go:build !linux

package bgp

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"time"
)

// KernelLinkLocalNeighbor is the NeighborFunc of the running host; outside
// Linux it finds none.
func KernelLinkLocalNeighbor(string) (netip.Addr, error) {
	return netip.Addr{}, errors.New("BGP unnumbered needs Linux")
}

func watchNeighbors(<-chan struct{}, func(string) bool, func()) error { return nil }

func sendRouterAdvertisements(context.Context, string, time.Duration, *slog.Logger) {}
