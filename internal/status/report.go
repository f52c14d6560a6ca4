// Package status shows what virtbgp is doing: the Report (what is desired
// vs announced, peers, domains, mapping, drain, libvirt), the optional HTTP
// endpoint serving it (/status, /metrics, /healthz, /readyz), the Prometheus
// metrics, and the human table of `virtbgp status`.
package status

import (
	"github.com/virtbgp/virtbgp/internal/maintenance"
	"github.com/virtbgp/virtbgp/internal/manual"

	"time"

	"github.com/virtbgp/virtbgp/internal/health"
	"github.com/virtbgp/virtbgp/internal/reconcile"
)

// Report is a point-in-time view of one virtbgp daemon. It is what /status
// and `virtbgp status --json` return.
type Report struct {
	Version string `json:"version"`
	// Revision is the VCS commit virtbgp was built from; GoVersion the Go
	// release that built it.
	Revision  string    `json:"revision,omitempty"`
	GoVersion string    `json:"go_version,omitempty"`
	Host      string    `json:"host"`
	Started   time.Time `json:"started"`
	// Ready is true after the first full sync from libvirt was applied.
	Ready   bool     `json:"ready"`
	Libvirt Libvirt  `json:"libvirt"`
	Peers   []Peer   `json:"peers"`
	Domains []Domain `json:"domains"`
	Routes  []Route  `json:"routes"`
	Mapping Mapping  `json:"mapping"`
	Drain   Drain    `json:"drain"`
	// Health is every health check's state (health.Monitor.Status).
	Health []health.CheckStatus `json:"health_checks,omitempty"`
	// ManualRoutes are the API's manual routes in force, with who
	// created them and when (internal/manual).
	ManualRoutes []manual.Route `json:"manual_routes"`
	// Maintenance are the operator's maintenance entries in force (the
	// API's, `virtbgp maintenance on`), with who set them and when
	// (internal/maintenance).
	Maintenance []maintenance.Entry `json:"maintenance,omitempty"`
	Time        time.Time           `json:"time"` // when the report was made
}

// Libvirt is the libvirt connection.
type Libvirt struct {
	URI       string `json:"uri"`
	Connected bool   `json:"connected"`
}

// Peer is one BGP session.
type Peer struct {
	// Address is the peer's address; for an unnumbered peer its
	// link-local address with the interface as zone ("fe80::1%eth1"), ""
	// until it is resolved.
	Address string `json:"address"`
	// Interface is the interface of an unnumbered peer (bgp.peers[i].
	// interface); Waiting says why it has no session yet.
	Interface string `json:"interface,omitempty"`
	Waiting   string `json:"waiting,omitempty"`
	ASN       uint32 `json:"asn"`
	// State is idle, connect, active, opensent, openconfirm or established.
	State string `json:"state"`
	// Since is when the session was established (zero unless established).
	Since      time.Time `json:"since,omitzero"`
	RoutesSent int       `json:"routes_sent"`
	// RoutesReceived is the number of routes the peer sent, which virtbgp
	// does not import but keeps in memory (its receive-limit bounds them).
	RoutesReceived int      `json:"routes_received"`
	Families       []string `json:"families"`
	LastDown       string   `json:"last_down,omitempty"`
	// LastError is the last NOTIFICATION the session sent or received
	// while it is not established: why it does not come up (a wrong AS
	// number, a bad router ID); empty once it is up.
	LastError string `json:"last_error,omitempty"`
	// GracefulRestart is what the peer announced in the OPEN of its last
	// established session: "llgr" (graceful restart and long-lived
	// graceful restart: it keeps this host's routes through a virtbgp
	// restart, LLGR-stale after the restart time), "gr" (graceful restart
	// only: it drops them after the restart time) or "none" (it drops them
	// when the session ends); empty until a session is up.
	GracefulRestart string `json:"graceful_restart,omitempty"`
	// RoutesSentByFamily is RoutesSent per family of Families (empty
	// unless established): what GoBGP's Adj-RIB-Out holds for the peer,
	// after its export policy.
	RoutesSentByFamily map[string]int `json:"routes_sent_by_family,omitempty"`
	// UpdatesSent and UpdatesReceived are the UPDATE messages of the
	// current session (0 unless established).
	UpdatesSent     int `json:"updates_sent"`
	UpdatesReceived int `json:"updates_received"`
	// Flaps is how many times the session went down from established
	// since virtbgp started; LastDown says why the last time.
	Flaps int `json:"flaps"`
	// NotSent are the families of Families whose routes the peer is not
	// sent, with why (its export families, no next hop of that family).
	NotSent map[string]string `json:"not_sent,omitempty"`
}

