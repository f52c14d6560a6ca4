package status

import (
	"time"

	"github.com/virtbgp/virtbgp/internal/reconcile"
)

func u32(v uint32) *uint32 { return &v }

// at is a time on the fixture's day, in UTC so that JSON round-trips it
// exactly.
func at(hour, min, sec int) time.Time { return time.Date(2025, 6, 4, hour, min, sec, 0, time.UTC) }

// sampleDigest is the mapping digest of sampleReport.
const sampleDigest = "5d41402abc4b2a76b9719d911017c592ae1f3c8e2b0e7d7a6b5c4d3e2f1a0b9c"

// sampleReport is a realistic Report: two ToRs up (one over IPv6), a third
// peer down; a running VM, both ends of migrations, an unmapped and a
// stopped domain, a domain that arrived by migration and is not in the
// mapping; a rejected reload.
func sampleReport() Report {
	return Report{
		Version:   "1.4.0",
		Revision:  "0123456789ab",
		GoVersion: "go1.26.8",
		Host:      "hv-a12.dc1",
		Started:   time.Date(2025, 6, 1, 9, 0, 0, 0, time.UTC),
		Ready:     true,
		Libvirt:   Libvirt{URI: "qemu:///system", Connected: true},
		Peers: []Peer{
			{Address: "2001:db8:ff::1", ASN: 65000, State: "established", Since: at(12, 0, 0), RoutesSent: 5, Families: []string{"ipv4", "ipv6"}, GracefulRestart: "llgr",
				RoutesSentByFamily: map[string]int{"ipv4": 4, "ipv6": 1}, UpdatesSent: 7, UpdatesReceived: 1},
			{Address: "198.18.0.5", ASN: 65010, State: "active", Families: []string{"ipv4"}, LastDown: "hold timer expired", GracefulRestart: "none", Flaps: 3},
			{Address: "198.18.0.1", ASN: 65000, State: "established", Since: time.Date(2025, 6, 1, 9, 0, 3, 0, time.UTC), RoutesSent: 4, Families: []string{"ipv4", "ipv6"}, LastDown: "peer sent NOTIFICATION: cease/administrative reset", GracefulRestart: "gr",
				RoutesSentByFamily: map[string]int{"ipv4": 4, "ipv6": 0}, UpdatesSent: 9, UpdatesReceived: 2, Flaps: 1,
				NotSent: map[string]string{"ipv6": "no ipv6 next hop: interface eth0 facing the peer has no usable global ipv6 address"}},
		},
		Domains: []Domain{
			{Name: "web-01", UUID: "6695eb01-f6a4-8304-79aa-97f2502e193f", State: "running", Reason: "booted", VM: "web-01",
				Source: SourceFile, Origin: "/etc/virtbgp/mapping.d/web.yaml:4", Routes: 3},
			{Name: "db-02", UUID: "0c1a5e2e-7f9b-4d5c-8f1e-2a3b4c5d6e7f", State: "paused", Reason: "migration", Migration: "incoming", VM: "db-02",
				Source: SourceFile, Origin: "/etc/virtbgp/mapping.d/db.yaml:2", Routes: 1, MigratedIn: true},
			{Name: "cache-03", UUID: "9b2f6c1d-1111-4a2b-8c3d-4e5f60718293", State: "paused", Reason: "migration", Migration: "outgoing", VM: "cache-03",
				Source: SourceFile, Origin: "/etc/virtbgp/mapping.d/web.yaml:20", Routes: 1},
			{Name: "build-07", UUID: "aa0e1d3c-2222-4b3c-9d4e-5f6071829304", State: "off", Reason: "shutdown"},
			{Name: "old-04", UUID: "bb1f2e4d-3333-4c4d-8e5f-607182930415", State: "off", Reason: "destroyed", VM: "old-04",
				Source: SourceFile, Origin: "/etc/virtbgp/mapping.d/zz-legacy.yaml:7"},
			{Name: "lost-09", UUID: "cc2a3f5e-4444-4d5e-9f60-718293041526", State: "running", Reason: "migrated", Routes: 0,
				MigratedIn: true, Problem: ProblemUnmappedArrival},
		},
		Routes: []Route{
			{Prefix: "2001:db8::10/128", NextHop: "self", Communities: []string{"65001:100"}, LargeCommunities: []string{"65001:1:2"}, MED: u32(10), Domain: "web-01", VM: "web-01", Why: "running"},
			{Prefix: "192.0.2.11/32", NextHop: "self", Communities: []string{"65001:100", "no-export"}, LargeCommunities: []string{"65001:1:2"}, MED: u32(50), Domain: "web-01", VM: "web-01", Why: "running"},
			{Prefix: "192.0.2.10/32", NextHop: "self", Communities: []string{"65001:100"}, LargeCommunities: []string{"65001:1:2"}, MED: u32(10), Domain: "web-01", VM: "web-01", Why: "running"},
			{Prefix: "198.51.100.7/32", NextHop: "198.18.0.2", LocalPref: u32(200), ASPathPrepend: 3, Domain: "db-02", VM: "db-02", Why: "standby"},
			{Prefix: "192.0.2.20/32", NextHop: "self", MED: u32(10), ASPathPrepend: 1, Domain: "cache-03", VM: "cache-03", Why: "switchover"},
		},
		Mapping: Mapping{
			Path:       "/etc/virtbgp/mapping.d",
			Generation: 7,
			Digest:     sampleDigest,
			LoadedAt:   at(11, 30, 0),
			Files:      []string{"/etc/virtbgp/mapping.d/db.yaml", "/etc/virtbgp/mapping.d/web.yaml", "/etc/virtbgp/mapping.d/zz-legacy.yaml"},
			VMs:        12,
			Routes:     31,
			LastReload: Reload{
				At: at(13, 2, 41),
				Errors: []string{
					"/etc/virtbgp/mapping.d/web.yaml:14: med: 4294967296 is out of range 0..4294967295",
					"/etc/virtbgp/mapping.d/db.yaml:3: 192.0.2.10 is also in vms.web-01 (/etc/virtbgp/mapping.d/web.yaml:9)",
				},
			},
		},
		Drain: Drain{State: reconcile.DrainNone},
		Time:  at(13, 12, 5),
	}
}

// freshReport is a daemon that has just started: libvirt not reachable yet,
// no peer configured, nothing announced.
func freshReport() Report {
	return Report{
		Version: "devel",
		Host:    "hv-b03",
		Started: at(13, 12, 0),
		Libvirt: Libvirt{URI: "qemu:///system"},
		Mapping: Mapping{Path: "/etc/virtbgp/mapping.yaml", Generation: 1, LoadedAt: at(13, 12, 0), Files: []string{"/etc/virtbgp/mapping.yaml"}, VMs: 2, Routes: 3},
		Drain:   Drain{State: reconcile.DrainDraining, Since: at(13, 11, 0)},
		Time:    at(13, 12, 5),
	}
}
