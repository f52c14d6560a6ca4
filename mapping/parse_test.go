package mapping_test

import (
	"net/netip"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/virtbgp/virtbgp/mapping"
)

func TestLoadExample(t *testing.T) {
	path := filepath.Join("..", "examples", "mapping.yaml")
	m, err := mapping.Load(path)
	if err != nil {
		t.Fatalf("Load(%s):\n%v", path, err)
	}
	want := map[string][]string{
		"test": {
			"192.0.2.10/32 next-hop self med 10 community [65001:100] large-community [65001:1:2]",
			"192.0.2.11/32 next-hop self med 50 community [65001:100 no-export] large-community [65001:1:2]",
			"2001:db8::10/128 next-hop self med 10 community [65001:100] large-community [65001:1:2]",
		},
		"web-01": {
			"198.51.100.20/32 next-hop self med 10 local-pref 200 prepend 1 community [65001:100]",
			"2001:db8:1::20/128 next-hop self med 10 local-pref 200 prepend 1 community [65001:100]",
		},
	}
	if got := routeStrings(m); !reflect.DeepEqual(got, want) {
		t.Errorf("routes:\n got %q\nwant %q", got, want)
	}
	vms := m.VMs()
	if len(vms) != 2 || vms[1].UUID != "6695eb01-f6a4-8304-79aa-97f2502e193f" || vms[1].Line != 15 || vms[1].File != path {
		t.Errorf("VMs() = %+v", vms)
	}
	if n, r := m.Stats(); n != 2 || r != 5 {
		t.Errorf("Stats() = %d, %d, want 2, 5", n, r)
	}
	if got := m.Sources(); !slices.Equal(got, []string{path}) {
		t.Errorf("Sources() = %q", got)
	}
}

