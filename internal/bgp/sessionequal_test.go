package bgp

import (
	"net/netip"
	"testing"

	"github.com/virtbgp/virtbgp/internal/config"
)

// TestSessionEqual: what only the export policy or a warning uses changes
// no session; what GoBGP gets does.
func TestSessionEqual(t *testing.T) {
	base := config.Peer{Address: netip.MustParseAddr("192.0.2.1"), ASN: 65000,
		ReceiveLimit: 1000, ReceiveLimitAction: config.ReceiveWarn}
	tests := []struct {
		name string
		edit func(*config.Peer)
		same bool
	}{
		{"export", func(p *config.Peer) { p.Export.MED = new(uint32) }, true},
		{"next-hop-ipv6", func(p *config.Peer) { p.NextHopIPv6 = netip.MustParseAddr("2001:db8::1") }, true},
		{"receive-limit, warn", func(p *config.Peer) { p.ReceiveLimit = 50 }, true},
		{"receive-limit-action restart", func(p *config.Peer) { p.ReceiveLimitAction = config.ReceiveRestart }, false},
		{"asn", func(p *config.Peer) { p.ASN = 65001 }, false},
	}
	for _, tt := range tests {
		b := base
		tt.edit(&b)
		if got := sessionEqual(base, b); got != tt.same {
			t.Errorf("%s: sessionEqual = %v, want %v", tt.name, got, tt.same)
		}
	}
	restart := base
	restart.ReceiveLimitAction = config.ReceiveRestart
	lower := restart
	lower.ReceiveLimit = 50
	if sessionEqual(restart, lower) {
		t.Error("receive-limit with action restart: sessionEqual = true, want false (GoBGP's prefix limit changes)")
	}
}
