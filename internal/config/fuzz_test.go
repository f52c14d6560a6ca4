package config

import (
	"errors"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/virtbgp/virtbgp/fileerr"
	"github.com/virtbgp/virtbgp/mapping"
)

// fuzzPassword stands in for reading password files so that the fuzzer
// never opens real files: a name containing "missing" fails, any other
// yields a password made from the name.
func fuzzPassword(path string) (string, error) {
	if strings.Contains(path, "missing") {
		return "", errors.New("cannot read " + path + ": no such file or directory")
	}
	return strings.TrimSpace("pw-" + path), nil
}

// FuzzParse checks that Parse never panics, that every problem it reports is
// one "file:line: message" line, in order, and that every config it accepts
// is complete and within the documented limits.
func FuzzParse(f *testing.F) {
	for _, example := range []string{"../../examples/virtbgp.yaml", "../../examples/demo.yaml"} {
		if data, err := os.ReadFile(example); err == nil {
			f.Add(data)
		}
	}
	for _, seed := range []string{
		"",
		"version: 1\nbgp:\n  asn: 65001\n  router-id: 192.0.2.1\nmapping:\n  path: m.yaml\n",
		`version: 1
libvirt: {uri: "qemu:///system"}
bgp:
  asn: 65001
  router-id: 192.0.2.1
  listen-port: 179
  graceful-restart: {enabled: true, restart-time: 120s}
  peers:
    - address: 198.18.0.1
      port: 179
      asn: 65000
      password: secret
      passive: true
      hold-time: 90s
      keepalive: 30s
      multihop-ttl: 2
      local-address: 198.18.0.2
      families: [ipv4, ipv6]
    - address: 2001:db8::1
      asn: 65001
      password-file: tor2.pw
      hold-time: 0
      keepalive: 0
      families: [ipv6]
mapping: {path: /etc/virtbgp/mapping.d}
status: {listen: "127.0.0.1:9479"}
policy: {paused: keep, standby-prepend: 16}
resync-interval: 0
`,
		"version: 2\nbgp: {asn: 0, router-id: ::1}\nmapping: {path: ''}\n",
		"bgp:\n  peers:\n    - {address: 198.18.0.1, asn: 1, password: a, password-file: missing}\n    - {address: 198.18.0.1}\n",
		"bgp:\n  peers:\n    - {address: 198.18.0.1, asn: 1, hold-time: 3s, keepalive: 3s, local-address: '::2', families: [ipv4, ipv4]}\n",
		"version: 1\nversion: 1\nfoo: &a [1]\nbar: *a\n<<: {x: 1}\n",
		"version: 1\nbgp:\n  asn: 1\n  router-id: 1.2.3.4\n  listen-port: 179\n  peers:\n    - {interface: eth0, asn: 2}\n    - {interface: eth0, address: 1.1.1.1, asn: 2, local-address: 1.1.1.2, multihop-ttl: 2, next-hop-ipv6: '2001:db8::1'}\n    - {interface: 'a/b', asn: 2, families: [ipv6]}\nmapping: {path: x}\n",
		"version: 1\nbgp:\n  asn: 1\n  router-id: 1.2.3.4\n  peers:\n    - {address: 1.1.1.1, asn: 2, families: [ipv4, ipv6], next-hop-ipv6: '2001:db8::1', export: {communities: ['1:2', no-export], large-communities: ['1:2:3'], as-path-prepend: 1, med: 5, families: [ipv6], prefixes: [10.0.0.0/8, '2001:db8::/32']}}\n    - {address: '2001:db8::9', asn: 2, next-hop-ipv4: 10.0.0.1, export: {prefixes: [], communities: 1}}\nmapping: {path: x}\n",
		"- a\n- b\n",
		"version: 1\n---\nversion: 1\n",
		"version: 1\n---\na: [\n",
		"version: 1: 2\n",
		"\tversion: 1\n",
		"resync-interval: !x \"5\\nm\"\nstatus: {listen: 'a b:0'}\npolicy: {paused: ~}\n",
		"libvirt:\nbgp: []\nmapping: 1\nstatus: {listen: ''}\n",
		"{version: 1, bgp: {asn: 1, router-id: 1.2.3.4, listen-port: 0, peers: [{address: 1.1.1.1, asn: 2, passive: true}]}, mapping: {path: x}}\n",
		"version: 1\nbgp: {asn: 1, router-id: 1.2.3.4}\nmapping:\n  metadata: {enabled: true, allowed-prefixes: [192.0.2.0/24, '2001:db8::/32'], min-prefix-length: {ipv4: 28, ipv6: 64}, allowed-next-hops: [198.51.100.0/24], defaults: {communities: ['65001:1'], large-communities: ['1:2:3'], med: 1, local-pref: 2, as-path-prepend: 3, next-hop: self}}\n  nova: {enabled: true, ip-types: [fixed, floating], allowed-prefixes: [203.0.113.0/24], attributes: {med: 5, next-hop: 203.0.113.1}, allowed-next-hops: [203.0.113.0/24]}\n",
		"version: 1\nbgp: {asn: 1, router-id: 1.2.3.4}\nmapping:\n  metadata: {enabled: true, allowed-prefixes: [10.0.0.0/8, 1.2.3.4/24], min-prefix-length: {ipv4: 8}}\n  nova: {enabled: true, ip-types: []}\n",
		"version: 1\nbgp: {asn: 23456, router-id: 224.0.0.1, peers: [{address: 'fe80::1%eth0', asn: 4294967295, password: \"a\\nb\"}, {address: 127.0.0.1, asn: 2, families: [ipv6]}]}\nstatus: {listen: '[::]:1'}\nmapping:\n  metadata: {enabled: true, allowed-prefixes: [10.0.0.0/16], min-prefix-length: {ipv4: 16}}\nroutes: {min-prefix-length: {ipv4: 20, ipv6: 40}, allowed-prefixes: [10.0.0.0/16, 10.0.1.0/24, 0.0.0.0/0]}\n",
		"version: 1\nbgp: {asn: 65001, router-id: 192.0.2.1, peers: [{address: 198.18.0.1, asn: 65000, hold-time: 0, receive-limit: 0, receive-limit-action: restart}, {address: 198.18.0.2, asn: 65000, receive-limit: 4294967296, receive-limit-action: x}]}\nmapping: {path: m.yaml}\n",
		"version: 1\nbgp: {asn: 1, router-id: 1.2.3.4}\nmapping:\n  metadata:\n    enabled: true\n    allowed-prefixes: [192.0.2.0/24]\n    health:\n      types: [agent, tcp, http]\n      min-interval: 2s\n      max-checks: 4\n      defaults: {on-failure: depreference, initial: up, depreference: {med: 9}, checks: [{type: exec, command: [/bin/true]}, {type: http, url: 'http://{ip}/', maintenance: /run/m}]}\n  nova: {enabled: true, allowed-prefixes: [203.0.113.0/24], health: {checks: [{type: agent, interval: 1s, rise: 2, fall: 2}]}}\n",
		"version: 1\nbgp: {asn: 1, router-id: 1.2.3.4}\nmapping:\n  metadata: {enabled: true, allowed-prefixes: [192.0.2.0/24], health: {types: [exec, x, []], min-interval: 1ms, max-checks: 0, defaults: {checks: []}}}\n  nova: {enabled: true, allowed-prefixes: [203.0.113.0/24], health: {checks: [{type: tcp}], on-failure: x}}\n",
	} {
		f.Add([]byte(seed))
	}
	const file = "fuzz/virtbgp.yaml"
	line := regexp.MustCompile(`^fuzz/virtbgp\.yaml:[1-9][0-9]*: [^\n]+$`)
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := parse(file, data, fuzzPassword)
		cfg2, err2 := parse(file, data, fuzzPassword)
		if !reflect.DeepEqual(cfg, cfg2) || !reflect.DeepEqual(fileerr.Errors(err), fileerr.Errors(err2)) {
			t.Fatalf("Parse is not deterministic")
		}
		if err != nil {
			if cfg != nil {
				t.Fatalf("config and error both returned")
			}
			list := fileerr.Errors(err)
			if len(list) == 0 {
				t.Fatalf("error %q (%T) is not an ErrorList", err, err)
			}
			for _, e := range list {
				if e.File != file || e.Line < 1 || !line.MatchString(e.Error()) {
					t.Errorf("bad problem %q (%+v)", e.Error(), e)
				}
			}
			if !slices.IsSortedFunc(list, func(a, b fileerr.Error) int { return a.Line - b.Line }) {
				t.Errorf("problems not sorted: %q", err)
			}
			if strings.Count(err.Error(), "\n") != len(list)-1 {
				t.Errorf("a problem spans lines: %q", err)
			}
			return
		}
		checkConfig(t, cfg)
	})
}

