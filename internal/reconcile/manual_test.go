package reconcile

import (
	"net/netip"
	"testing"

	"github.com/virtbgp/virtbgp/mapping"
)

// TestResolveManual: a manual route is announced inside Trust.Manual; the
// mapping file's prefix, and one outside the pools, are not; a manual
// route wins over a metadata claim, which is refused.
func TestResolveManual(t *testing.T) {
	m := parseMapping(t, testMapping)
	tr := trust
	tr.Manual = mapping.Allow{Prefixes: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("192.0.2.0/24")}, MinBits4: 24}
	route := func(p string) mapping.Route { return mapping.Route{Prefix: netip.MustParsePrefix(p)} }
	meta := withClaims(dom("m1", uuidM1, StateRunning, "booted"), claim("198.51.100.7/32"), nil)
	tests := []struct {
		name     string
		manual   []mapping.Route
		domains  []Domain
		want     []string // prefixes wanted from SourceManual
		notWant  []string
		refusedM string // a refusal of m1's claim, if any
	}{
		{"inside the pools", []mapping.Route{route("198.51.100.1/32"), route("198.51.100.0/24")}, nil,
			[]string{"198.51.100.1/32", "198.51.100.0/24"}, nil, ""},
		{"the file's prefix", []mapping.Route{route("192.0.2.10/32")}, nil, nil, []string{"192.0.2.10/32"}, ""},
		{"outside the pools", []mapping.Route{route("203.0.113.1/32")}, nil, nil, []string{"203.0.113.1/32"}, ""},
		{"shorter than the minimum", []mapping.Route{route("198.51.100.0/23")}, nil, nil, []string{"198.51.100.0/23"}, ""},
		{"wins over metadata", []mapping.Route{route("198.51.100.7/32")}, []Domain{meta},
			[]string{"198.51.100.7/32"}, nil, reasonManual},
		{"none", nil, []Domain{meta}, nil, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Resolve(tt.domains, m, Policy{Trust: tr}, tt.manual, nil, nil, nil)
			for _, p := range tt.want {
				w, ok := res.Want[netip.MustParsePrefix(p)]
				if !ok || w.Source != SourceManual || w.Why != WhyManual {
					t.Errorf("%s: %+v, %t; want a manual route", p, w, ok)
				}
			}
			for _, p := range tt.notWant {
				if w, ok := res.Want[netip.MustParsePrefix(p)]; ok && w.Source == SourceManual {
					t.Errorf("%s announced as a manual route", p)
				}
			}
			refused := res.Domains[uuidM1].Refused
			switch {
			case tt.refusedM == "" && len(refused) > 0:
				t.Errorf("m1 refused %v", refused)
			case tt.refusedM != "" && (len(refused) != 1 || refused[0].Reason != tt.refusedM):
				t.Errorf("m1 refused %v, want %q", refused, tt.refusedM)
			}
			for p, w := range res.Want {
				if !permits(m, &Policy{Trust: tr}, w) {
					t.Errorf("%s wanted but not permitted", p)
				}
			}
		})
	}
}
