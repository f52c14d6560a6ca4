package mapping_test

import (
	"errors"
	"net/netip"
	"reflect"
	"testing"

	"github.com/virtbgp/virtbgp/mapping"
)

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

func TestAllowValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		allow mapping.Allow
		want  []string
	}{{
		name: "nothing allowed is valid",
	}, {
		name: "pools, lengths and next hops",
		allow: mapping.Allow{
			Prefixes: prefixes("192.0.2.0/24", "10.1.0.0/16", "2001:db8::/32", "2001:db9::/48"),
			MinBits4: 28, MinBits6: 64, NextHops: prefixes("198.51.100.0/24"),
		},
	}, {
		name: "every problem",
		allow: mapping.Allow{
			Prefixes: append(prefixes(
				"0.0.0.0/0", "10.0.0.0/8", "192.0.2.1/24", "::/0", "2001:db8::/31",
				"127.0.0.0/16", "fe80::/32", "::ffff:0:0/96", "198.51.100.0/24", "198.51.100.0/24",
				"198.51.100.128/25", "203.0.113.0/24", "203.0.0.0/16"), netip.Prefix{}),
			MinBits4: 8, MinBits6: 129,
			NextHops: prefixes("0.0.0.0/0"),
		},
		want: []string{
			"Prefixes[0]: 0.0.0.0/0 is too broad: an allowed IPv4 prefix must be /16 or longer",
			"Prefixes[1]: 10.0.0.0/8 is too broad: an allowed IPv4 prefix must be /16 or longer",
			"Prefixes[2]: 192.0.2.1/24 has host bits set (the prefix is 192.0.2.0/24)",
			"Prefixes[3]: ::/0 is too broad: an allowed IPv6 prefix must be /32 or longer",
			"Prefixes[4]: 2001:db8::/31 is too broad: an allowed IPv6 prefix must be /32 or longer",
			"Prefixes[5]: 127.0.0.0/16 contains reserved addresses (loopback 127.0.0.0/8)",
			"Prefixes[6]: fe80::/32 contains reserved addresses (link-local fe80::/10)",
			"Prefixes[7]: ::ffff:0.0.0.0/96 contains reserved addresses (IPv4-mapped ::ffff:0.0.0.0/96)",
			"Prefixes[13]: not a valid prefix",
			"Prefixes[9]: 198.51.100.0/24 is listed twice (first at 8)",
			"Prefixes[10]: 198.51.100.128/25 lies inside 198.51.100.0/24 (at 8)",
			"Prefixes[12]: 203.0.0.0/16 holds 203.0.113.0/24 (at 11)",
			"NextHops[0]: 0.0.0.0/0 is too broad: an allowed IPv4 prefix must be /16 or longer",
			"MinBits4: want 0 (host routes only) or from 16 to 32, got 8",
			"MinBits6: want 0 (host routes only) or from 32 to 128, got 129",
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.allow.Validate()
			var got []string
			if err != nil {
				var list mapping.AllowErrorList
				if !errors.As(err, &list) {
					t.Fatalf("error %T is not an AllowErrorList", err)
				}
				for _, e := range list {
					got = append(got, e.Error())
				}
			}
			diffLines(t, got, tc.want)
		})
	}
}

