package reconcile

import (
	"net/netip"

	"github.com/virtbgp/virtbgp/mapping"
)

// Policy is what the operator decides about borderline states.
type Policy struct {
	// KeepPaused keeps the routes of a domain paused for a reason other than
	// an incoming migration (policy.paused: keep).
	KeepPaused bool
	// StandbyPrepend is the number of extra local-AS prepends on the standby
	// route announced while an incoming migration runs, so that peers prefer
	// the source's path until the guest resumes here. It must be at least 2:
	// the source keeps its route during the switch-over with
	// SwitchoverPrepend, which must stay the better of the two.
	StandbyPrepend uint8
	// Trust is what the sources other than the mapping file may claim.
	Trust Trust
}

// SwitchoverPrepend is the extra prepend on the source's route while it is
// paused for the switch-over of an outgoing migration: worse than the route
// the destination announces once the guest resumes there, better than the
// destination's standby route before that. Peers thus always have a path
// (make-before-break) and never prefer the destination early.
const SwitchoverPrepend = 1

// Want is one route the reconciler wants announced, and why.
type Want struct {
	Route  mapping.Route
	VM     string // mapping key
	Domain string // libvirt domain name
	UUID   string // libvirt domain UUID
	// Why says which rule selected the route: "running", "leaving" (an
	// anycast route of a running domain migrating out), "standby"
	// (incoming migration), "switchover" (outgoing migration),
	// "paused-keep".
	Why string
	// Source is where the route comes from: SourceFile (VM is the entry),
	// SourceMetadata or SourceNova.
	Source string
	// Health is the route's health: HealthNone (no checks), HealthUp, or
	// HealthFailing (announced depreferenced); HealthReason says why.
	Health       string
	HealthReason string
}

// Reasons a route is wanted.
const (
	WhyRunning = "running"
	// WhyLeaving: an anycast route of a domain that runs here and is
	// migrating out (pre-copy), announced with SwitchoverPrepend.
	WhyLeaving    = "leaving"
	WhyStandby    = "standby"
	WhySwitchover = "switchover"
	WhyPausedKeep = "paused-keep"
	// WhyManual: a manual route of the API.
	WhyManual = "manual"
)

// serving decides from a domain's state whether its routes are wanted, and
// how: the table "When is a domain serving here?" of docs/design.md.
func serving(d Domain, p Policy) (why string, ok bool) {
	switch d.State {
	case StateRunning:
		return WhyRunning, true
	case StatePaused:
		switch d.Migration {
		case MigrationIncoming:
			return WhyStandby, true
		case MigrationOutgoing:
			return WhySwitchover, true
		case MigrationFailed:
			return "", false // the guest runs nowhere
		}
		if p.KeepPaused {
			return WhyPausedKeep, true
		}
	}
	return "", false
}

// Desired computes the routes that should be announced, as a pure function
// of the domains on this host (with their metadata claims), the mapping,
// the policy, the manual routes and the health of the routes: Resolve with
// nothing announced before. Only prefixes that the mapping names, or that
// a domain's metadata or a manual route claims within what the policy
// trusts that source with, can appear in the result.
func Desired(domains []Domain, m *mapping.Mapping, p Policy, manual []mapping.Route, h Health) map[netip.Prefix]Want {
	return Resolve(domains, m, p, manual, nil, h).Want
}

func rank(why string) int {
	switch why {
	case WhyRunning:
		return 4
	case WhyLeaving:
		return 3
	case WhyPausedKeep:
		return 2
	case WhySwitchover:
		return 1
	}
	return 0
}

func addPrepend(a, b uint8) uint8 {
	if int(a)+int(b) > 255 {
		return 255
	}
	return a + b
}