// checkConfig fails t unless cfg has its required fields set, its defaults
// filled and every value within the documented limits.
func checkConfig(t *testing.T, cfg *Config) {
	t.Helper()
	if cfg == nil {
		t.Fatal("nil config without error")
	}
	if cfg.File == "" || cfg.Libvirt.URI == "" || cfg.Mapping.Path == "" && !cfg.Mapping.Sources() {
		t.Errorf("empty file, URI or mapping path: %+v", cfg)
	}
	if err := cfg.Mapping.Metadata.Health.Validate(); err != nil {
		t.Errorf("mapping.metadata.health accepted out of its limits: %v", err)
	}
	b := cfg.BGP
	if b.ASN == 0 || !b.RouterID.Is4() || b.RouterID.IsUnspecified() {
		t.Errorf("bad bgp asn or router-id: %+v", b)
	}
	if gr := b.GracefulRestart; gr.RestartTime < time.Second || gr.RestartTime > MaxRestartTime || gr.RestartTime%time.Second != 0 {
		t.Errorf("bad restart-time %s", gr.RestartTime)
	}
	seen := map[string]bool{}
	for i, p := range b.Peers {
		if !p.Address.IsValid() || !unicast(p.Address) || p.Port == 0 || p.ASN == 0 {
			t.Errorf("peer %d: bad address, port or asn: %+v", i, p)
		}
		if seen[p.Address.String()] {
			t.Errorf("peer %d: duplicate address %s", i, p.Address)
		}
		seen[p.Address.String()] = true
		if p.HoldTime != 0 && (p.HoldTime < MinHoldTime || p.HoldTime > MaxHoldTime) || p.HoldTime%time.Second != 0 {
			t.Errorf("peer %d: bad hold-time %s", i, p.HoldTime)
		}
		if p.HoldTime != 0 && (p.Keepalive < time.Second || p.Keepalive >= p.HoldTime) || p.Keepalive%time.Second != 0 {
			t.Errorf("peer %d: bad keepalive %s with hold-time %s", i, p.Keepalive, p.HoldTime)
		}
		if p.LocalAddress.IsValid() && p.LocalAddress.Is4() != p.Address.Is4() {
			t.Errorf("peer %d: local-address family differs", i)
		}
		if len(p.Password) > MaxPasswordLen {
			t.Errorf("peer %d: password too long", i)
		}
		if p.Passive && b.ListenPort == 0 {
			t.Errorf("peer %d: passive without a listener", i)
		}
		if len(p.Families) == 0 || len(p.Families) > 2 || len(p.Families) == 2 && p.Families[0] == p.Families[1] {
			t.Errorf("peer %d: bad families %v", i, p.Families)
		}
		for _, f := range p.Families {
			if f != FamilyIPv4 && f != FamilyIPv6 {
				t.Errorf("peer %d: bad family %q", i, f)
			}
		}
	}
	if cfg.Policy.Paused != PausedWithdraw && cfg.Policy.Paused != PausedKeep {
		t.Errorf("bad paused policy %q", cfg.Policy.Paused)
	}
	if cfg.Policy.StandbyPrepend > MaxStandbyPrepend {
		t.Errorf("bad standby-prepend %d", cfg.Policy.StandbyPrepend)
	}
	if cfg.ResyncInterval != 0 && cfg.ResyncInterval < time.Second {
		t.Errorf("bad resync-interval %s", cfg.ResyncInterval)
	}
	for _, src := range []struct {
		on    bool
		allow mapping.Allow
	}{{cfg.Mapping.Metadata.Enabled, cfg.Mapping.Metadata.Allow}, {cfg.Mapping.Nova.Enabled, cfg.Mapping.Nova.Allow}} {
		if err := src.allow.Validate(); err != nil {
			t.Errorf("invalid allow %+v: %v", src.allow, err)
		}
	}
	if err := cfg.Mapping.Metadata.Defaults.Validate(); err != nil {
		t.Errorf("invalid metadata defaults: %v", err)
	}
	if err := cfg.Mapping.Nova.Options.Validate(); err != nil || cfg.Mapping.Nova.Enabled && len(cfg.Mapping.Nova.Options.Types) == 0 {
		t.Errorf("invalid nova options %+v: %v", cfg.Mapping.Nova.Options, err)
	}
	if cfg.Status.Listen != "" && !validListen(cfg.Status.Listen) {
		t.Errorf("bad status listen %q", cfg.Status.Listen)
	}
}
