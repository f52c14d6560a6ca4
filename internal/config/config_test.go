package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/virtbgp/virtbgp/fileerr"
	"github.com/virtbgp/virtbgp/mapping"
)

// doc joins lines into a YAML document; line i of the slice is line i+1 of
// the file, which keeps the line numbers in the expectations checkable.
func doc(lines ...string) []byte { return []byte(strings.Join(lines, "\n") + "\n") }

// errLines returns the problems of err as "file:line: message" strings, or
// fails the test when err is not an ErrorList.
func errLines(t *testing.T, err error) []string {
	t.Helper()
	var l fileerr.ErrorList
	if !errors.As(err, &l) {
		t.Fatalf("error %v (%T) is not a fileerr.ErrorList", err, err)
	}
	out := make([]string, len(l))
	for i, e := range l {
		out[i] = e.Error()
	}
	return out
}

func TestParseFull(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "virtbgp.yaml")
	if err := os.WriteFile(filepath.Join(dir, "tor2.pw"), []byte("  from-file\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := doc(
		"# every key",
		"version: 1",
		"libvirt:",
		"  uri: qemu+ssh://root@kvm1/system",
		"bgp:",
		"  asn: 4200000001",
		"  router-id: 192.0.2.1",
		"  listen-port: 1179",
		"  graceful-restart:",
		"    enabled: false",
		"    restart-time: 4095s",
		"    long-lived-stale-time: 16777215s",
		"    notification: false",
		"  peers:",
		"    - address: 198.18.0.1",
		"      port: 1790",
		"      asn: 65000",
		"      password: secret",
		"      passive: true",
		"      hold-time: 30s",
		"      keepalive: 10s",
		"      multihop-ttl: 2",
		"      local-address: 198.18.0.2",
		"      families: [ipv4]",
		"    - address: 2001:db8::1",
		"      asn: 4200000001",
		"      password-file: tor2.pw",
		"      hold-time: 0",
		"      families:",
		"        - ipv6",
		"        - ipv4",
		"mapping:",
		"  path: /srv/mapping.d",
		"  watch: false",
		"  max-bytes: 1048576",
		"  max-withdraw-percent: 100",
		"  withdraw-confirm-after: 0",
		"status:",
		"  listen: '[::1]:9479'",
		"policy:",
		"  paused: keep",
		"  standby-prepend: 2",
		"resync-interval: 1m30s",
		"state-dir: state",
		"control:",
		"  socket: /run/vb/ctl.sock",
		"drain:",
		"  graceful-shutdown-time: 0",
	)
	got, err := Parse(file, data)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := &Config{
		File:    file,
		Libvirt: Libvirt{URI: "qemu+ssh://root@kvm1/system"},
		BGP: BGP{
			ASN:        4200000001,
			RouterID:   netip.MustParseAddr("192.0.2.1"),
			ListenPort: 1179,
			GracefulRestart: GracefulRestart{
				Enabled:            false,
				RestartTime:        4095 * time.Second,
				LongLivedStaleTime: MaxLongLivedStaleTime,
			},
			Peers: []Peer{{
				Address:      netip.MustParseAddr("198.18.0.1"),
				Port:         1790,
				ASN:          65000,
				Password:     "secret",
				Passive:      true,
				HoldTime:     30 * time.Second,
				Keepalive:    10 * time.Second,
				MultihopTTL:  2,
				LocalAddress: netip.MustParseAddr("198.18.0.2"),
				Families:     []Family{FamilyIPv4},

				ReceiveLimit: DefaultReceiveLimit, ReceiveLimitAction: ReceiveWarn,
			}, {
				Address:  netip.MustParseAddr("2001:db8::1"),
				Port:     DefaultPeerPort,
				ASN:      4200000001,
				Password: "from-file",
				HoldTime: 0,
				Families: []Family{FamilyIPv6, FamilyIPv4},

				ReceiveLimit: DefaultReceiveLimit, ReceiveLimitAction: ReceiveWarn,
			}},
		},
		Mapping:        Mapping{Path: "/srv/mapping.d", Watch: false, MaxBytes: 1 << 20, MaxWithdrawPercent: 100},
		Status:         Status{Listen: "[::1]:9479"},
		Policy:         Policy{Paused: PausedKeep, StandbyPrepend: 2},
		ResyncInterval: 90 * time.Second,
		StateDir:       filepath.Join(filepath.Dir(file), "state"),
		Control:        Control{Socket: "/run/vb/ctl.sock"},
		API:            API{WriteRate: DefaultWriteRate},
		Drain:          Drain{GracefulShutdownTime: 0},
		Routes:         mapping.DefaultLimits,
		Warnings: fileerr.ErrorList{
			{File: file, Line: 18, Msg: "bgp.peers[0].password: the password is in the config file, which is often world-readable and copied around: use password-file with a file of mode 0600"},
			{File: file, Line: 25, Msg: "bgp.peers[1]: the session is IPv6 but carries ipv4: routes with next hop self get the ipv4 address of the interface facing the peer, as found on the host (virtbgp check there shows it; with none they are not sent), unless next-hop-ipv4 is set"},
			{File: file, Line: 28, Msg: "bgp.peers[1].hold-time: 0 cannot be proposed with GoBGP: virtbgp proposes 90s, and the session has no keepalives only if the peer proposes 0"},
		},
	}
	if underTmp(want.StateDir) {
		// The test's state-dir is in its temporary directory.
		want.Warnings = append(fileerr.ErrorList{{File: file, Msg: "state-dir " + want.StateDir +
			" is under /tmp: with the unit's PrivateTmp=yes the drain state is lost on every stop, so a drained host serves again after a restart; use /var/lib/virtbgp"}},
			want.Warnings...)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Parse:\n got %+v\nwant %+v", got, want)
	}
	checkConfig(t, got)
}

