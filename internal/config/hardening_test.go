package config

import (
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/virtbgp/virtbgp/mapping"
)

// Issue 17, findings 4 and 9: values that Parse accepted and must not.
func TestParseRefusesWhatCannotWork(t *testing.T) {
	dir := t.TempDir()
	twoLines := filepath.Join(dir, "two.pw")
	if err := os.WriteFile(twoLines, []byte("first\nsecond\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	head := func(asn, rid string) []string {
		return []string{"version: 1", "bgp:", "  asn: " + asn, "  router-id: " + rid}
	}
	tests := []struct {
		name  string
		lines []string
		want  []string
	}{
		{"AS_TRANS", append(head("23456", "192.0.2.1"), "mapping: {path: m.yaml}"), []string{
			`c.yaml:3: bgp.asn: 23456 is AS_TRANS (RFC 6793), which stands for a 4-byte AS number in old speakers' messages and is no AS's own`,
		}},
		{"last 4-byte AS", append(head("4294967295", "192.0.2.1"), "mapping: {path: m.yaml}"), []string{
			`c.yaml:3: bgp.asn: 4294967295 is reserved (RFC 7300), not usable as an AS number`,
		}},
		{"peer AS_TRANS and 65535", append(head("65001", "192.0.2.1"),
			"  peers:",
			"    - {address: 198.18.0.1, asn: 23456}",
			"    - {address: 198.18.0.2, asn: 65535}",
			"mapping: {path: m.yaml}"), []string{
			`c.yaml:6: bgp.peers[0].asn: 23456 is AS_TRANS (RFC 6793), which stands for a 4-byte AS number in old speakers' messages and is no AS's own`,
			`c.yaml:7: bgp.peers[1].asn: 65535 is reserved (RFC 7300), not usable as an AS number`,
		}},
		{"multicast router ID", append(head("65001", "224.0.0.1"), "mapping: {path: m.yaml}"), []string{
			`c.yaml:4: bgp.router-id: 224.0.0.1 is a multicast, broadcast or reserved (240.0.0.0/4) address: want a unicast IPv4 address of this host`,
		}},
		{"broadcast router ID", append(head("65001", "255.255.255.255"), "mapping: {path: m.yaml}"), []string{
			`c.yaml:4: bgp.router-id: 255.255.255.255 is a multicast, broadcast or reserved (240.0.0.0/4) address: want a unicast IPv4 address of this host`,
		}},
		{"link-local peer", append(head("65001", "192.0.2.1"),
			"  peers:",
			"    - {address: 'fe80::1', asn: 65000}",
			"    - {address: 2001:db8::1, asn: 65000, local-address: 'fe80::2%eth0'}",
			"mapping: {path: m.yaml}"), []string{
			`c.yaml:6: bgp.peers[0].address: "fe80::1" is a link-local address: virtbgp does not support link-local (interface-scoped) sessions; use a global or unique-local address`,
			`c.yaml:7: bgp.peers[1].local-address: "fe80::2%eth0" is a link-local address: virtbgp does not support link-local (interface-scoped) sessions; use a global or unique-local address`,
		}},
		{"multi-line passwords", append(head("65001", "192.0.2.1"),
			"  peers:",
			`    - {address: 198.18.0.1, asn: 65000, password: "one\ntwo"}`,
			"    - {address: 198.18.0.2, asn: 65000, password-file: "+twoLines+"}",
			`    - {address: 198.18.0.3, asn: 65000, password: "tab\there"}`,
			"mapping: {path: m.yaml}"), []string{
			`c.yaml:6: bgp.peers[0].password: the password has more than one line: want the password alone on one line`,
			`c.yaml:7: bgp.peers[1].password-file: the password in ` + twoLines + ` has more than one line: want the password alone on one line`,
			`c.yaml:8: bgp.peers[2].password: the password has a control character`,
		}},
		{"routes section", append(head("65001", "192.0.2.1"),
			"mapping: {path: m.yaml}",
			"routes:",
			"  min-prefix-length: {ipv4: 8, ipv6: 129}",
			"  allowed-prefixes: [0.0.0.0/0, 198.51.100.0/24, 198.51.100.128/25, 'x']",
			"  extra: 1"), []string{
			`c.yaml:7: routes.min-prefix-length.ipv4: want an integer from 16 to 32, got 8`,
			`c.yaml:7: routes.min-prefix-length.ipv6: want an integer from 32 to 128, got 129`,
			`c.yaml:8: routes.allowed-prefixes: want a prefix in CIDR notation like 192.0.2.0/24, got "x"`,
			`c.yaml:8: routes.allowed-prefixes: 0.0.0.0/0 is too broad: an allowed IPv4 prefix must be /16 or longer`,
			`c.yaml:8: routes.allowed-prefixes: 198.51.100.128/25 lies inside 198.51.100.0/24 (at 1)`,
			`c.yaml:9: routes: unknown key "extra" (allowed: min-prefix-length, allowed-prefixes)`,
		}},
		{"API beyond the routes section", append(head("65001", "192.0.2.1"),
			"mapping: {path: m.yaml}",
			"api: {allowed-prefixes: [198.51.100.0/24], min-prefix-length: {ipv4: 20}}",
			"routes: {allowed-prefixes: [192.0.2.0/24]}"), []string{
			`c.yaml:6: api.allowed-prefixes: 198.51.100.0/24 lies outside routes.allowed-prefixes [192.0.2.0/24], which every source must keep to`,
			`c.yaml:6: api.min-prefix-length.ipv4: /20 is shorter than routes.min-prefix-length.ipv4 (/24), which every source must keep to`,
		}},
		{"receive limit", append(head("65001", "192.0.2.1"),
			"  peers:",
			"    - {address: 198.18.0.1, asn: 65000, receive-limit: -1, receive-limit-action: drop}",
			"mapping: {path: m.yaml}"), []string{
			`c.yaml:6: bgp.peers[0].receive-limit: want an integer from 0 to 4294967295, got -1`,
			`c.yaml:6: bgp.peers[0].receive-limit-action: want warn or restart, got "drop"`,
		}},
		{"metadata beyond the routes section", append(head("65001", "192.0.2.1"),
			"mapping:",
			"  metadata: {enabled: true, allowed-prefixes: [192.0.2.0/24, 203.0.113.0/24], min-prefix-length: {ipv4: 16}}",
			"  nova: {enabled: true, allowed-prefixes: ['2001:db8::/48']}",
			"routes:",
			"  allowed-prefixes: [192.0.2.0/24]"), []string{
			`c.yaml:6: mapping.metadata.allowed-prefixes: 203.0.113.0/24 lies outside routes.allowed-prefixes [192.0.2.0/24], which every source must keep to`,
			`c.yaml:6: mapping.metadata.min-prefix-length.ipv4: /16 is shorter than routes.min-prefix-length.ipv4 (/24), which every source must keep to`,
			`c.yaml:7: mapping.nova.allowed-prefixes: 2001:db8::/48 lies outside routes.allowed-prefixes [192.0.2.0/24], which every source must keep to`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("c.yaml", doc(tt.lines...))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", cfg)
			}
			if got := errLines(t, err); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(tt.want, "\n     "))
			}
		})
	}
}