// Label is the peer's name in metrics labels: its interface for an
// unnumbered peer (stable while its neighbour's address changes), its
// address for the others.
func (p *Peer) Label() string {
	if p.Interface != "" {
		return p.Interface
	}
	return p.Address
}

// Domain is one libvirt domain as the reconciler last read it.
type Domain struct {
	Name      string `json:"name"`
	UUID      string `json:"uuid"`
	State     string `json:"state"`  // running, paused, off
	Reason    string `json:"reason"` // libvirt's state reason
	Migration string `json:"migration,omitempty"`
	VM        string `json:"vm,omitempty"` // the mapping entry it matches
	// Source says where the domain's routes come from, Origin where in
	// that source: SourceFile and "path:line" of the entry's key in the
	// mapping. Both are empty when nothing maps the domain.
	Source string `json:"source,omitempty"`
	Origin string `json:"origin,omitempty"`
	Routes int    `json:"routes"` // routes announced for it
	// MigratedIn: the domain arrived on this host by live migration and
	// has not stopped or been started anew here since.
	MigratedIn bool `json:"migrated_in,omitempty"`
	// Problem names what is wrong with the domain's routes on this host,
	// for people and alerts; empty if nothing is: ProblemMetadataError,
	// ProblemClaimsRefused, ProblemUnmappedArrival (in that order of
	// precedence).
	Problem string `json:"problem,omitempty"`
	// MetadataError is what is wrong with the domain's element of Source
	// (SourceMetadata, SourceNova), which then gives no routes.
	MetadataError string `json:"metadata_error,omitempty"`
	// Refused are the claims of Source that are not announced, with why.
	Refused []Refusal `json:"refused,omitempty"`
	// Ignored names a source whose element the domain has and that Source
	// overrides: SourceMetadata or SourceNova.
	Ignored string `json:"ignored,omitempty"`
	// Maintenance is what of the domain an operator put in maintenance
	// (Report.Maintenance has who, when, why): "all", or its routes in
	// maintenance ("192.0.2.11/32"); empty when none.
	Maintenance []string `json:"maintenance,omitempty"`
}

// Refusal is a claimed prefix that is not announced, and why.
type Refusal struct {
	Prefix string `json:"prefix"`
	Reason string `json:"reason"`
}

// Sources of a domain's routes (Domain.Source; docs/metadata.md).
const (
	// SourceFile: an entry of the mapping file (or directory); Origin is
	// "path:line" of the entry's key.
	SourceFile = reconcile.SourceFile
	// SourceMetadata: virtbgp's element in the domain's live metadata;
	// Origin is its namespace.
	SourceMetadata = reconcile.SourceMetadata
	// SourceNova: Nova's element in the domain's live metadata; Origin is
	// its namespace.
	SourceNova = reconcile.SourceNova
)

// Problems of a domain (Domain.Problem).
const (
	// ProblemUnmappedArrival: the domain arrived by live migration and the
	// mapping in force here has no entry for it, so this host announces
	// nothing for it (and the host it left no longer does either).
	ProblemUnmappedArrival = "unmapped-arrival"
	// ProblemMetadataError: the domain's element (of Source) has a problem
	// (MetadataError), so it announces nothing from it.
	ProblemMetadataError = "metadata-error"
	// ProblemClaimsRefused: some claims of the domain's metadata are
	// refused (Refused); the others are announced.
	ProblemClaimsRefused = "claims-refused"
)