func TestParseDefaults(t *testing.T) {
	got, err := Parse("/etc/virtbgp/virtbgp.yaml", doc(
		"version: 1",
		"bgp:",
		"  asn: 65001",
		"  router-id: 192.0.2.1",
		"  peers:",
		"    - address: 198.18.0.1",
		"      asn: 65000",
		"mapping:",
		"  path: mapping.yaml",
	))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	want := &Config{
		File:    "/etc/virtbgp/virtbgp.yaml",
		Libvirt: Libvirt{URI: DefaultLibvirtURI},
		BGP: BGP{
			ASN:        65001,
			RouterID:   netip.MustParseAddr("192.0.2.1"),
			ListenPort: 0,
			GracefulRestart: GracefulRestart{Enabled: true, RestartTime: DefaultRestartTime,
				LongLivedStaleTime: DefaultLongLivedStaleTime, Notification: true},
			Peers: []Peer{{
				Address:   netip.MustParseAddr("198.18.0.1"),
				Port:      DefaultPeerPort,
				ASN:       65000,
				HoldTime:  DefaultHoldTime,
				Keepalive: DefaultHoldTime / 3,
				Families:  []Family{FamilyIPv4}, // the address's family

				ReceiveLimit: DefaultReceiveLimit, ReceiveLimitAction: ReceiveWarn,
			}},
		},
		Mapping: Mapping{Path: "/etc/virtbgp/mapping.yaml", Watch: true,
			MaxBytes: mapping.DefaultMaxBytes, MaxWithdrawPercent: DefaultMaxWithdrawPercent, WithdrawConfirmAfter: DefaultWithdrawConfirmAfter},
		Status:         Status{Listen: ""},
		Policy:         Policy{Paused: PausedWithdraw, StandbyPrepend: DefaultStandbyPrepend},
		ResyncInterval: DefaultResyncInterval,
		StateDir:       DefaultStateDir,
		Control:        Control{Socket: DefaultControlSocket},
		API:            API{WriteRate: DefaultWriteRate},
		Drain:          Drain{GracefulShutdownTime: DefaultDrainTime},
		Routes:         mapping.Limits{MinBits4: 24, MinBits6: 48},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Parse:\n got %+v\nwant %+v", got, want)
	}
	checkConfig(t, got)
}

// TestShippedDefaults pins the defaults of issue 11 ("host failure without
// blackholes") to the values doc.go, the README and docs/tor state: a dead
// host's routes are ordinary paths at the ToRs for 1s, then LLGR-stale for
// an hour (BIRD's default), and a hung host is found after 9s.
func TestShippedDefaults(t *testing.T) {
	cfg, err := Parse("c.yaml", withPeer("asn: 65000"))
	if err != nil {
		t.Fatal(err)
	}
	docText, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	gr, peer := cfg.BGP.GracefulRestart, cfg.BGP.Peers[0]
	for _, c := range []struct {
		key       string
		got, want any
		doc       string // the value as doc.go's format block states it
	}{
		{"enabled", gr.Enabled, true, "true"},
		{"restart-time", gr.RestartTime, time.Second, "1s"},
		{"long-lived-stale-time", gr.LongLivedStaleTime, time.Hour, "3600s"},
		{"notification", gr.Notification, true, "true"},
		{"hold-time", peer.HoldTime, 9 * time.Second, "9s"},
		{"keepalive", peer.Keepalive, 3 * time.Second, ""},
	} {
		if c.got != c.want {
			t.Errorf("default %s = %v, want %v", c.key, c.got, c.want)
		}
		if c.doc == "" {
			continue
		}
		line := regexp.MustCompile(`(?m)^//\s+` + c.key + `: ` + regexp.QuoteMeta(c.doc) + `\s+# default ` + regexp.QuoteMeta(c.doc) + `\b`)
		if !line.Match(docText) {
			t.Errorf("doc.go's format block does not show %s: %s with \"# default %s\"", c.key, c.doc, c.doc)
		}
	}
}

// TestParseKeepaliveDefault checks that the default keepalive is a third of
// the hold time in whole seconds, and 0 with a hold time of 0.
func TestParseKeepaliveDefault(t *testing.T) {
	for hold, want := range map[string]time.Duration{
		"90s":    30 * time.Second,
		"10s":    3 * time.Second,
		"3s":     time.Second,
		"4s":     time.Second,
		"0":      0,
		"0s":     0,
		"65535s": 21845 * time.Second,
	} {
		cfg, err := Parse("c.yaml", doc(
			"version: 1",
			"bgp:",
			"  asn: 65001",
			"  router-id: 192.0.2.1",
			"  peers:",
			"    - address: 198.18.0.1",
			"      asn: 65000",
			"      hold-time: "+hold,
			"mapping: {path: m.yaml}",
		))
		if err != nil {
			t.Errorf("hold-time %s: %v", hold, err)
			continue
		}
		if got := cfg.BGP.Peers[0].Keepalive; got != want {
			t.Errorf("hold-time %s: keepalive %s, want %s", hold, got, want)
		}
	}
}

// minimal is the smallest valid file: bad cases below add to it.
var minimal = []string{
	"version: 1",
	"bgp:",
	"  asn: 65001",
	"  router-id: 192.0.2.1",
	"mapping:",
	"  path: m.yaml",
}

// withPeer is minimal with one peer whose keys start at line 7.
func withPeer(keys ...string) []byte { return doc(withPeerLines(keys...)...) }

// withPeerLines is withPeer as lines, to add more at the end.
func withPeerLines(keys ...string) []string {
	lines := append([]string{}, minimal[:4]...)
	lines = append(lines, "  peers:", "    - address: 198.18.0.1")
	for _, k := range keys {
		lines = append(lines, "      "+k)
	}
	return append(lines, minimal[4:]...)
}

