package config

import (
	"net/netip"
	"time"

	"github.com/virtbgp/virtbgp/fileerr"
	"github.com/virtbgp/virtbgp/mapping"
)

// Defaults applied by Load where the file leaves a field out.
const (
	DefaultLibvirtURI     = "qemu:///system"
	DefaultPeerPort       = 179
	DefaultResyncInterval = 5 * time.Minute
	DefaultStandbyPrepend = 3
	DefaultStateDir       = "/var/lib/virtbgp"
	DefaultControlSocket  = "/run/virtbgp/control.sock"
	DefaultDrainTime      = 60 * time.Second
)

// The BGP timers' defaults: a dead host's routes must not blackhole its
// VMs' traffic once they run elsewhere, and a virtbgp restart must not lose
// a route (docs/tor, "Graceful restart").
const (
	// DefaultHoldTime is FRR's datacenter profile (keepalive 3s, hold 9s);
	// the keepalive defaults to a third of the hold time.
	DefaultHoldTime = 9 * time.Second
	// DefaultRestartTime is the shortest graceful-restart time GoBGP can
	// announce (it announces the hold time for 0): a dead host's routes
	// stay ordinary paths at the helpers this long, then LLGR-stale.
	DefaultRestartTime = time.Second
	// DefaultLongLivedStaleTime is BIRD's default for its own "long lived
	// stale time": a helper keeps a restarting or dead host's routes this
	// long as LLGR-stale, where they lose to any fresh path.
	DefaultLongLivedStaleTime = 3600 * time.Second
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
	// StateDir holds what must survive a restart (the drain state);
	// state-dir, default /var/lib/virtbgp.
	StateDir string
	Control  Control
	Drain    Drain
	API      API
	// Routes is the routes section: what any route of any source may be
	// (min-prefix-length, default /24 and /48; allowed-prefixes, default
	// anywhere).
	Routes mapping.Limits
	// Warnings are what is valid but probably wrong or unsafe (a password
	// in the file, a world-readable password file, a status endpoint on
	// every address, ...), each at its file and line, sorted. `virtbgp
	// check` prints them and `virtbgp run` logs them at WARN.
	Warnings fileerr.ErrorList
}

// Control is the control section: the local channel of `virtbgp status`,
// `drain`, `undrain` and `reload`.
type Control struct {
	Socket string // socket, default /run/virtbgp/control.sock
	// ReadGroup is read-group: a group whose members may use the API's
	// read calls on the socket (root alone writes); "" for none. ReadGID
	// is its gid, looked up at load time.
	ReadGroup string
	ReadGID   uint32
}

// Drain is the drain section.
type Drain struct {
	// GracefulShutdownTime is how long `virtbgp drain` announces every route
	// with the GRACEFUL_SHUTDOWN community (RFC 8326) before withdrawing
	// them; graceful-shutdown-time, default 60s, 0..1h.
	GracefulShutdownTime time.Duration
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
	RestartTime time.Duration // restart-time, default 1s, 1s..4095s
	// LongLivedStaleTime is long-lived-stale-time (RFC 9494): when set,
	// every session also announces long-lived graceful restart for each of
	// its families with this stale time; default 3600s, 0 announces none.
	LongLivedStaleTime time.Duration
	// Notification is notification (RFC 8538): every session announces the
	// N bit, so that where the peer announces it too, a NOTIFICATION other
	// than a Hard Reset and a hold-timer expiry end the session with
	// graceful restart instead of a withdrawal; default true.
	Notification bool
}

// Peer is one item of bgp.peers.
type Peer struct {
	// Address is address: the peer's address. Exactly one of address and
	// interface is given; for an interface peer Address is the zero Addr.
	Address netip.Addr
	// Interface is interface: BGP unnumbered. The session runs over the
	// IPv6 link-local addresses of this interface, the peer's learned from
	// the link (the speaker resolves it: internal/bgp), and carries IPv4
	// routes with an IPv6 next hop (RFC 8950).
	Interface string
	Port      uint16 // port, default 179
	ASN       uint32 // asn, required; equal to bgp.asn means iBGP
	// Password is the TCP MD5 password, from password or password-file (the
	// file is read at load time; surrounding white space is trimmed).
	Password     string
	Passive      bool
	HoldTime     time.Duration // hold-time, default 9s; 0 or >= 3s
	Keepalive    time.Duration // keepalive, default hold-time/3 in whole seconds
	MultihopTTL  uint8         // multihop-ttl, 0 = directly connected
	LocalAddress netip.Addr    // local-address, optional
	Families     []Family      // families, default: the family of Address; both for an interface peer
	// ReceiveLimit is receive-limit, default DefaultReceiveLimit: the most
	// routes of a family the peer should send. virtbgp imports none, but
	// GoBGP keeps every route a peer sends (about 250 bytes each); 0: no
	// limit.
	ReceiveLimit uint32
	// ReceiveLimitAction is receive-limit-action: what happens beyond
	// ReceiveLimit, default ReceiveWarn.
	ReceiveLimitAction ReceiveAction
	// NextHopIPv4 and NextHopIPv6 are next-hop-ipv4 and next-hop-ipv6: the
	// next hop sent to this peer in place of "self" for routes of that
	// family when the session's transport is of the other family. Unset,
	// the speaker uses the global address of that family on the local
	// interface that faces the peer (internal/bgp).
	NextHopIPv4 netip.Addr
	NextHopIPv6 netip.Addr
	// Export is export: what is changed or filtered in the routes sent to
	// this peer only. Changing it changes no session.
	Export PeerExport
}

