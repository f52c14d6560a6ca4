package config

import (
	"net/netip"
	"reflect"
	"slices"
	"testing"

	"github.com/virtbgp/virtbgp/mapping"
)

// head is a config without the mapping section; the tests below add one
// from line 5 on.
var head = []string{
	"version: 1",
	"bgp:",
	"  asn: 65001",
	"  router-id: 192.0.2.1",
}

// TestParseMetadataAndNova reads every key of mapping.metadata and
// mapping.nova, without a mapping file: a Nova host needs none.
func TestParseMetadataAndNova(t *testing.T) {
	cfg, err := parse("c.yaml", doc(append(head,
		"mapping:",
		"  metadata:",
		"    enabled: true",
		"    allowed-prefixes: [192.0.2.0/24, '2001:db8::/32']",
		"    min-prefix-length: {ipv4: 28, ipv6: 64}",
		"    allowed-next-hops: [198.51.100.0/24]",
		"    defaults:",
		"      communities: ['65001:200', no-export]",
		"      large-communities: ['65001:1:2']",
		"      med: 10",
		"      local-pref: 200",
		"      as-path-prepend: 1",
		"      next-hop: self",
		"  nova:",
		"    enabled: true",
		"    ip-types: [fixed, floating]",
		"    allowed-prefixes: [203.0.113.0/24]",
		"    attributes: {med: 20, next-hop: 203.0.113.1}",
		"    allowed-next-hops: [203.0.113.0/24]",
	)...), fuzzPassword)
	if err != nil {
		t.Fatal(err)
	}
	u32 := func(v uint32) *uint32 { return &v }
	one := uint8(1)
	wantMeta := Metadata{
		Enabled: true,
		Allow: mapping.Allow{
			Prefixes: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::/32")},
			MinBits4: 28, MinBits6: 64,
			NextHops: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")},
		},
		Defaults: mapping.Attributes{
			Communities:      []uint32{65001<<16 | 200, mapping.CommunityNoExport},
			LargeCommunities: []mapping.LargeCommunity{{GlobalAdmin: 65001, LocalData1: 1, LocalData2: 2}},
			MED:              u32(10), LocalPref: u32(200), ASPathPrepend: &one, NextHopSelf: true,
		},
	}
	if !reflect.DeepEqual(cfg.Mapping.Metadata, wantMeta) {
		t.Errorf("metadata = %+v\nwant %+v", cfg.Mapping.Metadata, wantMeta)
	}
	wantNova := Nova{
		Enabled: true,
		Allow: mapping.Allow{
			Prefixes: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")},
			NextHops: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/24")},
		},
		Options: mapping.NovaOptions{
			Types:      []string{mapping.NovaFixed, mapping.NovaFloating},
			Attributes: mapping.Attributes{MED: u32(20), NextHop: netip.MustParseAddr("203.0.113.1")},
		},
	}
	if !reflect.DeepEqual(cfg.Mapping.Nova, wantNova) {
		t.Errorf("nova = %+v\nwant %+v", cfg.Mapping.Nova, wantNova)
	}
	if cfg.Mapping.Path != "" || !cfg.Mapping.Sources() {
		t.Errorf("path %q, sources %v: want no file, sources on", cfg.Mapping.Path, cfg.Mapping.Sources())
	}
}

// TestParseSourcesDefaults: both sources are off by default, and an
// enabled Nova announces fixed IPs unless told otherwise.
func TestParseSourcesDefaults(t *testing.T) {
	cfg, err := parse("c.yaml", doc(minimal...), fuzzPassword)
	if err != nil {
		t.Fatal(err)
	}
	m := cfg.Mapping
	if m.Metadata.Enabled || m.Nova.Enabled || m.Sources() {
		t.Errorf("defaults: %+v", m)
	}
	cfg, err = parse("c.yaml", doc(append(head, "mapping:", "  nova: {enabled: true, allowed-prefixes: [203.0.113.0/24]}")...), fuzzPassword)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cfg.Mapping.Nova.Options.Types, []string{mapping.NovaFixed}) {
		t.Errorf("nova ip-types default = %v, want [fixed]", cfg.Mapping.Nova.Options.Types)
	}
}

