package main

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/virtbgp/virtbgp/internal/config"
)

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	broken := filepath.Join(dir, "broken.yaml")
	if err := os.WriteFile(broken, []byte("version: 1\nvms:\n  web:\n    med: -1\n    ips: [127.0.0.1, 192.0.2.300]\n    colour: blue\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	nova := filepath.Join(dir, "nova.yaml")
	if err := os.WriteFile(nova, []byte("version: 1\nbgp: {asn: 65001, router-id: 192.0.2.1}\nmapping:\n  nova: {enabled: true, allowed-prefixes: [198.51.100.0/24]}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		code     int
		stdout   []string
		stderr   []string
		noStdout bool
		noStderr bool
	}{
		{name: "example config", args: []string{"check", "--config", "../../examples/demo.yaml"}, code: 0,
			stdout: []string{"config ../../examples/demo.yaml: ok", "mapping ../../examples/mapping.yaml: ok (2 VM(s), 5 route(s) from 1 file(s))"}},
		{name: "the demo's /tmp paths are warned about", args: []string{"check", "--config", "../../examples/demo.yaml"}, code: 0,
			stderr: []string{"warning: ../../examples/demo.yaml: state-dir /tmp/virtbgp-demo/state is under /tmp",
				"warning: ../../examples/demo.yaml: control.socket /tmp/virtbgp-demo/control.sock is under /tmp"}},
		{name: "host config", args: []string{"check", "--config", "../../examples/virtbgp.yaml"}, code: 0, noStderr: true,
			stdout: []string{"config ../../examples/virtbgp.yaml: ok (AS 65001, router-id 192.0.2.1, 0 peer(s), libvirt qemu:///system)",
				"mapping ../../examples/mapping.d: ok (0 VM(s), 0 route(s) from 1 file(s))"}},
		{name: "mapping only", args: []string{"check", "--mapping", "../../examples/mapping.yaml"}, code: 0,
			stdout: []string{"mapping ../../examples/mapping.yaml: ok"}},
		{name: "every problem of a broken mapping", args: []string{"check", "--mapping", broken}, code: 1, noStdout: true,
			stderr: []string{broken + ":4: ", broken + ":5: ", broken + ":6: ", "127.0.0.1", "192.0.2.300", `"colour"`, "4 problem(s)"}},
		{name: "a Nova host without a mapping file", args: []string{"check", "--config", nova}, code: 0,
			stdout: []string{"config " + nova + ": ok", "metadata: Nova's element, [fixed] IPs, claims allowed in [198.51.100.0/24]",
				"mapping: none (the routes come from the domains' metadata)"}},
		{name: "missing config", args: []string{"check", "--config", filepath.Join(dir, "nope.yaml")}, code: 1,
			stderr: []string{"nope.yaml"}},
		{name: "version", args: []string{"version"}, code: 0, stdout: []string{"virtbgp "}},
		{name: "unknown command", args: []string{"frobnicate"}, code: 2, stderr: []string{`unknown command "frobnicate"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := runMain(tt.args, &out, &errb)
			if code != tt.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tt.code, out.String(), errb.String())
			}
			for _, s := range tt.stdout {
				if !strings.Contains(out.String(), s) {
					t.Errorf("stdout lacks %q:\n%s", s, out.String())
				}
			}
			for _, s := range tt.stderr {
				if !strings.Contains(errb.String(), s) {
					t.Errorf("stderr lacks %q:\n%s", s, errb.String())
				}
			}
			if tt.noStderr && errb.Len() > 0 {
				t.Errorf("stderr = %q, want nothing", errb.String())
			}
			if tt.noStdout && out.Len() > 0 {
				t.Errorf("stdout = %q, want nothing", out.String())
			}
		})
	}
}

// TestCheckRefusesWhatIsNotAFile runs check on a FIFO, a device and an
// oversized mapping: each is a clear error, never a hang (a FIFO blocked
// open(2), so ExecStartPre never ended) or unbounded memory (/dev/zero).
func TestCheckRefusesWhatIsNotAFile(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.yaml")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	zero := filepath.Join(dir, "zero.yaml")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, []byte("version: 1\nvms: {}\n"+strings.Repeat("#\n", 1024)), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgFIFO := filepath.Join(dir, "config-fifo.yaml")
	if err := os.WriteFile(cfgFIFO, []byte("version: 1\nbgp: {asn: 65001, router-id: 192.0.2.1}\nmapping: {path: fifo.yaml}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfgBig := filepath.Join(dir, "config-big.yaml")
	if err := os.WriteFile(cfgBig, []byte("version: 1\nbgp: {asn: 65001, router-id: 192.0.2.1}\nmapping: {path: big.yaml, max-bytes: 1024}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"mapping FIFO", []string{"check", "--mapping", fifo}, fifo + ": cannot read: open: not a regular file (a FIFO)"},
		{"mapping link to /dev/zero", []string{"check", "--mapping", zero}, zero + ": cannot read: open: not a regular file (a character device)"},
		{"config FIFO", []string{"check", "--config", fifo}, "not a regular file (a FIFO)"},
		{"config naming a FIFO mapping", []string{"check", "--config", cfgFIFO}, fifo + ": cannot read: open: not a regular file (a FIFO)"},
		{"mapping over mapping.max-bytes", []string{"check", "--config", cfgBig}, big + ": too big: the mapping may have at most 1024 bytes in all (mapping.max-bytes)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			done := make(chan int, 1)
			go func() { done <- runMain(tc.args, &out, &errb) }()
			select {
			case code := <-done:
				if code != 1 || !strings.Contains(errb.String(), tc.want) {
					t.Fatalf("exit %d, stderr:\n%s\nwant exit 1 and %q", code, errb.String(), tc.want)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("check did not end within 20s")
			}
		})
	}
}

// TestCheckNextHops checks what `virtbgp check` says about the next hops of
// the other family, with a stand-in for the host's interfaces.
func TestCheckNextHops(t *testing.T) {
	nh := func(peer netip.Addr, fam config.Family) (netip.Addr, error) {
		if peer == netip.MustParseAddr("198.18.0.1") {
			return netip.MustParseAddr("fd00::11"), nil
		}
		return netip.Addr{}, errors.New("interface eth1 facing the peer has no usable global " + string(fam) + " address")
	}
	nb := func(ifname string) (netip.Addr, error) {
		if ifname == "eth2" {
			return netip.MustParseAddr("fe80::2%eth2"), nil
		}
		return netip.Addr{}, errors.New("no IPv6 link-local neighbour on " + ifname + " yet (its router advertisements create one)")
	}
	both := []config.Family{config.FamilyIPv4, config.FamilyIPv6}
	tests := []struct {
		name           string
		peers          []config.Peer
		stdout, stderr string
	}{
		{"own family only", []config.Peer{{Address: netip.MustParseAddr("198.18.0.1"), Families: []config.Family{config.FamilyIPv4}}}, "", ""},
		{"found", []config.Peer{{Address: netip.MustParseAddr("198.18.0.1"), Families: both}},
			"peer 198.18.0.1: ipv6 routes with next hop self get next hop fd00::11\n", ""},
		{"override", []config.Peer{{Address: netip.MustParseAddr("198.18.0.2"), Families: both, NextHopIPv6: netip.MustParseAddr("fd00::99")}},
			"peer 198.18.0.2: ipv6 routes with next hop self get next hop fd00::99\n", ""},
		{"none", []config.Peer{{Address: netip.MustParseAddr("198.18.0.2"), Families: both}}, "",
			"warning: peer 198.18.0.2: its session carries ipv6 but ipv6 routes with next hop self will not be sent to it on this host: interface eth1 facing the peer has no usable global ipv6 address (set next-hop-ipv6, or give the interface facing it a global ipv6 address)\n"},
		{"ipv4 over IPv6", []config.Peer{{Address: netip.MustParseAddr("fd00::1"), Families: both}}, "",
			"warning: peer fd00::1: its session carries ipv4 but ipv4 routes with next hop self will not be sent to it on this host: interface eth1 facing the peer has no usable global ipv4 address (set next-hop-ipv4, or give the interface facing it a global ipv4 address)\n"},
		{"unnumbered", []config.Peer{{Interface: "eth2", Families: both}},
			"peer interface eth2: unnumbered, neighbour fe80::2%eth2; its routes get this host's link-local address on eth2 as next hop (IPv4 ones too, RFC 8950)\n", ""},
		{"unnumbered without neighbour", []config.Peer{{Interface: "eth3", Families: both}}, "",
			"warning: peer interface eth3: no session on this host until there is one neighbour: no IPv6 link-local neighbour on eth3 yet (its router advertisements create one)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			checkNextHops(config.BGP{ASN: 65001, Peers: tt.peers}, nh, nb, &out, &errb)
			if out.String() != tt.stdout || errb.String() != tt.stderr {
				t.Errorf("stdout %q\nwant   %q\nstderr %q\nwant   %q", out.String(), tt.stdout, errb.String(), tt.stderr)
			}
		})
	}
}