// PeerExport is a peer's export policy (bgp.peers[i].export): the changes
// made to every route sent to that peer and the filters that keep routes
// from it. The zero value sends every route unchanged.
type PeerExport struct {
	// Communities and LargeCommunities are added to every route sent
	// (communities, large-communities), sorted, without duplicates.
	Communities      []uint32
	LargeCommunities []mapping.LargeCommunity
	// ASPathPrepend prepends the local AS this many more times
	// (as-path-prepend, 0..10).
	ASPathPrepend uint8
	// MED replaces the MULTI_EXIT_DISC of every route sent (med); nil
	// leaves the route's own.
	MED *uint32
	// Families, when set, are the only families whose routes are sent
	// (families); nil sends every family the session carries.
	Families []Family
	// Prefixes, when set, is an allow-list (prefixes): only routes within
	// one of them (equal or more specific) are sent; nil sends all.
	Prefixes []netip.Prefix
}

// Name names the peer in messages: its address, or "interface NAME".
func (p *Peer) Name() string {
	if p.Interface != "" {
		return "interface " + p.Interface
	}
	return p.Address.String()
}

// IsZero reports whether e changes and filters nothing.
func (e *PeerExport) IsZero() bool {
	return len(e.Communities) == 0 && len(e.LargeCommunities) == 0 && e.ASPathPrepend == 0 &&
		e.MED == nil && e.Families == nil && e.Prefixes == nil
}

// Defaults of the mapping reload guard (Mapping).
const (
	DefaultMaxWithdrawPercent   = 50
	DefaultWithdrawConfirmAfter = 10 * time.Minute
)

// DefaultReceiveLimit is the default receive-limit: a ToR that follows
// docs/tor sends nothing; one that leaks its table sends far more.
const DefaultReceiveLimit = 1000

// ReceiveAction is what happens when a peer sends more routes than its
// receive-limit.
type ReceiveAction string

// The receive-limit actions.
const (
	// ReceiveWarn logs a warning once per session and shows the count in
	// status; the routes are kept (and cost memory). The default.
	ReceiveWarn ReceiveAction = "warn"
	// ReceiveRestart ends the session with a Cease (maximum number of
	// prefixes reached, RFC 4486), which drops the peer's routes and so
	// bounds their memory; the session then comes up again.
	ReceiveRestart ReceiveAction = "restart"
)

// Mapping is the mapping section.
type Mapping struct {
	// Path is a YAML file or a directory of *.yaml; required unless
	// Metadata or Nova is enabled, "" for no file.
	Path string
	// Watch reloads the mapping when its files change (debounced), as
	// SIGHUP does; watch, default true.
	Watch bool
	// MaxBytes is the most bytes of mapping files read in all; max-bytes,
	// default mapping.DefaultMaxBytes. A bigger mapping is rejected.
	MaxBytes int64
	// MaxWithdrawPercent is the share of the announced routes a mapping
	// reload may withdraw without confirmation; max-withdraw-percent, from
	// 0 to 100, default DefaultMaxWithdrawPercent (100: no guard). A reload
	// that withdraws more is held until `virtbgp reload --force` or until
	// the same files stay in place for WithdrawConfirmAfter.
	MaxWithdrawPercent int
	// WithdrawConfirmAfter is how long a held reload's files must stay
	// unchanged to be applied without confirmation; withdraw-confirm-after,
	// default DefaultWithdrawConfirmAfter, 0: only on confirmation.
	WithdrawConfirmAfter time.Duration
	// Metadata is mapping.metadata: virtbgp's element in the domains'
	// metadata as a source of routes.
	Metadata Metadata
	// Nova is mapping.nova: OpenStack Nova's element in the domains'
	// metadata as a source of routes.
	Nova Nova
}

// Metadata is mapping.metadata (docs/metadata.md).
type Metadata struct {
	// Enabled reads each active domain's virtbgp element; enabled,
	// default false.
	Enabled bool
	// Allow is what the element may claim: allowed-prefixes (required
	// when enabled), min-prefix-length, allowed-next-hops.
	Allow mapping.Allow
	// Defaults are the attributes below the element's own; defaults.
	Defaults mapping.Attributes
	// Health is what the element's health checks may be (health.types,
	// health.min-interval, health.max-checks), and the operator's own
	// checks of the IPs the element gives none (health.defaults, in
	// Health.Defaults; nil: none).
	Health mapping.HealthTrust
}

// Nova is mapping.nova (docs/metadata.md).
type Nova struct {
	// Enabled reads each active domain's Nova element; enabled, default
	// false.
	Enabled bool
	// Allow is what Nova's IPs may claim: allowed-prefixes (required when
	// enabled), allowed-next-hops. Nova's IPs are host routes.
	Allow mapping.Allow
	// Options are the IP types to announce (ip-types, default [fixed])
	// and the attributes of every route (attributes).
	Options mapping.NovaOptions
}

// Sources reports whether any source of routes other than a mapping file
// is enabled.
func (m *Mapping) Sources() bool { return m.Metadata.Enabled || m.Nova.Enabled }

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