func TestParseResolvesAttributes(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  []byte
		want map[string][]string
	}{{
		name: "precedence and community union",
		src: doc(
			"version: 1",
			"defaults:",
			"  communities: [\"65001:100\"]",
			"  large-communities: [\"65001:1:2\"]",
			"  med: 10",
			"  local-pref: 200",
			"  as-path-prepend: 1",
			"  next-hop: self",
			"vms:",
			"  web-01:",
			"    med: 20",
			"    communities: [\"65001:200\", no-export]",
			"    next-hop: 192.0.2.1",
			"    ips:",
			"      - 192.0.2.10",
			"      - prefix: 192.0.2.11",
			"        med: 50",
			"        as-path-prepend: 0",
			"        next-hop: self",
			"        communities: [\"65001:100\"]", // already there: no duplicate
			"        large-communities: [\"65001:1:1\"]",
			"  web-02:",
			"    ips: [2001:db8::1]",
		),
		want: map[string][]string{
			"web-01": {
				"192.0.2.10/32 next-hop 192.0.2.1 med 20 local-pref 200 prepend 1 community [65001:100 65001:200 no-export] large-community [65001:1:2]",
				"192.0.2.11/32 next-hop self med 50 local-pref 200 community [65001:100 65001:200 no-export] large-community [65001:1:1 65001:1:2]",
			},
			"web-02": {
				"2001:db8::1/128 next-hop self med 10 local-pref 200 prepend 1 community [65001:100] large-community [65001:1:2]",
			},
		},
	}, {
		name: "host routes and prefixes, sorted",
		src: doc(
			"version: 1",
			"vms:",
			"  web-01:",
			"    ips:",
			"      - 2001:db8:1::/64",
			"      - 2001:DB8::10",
			"      - 192.0.2.64/28",
			"      - 192.0.2.10",
			"      - 198.51.100.7/32",
			"      - prefix: 203.0.113.0/24",
		),
		want: map[string][]string{
			"web-01": {
				"192.0.2.10/32 next-hop self",
				"192.0.2.64/28 next-hop self",
				"198.51.100.7/32 next-hop self",
				"203.0.113.0/24 next-hop self",
				"2001:db8::10/128 next-hop self",
				"2001:db8:1::/64 next-hop self",
			},
		},
	}, {
		name: "next-hop per family",
		src: doc(
			"version: 1",
			"vms:",
			"  v4:",
			"    next-hop: 192.0.2.1",
			"    ips: [192.0.2.10, {prefix: 2001:db8::10, next-hop: 2001:db8::1}, {prefix: 2001:db8::11, next-hop: self}]",
			"  v6:",
			"    ips:",
			"      - prefix: 2001:db8::20",
			"        next-hop: 2001:db8::2",
		),
		want: map[string][]string{
			"v4": {
				"192.0.2.10/32 next-hop 192.0.2.1",
				"2001:db8::10/128 next-hop 2001:db8::1",
				"2001:db8::11/128 next-hop self",
			},
			"v6": {"2001:db8::20/128 next-hop 2001:db8::2"},
		},
	}, {
		name: "well-known communities, numbers, sorted and unique",
		src: doc(
			"version: 1",
			"vms:",
			"  web-01:",
			"    communities: [no-advertise, blackhole, \"65535:666\", graceful-shutdown, no-export, \"0:0\", \"65535:65535\"]",
			"    large-communities: [\"4294967295:4294967295:4294967295\", \"0:0:0\", \"1:2:3\", \"1:2:3\"]",
			"    med: 0",
			"    local-pref: 4294967295",
			"    as-path-prepend: 16",
			"    ips: [192.0.2.1]",
		),
		want: map[string][]string{
			"web-01": {
				"192.0.2.1/32 next-hop self med 0 local-pref 4294967295 prepend 16 community [0:0 graceful-shutdown blackhole no-export no-advertise 65535:65535] " +
					"large-community [0:0:0 1:2:3 4294967295:4294967295:4294967295]",
			},
		},
	}, {
		name: "defaults apply whatever the key order",
		src: doc(
			"vms:",
			"  web-01:",
			"    ips: [192.0.2.1]",
			"    med: 7",
			"defaults:",
			"  communities: [\"65001:1\"]",
			"  med: 5",
			"version: 1",
		),
		want: map[string][]string{
			"web-01": {"192.0.2.1/32 next-hop self med 7 community [65001:1]"},
		},
	}, {
		name: "empty lists add nothing",
		src: doc(
			"version: 1",
			"defaults: {communities: [\"65001:1\"], large-communities: []}",
			"vms:",
			"  web-01: {communities: [], ips: [{prefix: 192.0.2.1, communities: []}]}",
		),
		want: map[string][]string{
			"web-01": {"192.0.2.1/32 next-hop self community [65001:1]"},
		},
	}, {
		name: "keys that are not names",
		src: doc(
			"version: 1",
			"vms:",
			"  123: {ips: [192.0.2.1]}",
			"  \"with space\": {ips: [192.0.2.2]}",
			"  6695EB01-F6A4-8304-79AA-97F2502E193F: {ips: [192.0.2.3]}",
		),
		want: map[string][]string{
			"123":                                  {"192.0.2.1/32 next-hop self"},
			"with space":                           {"192.0.2.2/32 next-hop self"},
			"6695eb01-f6a4-8304-79aa-97f2502e193f": {"192.0.2.3/32 next-hop self"},
		},
	}, {
		name: "routes in netip.Prefix.Compare order",
		src: doc(
			"version: 1",
			"vms:",
			"  a: {ips: [2001:db8:1::1, 198.51.100.1, 192.0.2.64/28, 2001:db8::/48, 192.0.2.10]}",
		),
		want: map[string][]string{
			"a": {
				"192.0.2.10/32 next-hop self",
				"192.0.2.64/28 next-hop self",
				"198.51.100.1/32 next-hop self",
				"2001:db8::/48 next-hop self",
				"2001:db8:1::1/128 next-hop self",
			},
		},
	}, {
		name: "no VMs",
		src:  doc("version: 1", "vms: {}"),
		want: map[string][]string{},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			m := mustParse(t, tc.src)
			if got := routeStrings(m); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("routes:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// TestParseRouteValues checks resolved routes field by field, beyond what
// Route.String shows.
func TestParseRouteValues(t *testing.T) {
	m := mustParse(t, doc(
		"version: 1",
		"defaults: {med: 10, communities: [\"65001:1\"]}",
		"vms:",
		"  a: {ips: [192.0.2.1, 192.0.2.2]}",
		"  b: {local-pref: 5, ips: [192.0.2.3]}",
	))
	u32 := func(v uint32) *uint32 { return &v }
	want := map[string][]mapping.Route{
		"a": {
			{Prefix: netip.MustParsePrefix("192.0.2.1/32"), Communities: []uint32{65001<<16 | 1}, MED: u32(10)},
			{Prefix: netip.MustParsePrefix("192.0.2.2/32"), Communities: []uint32{65001<<16 | 1}, MED: u32(10)},
		},
		"b": {
			{Prefix: netip.MustParsePrefix("192.0.2.3/32"), Communities: []uint32{65001<<16 | 1}, MED: u32(10), LocalPref: u32(5)},
		},
	}
	for _, v := range m.VMs() {
		if !slices.EqualFunc(v.Routes, want[v.Key], mapping.Route.Equal) {
			t.Errorf("vm %s: routes %v, want %v", v.Key, v.Routes, want[v.Key])
		}
		if v.UUID != "" {
			t.Errorf("vm %s: UUID %q, want none", v.Key, v.UUID)
		}
		for _, r := range v.Routes {
			if r.NextHop.IsValid() || r.LargeCommunities != nil {
				t.Errorf("vm %s: %#v: want next-hop self and no large communities", v.Key, r)
			}
			if cap(r.Communities) != len(r.Communities) {
				t.Errorf("vm %s: communities %v have room to append into a shared array", v.Key, r.Communities)
			}
		}
		if cap(v.Routes) != len(v.Routes) {
			t.Errorf("vm %s: routes have room to append into a shared array", v.Key)
		}
	}
}

func TestParseProblems(t *testing.T) {
	for _, tc := range []struct {
		name string
		src  []byte
		want []string
	}{{
		name: "empty file",
		src:  nil,
		want: []string{`m.yaml:1: the file is empty (want at least "version: 1" and "vms")`},
	}, {
		name: "comments only",
		src:  doc("# nothing", "  # here"),
		want: []string{`m.yaml:1: the file is empty (want at least "version: 1" and "vms")`},
	}, {
		name: "empty document",
		src:  doc("---"),
		want: []string{`m.yaml:1: the file is empty (want at least "version: 1" and "vms")`},
	}, {
		name: "null document",
		src:  doc("~"),
		want: []string{`m.yaml:1: the file is empty (want at least "version: 1" and "vms")`},
	}, {
		name: "not a mapping",
		src:  doc("- version: 1"),
		want: []string{`m.yaml:1: top level: want a mapping, got a list`},
	}, {
		name: "missing version and vms",
		src:  doc("defaults: {med: 1}"),
		want: []string{
			`m.yaml:1: missing "version" (want "version: 1")`,
			`m.yaml:1: missing "vms" (the VMs and their IPs)`,
		},
	}, {
		name: "unsupported versions",
		src:  doc("version: 2", "vms: {}"),
		want: []string{`m.yaml:1: version: unsupported version 2 (this virtbgp reads version 1)`},
	}, {
		name: "version as a string",
		src:  doc("vms: {}", "version: \"1\""),
		want: []string{`m.yaml:2: version: unsupported version "1" (this virtbgp reads version 1)`},
	}, {
		name: "vms null",
		src:  doc("version: 1", "vms:"),
		want: []string{`m.yaml:2: vms: want a mapping, got null`},
	}, {
		name: "unknown keys at every level",
		src: doc(
			"version: 1",
			"defualts: {}",
			"defaults:",
			"  metric: 1",
			"vms:",
			"  web-01:",
			"    ip: [192.0.2.1]",
			"    ips:",
			"      - prefix: 192.0.2.2",
			"        nexthop: self",
		),
		want: []string{
			`m.yaml:2: top level: unknown key "defualts" (allowed: version, defaults, vms)`,
			`m.yaml:4: defaults: unknown key "metric" (allowed: communities, large-communities, med, local-pref, as-path-prepend, next-hop, health)`,
			`m.yaml:7: vm "web-01": unknown key "ip" (allowed: uuid, communities, large-communities, med, local-pref, as-path-prepend, next-hop, ips, health)`,
			`m.yaml:10: vm "web-01" ips[0]: unknown key "nexthop" (allowed: prefix, communities, large-communities, med, local-pref, as-path-prepend, next-hop, health, anycast)`,
		},
	}, {
		name: "wrong types",
		src: doc(
			"version: 1",
			"defaults: [med]",
			"vms:",
			"  a:",
			"    med: ten",
			"    communities: \"65001:1\"",
			"    large-communities: [[1]]",
			"    uuid: [x]",
			"    next-hop: 5",
			"    as-path-prepend: 1.5",
			"    ips: 192.0.2.1",
			"  b: [192.0.2.2]",
			"  c:",
			"    ips:",
			"      - [192.0.2.3]",
			"      - prefix: [192.0.2.4]",
			"      - prefix: 192.0.2.5",
			"        local-pref: yes",
		),
		want: []string{
			`m.yaml:2: defaults: want a mapping, got a list`,
			`m.yaml:5: vm "a": med: want an integer from 0 to 4294967295, got "ten"`,
			`m.yaml:6: vm "a": communities: want a list, got "65001:1"`,
			`m.yaml:7: vm "a": large-communities: want a string, got a list`,
			`m.yaml:8: vm "a": uuid: want a string, got a list`,
			`m.yaml:9: vm "a": next-hop: want "self" or an IP address, got "5"`,
			`m.yaml:10: vm "a": as-path-prepend: want an integer from 0 to 16, got 1.5`,
			`m.yaml:11: vm "a": ips: want a list, got "192.0.2.1"`,
			`m.yaml:12: vm "b": want a mapping, got a list`,
			`m.yaml:15: vm "c": ips: want an IP address, a prefix, or a mapping with "prefix", got a list`,
			`m.yaml:16: vm "c" ips[1]: prefix: want a string, got a list`,
			`m.yaml:18: vm "c" ips[2]: local-pref: want an integer from 0 to 4294967295, got "yes"`,
		},
	}, {
		name: "out of range numbers",
		src: doc(
			"version: 1",
			"vms:",
			"  a:",
			"    med: 4294967296",
			"    local-pref: -1",
			"    as-path-prepend: 17",
			"    communities: [\"65536:0\", \"0:65536\", \"-1:0\", \"1\", \"no_export\", \"\"]",
			"    large-communities: [\"4294967296:0:0\", \"1:2\", \"1:2:3:4\"]",
			"    ips: [192.0.2.1]",
		),
		want: []string{
			`m.yaml:4: vm "a": med: want an integer from 0 to 4294967295, got 4294967296`,
			`m.yaml:5: vm "a": local-pref: want an integer from 0 to 4294967295, got -1`,
			`m.yaml:6: vm "a": as-path-prepend: want an integer from 0 to 16, got 17`,
			`m.yaml:7: vm "a": communities: invalid community "65536:0" (want ASN:value, each from 0 to 65535, or no-export, no-advertise, blackhole, graceful-shutdown)`,
			`m.yaml:7: vm "a": communities: invalid community "0:65536" (want ASN:value, each from 0 to 65535, or no-export, no-advertise, blackhole, graceful-shutdown)`,
			`m.yaml:7: vm "a": communities: invalid community "-1:0" (want ASN:value, each from 0 to 65535, or no-export, no-advertise, blackhole, graceful-shutdown)`,
			`m.yaml:7: vm "a": communities: invalid community "1" (want ASN:value, each from 0 to 65535, or no-export, no-advertise, blackhole, graceful-shutdown)`,
			`m.yaml:7: vm "a": communities: invalid community "no_export" (want ASN:value, each from 0 to 65535, or no-export, no-advertise, blackhole, graceful-shutdown)`,
			`m.yaml:7: vm "a": communities: invalid community "" (want ASN:value, each from 0 to 65535, or no-export, no-advertise, blackhole, graceful-shutdown)`,
			`m.yaml:8: vm "a": large-communities: invalid large community "4294967296:0:0" (want GA:LD1:LD2, each from 0 to 4294967295)`,
			`m.yaml:8: vm "a": large-communities: invalid large community "1:2" (want GA:LD1:LD2, each from 0 to 4294967295)`,
			`m.yaml:8: vm "a": large-communities: invalid large community "1:2:3:4" (want GA:LD1:LD2, each from 0 to 4294967295)`,
		},
	}, {
		name: "invalid and reserved addresses",
		src: doc(
			"version: 1",
			"vms:",
			"  a:",
			"    ips:",
			"      - 192.0.2.300",          // 5
			"      - 2001:db8::g",          // 6
			"      - 192.0.2.1/33",         // 7
			"      - 192.0.2.65/28",        // 8
			"      - 2001:db8::1/64",       // 9
			"      - 0.0.0.0",              // 10
			"      - \"::\"",               // 11
			"      - 127.0.0.1",            // 12
			"      - ::1",                  // 13
			"      - 224.0.0.5",            // 14
			"      - ff02::1",              // 15
			"      - 169.254.1.1",          // 16
			"      - fe80::1",              // 17
			"      - 255.255.255.255",      // 18
			"      - ::ffff:192.0.2.1",     // 19
			"      - fe80::1%eth0",         // 20
			"      - 0.0.0.0/0",            // 21
			"      - 192.0.0.0/2",          // 22
			"      - ::/0",                 // 23
			"      - 10",                   // 24
			"      - ~",                    // 25
			"      - \"\"",                 // 26
			"      - 2001:db8::%1/128",     // 27
			"      - ::ffff:192.0.2.0/120", // 28
		),
		want: []string{
			`m.yaml:5: vm "a": invalid IP address "192.0.2.300"`,
			`m.yaml:6: vm "a": invalid IP address "2001:db8::g"`,
			`m.yaml:7: vm "a": invalid IP prefix "192.0.2.1/33"`,
			`m.yaml:8: vm "a": 192.0.2.65/28 has host bits set (the prefix is 192.0.2.64/28)`,
			`m.yaml:9: vm "a": 2001:db8::1/64 has host bits set (the prefix is 2001:db8::/64)`,
			`m.yaml:10: vm "a": 0.0.0.0 is a reserved address (unspecified)`,
			`m.yaml:11: vm "a": :: is a reserved address (unspecified)`,
			`m.yaml:12: vm "a": 127.0.0.1 is a reserved address (loopback)`,
			`m.yaml:13: vm "a": ::1 is a reserved address (loopback)`,
			`m.yaml:14: vm "a": 224.0.0.5 is a reserved address (multicast)`,
			`m.yaml:15: vm "a": ff02::1 is a reserved address (multicast)`,
			`m.yaml:16: vm "a": 169.254.1.1 is a reserved address (link-local)`,
			`m.yaml:17: vm "a": fe80::1 is a reserved address (link-local)`,
			`m.yaml:18: vm "a": 255.255.255.255 is a reserved address (limited broadcast)`,
			`m.yaml:19: vm "a": ::ffff:192.0.2.1 is a reserved address (IPv4-mapped)`,
			`m.yaml:20: vm "a": fe80::1%eth0: IPv6 zones are not allowed`,
			`m.yaml:21: vm "a": 0.0.0.0/0 is the default route: a mapping names service addresses, never the default route`,
			`m.yaml:22: vm "a": 192.0.0.0/2 contains reserved addresses (multicast 224.0.0.0/4)`,
			`m.yaml:23: vm "a": ::/0 is the default route: a mapping names service addresses, never the default route`,
			`m.yaml:24: vm "a": invalid IP address "10"`,
			`m.yaml:25: vm "a": ips: want an IP address or prefix, got null`,
			`m.yaml:26: vm "a": invalid IP address ""`,
			`m.yaml:27: vm "a": 2001:db8::%1/128: IPv6 zones are not allowed`,
			`m.yaml:28: vm "a": ::ffff:192.0.2.0/120 contains reserved addresses (IPv4-mapped ::ffff:0.0.0.0/96)`,
		},
	}, {
		name: "next hops",
		src: doc(
			"version: 1",
			"defaults:",
			"  next-hop: 192.0.2.1",
			"vms:",
			"  a:",
			"    ips: [192.0.2.10, 2001:db8::10]",
			"  b:",
			"    next-hop: 2001:db8::1",
			"    ips:",
			"      - 192.0.2.11",
			"      - prefix: 192.0.2.12",
			"        next-hop: 192.0.2.2",
			"      - prefix: 2001:db8::12",
			"        next-hop: 192.0.2.2",
			"  c:",
			"    next-hop: 127.0.0.1",
			"    ips:",
			"      - prefix: 192.0.2.13",
			"        next-hop: fe80::1%eth0",
			"      - prefix: 192.0.2.14",
			"        next-hop: 192.0.2.0/24",
		),
		want: []string{
			`m.yaml:6: vm "a": 2001:db8::10/128 is IPv6 but its next-hop 192.0.2.1 (from the file's defaults, line 3) is IPv4`,
			`m.yaml:10: vm "b": 192.0.2.11/32 is IPv4 but its next-hop 2001:db8::1 (from the vm, line 8) is IPv6`,
			`m.yaml:13: vm "b": 2001:db8::12/128 is IPv6 but its next-hop 192.0.2.2 (set on this IP, line 14) is IPv4`,
			`m.yaml:16: vm "c": next-hop: 127.0.0.1 is a reserved address (loopback)`,
			`m.yaml:19: vm "c" ips[0]: next-hop: fe80::1%eth0: IPv6 zones are not allowed`,
			`m.yaml:21: vm "c" ips[1]: next-hop: want "self" or an IP address, got "192.0.2.0/24"`,
		},
	}, {
		name: "entries without IPs",
		src: doc(
			"version: 1",
			"vms:",
			"  a:",
			"  b: {}",
			"  c:",
			"    med: 1",
			"  d:",
			"    ips: []",
			"  e:",
			"    ips:",
			"  f:",
			"    ips: [{med: 1}]",
		),
		want: []string{
			`m.yaml:3: vm "a" has no IPs`,
			`m.yaml:4: vm "b" has no IPs`,
			`m.yaml:5: vm "c" has no IPs`,
			`m.yaml:8: vm "d" has no IPs`,
			`m.yaml:10: vm "e" has no IPs`,
			`m.yaml:12: vm "f" ips[0]: missing "prefix"`,
		},
	}, {
		name: "duplicate keys",
		src: doc(
			"version: 1",
			"vms:",
			"  web-01:",
			"    med: 1",
			"    med: 2",
			"    ips: [192.0.2.1]",
			"  web-01:",
			"    ips: [192.0.2.1]", // not walked: no second report
			"  6695eb01-f6a4-8304-79aa-97f2502e193f:",
			"    ips: [192.0.2.2]",
			"  6695EB01-F6A4-8304-79AA-97F2502E193F:",
			"    ips: [192.0.2.3]",
			"version: 1",
		),
		want: []string{
			`m.yaml:5: vm "web-01": duplicate key "med" (first at line 4)`,
			`m.yaml:7: vms: duplicate key "web-01" (first at line 3)`,
			`m.yaml:11: vm "6695eb01-f6a4-8304-79aa-97f2502e193f" is already defined at m.yaml:9`,
			`m.yaml:13: top level: duplicate key "version" (first at line 1)`,
		},
	}, {
		name: "one UUID for two entries",
		src: doc(
			"version: 1",
			"vms:",
			"  web-01:",
			"    uuid: 6695EB01-F6A4-8304-79AA-97F2502E193F",
			"    ips: [192.0.2.1]",
			"  6695eb01-f6a4-8304-79aa-97f2502e193f:",
			"    ips: [192.0.2.2]",
			"  web-02:",
			"    uuid: 6695eb01-f6a4-8304-79aa-97f2502e193f",
			"    ips: [192.0.2.3]",
			"  aaaaaaaa-f6a4-8304-79aa-97f2502e193f:",
			"    ips: [192.0.2.4]",
			"  web-03:",
			"    uuid: aaaaaaaa-f6a4-8304-79aa-97f2502e193f",
			"    ips: [192.0.2.5]",
			"  bbbbbbbb-f6a4-8304-79aa-97f2502e193f:",
			"    uuid: bbbbbbbb-f6a4-8304-79aa-97f2502e193f",
			"    ips: [192.0.2.6]",
			"  web-04:",
			"    uuid: 6695eb01-f6a4-8304-79aa-97f2502e193",
			"    ips: [192.0.2.7]",
		),
		want: []string{
			`m.yaml:6: vm "6695eb01-f6a4-8304-79aa-97f2502e193f": uuid 6695eb01-f6a4-8304-79aa-97f2502e193f is already used by vm "web-01" at m.yaml:4`,
			`m.yaml:9: vm "web-02": uuid 6695eb01-f6a4-8304-79aa-97f2502e193f is already used by vm "6695eb01-f6a4-8304-79aa-97f2502e193f" at m.yaml:6`,
			`m.yaml:14: vm "web-03": uuid aaaaaaaa-f6a4-8304-79aa-97f2502e193f is already used by vm "aaaaaaaa-f6a4-8304-79aa-97f2502e193f" at m.yaml:11`,
			`m.yaml:17: vm "bbbbbbbb-f6a4-8304-79aa-97f2502e193f": uuid: not allowed on an entry keyed by UUID`,
			`m.yaml:20: vm "web-04": uuid: want a UUID like 6695eb01-f6a4-8304-79aa-97f2502e193f, got "6695eb01-f6a4-8304-79aa-97f2502e193"`,
		},
	}, {
		name: "two pins of one UUID",
		src: doc(
			"version: 1",
			"vms:",
			"  web-01: {uuid: 6695eb01-f6a4-8304-79aa-97f2502e193f, ips: [192.0.2.1]}",
			"  web-02: {uuid: 6695eb01-f6a4-8304-79aa-97f2502e193f, ips: [192.0.2.2]}",
		),
		want: []string{
			`m.yaml:4: vm "web-02": uuid 6695eb01-f6a4-8304-79aa-97f2502e193f is already used by vm "web-01" at m.yaml:3`,
		},
	}, {
		name: "one IP mapped twice",
		src: doc(
			"version: 1",
			"vms:",
			"  a:",
			"    ips:",
			"      - 192.0.2.1",
			"      - 192.0.2.1/32",
			"      - 192.0.2.64/28",
			"      - 2001:db8::/64",
			"  b:",
			"    ips:",
			"      - 192.0.2.1",
			"      - 192.0.2.70",
			"      - 192.0.2.64/29",
			"      - 192.0.2.0/24",
			"      - 2001:db8::ffff",
			"      - 192.0.2.128/25",
			"  c:",
			"    ips: [192.0.2.128/25, 192.0.3.1]",
		),
		want: []string{
			// 192.0.2.0/24 (line 14) holds every other IPv4 prefix but
			// 192.0.3.1: all of those are reported against it.
			`m.yaml:5: vm "a": 192.0.2.1/32 overlaps 192.0.2.0/24 of vm "b" at m.yaml:14`,
			`m.yaml:6: vm "a": 192.0.2.1/32 overlaps 192.0.2.0/24 of vm "b" at m.yaml:14`,
			`m.yaml:7: vm "a": 192.0.2.64/28 overlaps 192.0.2.0/24 of vm "b" at m.yaml:14`,
			`m.yaml:11: vm "b": 192.0.2.1/32 overlaps 192.0.2.0/24 of vm "b" at m.yaml:14`,
			`m.yaml:12: vm "b": 192.0.2.70/32 overlaps 192.0.2.0/24 of vm "b" at m.yaml:14`,
			`m.yaml:13: vm "b": 192.0.2.64/29 overlaps 192.0.2.0/24 of vm "b" at m.yaml:14`,
			`m.yaml:15: vm "b": 2001:db8::ffff/128 overlaps 2001:db8::/64 of vm "a" at m.yaml:8`,
			`m.yaml:16: vm "b": 192.0.2.128/25 overlaps 192.0.2.0/24 of vm "b" at m.yaml:14`,
			`m.yaml:18: vm "c": 192.0.2.128/25 overlaps 192.0.2.0/24 of vm "b" at m.yaml:14`,
		},
	}, {
		name: "duplicates and nesting without a covering prefix",
		src: doc(
			"version: 1",
			"vms:",
			"  a:",
			"    ips:",
			"      - 192.0.2.1",
			"      - 192.0.2.1/32",
			"      - 192.0.2.64/28",
			"  b:",
			"    ips:",
			"      - 192.0.2.1",
			"      - 192.0.2.70",
			"      - 192.0.2.64/29",
			"      - 192.0.2.64/28",
		),
		want: []string{
			`m.yaml:6: vm "a": 192.0.2.1/32 is listed twice (first at line 5)`,
			`m.yaml:10: vm "b": 192.0.2.1/32 is already mapped to vm "a" at m.yaml:5`,
			`m.yaml:11: vm "b": 192.0.2.70/32 overlaps 192.0.2.64/28 of vm "a" at m.yaml:7`,
			`m.yaml:12: vm "b": 192.0.2.64/29 overlaps 192.0.2.64/28 of vm "a" at m.yaml:7`,
			`m.yaml:13: vm "b": 192.0.2.64/28 is already mapped to vm "a" at m.yaml:7`,
		},
	}, {
		name: "YAML features that are refused",
		src: doc(
			"version: 1",
			"defaults: &d {med: 1}",
			"vms:",
			"  a:",
			"    <<: *d",
			"    ips: [192.0.2.1]",
			"  b: *d",
		),
		want: []string{
			`m.yaml:5: YAML merge keys (<<) are not supported`,
			`m.yaml:7: YAML aliases (*d) are not supported`,
		},
	}, {
		name: "two documents",
		src:  doc("version: 1", "vms: {}", "---", "version: 1"),
		want: []string{`m.yaml:3: more than one YAML document in the file`},
	}, {
		// yaml.v3 gives the exact line of a scanner error like this one
		// (its parser errors, such as an unclosed "[", can be a line early).
		name: "syntax error",
		src:  doc("version: 1", "vms:", "  a:", "    ips: [192.0.2.1]", "    med: @1", "  b: {}"),
		want: []string{`m.yaml:5: YAML syntax: found character that cannot start any token`},
	}, {
		name: "bad keys",
		src:  doc("version: 1", "vms:", "  ~: {ips: [192.0.2.1]}", "  \"\": {ips: [192.0.2.2]}", "  [x]: {ips: [192.0.2.3]}"),
		want: []string{
			`m.yaml:3: vms: want a domain name or UUID as key, got null`,
			`m.yaml:4: vms: want a domain name or UUID as key, got ""`,
			`m.yaml:5: a key must be a plain string`,
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := mapping.Parse("m.yaml", tc.src)
			if m != nil {
				t.Errorf("Parse returned a mapping with the error")
			}
			diffLines(t, problems(t, err), tc.want)
		})
	}
}

// TestParseReportsEveryProblem checks that independent problems in every
// part of one file are all reported, sorted by line.
func TestParseReportsEveryProblem(t *testing.T) {
	_, err := mapping.Parse("m.yaml", doc(
		"version: 1",
		"defaults:",
		"  med: x", // 3
		"vms:",
		"  a:",
		"    colour: red",                 // 6
		"    ips: [192.0.2.1, 192.0.2.1]", // 7
		"  b:",                            // 8
		"  c:",
		"    ips:",
		"      - 127.0.0.1",                  // 11
		"      - 192.0.2.5/24",               // 12
		"      - prefix: 192.0.2.9",          // 13
		"        communities: [\"1:99999\"]", // 14
		"  d:",
		"    uuid: nope",       // 16
		"    ips: [192.0.2.1]", // 17
	))
	diffLines(t, problems(t, err), []string{
		`m.yaml:3: defaults: med: want an integer from 0 to 4294967295, got "x"`,
		`m.yaml:6: vm "a": unknown key "colour" (allowed: uuid, communities, large-communities, med, local-pref, as-path-prepend, next-hop, ips, health)`,
		`m.yaml:7: vm "a": 192.0.2.1/32 is listed twice (first at line 7)`,
		`m.yaml:8: vm "b" has no IPs`,
		`m.yaml:11: vm "c": 127.0.0.1 is a reserved address (loopback)`,
		`m.yaml:12: vm "c": 192.0.2.5/24 has host bits set (the prefix is 192.0.2.0/24)`,
		`m.yaml:14: vm "c" ips[2]: communities: invalid community "1:99999" (want ASN:value, each from 0 to 65535, or no-export, no-advertise, blackhole, graceful-shutdown)`,
		`m.yaml:16: vm "d": uuid: want a UUID like 6695eb01-f6a4-8304-79aa-97f2502e193f, got "nope"`,
		`m.yaml:17: vm "d": 192.0.2.1/32 is already mapped to vm "a" at m.yaml:7`,
	})
}

// TestParseErrorsAreSorted checks the order of the list and that every
// problem is on one line.
func TestParseErrorsAreSorted(t *testing.T) {
	_, err := mapping.Parse("m.yaml", doc(
		"vms:",
		"  \"a\\nb\": {ips: [192.0.2.1], med: -1}",
		"  b: {ips: [192.0.2.1]}",
		"defaults: {med: -1}",
	))
	got := problems(t, err)
	diffLines(t, got, []string{
		`m.yaml:1: missing "version" (want "version: 1")`,
		`m.yaml:2: vm "a\nb": med: want an integer from 0 to 4294967295, got -1`,
		`m.yaml:3: vm "b": 192.0.2.1/32 is already mapped to vm "a\nb" at m.yaml:2`,
		`m.yaml:4: defaults: med: want an integer from 0 to 4294967295, got -1`,
	})
	for _, l := range got {
		if strings.Contains(l, "\n") {
			t.Errorf("problem %q spans lines", l)
		}
	}
}