// Route is one announced route with its attributes.
type Route struct {
	Prefix           string   `json:"prefix"`
	NextHop          string   `json:"next_hop"` // "self" or an address
	Communities      []string `json:"communities,omitempty"`
	LargeCommunities []string `json:"large_communities,omitempty"`
	MED              *uint32  `json:"med,omitempty"`
	LocalPref        *uint32  `json:"local_pref,omitempty"`
	ASPathPrepend    uint8    `json:"as_path_prepend,omitempty"`
	Domain           string   `json:"domain"`
	VM               string   `json:"vm"`
	// Why is the rule that selected it: running, standby, switchover,
	// paused-keep, draining.
	Why string `json:"why"`
	// Source is where it comes from: file, metadata, nova.
	Source string `json:"source,omitempty"`
	// Health is "up" or "failing" (announced depreferenced) for a route
	// with health checks, empty without; HealthReason says why.
	Health       string `json:"health,omitempty"`
	HealthReason string `json:"health_reason,omitempty"`
	// NotCarried says why no peer is sent the route, e.g. "no peer
	// carries ipv6"; empty when some peer's session carries its family.
	NotCarried string `json:"not_carried,omitempty"`
}

// Mapping is the mapping in force and the last reload.
type Mapping struct {
	Path string `json:"path"`
	// Generation is 1 at start, +1 per reload that changed the content.
	Generation int `json:"generation"`
	// Digest is the SHA-256 (hex) of the mapping's content: its entries
	// with their UUID pins and their routes with every attribute resolved,
	// not the files' bytes. Hosts whose mappings name the same VMs with the
	// same routes have the same digest, however the files are laid out,
	// formatted or commented.
	Digest string `json:"digest"`
	// LoadedAt is when this generation was put in force.
	LoadedAt   time.Time `json:"loaded_at"`
	Files      []string  `json:"files"`
	VMs        int       `json:"vms"`
	Routes     int       `json:"routes"`
	LastReload Reload    `json:"last_reload,omitzero"` // zero (left out) until a reload is tried
	// Held is the reload held because it would withdraw too many routes,
	// if any: confirm with `virtbgp reload --force`.
	Held *HeldReload `json:"held,omitempty"`
	// Watch is how the mapping's files are watched.
	Watch Watch `json:"watch"`
}

// HeldReload is a mapping reload held for confirmation.
type HeldReload struct {
	Since     time.Time `json:"since"`
	Withdraw  int       `json:"withdraw"`  // routes it would withdraw
	Announced int       `json:"announced"` // of the routes announced now
	// ApplyAt is when it is applied if its files stay unchanged (zero:
	// only when confirmed).
	ApplyAt time.Time `json:"apply_at,omitzero"`
	Digest  string    `json:"digest"` // mapping.Digest of its files
}

// Watch is the state of the mapping watcher: "off" (mapping.watch: false
// or no file), "ok" (inotify), or "polling" (a watch was lost or could not
// be set; Error says why).
type Watch struct {
	State string   `json:"state"`
	Dirs  []string `json:"dirs,omitempty"` // the directories watched
	Error string   `json:"error,omitempty"`
}

// Reload is the result of the last reload attempt (zero if none yet).
type Reload struct {
	At     time.Time `json:"at,omitzero"`
	OK     bool      `json:"ok"`
	Errors []string  `json:"errors,omitempty"` // "file:line: problem" each
	// MoreErrors counts the problems left out of Errors, which keeps the
	// first MaxReloadErrors.
	MoreErrors int `json:"more_errors,omitempty"`
}

// MaxReloadErrors is how many problems of a failed reload a report keeps.
const MaxReloadErrors = 20

// Drain is the host's drain state: "none", "draining" or "drained" in JSON,
// and since when.
type Drain struct {
	State reconcile.Drain `json:"state"`
	Since time.Time       `json:"since,omitzero"`
}