// TestParseSourcesErrors: every problem of the new keys at its line.
func TestParseSourcesErrors(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		want  []string
	}{
		{"no path and no source", []string{"mapping:", "  watch: true"}, []string{
			`c.yaml:5: mapping: missing required key "path" (a mapping file or directory; it may be left out only when mapping.metadata or mapping.nova is enabled)`,
		}},
		{"no path, metadata off", []string{"mapping:", "  metadata: {enabled: false}"}, []string{
			`c.yaml:5: mapping: missing required key "path" (a mapping file or directory; it may be left out only when mapping.metadata or mapping.nova is enabled)`,
		}},
		{"enabled without allowed prefixes", []string{"mapping:", "  metadata: {enabled: true}"}, []string{
			`c.yaml:6: mapping.metadata: missing required key "allowed-prefixes" (an enabled source may claim nothing outside them)`,
		}},
		{"bad allowed prefixes", []string{
			"mapping:",
			"  metadata:",
			"    enabled: true",
			"    allowed-prefixes:",
			"      - 10.0.0.0/8",
			"      - 192.0.2.1/24",
			"      - 198.51.100.0/24",
			"      - 198.51.100.128/25",
			"      - 192.0.2.7",
			"    min-prefix-length: {ipv4: 8, ipv6: 200}",
			"    allowed-next-hops: [127.0.0.0/16]",
		}, []string{
			`c.yaml:9: mapping.metadata.allowed-prefixes: 10.0.0.0/8 is too broad: an allowed IPv4 prefix must be /16 or longer`,
			`c.yaml:10: mapping.metadata.allowed-prefixes: 192.0.2.1/24 has host bits set (the prefix is 192.0.2.0/24)`,
			`c.yaml:12: mapping.metadata.allowed-prefixes: 198.51.100.128/25 lies inside 198.51.100.0/24 (at 2)`,
			`c.yaml:13: mapping.metadata.allowed-prefixes: want a prefix in CIDR notation like 192.0.2.0/24, got "192.0.2.7"`,
			`c.yaml:14: mapping.metadata.min-prefix-length.ipv4: want an integer from 16 to 32, got 8`,
			`c.yaml:14: mapping.metadata.min-prefix-length.ipv6: want an integer from 32 to 128, got 200`,
			`c.yaml:15: mapping.metadata.allowed-next-hops: 127.0.0.0/16 contains reserved addresses (loopback 127.0.0.0/8)`,
		}},
		{"bad attributes", []string{
			"mapping:",
			"  path: m.yaml",
			"  metadata:",
			"    defaults:",
			"      communities: ['65001:x']",
			"      large-communities: ['1:2']",
			"      as-path-prepend: 17",
			"      next-hop: 127.0.0.1",
			"      color: red",
		}, []string{
			`c.yaml:9: mapping.metadata.defaults.communities: invalid community "65001:x" (want ASN:value, each from 0 to 65535, or no-export, no-advertise, blackhole, graceful-shutdown)`,
			`c.yaml:10: mapping.metadata.defaults.large-communities: invalid large community "1:2" (want GA:LD1:LD2, each from 0 to 4294967295)`,
			`c.yaml:11: mapping.metadata.defaults.as-path-prepend: want an integer from 0 to 16, got 17`,
			`c.yaml:12: mapping.metadata.defaults.next-hop: 127.0.0.1 is a reserved address (loopback)`,
			`c.yaml:13: mapping.metadata.defaults: unknown key "color" (allowed: communities, large-communities, med, local-pref, as-path-prepend, next-hop)`,
		}},
		{"bad nova", []string{
			"mapping:",
			"  nova:",
			"    enabled: true",
			"    ip-types: [fixed, public, fixed]",
			"    allowed-prefixes: [203.0.113.0/24]",
			"    min-prefix-length: {ipv4: 24}",
		}, []string{
			`c.yaml:8: mapping.nova.ip-types: want fixed or floating, got "public"`,
			`c.yaml:8: mapping.nova.ip-types: duplicate type fixed (first at line 8)`,
			`c.yaml:10: mapping.nova: unknown key "min-prefix-length" (allowed: enabled, ip-types, allowed-prefixes, allowed-next-hops, attributes, health)`,
		}},
		{"bad health", []string{
			"mapping:",
			"  metadata:",
			"    enabled: true",
			"    allowed-prefixes: [192.0.2.0/24]",
			"    health:",
			"      types: [agent, exec, ping]",
			"      min-interval: 10ms",
			"      max-checks: 65",
			"      defaults: {checks: [{type: tcp}]}",
			"      colour: red",
			"  nova:",
			"    enabled: true",
			"    allowed-prefixes: [203.0.113.0/24]",
			"    health: {checks: [{type: http, url: 'ftp://{ip}/'}], on-failure: depreference}",
		}, []string{
			`c.yaml:10: mapping.metadata.health.types: exec checks cannot be allowed from metadata (they would run a command on the hypervisor as root; give them in the mapping file)`,
			`c.yaml:10: mapping.metadata.health.types: want agent, tcp or http, got "ping"`,
			`c.yaml:11: mapping.metadata.health.min-interval: want a duration from 100ms to 1h like "1s", got "10ms"`,
			`c.yaml:12: mapping.metadata.health.max-checks: want an integer from 1 to 64, got 65`,
			`c.yaml:13: mapping.metadata.health.defaults: checks[0]: missing "address" (host:port, like "{ip}:80")`,
			`c.yaml:14: mapping.metadata.health: unknown key "colour" (allowed: types, min-interval, max-checks, defaults)`,
			`c.yaml:18: mapping.nova.health: on-failure: depreference needs a "depreference" block (communities, med, as-path-prepend)`,
			`c.yaml:18: mapping.nova.health: checks[0]: url: want an http or https URL, got "ftp://{ip}/"`,
		}},
		{"empty nova types", []string{"mapping:", "  nova: {enabled: true, ip-types: [], allowed-prefixes: [203.0.113.0/24]}"}, []string{
			`c.yaml:6: mapping.nova.ip-types: want at least one of fixed, floating, got an empty list (to announce nothing, set enabled: false)`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse("c.yaml", doc(append(slices.Clone(head), tt.lines...)...), fuzzPassword)
			if err == nil {
				t.Fatal("no error")
			}
			if got := errLines(t, err); !slices.Equal(got, tt.want) {
				t.Errorf("got\n%s\nwant\n%s", join(got), join(tt.want))
			}
		})
	}
}