func TestParseErrors(t *testing.T) {
	const allowedTop = "allowed: version, libvirt, bgp, mapping, status, routes, policy, resync-interval, state-dir, control, api, drain"
	const allowedPeer = "allowed: address, interface, port, asn, password, password-file, passive, hold-time, keepalive, multihop-ttl, local-address, families, receive-limit, receive-limit-action, next-hop-ipv4, next-hop-ipv6, export"
	tests := []struct {
		name string
		data []byte
		want []string
	}{
		{"empty file", nil, []string{
			`c.yaml:1: top level: missing required key "version"`,
			`c.yaml:1: top level: missing required key "bgp"`,
			`c.yaml:1: top level: missing required key "mapping"`,
		}},
		{"comments only", doc("# nothing", "# here"), []string{
			`c.yaml:1: top level: missing required key "version"`,
			`c.yaml:1: top level: missing required key "bgp"`,
			`c.yaml:1: top level: missing required key "mapping"`,
		}},
		{"not a mapping", doc("# a list", "- version: 1"), []string{
			`c.yaml:2: top level: want a mapping, got a list`,
		}},
		{"missing top-level keys after comments", doc("# c", "", "version: 1"), []string{
			`c.yaml:1: top level: missing required key "bgp"`,
			`c.yaml:1: top level: missing required key "mapping"`,
		}},
		{"unknown top-level key", doc(append(minimal, "verison: 1")...), []string{
			`c.yaml:7: top level: unknown key "verison" (` + allowedTop + `)`,
		}},
		{"duplicate key", doc(append(minimal, "version: 1")...), []string{
			`c.yaml:7: top level: duplicate key "version" (first at line 1)`,
		}},
		{"version 2", doc(append([]string{"version: 2"}, minimal[1:]...)...), []string{
			`c.yaml:1: version: unsupported version 2 (this virtbgp reads version 1)`,
		}},
		{"version string", doc(append([]string{`version: "1"`}, minimal[1:]...)...), []string{
			`c.yaml:1: version: unsupported version "1" (this virtbgp reads version 1)`,
		}},
		{"syntax error", doc("version: 1", "bgp:", "  asn: 65001", "   router-id: x"), []string{
			`c.yaml:4: YAML syntax: mapping values are not allowed in this context`,
		}},
		{"syntax error on line 1", doc("version: 1: 2"), []string{
			`c.yaml:1: YAML syntax: mapping values are not allowed in this context`,
		}},
		{"two documents", doc(append(minimal, "---", "version: 1")...), []string{
			`c.yaml:7: more than one YAML document in the file`,
		}},
		{"broken second document", doc(append(minimal, "---", "a: [")...), []string{
			`c.yaml:8: YAML syntax: did not find expected node content`,
		}},
		{"alias", doc("version: 1", "bgp: &b", "  asn: 65001", "  router-id: 192.0.2.1", "mapping:", "  path: m.yaml", "status: *b"), []string{
			`c.yaml:7: YAML aliases (*b) are not supported`,
		}},
		{"libvirt", doc(append(minimal, "libvirt:", "  uri: nothing", "  url: x")...), []string{
			`c.yaml:8: libvirt.uri: want a libvirt URI like "qemu:///system", got "nothing"`,
			`c.yaml:9: libvirt: unknown key "url" (allowed: uri)`,
		}},
		{"libvirt null", doc(append(minimal, "libvirt:")...), []string{
			`c.yaml:7: libvirt: want a mapping, got null`,
		}},
		{"bgp missing keys", doc("version: 1", "# the bgp section", "bgp:", "  listen-port: 179", "mapping: {path: m.yaml}"), []string{
			`c.yaml:3: bgp: missing required key "asn"`,
			`c.yaml:3: bgp: missing required key "router-id"`,
		}},
		{"bgp not a mapping", doc("version: 1", "bgp: 65001", "mapping: {path: m.yaml}"), []string{
			`c.yaml:2: bgp: want a mapping, got 65001`,
		}},
		{"bgp bad values", doc(
			"version: 1",
			"bgp:",
			"  asn: 0",
			"  router-id: 2001:db8::1",
			"  listen-port: 65536",
			"  graceful-restart:",
			"    enabled: yes",
			"    restart-time: 4096s",
			"    restart: 1s",
			"    long-lived-stale-time: 16777216s",
			"  peers: {}",
			"mapping: {path: m.yaml}",
		), []string{
			`c.yaml:3: bgp.asn: want an integer from 1 to 4294967295, got 0`,
			`c.yaml:4: bgp.router-id: want an IPv4 address other than 0.0.0.0, got "2001:db8::1"`,
			`c.yaml:5: bgp.listen-port: want an integer from 0 to 65535, got 65536`,
			`c.yaml:7: bgp.graceful-restart.enabled: want true or false, got "yes"`,
			`c.yaml:8: bgp.graceful-restart.restart-time: want a whole number of seconds from 1s to 4095s like "1s", got "4096s"`,
			`c.yaml:9: bgp.graceful-restart: unknown key "restart" (allowed: enabled, restart-time, long-lived-stale-time, notification)`,
			`c.yaml:10: bgp.graceful-restart.long-lived-stale-time: want a whole number of seconds from 0s (off) to 16777215s like "3600s", got "16777216s"`,
			`c.yaml:11: bgp.peers: want a list, got a mapping`,
		}},
		{"asn too large, router-id 0.0.0.0", doc(
			"version: 1",
			"bgp:",
			"  asn: 4294967296",
			"  router-id: 0.0.0.0",
			"mapping: {path: m.yaml}",
		), []string{
			`c.yaml:3: bgp.asn: want an integer from 1 to 4294967295, got 4294967296`,
			`c.yaml:4: bgp.router-id: want an IPv4 address other than 0.0.0.0, got "0.0.0.0"`,
		}},
		{"restart-time", doc(
			"version: 1",
			"bgp:",
			"  asn: 65001",
			"  router-id: x",
			"  graceful-restart: {restart-time: 0}",
			"  graceful-restart: {restart-time: 1.5s}",
			"mapping: {path: m.yaml}",
		), []string{
			`c.yaml:4: bgp.router-id: want an IP address, got "x"`,
			`c.yaml:5: bgp.graceful-restart.restart-time: want a whole number of seconds from 1s to 4095s like "1s", got 0`,
			`c.yaml:6: bgp: duplicate key "graceful-restart" (first at line 5)`,
		}},
		{"peer missing keys", doc(
			"version: 1",
			"bgp:",
			"  asn: 65001",
			"  router-id: 192.0.2.1",
			"  peers:",
			"    - port: 179",
			"    - address: 198.18.0.1",
			"    - 198.18.0.2",
			"mapping: {path: m.yaml}",
		), []string{
			`c.yaml:6: bgp.peers[0]: missing required key "address" (or "interface" for BGP unnumbered)`,
			`c.yaml:6: bgp.peers[0]: missing required key "asn"`,
			`c.yaml:7: bgp.peers[1]: missing required key "asn"`,
			`c.yaml:8: bgp.peers[2]: want a mapping, got "198.18.0.2"`,
		}},
		{"peer unknown key", withPeer("asn: 65000", "hold: 90s"), []string{
			`c.yaml:8: bgp.peers[0]: unknown key "hold" (` + allowedPeer + `)`,
		}},
		{"peer export bad values", withPeer(
			"asn: 65000",
			"export:",
			"  communities: [65000:1, '70000:1', no-such]",
			"  large-communities: [1:2]",
			"  as-path-prepend: 11",
			"  med: -1",
			"  families: []",
			"  prefixes: [10.0.0.1/8, nope, '::ffff:10.0.0.0/104']",
			"  prefix: [10.0.0.0/8]",
		), []string{
			`c.yaml:9: bgp.peers[0].export.communities: invalid community "70000:1" (want ASN:value, each from 0 to 65535, or no-export, no-advertise, blackhole, graceful-shutdown)`,
			`c.yaml:9: bgp.peers[0].export.communities: invalid community "no-such" (want ASN:value, each from 0 to 65535, or no-export, no-advertise, blackhole, graceful-shutdown)`,
			`c.yaml:10: bgp.peers[0].export.large-communities: invalid large community "1:2" (want GA:LD1:LD2, each from 0 to 4294967295)`,
			`c.yaml:11: bgp.peers[0].export.as-path-prepend: want an integer from 0 to 10, got 11`,
			`c.yaml:12: bgp.peers[0].export.med: want an integer from 0 to 4294967295, got -1`,
			`c.yaml:13: bgp.peers[0].export.families: want at least one of ipv4, ipv6, got an empty list`,
			`c.yaml:14: bgp.peers[0].export.prefixes: 10.0.0.1/8 has host bits set (did you mean 10.0.0.0/8?)`,
			`c.yaml:14: bgp.peers[0].export.prefixes: want a prefix like 192.0.2.0/24 or 2001:db8::/32, got "nope"`,
			`c.yaml:14: bgp.peers[0].export.prefixes: want a prefix like 192.0.2.0/24 or 2001:db8::/32, got "::ffff:10.0.0.0/104"`,
			`c.yaml:15: bgp.peers[0].export: unknown key "prefix" (allowed: communities, large-communities, as-path-prepend, med, families, prefixes)`,
		}},
		{"peer next hop overrides", withPeer(
			"asn: 65000",
			"next-hop-ipv4: 192.0.2.1",
			"next-hop-ipv6: fe80::1",
			"next-hop-ipv4: 2001:db8::1",
		), []string{
			`c.yaml:8: bgp.peers[0].next-hop-ipv4: only for a session over IPv6 (the peer address 198.18.0.1 is IPv4: its IPv4 routes already get this host's address)`,
			`c.yaml:9: bgp.peers[0].next-hop-ipv6: want a global IPv6 address, got "fe80::1"`,
			`c.yaml:10: bgp.peers[0]: duplicate key "next-hop-ipv4" (first at line 8)`,
		}},
		{"interface peer errors", doc(
			"version: 1",
			"bgp:",
			"  asn: 65001",
			"  router-id: 192.0.2.1",
			"  peers:",
			"    - {address: 198.18.0.1, interface: eth1, asn: 65000}",
			"    - {interface: 'eth0:1', asn: 65000}",
			"    - {interface: averyveryverylongname, asn: 65000}",
			"    - {interface: '', asn: 65000}",
			"    - {interface: eth2, asn: 65000, local-address: 198.18.0.2, multihop-ttl: 2, next-hop-ipv4: 192.0.2.9}",
			"    - {interface: eth3, asn: 65000, next-hop-ipv6: '2001:db8::9'}",
			"    - {interface: eth3, asn: 65000}",
			"mapping: {path: m.yaml}",
		), []string{
			`c.yaml:6: bgp.peers[0]: give either address or interface, not both (address at line 6)`,
			`c.yaml:7: bgp.peers[1].interface: want a network interface name (1 to 15 characters, no '/', ':', '%' or white space), got "eth0:1"`,
			`c.yaml:8: bgp.peers[2].interface: want a network interface name (1 to 15 characters, no '/', ':', '%' or white space), got "averyveryverylongname"`,
			`c.yaml:9: bgp.peers[3].interface: want a network interface name (1 to 15 characters, no '/', ':', '%' or white space), got ""`,
			`c.yaml:10: bgp.peers[4].local-address: not for an interface peer (the session uses the link-local address of eth2)`,
			`c.yaml:10: bgp.peers[4].multihop-ttl: not for an interface peer (it is directly connected on eth2)`,
			`c.yaml:10: bgp.peers[4].next-hop-ipv4: not for an interface peer (its routes of both families get the link-local address of eth2 as next hop, RFC 8950)`,
			`c.yaml:11: bgp.peers[5].next-hop-ipv6: not for an interface peer (its routes of both families get the link-local address of eth3 as next hop, RFC 8950)`,
			`c.yaml:12: bgp.peers[6].interface: eth3 is already the interface of bgp.peers[5] (line 11)`,
		}},
		{"peer bad values", withPeer(
			"asn: -1",
			"port: 0",
			"passive: 1",
			"multihop-ttl: 256",
			"local-address: 224.0.0.1",
			"password: ''",
		), []string{
			`c.yaml:7: bgp.peers[0].asn: want an integer from 1 to 4294967295, got -1`,
			`c.yaml:8: bgp.peers[0].port: want an integer from 1 to 65535, got 0`,
			`c.yaml:9: bgp.peers[0].passive: want true or false, got 1`,
			`c.yaml:10: bgp.peers[0].multihop-ttl: want an integer from 0 to 255, got 256`,
			`c.yaml:11: bgp.peers[0].local-address: want a unicast IP address, got "224.0.0.1"`,
			`c.yaml:12: bgp.peers[0].password: the password is empty`,
		}},
		{"peer address", doc(
			"version: 1",
			"bgp:",
			"  asn: 65001",
			"  router-id: 192.0.2.1",
			"  peers:",
			"    - {address: 198.18.0.1, asn: 65000}",
			"    - {address: '::ffff:198.18.0.1', asn: 65000}",
			"    - {address: 0.0.0.0, asn: 65000}",
			"    - {address: fe80::1%eth0, asn: 65000}",
			"    - {address: 198.18.0.1, asn: 65000}",
			"    - address: 2001:db8::1",
			"      asn: 65000",
			"      local-address: 198.18.0.2",
			"mapping: {path: m.yaml}",
		), []string{
			`c.yaml:7: bgp.peers[1].address: want a unicast IP address, got "::ffff:198.18.0.1"`,
			`c.yaml:8: bgp.peers[2].address: want a unicast IP address, got "0.0.0.0"`,
			`c.yaml:9: bgp.peers[3].address: "fe80::1%eth0" is a link-local address: virtbgp does not support link-local (interface-scoped) sessions; use a global or unique-local address`,
			`c.yaml:10: bgp.peers[4].address: 198.18.0.1 is already the address of bgp.peers[0] (line 6)`,
			`c.yaml:13: bgp.peers[5].local-address: 198.18.0.2 is IPv4 but the peer address 2001:db8::1 is IPv6`,
		}},
		{"password and password-file", withPeer("asn: 65000", "password: x", "password-file: /x"), []string{
			`c.yaml:9: bgp.peers[0]: give either password or password-file, not both (password at line 8)`,
		}},
		{"password too long", withPeer("asn: 65000", "password: "+strings.Repeat("x", 81)), []string{
			`c.yaml:8: bgp.peers[0].password: the password is longer than 80 bytes (the TCP MD5 key limit)`,
		}},
		{"password-file empty name", withPeer("asn: 65000", "password-file: ''"), []string{
			`c.yaml:8: bgp.peers[0].password-file: want a file name, got ""`,
		}},
		{"hold-time too short", withPeer("asn: 65000", "hold-time: 2s"), []string{
			`c.yaml:8: bgp.peers[0].hold-time: want 0 or a whole number of seconds from 3s to 65535s like "9s", got "2s"`,
		}},
		{"hold-time too long", withPeer("asn: 65000", "hold-time: 65536s"), []string{
			`c.yaml:8: bgp.peers[0].hold-time: want 0 or a whole number of seconds from 3s to 65535s like "9s", got "65536s"`,
		}},
		{"hold-time fraction", withPeer("asn: 65000", "hold-time: 3.5s"), []string{
			`c.yaml:8: bgp.peers[0].hold-time: want 0 or a whole number of seconds from 3s to 65535s like "9s", got "3.5s"`,
		}},
		{"hold-time no unit", withPeer("asn: 65000", "hold-time: 90"), []string{
			`c.yaml:8: bgp.peers[0].hold-time: want 0 or a whole number of seconds from 3s to 65535s like "9s", got 90`,
		}},
		{"keepalive not below the default hold-time", withPeer("asn: 65000", "keepalive: 9s"), []string{
			`c.yaml:8: bgp.peers[0].keepalive: want at least 1s and less than hold-time (9s), got "9s"`,
		}},
		{"keepalive 0", withPeer("asn: 65000", "keepalive: 0", "hold-time: 9s"), []string{
			`c.yaml:8: bgp.peers[0].keepalive: want at least 1s and less than hold-time (9s), got 0`,
		}},
		{"keepalive bad", withPeer("asn: 65000", "keepalive: -1s", "hold-time: 1s"), []string{
			`c.yaml:8: bgp.peers[0].keepalive: want a whole number of seconds from 0s to 65534s like "3s", got "-1s"`,
			`c.yaml:9: bgp.peers[0].hold-time: want 0 or a whole number of seconds from 3s to 65535s like "9s", got "1s"`,
		}},
		{"families", doc(
			"version: 1",
			"bgp:",
			"  asn: 65001",
			"  router-id: 192.0.2.1",
			"  peers:",
			"    - {address: 198.18.0.1, asn: 65000, families: []}",
			"    - {address: 198.18.0.2, asn: 65000, families: [ipv4, IPv6, ipv4, vpnv4]}",
			"    - {address: 198.18.0.3, asn: 65000, families: ipv4}",
			"    - {address: 198.18.0.4, asn: 65000, families: [[ipv4]]}",
			"mapping: {path: m.yaml}",
		), []string{
			`c.yaml:6: bgp.peers[0].families: want at least one of ipv4, ipv6, got an empty list`,
			`c.yaml:7: bgp.peers[1].families: want ipv4 or ipv6, got "IPv6"`,
			`c.yaml:7: bgp.peers[1].families: duplicate family ipv4 (first at line 7)`,
			`c.yaml:7: bgp.peers[1].families: want ipv4 or ipv6, got "vpnv4"`,
			`c.yaml:8: bgp.peers[2].families: want a list, got "ipv4"`,
			`c.yaml:9: bgp.peers[3].families: want a string, got a list`,
		}},
		{"peer alias", doc(
			"version: 1",
			"bgp:",
			"  asn: 65001",
			"  router-id: 192.0.2.1",
			"  peers:",
			"    - &p {address: 198.18.0.1, asn: 65000}",
			"    - *p",
			"    - {address: 198.18.0.1, asn: 65000}",
			"mapping: {path: m.yaml}",
		), []string{
			`c.yaml:7: YAML aliases (*p) are not supported`,
			`c.yaml:8: bgp.peers[2].address: 198.18.0.1 is already the address of bgp.peers[0] (line 6)`,
		}},
		{"passive without listener", withPeer("asn: 65000", "passive: true"), []string{
			`c.yaml:8: bgp.peers[0].passive: a passive peer needs bgp.listen-port (without it virtbgp does not accept sessions)`,
		}},
		{"mapping missing path", doc("version: 1", "bgp: {asn: 1, router-id: 192.0.2.1}", "mapping:", "  paths: m.yaml"), []string{
			`c.yaml:3: mapping: missing required key "path" (a mapping file or directory; it may be left out only when mapping.metadata or mapping.nova is enabled)`,
			`c.yaml:4: mapping: unknown key "paths" (allowed: path, watch, max-bytes, max-withdraw-percent, withdraw-confirm-after, metadata, nova)`,
		}},
		{"mapping bad", doc("version: 1", "bgp: {asn: 1, router-id: 192.0.2.1}", "mapping: m.yaml"), []string{
			`c.yaml:3: mapping: want a mapping, got "m.yaml"`,
		}},
		{"mapping empty path", doc("version: 1", "bgp: {asn: 1, router-id: 192.0.2.1}", "mapping: {path: ''}"), []string{
			`c.yaml:3: mapping.path: want a file or directory name, got ""`,
		}},
		{"mapping null path", doc("version: 1", "bgp: {asn: 1, router-id: 192.0.2.1}", "mapping: {path: ~}"), []string{
			`c.yaml:3: mapping.path: want a string, got null`,
		}},
		{"status", doc(append(minimal, "status:", "  listen: 9479")...), []string{
			`c.yaml:8: status.listen: want host:port like "127.0.0.1:9479" (port 1..65535), or "" to disable, got 9479`,
		}},
		{"status port 0", doc(append(minimal, "status: {listen: 'localhost:0'}")...), []string{
			`c.yaml:7: status.listen: want host:port like "127.0.0.1:9479" (port 1..65535), or "" to disable, got "localhost:0"`,
		}},
		{"status bad host", doc(append(minimal, "status: {listen: 'a b:80'}")...), []string{
			`c.yaml:7: status.listen: want host:port like "127.0.0.1:9479" (port 1..65535), or "" to disable, got "a b:80"`,
		}},
		{"status bad IPv4", doc(append(minimal, "status: {listen: '127.0.0.256:9479'}")...), []string{
			`c.yaml:7: status.listen: want host:port like "127.0.0.1:9479" (port 1..65535), or "" to disable, got "127.0.0.256:9479"`,
		}},
		{"nulls", doc(append(withPeerLines("asn: 65000", "password:", "password-file: x"),
			"libvirt: {uri: null}",
			"status: {listen: ~}",
			"policy: {paused: , standby-prepend: }",
			"resync-interval:",
		)...), []string{
			`c.yaml:8: bgp.peers[0].password: want a string, got null`,
			`c.yaml:9: bgp.peers[0].password-file: cannot read x: no such file or directory`,
			`c.yaml:12: libvirt.uri: want a string, got null`,
			`c.yaml:13: status.listen: want a string, got null`,
			`c.yaml:14: policy.paused: want a string, got null`,
			`c.yaml:14: policy.standby-prepend: want an integer from 2 to 16, got null`,
			`c.yaml:15: resync-interval: want 0 (disabled) or a duration of at least 1s like "5m", got null`,
		}},
		{"policy", doc(append(minimal, "policy:", "  paused: Keep", "  standby-prepend: 17", "  prepend: 1")...), []string{
			`c.yaml:8: policy.paused: want withdraw or keep, got "Keep"`,
			`c.yaml:9: policy.standby-prepend: want an integer from 2 to 16, got 17`,
			`c.yaml:10: policy: unknown key "prepend" (allowed: paused, standby-prepend)`,
		}},
		{"resync-interval short", doc(append(minimal, "resync-interval: 500ms")...), []string{
			`c.yaml:7: resync-interval: want 0 (disabled) or a duration of at least 1s like "5m", got "500ms"`,
		}},
		{"resync-interval negative", doc(append(minimal, "resync-interval: -5m")...), []string{
			`c.yaml:7: resync-interval: want 0 (disabled) or a duration of at least 1s like "5m", got "-5m"`,
		}},
		{"resync-interval odd tag", doc(append(minimal, "resync-interval: !x \"5\\nm\"")...), []string{
			`c.yaml:7: resync-interval: want 0 (disabled) or a duration of at least 1s like "5m", got "5\nm"`,
		}},
		{"many errors, sorted", doc(
			"resync-interval: 1ms",
			"bgp:",
			"  router-id: 192.0.2.300",
			"  peers:",
			"    - address: 198.18.0.1",
			"      asn: 65000",
			"      hold-time: 1s",
			"      families: [ipv4, ipv4]",
			"policy: {paused: drop}",
			"version: 1",
			"status: {listen: nope}",
			"extra: true",
		), []string{
			`c.yaml:1: resync-interval: want 0 (disabled) or a duration of at least 1s like "5m", got "1ms"`,
			`c.yaml:1: top level: missing required key "mapping"`,
			`c.yaml:2: bgp: missing required key "asn"`,
			`c.yaml:3: bgp.router-id: want an IP address, got "192.0.2.300"`,
			`c.yaml:7: bgp.peers[0].hold-time: want 0 or a whole number of seconds from 3s to 65535s like "9s", got "1s"`,
			`c.yaml:8: bgp.peers[0].families: duplicate family ipv4 (first at line 8)`,
			`c.yaml:9: policy.paused: want withdraw or keep, got "drop"`,
			`c.yaml:11: status.listen: want host:port like "127.0.0.1:9479" (port 1..65535), or "" to disable, got "nope"`,
			`c.yaml:12: top level: unknown key "extra" (` + allowedTop + `)`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("c.yaml", tt.data)
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", cfg)
			}
			if cfg != nil {
				t.Errorf("Parse returned a config with an error")
			}
			got := errLines(t, err)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("errors:\n got %s\nwant %s", strings.Join(got, "\n     "), strings.Join(tt.want, "\n     "))
			}
			if err.Error() != strings.Join(tt.want, "\n") {
				t.Errorf("Error() = %q", err.Error())
			}
		})
	}
}