func TestAllowFilter(t *testing.T) {
	route := func(p string, nh string) mapping.Route {
		r := mapping.Route{Prefix: netip.MustParsePrefix(p)}
		if nh != "" {
			r.NextHop = netip.MustParseAddr(nh)
		}
		return r
	}
	allow := mapping.Allow{
		Prefixes: append(prefixes("192.0.2.0/24", "2001:db8::/32"), netip.MustParsePrefix("10.0.0.0/8")),
		NextHops: prefixes("198.51.100.0/24"),
	}
	for _, tc := range []struct {
		name     string
		allow    mapping.Allow
		routes   []mapping.Route
		accepted []string
		refused  []string
	}{{
		name:     "host routes inside the pools",
		allow:    allow,
		routes:   []mapping.Route{route("192.0.2.1/32", ""), route("2001:db8::1/128", ""), route("192.0.2.2/32", "198.51.100.1")},
		accepted: []string{"192.0.2.1/32 next-hop self", "2001:db8::1/128 next-hop self", "192.0.2.2/32 next-hop 198.51.100.1"},
	}, {
		name:  "outside, too short, a pool that Validate refuses, a next hop",
		allow: allow,
		routes: []mapping.Route{
			route("192.0.2.1/32", ""), route("198.51.100.1/32", ""), route("192.0.2.0/28", ""),
			route("2001:db9::1/128", ""), route("10.1.2.3/32", ""), route("192.0.2.2/32", "203.0.113.1"),
			route("2001:db8::5/128", ""),
		},
		accepted: []string{"192.0.2.1/32 next-hop self", "2001:db8::5/128 next-hop self"},
		refused: []string{
			`domain "web-01": 198.51.100.1/32 refused: outside the prefixes allowed to this source`,
			`domain "web-01": 192.0.2.0/28 refused: a /28, and this source may claim host routes (/32) only`,
			`domain "web-01": 2001:db9::1/128 refused: outside the prefixes allowed to this source`,
			`domain "web-01": 10.1.2.3/32 refused: outside the prefixes allowed to this source`,
			`domain "web-01": 192.0.2.2/32 refused: next hop 203.0.113.1 is outside the next hops allowed to this source`,
		},
	}, {
		name:     "shorter prefixes when allowed; no next hops",
		allow:    mapping.Allow{Prefixes: prefixes("192.0.2.0/24", "2001:db8::/32"), MinBits4: 28, MinBits6: 64},
		routes:   []mapping.Route{route("192.0.2.0/28", ""), route("192.0.2.0/27", ""), route("2001:db8::/64", ""), route("192.0.2.1/32", "192.0.2.254"), route("192.0.2.0/24", "")},
		accepted: []string{"192.0.2.0/28 next-hop self", "2001:db8::/64 next-hop self"},
		refused: []string{
			`domain "web-01": 192.0.2.0/27 refused: a /27, and this source may claim /28 or longer only`,
			`domain "web-01": 192.0.2.1/32 refused: next hop 192.0.2.254: this source may not set a next hop (only self)`,
			`domain "web-01": 192.0.2.0/24 refused: a /24, and this source may claim /28 or longer only`,
		},
	}, {
		name:    "the zero Allow allows nothing",
		routes:  []mapping.Route{route("192.0.2.1/32", "")},
		refused: []string{`domain "web-01": 192.0.2.1/32 refused: outside the prefixes allowed to this source`},
	}, {
		name:  "a /0 pool allows nothing",
		allow: mapping.Allow{Prefixes: prefixes("0.0.0.0/0", "::/0")},
		routes: []mapping.Route{
			route("192.0.2.1/32", ""), route("2001:db8::1/128", ""),
		},
		refused: []string{
			`domain "web-01": 192.0.2.1/32 refused: outside the prefixes allowed to this source`,
			`domain "web-01": 2001:db8::1/128 refused: outside the prefixes allowed to this source`,
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			accepted, refused := tc.allow.Filter("web-01", tc.routes)
			var got, gotRefused []string
			for _, r := range accepted {
				got = append(got, r.String())
			}
			for _, r := range refused {
				gotRefused = append(gotRefused, r.String())
			}
			if !reflect.DeepEqual(got, tc.accepted) || !reflect.DeepEqual(gotRefused, tc.refused) {
				t.Errorf("accepted %q\nrefused %q\nwant %q\nrefused %q", got, gotRefused, tc.accepted, tc.refused)
			}
			if len(refused) == 0 && len(tc.routes) > 0 && &accepted[0] != &tc.routes[0] {
				t.Error("all accepted, but not the same slice")
			}
		})
	}
}