func join(s []string) string {
	out := ""
	for _, l := range s {
		out += "  " + l + "\n"
	}
	return out
}

// TestParseSourcesHealth reads mapping.metadata.health and
// mapping.nova.health.
func TestParseSourcesHealth(t *testing.T) {
	cfg, err := parse("c.yaml", doc(append(slices.Clone(head),
		"mapping:",
		"  metadata:",
		"    enabled: true",
		"    allowed-prefixes: [192.0.2.0/24]",
		"    health:",
		"      types: [agent, http]",
		"      min-interval: 2s",
		"      max-checks: 3",
		"      defaults: {checks: [{type: agent, interval: 10s}]}",
		"  nova:",
		"    enabled: true",
		"    allowed-prefixes: [203.0.113.0/24]",
		"    health: {initial: up, checks: [{type: exec, command: [/usr/local/bin/check]}]}",
	)...), fuzzPassword)
	if err != nil {
		t.Fatal(err)
	}
	h := cfg.Mapping.Metadata.Health
	if !slices.Equal(h.Types, []mapping.CheckKind{mapping.CheckAgent, mapping.CheckHTTP}) || h.MinInterval.String() != "2s" || h.MaxChecks != 3 {
		t.Errorf("mapping.metadata.health = %+v", h)
	}
	if d := h.Defaults; d == nil || len(d.Checks) != 1 || d.Checks[0].Kind != mapping.CheckAgent || d.Checks[0].Interval.String() != "10s" || d.File != "c.yaml" || d.Line != 13 {
		t.Errorf("mapping.metadata.health.defaults = %+v", d)
	}
	if err := h.Validate(); err != nil {
		t.Error(err)
	}
	if n := cfg.Mapping.Nova.Options.Health; n == nil || !n.InitialUp || n.Checks[0].Kind != mapping.CheckExec {
		t.Errorf("mapping.nova.health = %+v", n)
	}
	// Without the keys: the zero HealthTrust, no checks.
	cfg, err = parse("c.yaml", doc(append(slices.Clone(head), "mapping:", "  metadata: {enabled: true, allowed-prefixes: [192.0.2.0/24]}")...), fuzzPassword)
	if err != nil {
		t.Fatal(err)
	}
	if h := cfg.Mapping.Metadata.Health; len(h.Types) != 0 || h.MinInterval != 0 || h.MaxChecks != 0 || h.Defaults != nil || cfg.Mapping.Nova.Options.Health != nil {
		t.Errorf("defaults: %+v", h)
	}
}
