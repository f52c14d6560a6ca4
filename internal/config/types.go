package config

import (
	"net/netip"
	"time"
)

// Defaults applied by Load where the file leaves a field out.
const (
	DefaultLibvirtURI     = "qemu:///system"
	DefaultPeerPort       = 179
	DefaultHoldTime       = 90 * time.Second
	DefaultRestartTime    = 120 * time.Second
	DefaultResyncInterval = 5 * time.Minute
	DefaultStandbyPrepend = 3
)

// Family is an address family carried on a BGP session.
type Family string

// The families a session can carry.
const (
	FamilyIPv4 Family = "ipv4"
	FamilyIPv6 Family = "ipv6"
)

// PausedPolicy says what happens to the routes of a domain paused for a reason
// other than an incoming migration.
type PausedPolicy string

// The paused policies.
const (
	PausedWithdraw PausedPolicy = "withdraw" // default
	PausedKeep     PausedPolicy = "keep"
)

// Config is the daemon configuration, validated and with defaults filled in.
type Config struct {
	// File is the path the config was loaded from ("" when built in code).
	File           string
	Libvirt        Libvirt
	BGP            BGP
	Mapping        Mapping
	Status         Status
	Policy         Policy
	ResyncInterval time.Duration // resync-interval, default 5m
}

// Libvirt is the libvirt section.
type Libvirt struct {
	URI string // uri, default qemu:///system
}

// BGP is the bgp section.
type BGP struct {
	ASN      uint32     // asn, required, 1..4294967295
	RouterID netip.Addr // router-id, required, IPv4
	// ListenPort is the TCP port to accept BGP sessions on; 0 (default) means
	// no listener: all sessions are active.
	ListenPort      uint16
	GracefulRestart GracefulRestart
	Peers           []Peer
}

// GracefulRestart is bgp.graceful-restart (RFC 4724).
type GracefulRestart struct {
	Enabled     bool          // enabled, default true
	RestartTime time.Duration // restart-time, default 120s, at most 4095s
}

// Peer is one item of bgp.peers.
type Peer struct {
	Address netip.Addr // address, required
	Port    uint16     // port, default 179
	ASN     uint32     // asn, required; equal to bgp.asn means iBGP
	// Password is the TCP MD5 password, from password or password-file (the
	// file is read at load time; surrounding white space is trimmed).
	Password     string
	Passive      bool
	HoldTime     time.Duration // hold-time, default 90s; 0 or >= 3s
	Keepalive    time.Duration // keepalive, default hold-time/3 in whole seconds
	MultihopTTL  uint8         // multihop-ttl, 0 = directly connected
	LocalAddress netip.Addr    // local-address, optional
	Families     []Family      // families, default [ipv4, ipv6]
}

// Mapping is the mapping section.
type Mapping struct {
	Path string // path: a YAML file or a directory of *.yaml, required
}

// Status is the status section.
type Status struct {
	Listen string // listen: host:port; empty disables the endpoint
}

// Policy is the policy section.
type Policy struct {
	Paused PausedPolicy // paused, default withdraw
	// StandbyPrepend is how many extra times the local AS is prepended to the
	// depreferenced standby route announced during an incoming migration
	// (policy.standby-prepend, default 3).
	StandbyPrepend uint8
}