// The routes section when it is valid, and its defaults.
func TestParseRoutes(t *testing.T) {
	cfg, err := Parse("c.yaml", doc(append(slices.Clone(minimal),
		"routes:",
		"  min-prefix-length: {ipv4: 28, ipv6: 64}",
		"  allowed-prefixes: [198.51.100.0/24, '2001:db8:100::/48']")...))
	if err != nil {
		t.Fatal(err)
	}
	want := mapping.Limits{MinBits4: 28, MinBits6: 64, Pools: []netip.Prefix{
		netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("2001:db8:100::/48")}}
	if !reflect.DeepEqual(cfg.Routes, want) {
		t.Errorf("Routes = %+v, want %+v", cfg.Routes, want)
	}
	if cfg, err = Parse("c.yaml", doc(minimal...)); err != nil || !reflect.DeepEqual(cfg.Routes, mapping.DefaultLimits) {
		t.Errorf("default Routes = %+v (%v), want %+v", cfg.Routes, err, mapping.DefaultLimits)
	}
}

// Issue 17, finding 10: a peer's receive limit, and its default.
func TestParseReceiveLimit(t *testing.T) {
	cfg, err := Parse("c.yaml", withPeer("asn: 65000", "receive-limit: 50000", "receive-limit-action: restart"))
	if err != nil {
		t.Fatal(err)
	}
	if p := cfg.BGP.Peers[0]; p.ReceiveLimit != 50000 || p.ReceiveLimitAction != ReceiveRestart {
		t.Errorf("receive limit %d %s, want 50000 restart", p.ReceiveLimit, p.ReceiveLimitAction)
	}
	if cfg, err = Parse("c.yaml", withPeer("asn: 65000")); err != nil {
		t.Fatal(err)
	}
	if p := cfg.BGP.Peers[0]; p.ReceiveLimit != DefaultReceiveLimit || p.ReceiveLimitAction != ReceiveWarn {
		t.Errorf("default receive limit %d %s, want %d warn", p.ReceiveLimit, p.ReceiveLimitAction, DefaultReceiveLimit)
	}
}

// Issue 17, finding 9: what `run` warns about, `check` says too, because
// both take it from the config's Warnings.
func TestParseWarnings(t *testing.T) {
	dir := t.TempDir()
	open := filepath.Join(dir, "open.pw")
	private := filepath.Join(dir, "private.pw")
	for f, mode := range map[string]os.FileMode{open: 0o644, private: 0o600} {
		if err := os.WriteFile(f, []byte("pw\n"), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(f, mode); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		name  string
		lines []string
		want  []string
	}{
		{"none", withPeerLines("asn: 65000", "password-file: "+private), nil},
		{"inline password", withPeerLines("asn: 65000", "password: s3cret"), []string{
			`c.yaml:8: bgp.peers[0].password: the password is in the config file, which is often world-readable and copied around: use password-file with a file of mode 0600`,
		}},
		{"world-readable password file", withPeerLines("asn: 65000", "password-file: "+open), []string{
			`c.yaml:8: bgp.peers[0].password-file: ` + open + ` is readable by every user (mode 0644): chmod 600 it`,
		}},
		{"loopback peer", []string{"version: 1", "bgp: {asn: 65001, router-id: 192.0.2.1, peers: [{address: 127.0.0.1, asn: 65000}]}", "mapping: {path: m.yaml}"}, []string{
			`c.yaml:2: bgp.peers[0].address: 127.0.0.1 is a loopback address: the session is with this host itself, which only a test does`,
		}},
		{"IPv4 session carrying IPv6 with next-hop-ipv6", withPeerLines("asn: 65000", "families: [ipv6]", `next-hop-ipv6: "2001:db8::1"`), nil},
		{"IPv4 session carrying IPv6", withPeerLines("asn: 65000", "families: [ipv6]"), []string{
			`c.yaml:6: bgp.peers[0]: the session is IPv4 but carries ipv6: routes with next hop self get the ipv6 address of the interface facing the peer, as found on the host (virtbgp check there shows it; with none they are not sent), unless next-hop-ipv6 is set`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("c.yaml", doc(tt.lines...))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, w := range cfg.Warnings {
				got = append(got, w.Error())
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("warnings:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(tt.want, "\n     "))
			}
		})
	}
}
