package bgp

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/virtbgp/virtbgp/mapping"
)

func TestNormalizeRoute(t *testing.T) {
	r, err := normalizeRoute(mapping.Route{
		Prefix:      netip.MustParsePrefix("198.51.100.21/28"),
		NextHop:     netip.MustParseAddr("0.0.0.0"),
		Communities: []uint32{3, 1, 3},
		MED:         new(uint32(7)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Prefix.String() != "198.51.100.16/28" || r.NextHop.IsValid() || !slices.Equal(r.Communities, []uint32{1, 3}) {
		t.Errorf("normalized: %v", r)
	}

	for _, bad := range []mapping.Route{
		{},
		{Prefix: netip.MustParsePrefix("198.51.100.1/32"), NextHop: netip.MustParseAddr("2001:db8::1")},
		{Prefix: netip.MustParsePrefix("198.51.100.1/32"), NextHop: netip.MustParseAddr("::ffff:192.0.2.1")},
		{Prefix: netip.MustParsePrefix("2001:db8::1/128"), NextHop: netip.MustParseAddr("192.0.2.1")},
		{Prefix: netip.MustParsePrefix("2001:db8::1/128"), NextHop: netip.MustParseAddr("fe80::1%eth0")},
	} {
		if _, err := normalizeRoute(bad); err == nil {
			t.Errorf("normalizeRoute(%v): no error", bad)
		}
	}
}