// TestParsePasswordFile checks that password files are read relative to the
// config file's directory and trimmed, and how reading them fails.
func TestParsePasswordFile(t *testing.T) {
	dir := t.TempDir()
	etc := filepath.Join(dir, "etc")
	for name, content := range map[string]string{
		"etc/secrets/tor1.pw": "\t s3cret pass \r\n",
		"abs.pw":              "absolute\n",
		"etc/empty.pw":        " \n\n",
		"etc/long.pw":         strings.Repeat("p", 81) + "\n",
		"etc/max.pw":          strings.Repeat("p", 80) + "\n",
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(etc, "virtbgp.yaml")
	config := func(pwfile string) []byte {
		return doc(
			"version: 1",
			"bgp:",
			"  asn: 65001",
			"  router-id: 192.0.2.1",
			"  peers:",
			"    - address: 198.18.0.1",
			"      asn: 65000",
			"      password-file: "+pwfile,
			"mapping:",
			"  path: ../mapping",
		)
	}

	ok := map[string]string{
		"secrets/tor1.pw":                     "s3cret pass",
		"./secrets/../secrets/tor1.pw":        "s3cret pass",
		filepath.Join(dir, "abs.pw"):          "absolute",
		"../abs.pw":                           "absolute",
		"max.pw":                              strings.Repeat("p", 80),
		filepath.Join(etc, "secrets/tor1.pw"): "s3cret pass",
	}
	for pwfile, want := range ok {
		cfg, err := Parse(file, config(pwfile))
		if err != nil {
			t.Errorf("password-file %s: %v", pwfile, err)
			continue
		}
		if got := cfg.BGP.Peers[0].Password; got != want {
			t.Errorf("password-file %s: password %q, want %q", pwfile, got, want)
		}
		if got, want := cfg.Mapping.Path, filepath.Join(dir, "mapping"); got != want {
			t.Errorf("mapping path %q, want %q", got, want)
		}
	}

	cfile := filepath.Join(etc, "c.yaml")
	bad := map[string]string{
		"missing.pw": "cannot read " + filepath.Join(etc, "missing.pw") + ": no such file or directory",
		"secrets":    "cannot read " + filepath.Join(etc, "secrets") + ": not a regular file",
		"empty.pw":   "the password in " + filepath.Join(etc, "empty.pw") + " is empty",
		"long.pw":    "the password in " + filepath.Join(etc, "long.pw") + " is longer than 80 bytes (the TCP MD5 key limit)",
	}
	for pwfile, msg := range bad {
		_, err := Parse(cfile, config(pwfile))
		got := errLines(t, err)
		want := cfile + ":8: bgp.peers[0].password-file: " + msg
		if len(got) != 1 || got[0] != want {
			t.Errorf("password-file %s: errors %q, want %q", pwfile, got, want)
		}
	}
}

func TestParseRelativeFile(t *testing.T) {
	cfg, err := Parse("virtbgp.yaml", doc(minimal...))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Mapping.Path != "m.yaml" {
		t.Errorf("mapping path %q, want m.yaml", cfg.Mapping.Path)
	}
	cfg, err = Parse("conf/virtbgp.yaml", doc(minimal...))
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join("conf", "m.yaml"); cfg.Mapping.Path != want {
		t.Errorf("mapping path %q, want %q", cfg.Mapping.Path, want)
	}
}

func TestLoadExample(t *testing.T) {
	const path = "../../examples/demo.yaml"
	cfg, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if cfg.File != path {
		t.Errorf("File = %q, want %q", cfg.File, path)
	}
	if want := filepath.Join("..", "..", "examples", "mapping.yaml"); cfg.Mapping.Path != want {
		t.Errorf("mapping path %q, want %q", cfg.Mapping.Path, want)
	}
	if _, err := os.Stat(cfg.Mapping.Path); err != nil {
		t.Errorf("mapping path: %v", err)
	}
	if cfg.Libvirt.URI != "test:///default" || cfg.BGP.ASN != 65001 || len(cfg.BGP.Peers) != 0 {
		t.Errorf("unexpected config %+v", cfg)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "none.yaml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load: %v, want a not-exist error", err)
	}
}

func TestLoadErrorsNameTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "virtbgp.yaml")
	if err := os.WriteFile(path, doc("version: 1", "bgp: {}"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	want := []string{
		path + `:1: top level: missing required key "mapping"`,
		path + `:2: bgp: missing required key "asn"`,
		path + `:2: bgp: missing required key "router-id"`,
	}
	if got := errLines(t, err); !reflect.DeepEqual(got, want) {
		t.Errorf("errors %q, want %q", got, want)
	}
}

func TestParseOperationsSectionErrors(t *testing.T) {
	base := []string{"version: 1", "bgp: {asn: 65001, router-id: 192.0.2.1}", "mapping: {path: m.yaml, watch: yes-please}"}
	_, err := Parse("c.yaml", doc(append(base,
		"state-dir: ''",
		"control: {socket: 7, sockets: x}",
		"drain: {graceful-shutdown-time: 2h}")...))
	want := []string{
		`c.yaml:3: mapping.watch: want true or false, got "yes-please"`,
		`c.yaml:4: state-dir: want a path, got ""`,
		`c.yaml:5: control: unknown key "sockets" (allowed: socket, read-group)`,
		`c.yaml:6: drain.graceful-shutdown-time: want a duration from 0 to 1h like "60s", got "2h"`,
	}
	got := strings.Split(fmt.Sprint(err), "\n")
	if !slices.Equal(got, want) {
		t.Fatalf("errors:\n got %q\nwant %q", got, want)
	}
}

func TestDefaultFamiliesFollowTheSession(t *testing.T) {
	cfg, err := Parse("c.yaml", doc("version: 1", "bgp:", "  asn: 65001", "  router-id: 192.0.2.1", "  peers:",
		"    - {address: 198.18.0.1, asn: 65000}", "    - {address: 'fd00::1', asn: 65000}", "mapping: {path: m.yaml}"))
	if err != nil {
		t.Fatal(err)
	}
	if f := cfg.BGP.Peers[0].Families; !slices.Equal(f, []Family{FamilyIPv4}) {
		t.Errorf("IPv4 session families = %v, want [ipv4]", f)
	}
	if f := cfg.BGP.Peers[1].Families; !slices.Equal(f, []Family{FamilyIPv6}) {
		t.Errorf("IPv6 session families = %v, want [ipv6]", f)
	}
}

// TestParseInterfacePeer checks a BGP unnumbered peer: the interface,
// no address, and both families by default.
func TestParseInterfacePeer(t *testing.T) {
	cfg, err := Parse("c.yaml", doc("version: 1", "bgp:", "  asn: 65001", "  router-id: 192.0.2.1", "  peers:",
		"    - {interface: eth1, asn: 65000}", "    - {interface: eth2, asn: 65000, families: [ipv6]}", "mapping: {path: m.yaml}"))
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.BGP.Peers[0]
	if p.Interface != "eth1" || p.Address.IsValid() || !slices.Equal(p.Families, []Family{FamilyIPv4, FamilyIPv6}) || p.Name() != "interface eth1" {
		t.Errorf("peer = interface %q, address %v, families %v, name %q; want eth1, none, [ipv4 ipv6], \"interface eth1\"",
			p.Interface, p.Address, p.Families, p.Name())
	}
	if f := cfg.BGP.Peers[1].Families; !slices.Equal(f, []Family{FamilyIPv6}) {
		t.Errorf("families = %v, want [ipv6]", f)
	}
}

// TestParsePeerExport checks the per-peer export policy and next hop keys
// as they reach the Peer: sorted, de-duplicated communities, the prepend,
// MED, families and the prefix allow-list.
func TestParsePeerExport(t *testing.T) {
	tests := []struct {
		name string
		keys []string
		want Peer
	}{
		{"none", []string{"asn: 65000"}, Peer{}},
		{"all", []string{
			"asn: 65000",
			"families: [ipv4, ipv6]",
			"next-hop-ipv6: 2001:db8::2",
			"export:",
			"  communities: [65000:2, 65000:1, 65000:2, no-export]",
			"  large-communities: ['65000:0:2', '65000:0:1']",
			"  as-path-prepend: 2",
			"  med: 0",
			"  families: [ipv6]",
			"  prefixes: [2001:db8::/32, 10.0.0.0/8]",
		}, Peer{
			NextHopIPv6: netip.MustParseAddr("2001:db8::2"),
			Export: PeerExport{
				Communities:      []uint32{65000<<16 | 1, 65000<<16 | 2, 0xFFFFFF01},
				LargeCommunities: []mapping.LargeCommunity{{GlobalAdmin: 65000, LocalData2: 1}, {GlobalAdmin: 65000, LocalData2: 2}},
				ASPathPrepend:    2,
				MED:              new(uint32(0)),
				Families:         []Family{FamilyIPv6},
				Prefixes:         []netip.Prefix{netip.MustParsePrefix("2001:db8::/32"), netip.MustParsePrefix("10.0.0.0/8")},
			},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("c.yaml", withPeer(tt.keys...))
			if err != nil {
				t.Fatal(err)
			}
			p := cfg.BGP.Peers[0]
			if p.NextHopIPv4 != tt.want.NextHopIPv4 || p.NextHopIPv6 != tt.want.NextHopIPv6 {
				t.Errorf("next hops = %v, %v; want %v, %v", p.NextHopIPv4, p.NextHopIPv6, tt.want.NextHopIPv4, tt.want.NextHopIPv6)
			}
			if !reflect.DeepEqual(p.Export, tt.want.Export) {
				t.Errorf("export = %+v\nwant     %+v", p.Export, tt.want.Export)
			}
			if got := p.Export.IsZero(); got != reflect.DeepEqual(tt.want.Export, PeerExport{}) {
				t.Errorf("IsZero() = %v", got)
			}
		})
	}
}

// TestLoadHostExample loads the config a host gets (the package's
// /etc/virtbgp/virtbgp.yaml): the system libvirt, the directories the unit
// gives the service, no status listener, and the mapping.d/ directory.
func TestLoadHostExample(t *testing.T) {
	cfg, err := Load("../../examples/virtbgp.yaml")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	for _, c := range []struct{ what, got, want string }{
		{"libvirt.uri", cfg.Libvirt.URI, "qemu:///system"},
		{"state-dir", cfg.StateDir, DefaultStateDir},
		{"control.socket", cfg.Control.Socket, DefaultControlSocket},
		{"status.listen", cfg.Status.Listen, ""},
		{"mapping.path", cfg.Mapping.Path, filepath.Join("..", "..", "examples", "mapping.d")},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
		}
	}
}
